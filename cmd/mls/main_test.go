package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mlskit/mls/internal/conformance"
	"github.com/mlskit/mls/internal/vectors"
)

// runCmd runs the command in-process and returns its exit status and output.
func runCmd(args ...string) (status int, stdout, stderr string) {
	var out, errb bytes.Buffer
	status = run(args, &out, &errb)
	return status, out.String(), errb.String()
}

// TestMain makes conformance runs over the same directory share one
// RunAll: the checkers are slow and deterministic, and several tests read
// the official vectors. Every test uses its own temporary directory
// otherwise, so nothing is shared by accident.
func TestMain(m *testing.M) {
	type entry struct {
		once    sync.Once
		reports []*conformance.Report
	}
	var cache sync.Map // dir -> *entry
	runAll = func(dir string) []*conformance.Report {
		e, _ := cache.LoadOrStore(dir, &entry{})
		en := e.(*entry)
		en.once.Do(func() { en.reports = conformance.RunAll(dir) })
		return en.reports
	}
	os.Exit(m.Run())
}

// realVectors returns the official vector directory, skipping the test
// when it is absent (failing instead when CI=true).
func realVectors(t *testing.T) string {
	t.Helper()
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tree-math.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("official vectors not found in %s: %v", dir, err)
		}
		t.Skipf("official vectors not found in %s (set %s): %v", dir, vectors.EnvVar, err)
	}
	return dir
}

// parseJSON decodes the -json output, checks that every object has exactly
// the documented keys (error only when set) and returns the objects by file.
func parseJSON(t *testing.T, out string) ([]string, map[string]jsonReport) {
	t.Helper()
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("-json output is not a JSON array of objects: %v\n%s", err, out)
	}
	want := []string{"failed", "file", "implemented", "passed", "skipped", "total"}
	var order []string
	byFile := map[string]jsonReport{}
	for i, obj := range raw {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		_, hasErr := obj["error"]
		w := want
		if hasErr {
			w = []string{"error", "failed", "file", "implemented", "passed", "skipped", "total"}
		}
		if !slices.Equal(keys, w) {
			t.Fatalf("object %d has keys %v, want %v", i, keys, w)
		}
		var r jsonReport
		b, _ := json.Marshal(obj)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
		if hasErr && r.Error == "" {
			t.Errorf("%s: error key present but empty", r.File)
		}
		if r.Total != r.Passed+r.Failed+r.Skipped {
			t.Errorf("%s: total %d != %d passed + %d failed + %d skipped", r.File, r.Total, r.Passed, r.Failed, r.Skipped)
		}
		order = append(order, r.File)
		byFile[r.File] = r
	}
	if !slices.Equal(order, conformance.Files) {
		t.Fatalf("files %v, want conformance.Files %v", order, conformance.Files)
	}
	return order, byFile
}

// tableRow returns the table line for file, split into columns.
func tableRow(t *testing.T, out, file string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == file {
			if len(f) == 8 && f[1] == "not" && f[2] == "implemented" {
				f = append([]string{f[0], "not implemented"}, f[3:]...)
			}
			if len(f) != 7 {
				t.Fatalf("row for %s has %d columns: %q", file, len(f), line)
			}
			return f
		}
	}
	t.Fatalf("no row for %s in:\n%s", file, out)
	return nil
}

func TestUsage(t *testing.T) {
	status, _, stderr := runCmd()
	if status != 2 || !strings.Contains(stderr, "Usage") || !strings.Contains(stderr, "conformance") || !strings.Contains(stderr, "demo") {
		t.Errorf("no arguments: status %d, stderr:\n%s", status, stderr)
	}
	for _, h := range []string{"-h", "--help", "help"} {
		status, stdout, _ := runCmd(h)
		if status != 0 || !strings.Contains(stdout, "conformance") || !strings.Contains(stdout, "demo") {
			t.Errorf("%s: status %d, stdout:\n%s", h, status, stdout)
		}
	}
	status, stdout, _ := runCmd("help", "conformance")
	if status != 0 || !strings.Contains(stdout, "-vectors DIR") || !strings.Contains(stdout, "-json") {
		t.Errorf("help conformance: status %d, stdout:\n%s", status, stdout)
	}
	status, _, stderr = runCmd("frobnicate")
	if status != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: status %d, stderr:\n%s", status, stderr)
	}
	status, _, stderr = runCmd("help", "frobnicate")
	if status != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("help for an unknown command: status %d, stderr:\n%s", status, stderr)
	}
}

