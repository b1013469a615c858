package mls_test

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEQuickStart: the README's program is the body of Example, so the
// quick start compiles and its output is checked.
func TestREADMEQuickStart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile("quickstart_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := between(t, string(ex), "func Example() {\n", "\t// Output:")
	prog := between(t, string(readme), "func main() {\n", "}\n```")
	if prog != body {
		t.Fatalf("README.md's quick start differs from Example in quickstart_example_test.go:\nREADME:\n%s\nExample:\n%s", prog, body)
	}
}

func between(t *testing.T, s, from, to string) string {
	t.Helper()
	i := strings.Index(s, from)
	if i < 0 {
		t.Fatalf("%q not found", from)
	}
	s = s[i+len(from):]
	j := strings.Index(s, to)
	if j < 0 {
		t.Fatalf("%q not found after %q", to, from)
	}
	return s[:j]
}
