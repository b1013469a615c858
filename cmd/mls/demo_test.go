package main

import (
	"strings"
	"testing"
)

// TestDemoStub covers the placeholder in demo.go; replace both files
// together when the demo lands.
func TestDemoStub(t *testing.T) {
	status, stdout, stderr := runCmd("demo")
	if status == 0 {
		t.Errorf("demo exited 0 before it exists; stdout:\n%s", stdout)
	}
	if !strings.Contains(stderr, "not implemented") {
		t.Errorf("stderr does not say the demo is not implemented:\n%s", stderr)
	}
}
