// Package conformance checks this implementation against the official MLS
// test vectors (the test-vectors/ directory of the MLS working group's
// mls-implementations repository, described in its README). Each vector file
// has one checker; `go run ./cmd/mls conformance` and this package's tests
// both run them.
package conformance

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/mlskit/mls/internal/vectors"
)

// Files lists every official vector file, in the order reports show them.
var Files = []string{
	"tree-math.json",
	"crypto-basics.json",
	"secret-tree.json",
	"message-protection.json",
	"key-schedule.json",
	"psk_secret.json",
	"transcript-hashes.json",
	"deserialization.json",
	"tree-operations.json",
	"tree-validation.json",
	"treekem.json",
	"messages.json",
	"welcome.json",
	"passive-client-welcome.json",
	"passive-client-handling-commit.json",
	"passive-client-random.json",
}

// Status is the outcome of one case.
type Status int

const (
	Pass Status = iota
	Fail
	Skip
)

func (s Status) String() string {
	switch s {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	default:
		return "skip"
	}
}

// Case is the outcome of one vector (or one check within a vector).
type Case struct {
	Name   string
	Status Status
	// Detail is the failure or the reason for a skip; skips always have one.
	Detail string
	// Note marks a passing case that needed a documented relaxation (for
	// example the leaf-node lifetime check); empty otherwise.
	Note string
}

// Report is the outcome of one vector file.
type Report struct {
	File        string
	Implemented bool
	// Err is set when the file could not be read or parsed at all.
	Err   error
	Cases []Case
}

// Counts returns the number of passed, failed and skipped cases.
func (r *Report) Counts() (passed, failed, skipped int) {
	for _, c := range r.Cases {
		switch c.Status {
		case Pass:
			passed++
		case Fail:
			failed++
		case Skip:
			skipped++
		}
	}
	return
}

// Pass records a passing case.
func (r *Report) Pass(name string) { r.Cases = append(r.Cases, Case{Name: name, Status: Pass}) }

// PassNote records a passing case that needed a documented relaxation,
// such as the leaf-node lifetime check for vectors whose lifetimes expired.
func (r *Report) PassNote(name, note string) {
	r.Cases = append(r.Cases, Case{Name: name, Status: Pass, Note: note})
}

// Check records a passing case if err is nil and a failing one otherwise.
func (r *Report) Check(name string, err error) {
	if err != nil {
		r.Cases = append(r.Cases, Case{Name: name, Status: Fail, Detail: err.Error()})
		return
	}
	r.Pass(name)
}

// Skip records a skipped case. A skip without a reason is a bug.
func (r *Report) Skip(name, reason string) {
	if reason == "" {
		reason = "no reason given (bug in the checker)"
	}
	r.Cases = append(r.Cases, Case{Name: name, Status: Skip, Detail: reason})
}

// Checker verifies one vector file, given its raw JSON, recording one case
// per vector (or per check) in r. A checker that cannot parse the file
// returns an error.
type Checker func(raw []byte, r *Report) error

var (
	mu       sync.Mutex
	checkers = map[string]Checker{}
)

// register installs the checker for a vector file. Each checker file calls
// it from init.
func register(file string, c Checker) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := checkers[file]; dup {
		panic("conformance: duplicate checker for " + file)
	}
	checkers[file] = c
}

// Implemented reports whether a checker exists for file.
func Implemented(file string) bool {
	mu.Lock()
	defer mu.Unlock()
	_, ok := checkers[file]
	return ok
}

// Run checks one vector file from dir.
func Run(dir, file string) *Report {
	mu.Lock()
	c, ok := checkers[file]
	mu.Unlock()
	r := &Report{File: file, Implemented: ok}
	if !ok {
		return r
	}
	raw, err := vectors.Read(dir, file)
	if err != nil {
		r.Err = err
		return r
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.Err = fmt.Errorf("checker panicked: %v", p)
			}
		}()
		if err := c(raw, r); err != nil {
			r.Err = err
		}
	}()
	return r
}

// RunAll checks every file in Files.
func RunAll(dir string) []*Report {
	out := make([]*Report, 0, len(Files))
	for _, f := range Files {
		out = append(out, Run(dir, f))
	}
	return out
}

// Registered returns the files that have checkers, sorted.
func Registered() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for f := range checkers {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// IsNotFound reports whether a report's error means the file was missing.
func IsNotFound(err error) bool { return errors.Is(err, vectors.ErrNotFound) }

// mismatch builds the error for a field whose value differs from the vector.
func mismatch(field string, got, want []byte) error {
	return fmt.Errorf("%s: got %x, want %x", field, got, want)
}
