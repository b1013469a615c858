package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestBenchCommand runs mls bench at small sizes and checks its three
// outputs: the table (a row per operation, size and shape, with a positive
// time, bound and ratio), the JSON lines (the documented fields, the same
// rows) and the SVG (a drawing naming every series).
func TestBenchCommand(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "bench.svg")
	status, out, errOut := runCmd("bench", "-n", "10,50", "-ops", "seal,open,update", "-reps", "2", "-quiet", "-svg", svg)
	if status != 0 {
		t.Fatalf("status %d, stderr:\n%s", status, errOut)
	}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 8 || f[0] == "operation" {
			continue
		}
		rows++
		if !strings.Contains("seal open update", f[0]) || (f[1] != "10" && f[1] != "50") || (f[2] != "fresh" && f[2] != "full") {
			t.Errorf("unexpected row %q", line)
		}
		for _, col := range f[3:6] {
			if v, err := strconv.ParseFloat(col, 64); err != nil || v <= 0 {
				t.Errorf("row %q: time, bound or ratio %q is not positive", line, col)
			}
		}
		if b, err := strconv.Atoi(f[6]); err != nil || b < 100 {
			t.Errorf("row %q: message bytes %q", line, f[6])
		}
	}
	if rows != 3*2*2 {
		t.Fatalf("%d rows, want 12:\n%s", rows, out)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "seal (fresh)", "update (full)", "stroke-dasharray"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the SVG has no %q", want)
		}
	}

	status, out, errOut = runCmd("bench", "-n", "10", "-tree", "full", "-ops", "seal,open", "-reps", "1", "-quiet", "-json")
	if status != 0 {
		t.Fatalf("-json: status %d, stderr:\n%s", status, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("-json: %d lines, want 2:\n%s", len(lines), out)
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("-json line %q: %v", line, err)
		}
		for _, k := range []string{"op", "n", "tree", "median_ms", "bound_ms", "bytes"} {
			if _, ok := m[k]; !ok {
				t.Errorf("-json line %q has no %q", line, k)
			}
		}
		if m["op"] != []string{"seal", "open"}[i] || m["n"] != 10.0 || m["tree"] != "full" || m["median_ms"].(float64) <= 0 || m["bound_ms"].(float64) <= 0 {
			t.Errorf("-json line %q", line)
		}
	}

	for _, bad := range [][]string{{"-n", "2"}, {"-tree", "sparse"}, {"-ops", "fly"}, {"-reps", "0"}} {
		if status, _, _ := runCmd(append([]string{"bench", "-quiet"}, bad...)...); status != 2 {
			t.Errorf("bench %v: status %d, want 2", bad, status)
		}
	}
}

// TestBoundCountsSeals: a removal's bound counts the encryptions of the
// measured commit (the blanked path widens a resolution), each 1 ms here,
// spread over the cores; without a count it is an update's log N.
func TestBoundCountsSeals(t *testing.T) {
	p := &primitives{seal: 1e-3}
	full := groupShape{n: 100000}
	base := p.bound("remove", full)
	if want := 17e-3 / float64(runtime.GOMAXPROCS(0)); math.Abs(base-want) > 1e-9 {
		t.Fatalf("bound without a count: %v, want %v (17 encryptions)", base, want)
	}
	full.seals = 25
	if got, want := p.bound("remove", full), 25e-3/float64(runtime.GOMAXPROCS(0)); math.Abs(got-want) > 1e-9 {
		t.Fatalf("bound with 25 encryptions: %v, want %v", got, want)
	}
}

// TestBoundOverlap: receiving a 1 MB commit costs one SHA-512 pass for the
// signature (1 ms here) and two SHA-256 passes (membership tag, transcript
// hash; 1 ms each) that can run beside it: on one core 3 ms, on two 1.5 ms,
// and never less than the signature's 1 ms.
func TestBoundOverlap(t *testing.T) {
	p := &primitives{sha512B: 1e-9, sha256B: 1e-9}
	got := p.bound("process", groupShape{n: 1000, commitBytes: 1e6})
	want := max(1e-3, 3e-3/float64(runtime.GOMAXPROCS(0)))
	if math.Abs(got-want) > 1e-9 {
		t.Fatalf("process bound %v, want %v", got, want)
	}
}
