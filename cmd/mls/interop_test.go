package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// interopConfigs finds the harness's configs in ../shared/interop/configs
// beside the module.
func interopConfigs(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "interop", "configs", "*.json"))
	if len(files) == 0 {
		const why = "the interop configs (../shared/interop/configs) are not beside the module"
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip("skipping: " + why)
	}
	return files
}

// TestInteropSelf runs every config of the interop harness on suite 1, with
// public and private handshakes, against three mls-interop processes that
// the runner builds and starts; every script must pass and every run must
// reach checkpoints. With -short only the small configs run.
func TestInteropSelf(t *testing.T) {
	files := interopConfigs(t)
	if testing.Short() {
		var small []string
		for _, f := range files {
			if !strings.Contains(f, "deep_random") {
				small = append(small, f)
			}
		}
		files = small
	}
	var out, errb bytes.Buffer
	args := append([]string{"interop", "-json", "-n", "3", "-suites", "1", "-encrypt", "false,true"}, files...)
	status := run(args, &out, &errb)
	dec := json.NewDecoder(&out)
	var res struct {
		Results []interopResult `json:"results"`
		Passed  int             `json:"passed"`
		Failed  int             `json:"failed"`
	}
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("decoding -json output: %v (stderr %s)", err, errb.String())
	}
	for _, r := range res.Results {
		if r.Failure != nil {
			t.Errorf("%s/%s suite %d encrypt=%v: %v", r.Config, r.Script, r.Suite, r.Encrypt, r.Failure)
		} else if r.Checkpoints == 0 {
			t.Errorf("%s/%s: passed without a checkpoint", r.Config, r.Script)
		}
	}
	if status != 0 || res.Failed != 0 || res.Passed == 0 {
		t.Fatalf("status %d, %d passed, %d failed; stderr: %s", status, res.Passed, res.Failed, errb.String())
	}
	// Every script of every config ran in both modes.
	want := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Scripts map[string]json.RawMessage `json:"scripts"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		want += 2 * len(c.Scripts)
	}
	if len(res.Results) != want {
		t.Fatalf("%d runs, want %d", len(res.Results), want)
	}
}

// TestInteropUsage: no config is a usage error; a bad -encrypt too.
func TestInteropUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if s := run([]string{"interop"}, &out, &errb); s != 2 {
		t.Fatalf("no config: status %d, want 2", s)
	}
	if s := run([]string{"interop", "-encrypt", "maybe", "x.json"}, &out, &errb); s != 2 {
		t.Fatalf("bad -encrypt: status %d, want 2", s)
	}
}
