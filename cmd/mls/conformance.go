package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/conformance"
	"github.com/mlskit/mls/internal/vectors"
)

func init() {
	register(&command{name: "conformance", summary: "check the implementation against the official MLS test vectors", run: runConformance})
}

// runAll is conformance.RunAll; tests may wrap it.
var runAll = conformance.RunAll

// maxListed is how many failing cases per file the table lists without -v.
const maxListed = 5

// maxDetail caps the length of one case's detail in the table.
const maxDetail = 240

func runConformance(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print a JSON array, one object per vector file, instead of a table")
	dir := fs.String("vectors", "", "read the official test vector files from `DIR`\n(default $"+vectors.EnvVar+", else ../shared/test-vectors beside the module)")
	verbose := fs.Bool("v", false, "list every failing and skipped case and every case passed with a note")
	if ok, status := parseFlags(fs, "conformance [-json] [-v] [-vectors DIR]", args, stdout, stderr); !ok {
		return status
	}
	if *dir == "" {
		d, err := vectors.Dir()
		if err != nil {
			fmt.Fprintf(stderr, "mls conformance: locating the test vectors: %v\n", err)
			return 1
		}
		*dir = d
	}
	if _, err := os.Stat(*dir); err != nil {
		fmt.Fprintf(stderr, "mls conformance: vector directory %s: %v\n", *dir, err)
		fmt.Fprintf(stderr, "Put the official vector files there, set %s, or pass -vectors DIR.\n", vectors.EnvVar)
	}

	reports := runAll(*dir)
	if *asJSON {
		if err := writeJSON(stdout, reports); err != nil {
			fmt.Fprintf(stderr, "mls conformance: %v\n", err)
			return 1
		}
	} else {
		writeTable(stdout, *dir, reports, *verbose)
		writeSuites(stdout, reports, fileSuites(*dir, reports), *verbose)
	}
	return exitStatus(reports)
}

// fileResult is the summary of one vector file.
type fileResult struct {
	passed, failed, skipped, total, notes int
	status                                string // ok, FAIL, not implemented, missing
	err                                   string // file-level error, "" if none
}

func summarize(r *conformance.Report) fileResult {
	var s fileResult
	s.passed, s.failed, s.skipped = r.Counts()
	s.total = len(r.Cases)
	for _, c := range r.Cases {
		if c.Note != "" {
			s.notes++
		}
	}
	switch {
	case !r.Implemented:
		s.status = "not implemented"
	case r.Err != nil && conformance.IsNotFound(r.Err):
		s.status, s.err = "missing", r.Err.Error()
	case r.Err != nil:
		s.status, s.err = "FAIL", r.Err.Error()
	case s.total == 0:
		s.status, s.err = "FAIL", "the checker recorded no cases"
	case s.failed > 0:
		s.status = "FAIL"
	default:
		s.status = "ok"
	}
	return s
}

// exitStatus is 1 if an implemented file failed, errored, recorded nothing
// or is missing, and 0 otherwise.
func exitStatus(reports []*conformance.Report) int {
	for _, r := range reports {
		if s := summarize(r); r.Implemented && s.status != "ok" {
			return 1
		}
	}
	return 0
}

// jsonReport is one element of the -json output. The keys are part of the
// command's interface.
type jsonReport struct {
	File        string `json:"file"`
	Implemented bool   `json:"implemented"`
	Passed      int    `json:"passed"`
	Failed      int    `json:"failed"`
	Skipped     int    `json:"skipped"`
	Total       int    `json:"total"`
	Error       string `json:"error,omitempty"`
}