func TestConformanceFlags(t *testing.T) {
	status, stdout, _ := runCmd("conformance", "-h")
	if status != 0 || !strings.Contains(stdout, "Usage: mls conformance") {
		t.Errorf("-h: status %d, stdout:\n%s", status, stdout)
	}
	status, _, stderr := runCmd("conformance", "-no-such-flag")
	if status != 2 || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("bad flag: status %d, stderr:\n%s", status, stderr)
	}
	status, _, stderr = runCmd("conformance", "extra")
	if status != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("extra argument: status %d, stderr:\n%s", status, stderr)
	}
}

// TestConformanceRealVectors runs the command over the official vectors:
// everything implemented must pass, and every file must be listed, the
// ones without a checker as "not implemented".
func TestConformanceRealVectors(t *testing.T) {
	t.Parallel()
	dir := realVectors(t)

	status, stdout, stderr := runCmd("conformance", "-json", "-vectors", dir)
	_, byFile := parseJSON(t, stdout)
	for _, f := range conformance.Files {
		r := byFile[f]
		if r.Implemented != conformance.Implemented(f) {
			t.Errorf("%s: implemented=%v, registry says %v", f, r.Implemented, conformance.Implemented(f))
		}
		switch {
		case !r.Implemented && (r.Total != 0 || r.Error != ""):
			t.Errorf("%s: not implemented yet has results %+v", f, r)
		case r.Implemented && (r.Failed != 0 || r.Error != "" || r.Total == 0):
			t.Errorf("%s: %+v", f, r)
		}
	}
	if status != 0 {
		t.Errorf("exit status %d over the official vectors, want 0; stderr:\n%s", status, stderr)
	}

	// The table, from the default directory (which realVectors found),
	// agrees with the JSON.
	status, table, _ := runCmd("conformance")
	if status != 0 {
		t.Errorf("table: exit status %d, want 0:\n%s", status, table)
	}
	for _, f := range conformance.Files {
		row := tableRow(t, table, f)
		r := byFile[f]
		if !r.Implemented {
			if row[1] != "not implemented" {
				t.Errorf("%s: status %q, want not implemented", f, row[1])
			}
			continue
		}
		want := []string{f, "ok", fmt.Sprint(r.Passed), "0", fmt.Sprint(r.Skipped), fmt.Sprint(r.Total)}
		if !slices.Equal(row[:6], want) {
			t.Errorf("row %v, want %v", row[:6], want)
		}
	}
	if !strings.Contains(table, fmt.Sprintf("%d files:", len(conformance.Files))) {
		t.Errorf("no summary line:\n%s", table)
	}
}

