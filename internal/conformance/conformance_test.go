package conformance

import (
	"os"
	"testing"

	"github.com/mlskit/mls/internal/vectors"
)

// TestVectors runs every official vector file as a subtest, one sub-subtest
// per case. A missing vector directory skips (with where to put the files)
// unless CI=true, where it fails.
func TestVectors(t *testing.T) {
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	ci := os.Getenv("CI") == "true"
	for _, file := range Files {
		t.Run(file, func(t *testing.T) {
			if !Implemented(file) {
				t.Skipf("%s: checker not implemented yet", file)
			}
			r := Run(dir, file)
			if r.Err != nil {
				if IsNotFound(r.Err) && !ci {
					t.Skipf("%v", r.Err)
				}
				t.Fatalf("%s: %v", file, r.Err)
			}
			if len(r.Cases) == 0 {
				t.Fatalf("%s: checker recorded no cases", file)
			}
			for _, c := range r.Cases {
				t.Run(c.Name, func(t *testing.T) {
					switch c.Status {
					case Fail:
						t.Error(c.Detail)
					case Skip:
						if c.Detail == "" {
							t.Fatal("skipped without a reason")
						}
						t.Skip(c.Detail)
					}
					if c.Note != "" {
						t.Log(c.Note)
					}
				})
			}
		})
	}
}