func writeJSON(w io.Writer, reports []*conformance.Report) error {
	out := make([]jsonReport, 0, len(reports))
	for _, r := range reports {
		s := summarize(r)
		out = append(out, jsonReport{
			File: r.File, Implemented: r.Implemented,
			Passed: s.passed, Failed: s.failed, Skipped: s.skipped, Total: s.total,
			Error: s.err,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeTable(w io.Writer, dir string, reports []*conformance.Report, verbose bool) {
	fmt.Fprintf(w, "Official MLS test vectors from %s\n\n", dir)
	width := len("FILE")
	for _, r := range reports {
		width = max(width, len(r.File))
	}
	row := func(file, status, passed, failed, skipped, total, notes string) {
		fmt.Fprintf(w, "%-*s  %-15s  %6s  %6s  %7s  %6s  %5s\n", width, file, status, passed, failed, skipped, total, notes)
	}
	row("FILE", "STATUS", "PASSED", "FAILED", "SKIPPED", "TOTAL", "NOTES")

	var (
		files                                   = map[string]int{}
		passed, failed, skipped, total, noteSum int
		sums                                    = make([]fileResult, len(reports))
	)
	for i, r := range reports {
		s := summarize(r)
		sums[i] = s
		files[s.status]++
		passed += s.passed
		failed += s.failed
		skipped += s.skipped
		total += s.total
		noteSum += s.notes
		if !r.Implemented || s.status == "missing" {
			row(r.File, s.status, "-", "-", "-", "-", "-")
			continue
		}
		row(r.File, s.status, itoa(s.passed), itoa(s.failed), itoa(s.skipped), itoa(s.total), itoa(s.notes))
	}
	fmt.Fprintf(w, "\n%d files: %d ok, %d FAIL, %d missing, %d not implemented.\n",
		len(reports), files["ok"], files["FAIL"], files["missing"], files["not implemented"])
	fmt.Fprintf(w, "%d cases: %d passed, %d failed, %d skipped.\n", total, passed, failed, skipped)
	if noteSum > 0 {
		hint := "; -v lists them"
		if verbose {
			hint = ""
		}
		fmt.Fprintf(w, "NOTES counts passing cases that needed a documented relaxation (%d in all)%s.\n", noteSum, hint)
	}

	// Failures, then (with -v) skips and notes, file by file.
	for i, r := range reports {
		s := sums[i]
		if !r.Implemented || s.status == "ok" && !verbose {
			continue
		}
		var lines []string
		if s.err != "" {
			lines = append(lines, "error: "+clip(s.err))
		}
		listed := 0
		for _, c := range r.Cases {
			if c.Status != conformance.Fail {
				continue
			}
			if !verbose && listed == maxListed {
				lines = append(lines, fmt.Sprintf("... and %d more failing cases (-v lists all)", s.failed-listed))
				break
			}
			lines = append(lines, fmt.Sprintf("FAIL %s: %s", c.Name, clip(c.Detail)))
			listed++
		}
		if verbose {
			for _, c := range r.Cases {
				switch {
				case c.Status == conformance.Skip:
					lines = append(lines, fmt.Sprintf("SKIP %s: %s", c.Name, clip(c.Detail)))
				case c.Note != "":
					lines = append(lines, fmt.Sprintf("NOTE %s: %s", c.Name, clip(c.Note)))
				}
			}
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s):\n", r.File, s.status)
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func itoa(n int) string { return fmt.Sprint(n) }

// clip shortens a detail to one line of at most maxDetail bytes.
func clip(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > maxDetail {
		return s[:maxDetail] + "..."
	}
	return s
}

// fileSuites reads, for each implemented file that passed, the distinct
// cipher_suite values of its cases: the suites the file covers. A file
// that failed, is missing or cannot be read covers nothing, so no suite is
// counted as passed through it.
func fileSuites(dir string, reports []*conformance.Report) map[string][]uint16 {
	out := map[string][]uint16{}
	for _, r := range reports {
		if !r.Implemented || summarize(r).status != "ok" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, r.File))
		if err != nil {
			continue
		}
		var cases []struct {
			CipherSuite *uint16 `json:"cipher_suite"`
		}
		if json.Unmarshal(raw, &cases) != nil {
			continue
		}
		var ids []uint16
		for _, c := range cases {
			if c.CipherSuite != nil && !slices.Contains(ids, *c.CipherSuite) {
				ids = append(ids, *c.CipherSuite)
			}
		}
		slices.Sort(ids)
		out[r.File] = ids
	}
	return out
}

// writeSuites lists, for every suite the library implements, how many of
// the passing vector files cover it. The post-quantum suites of
// draft-ietf-mls-pq-ciphersuites-06 have no official vectors: the table
// says so, and none of the passed cases above is theirs.
func writeSuites(w io.Writer, reports []*conformance.Report, suites map[string][]uint16, verbose bool) {
	var independent []string
	for _, r := range reports {
		if ids, ok := suites[r.File]; ok && len(ids) == 0 {
			independent = append(independent, r.File)
		}
	}
	fmt.Fprintf(w, "\nCipher suites covered by the passing files (suite-independent: %s):\n", strings.Join(independent, ", "))
	fmt.Fprintf(w, "%-6s  %-54s  %s\n", "SUITE", "NAME", "FILES")
	for _, id := range append(ciphersuite.All(), ciphersuite.PostQuantum()...) {
		var files []string
		for _, r := range reports {
			if slices.Contains(suites[r.File], uint16(id)) {
				files = append(files, r.File)
			}
		}
		cover := fmt.Sprint(len(files))
		switch {
		case len(files) == 0 && id.IsPostQuantum():
			cover = "none: no official vectors (draft suite, private-use code point)"
		case len(files) == 0:
			cover = "none"
		case verbose:
			cover += ": " + strings.Join(files, ", ")
		}
		fmt.Fprintf(w, "0x%04x  %-54s  %s\n", uint16(id), id, cover)
	}
	fmt.Fprintf(w, "The %d post-quantum suites are not counted as passed: no official vector covers them; go test runs them (TestPQSuitesLifecycle, TestPQKEMVectors, TestMLDSAVectors).\n",
		len(ciphersuite.PostQuantum()))
}