// corruptDeserialization rewrites the real deserialization.json with the
// length of its fifth vector (header 4040, length 64) changed to 65, and
// returns the new JSON.
func corruptDeserialization(t *testing.T, dir string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "deserialization.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []map[string]any
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 5 || vs[4]["vlbytes_header"] != "4040" || vs[4]["length"] != float64(64) {
		t.Fatalf("deserialization.json is not the expected file: %v", vs[:min(len(vs), 5)])
	}
	vs[4]["length"] = 65
	out, err := json.Marshal(vs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConformanceCorruptedVector runs the command over a copy of the
// official vectors (symlinks, made at test time) in which one value of one
// file was changed: exactly that case must fail, and the exit status is 1.
func TestConformanceCorruptedVector(t *testing.T) {
	t.Parallel()
	real := realVectors(t)
	if !conformance.Implemented("deserialization.json") {
		t.Fatal("deserialization.json has no checker")
	}
	tmp := t.TempDir()
	for _, f := range conformance.Files {
		if f == "deserialization.json" {
			continue
		}
		abs, err := filepath.Abs(filepath.Join(real, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(tmp, f)); err != nil {
			t.Fatal(err)
		}
	}
	bad := corruptDeserialization(t, real)
	if err := os.WriteFile(filepath.Join(tmp, "deserialization.json"), bad, 0o644); err != nil {
		t.Fatal(err)
	}

	status, stdout, _ := runCmd("conformance", "-json", "-vectors", tmp)
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	_, byFile := parseJSON(t, stdout)
	d := byFile["deserialization.json"]
	if d.Failed != 1 || d.Passed != d.Total-1 || d.Error != "" {
		t.Errorf("deserialization.json: %+v, want exactly one failure", d)
	}
	for f, r := range byFile {
		if f != "deserialization.json" && (r.Failed != 0 || r.Error != "") {
			t.Errorf("%s: %+v, want no failures", f, r)
		}
	}
}

// TestConformanceFailureTable checks the table for a failing file, missing
// files and files without a checker, in a directory holding only a
// corrupted deserialization.json.
func TestConformanceFailureTable(t *testing.T) {
	real := realVectors(t)
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "deserialization.json"), corruptDeserialization(t, real), 0o644); err != nil {
		t.Fatal(err)
	}
	status, stdout, _ := runCmd("conformance", "-vectors", tmp)
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	if row := tableRow(t, stdout, "deserialization.json"); !slices.Equal(row[1:4], []string{"FAIL", "13", "1"}) {
		t.Errorf("deserialization.json row %v, want FAIL with 13 passed and 1 failed", row)
	}
	if !strings.Contains(stdout, "FAIL 4/header=4040: length: got 64, want 65") {
		t.Errorf("the failing case and its detail are not listed:\n%s", stdout)
	}
	for _, f := range conformance.Files {
		if f == "deserialization.json" {
			continue
		}
		want := "missing"
		if !conformance.Implemented(f) {
			want = "not implemented"
		}
		if row := tableRow(t, stdout, f); row[1] != want {
			t.Errorf("%s: status %q, want %q", f, row[1], want)
		}
	}
}

func TestConformanceUnreadableFile(t *testing.T) {
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "tree-math.json"), []byte(`[{"n_leaves": 1,`), 0o644); err != nil {
		t.Fatal(err)
	}
	status, stdout, _ := runCmd("conformance", "-json", "-vectors", tmp)
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	_, byFile := parseJSON(t, stdout)
	if r := byFile["tree-math.json"]; !r.Implemented || r.Error == "" || strings.Contains(r.Error, "not found") {
		t.Errorf("tree-math.json: %+v, want a parse error", r)
	}
	if r := byFile["crypto-basics.json"]; !strings.Contains(r.Error, "not found") {
		t.Errorf("crypto-basics.json: %+v, want not found", r)
	}
}

func TestConformanceMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nowhere")
	status, stdout, stderr := runCmd("conformance", "-vectors", dir)
	if status != 1 {
		t.Errorf("exit status %d, want 1", status)
	}
	if !strings.Contains(stderr, dir) || !strings.Contains(stderr, vectors.EnvVar) {
		t.Errorf("stderr does not say where to put the vectors:\n%s", stderr)
	}
	if row := tableRow(t, stdout, "tree-math.json"); row[1] != "missing" {
		t.Errorf("tree-math.json row %v", row)
	}
}

// syntheticReports covers every status and the notes column.
func syntheticReports() []*conformance.Report {
	pass := func(name string) conformance.Case { return conformance.Case{Name: name, Status: conformance.Pass} }
	fail := func(i int) conformance.Case {
		return conformance.Case{Name: fmt.Sprintf("bad%d", i), Status: conformance.Fail, Detail: fmt.Sprintf("detail %d", i)}
	}
	b := &conformance.Report{File: "b.json", Implemented: true, Cases: []conformance.Case{pass("p")}}
	for i := range 7 {
		b.Cases = append(b.Cases, fail(i))
	}
	return []*conformance.Report{
		{File: "a.json", Implemented: true, Cases: []conformance.Case{
			pass("p1"), pass("p2"),
			{Name: "relaxed", Status: conformance.Pass, Note: "leaf lifetime not checked"},
		}},
		b,
		{File: "c.json"},
		{File: "d.json", Implemented: true, Err: fmt.Errorf("%w: d.json", vectors.ErrNotFound)},
		{File: "e.json", Implemented: true, Err: errors.New("unexpected end of JSON input")},
		{File: "f.json", Implemented: true, Cases: []conformance.Case{
			{Name: "s", Status: conformance.Skip, Detail: "suite not supported"},
		}},
		{File: "g.json", Implemented: true},
	}
}

func TestTableRendering(t *testing.T) {
	var buf bytes.Buffer
	writeTable(&buf, "/vectors", syntheticReports(), false)
	out := buf.String()
	rows := map[string][]string{
		"a.json": {"a.json", "ok", "3", "0", "0", "3", "1"},
		"b.json": {"b.json", "FAIL", "1", "7", "0", "8", "0"},
		"c.json": {"c.json", "not implemented", "-", "-", "-", "-", "-"},
		"d.json": {"d.json", "missing", "-", "-", "-", "-", "-"},
		"e.json": {"e.json", "FAIL", "0", "0", "0", "0", "0"},
		"f.json": {"f.json", "ok", "0", "0", "1", "1", "0"},
		"g.json": {"g.json", "FAIL", "0", "0", "0", "0", "0"},
	}
	for f, want := range rows {
		if got := tableRow(t, out, f); !slices.Equal(got, want) {
			t.Errorf("row %v, want %v", got, want)
		}
	}
	for _, s := range []string{
		"7 files: 2 ok, 3 FAIL, 1 missing, 1 not implemented.",
		"12 cases: 4 passed, 7 failed, 1 skipped.",
		"(1 in all)",
		"FAIL bad0: detail 0",
		"FAIL bad4: detail 4",
		"... and 2 more failing cases",
		"error: unexpected end of JSON input",
		"error: the checker recorded no cases",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "bad5") || strings.Contains(out, "SKIP s:") || strings.Contains(out, "NOTE relaxed:") {
		t.Errorf("non-verbose table lists more than the first failures:\n%s", out)
	}

	buf.Reset()
	writeTable(&buf, "/vectors", syntheticReports(), true)
	out = buf.String()
	for _, s := range []string{"FAIL bad6: detail 6", "SKIP s: suite not supported", "NOTE relaxed: leaf lifetime not checked"} {
		if !strings.Contains(out, s) {
			t.Errorf("verbose table lacks %q:\n%s", s, out)
		}
	}
}

func TestExitStatus(t *testing.T) {
	rs := syntheticReports()
	if got := exitStatus(rs); got != 1 {
		t.Errorf("with failures: %d, want 1", got)
	}
	// a (ok with a note), c (not implemented), f (ok with a skip).
	if got := exitStatus([]*conformance.Report{rs[0], rs[2], rs[5]}); got != 0 {
		t.Errorf("without failures: %d, want 0", got)
	}
	for _, i := range []int{1, 3, 4, 6} {
		if got := exitStatus([]*conformance.Report{rs[0], rs[i]}); got != 1 {
			t.Errorf("with %s: %d, want 1", rs[i].File, got)
		}
	}
}

func TestJSONRendering(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, syntheticReports()); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"file": "a.json", "implemented": true, "passed": 3.0, "failed": 0.0, "skipped": 0.0, "total": 3.0},
		{"file": "b.json", "implemented": true, "passed": 1.0, "failed": 7.0, "skipped": 0.0, "total": 8.0},
		{"file": "c.json", "implemented": false, "passed": 0.0, "failed": 0.0, "skipped": 0.0, "total": 0.0},
		{"file": "d.json", "implemented": true, "passed": 0.0, "failed": 0.0, "skipped": 0.0, "total": 0.0, "error": "test vectors not found: d.json"},
		{"file": "e.json", "implemented": true, "passed": 0.0, "failed": 0.0, "skipped": 0.0, "total": 0.0, "error": "unexpected end of JSON input"},
		{"file": "f.json", "implemented": true, "passed": 0.0, "failed": 0.0, "skipped": 1.0, "total": 1.0},
		{"file": "g.json", "implemented": true, "passed": 0.0, "failed": 0.0, "skipped": 0.0, "total": 0.0, "error": "the checker recorded no cases"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d objects, want %d", len(got), len(want))
	}
	for i := range want {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("object %d: %v, want %v", i, got[i], want[i])
		}
	}
}
