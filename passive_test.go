package mls_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/mlskit/mls/internal/conformance"
)

var interopFull = flag.Bool("interop-full", false, "run every interop passive-client vector, not a sample")

// passiveRun and passiveFollowed count the vectors played and those a
// PublicGroup followed to the end.
var passiveRun, passiveFollowed atomic.Int64

// TestInteropPassive runs the passive-client vectors generated from the
// interop harness scenarios (../shared/interop/passive): welcome joins,
// commits, application messages, branches, reinit, external joins and
// external proposals, all from the point of view of a passive member.
func TestInteropPassive(t *testing.T) {
	dir := filepath.Join("..", "shared", "interop", "passive")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no interop passive vectors in %s", dir)
		}
		t.Skipf("no interop passive vectors in %s", dir)
	}
	t.Cleanup(func() {
		t.Logf("%d vectors played, %d followed to the end by a PublicGroup (the others have encrypted handshakes)", passiveRun.Load(), passiveFollowed.Load())
	})
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var vs []json.RawMessage
			if err := json.Unmarshal(raw, &vs); err != nil {
				t.Fatal(err)
			}
			// Every vector with -interop-full; otherwise every 4th (every
			// 16th with -short), which still covers each suite and
			// scenario block of the files.
			stride := 4
			switch {
			case *interopFull:
				stride = 1
			case testing.Short():
				stride = 16
			}
			for i := 0; i < len(vs); i += stride {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					relaxed, followed, err := conformance.RunPassiveVector(vs[i])
					if err != nil {
						t.Fatal(err)
					}
					if followed {
						passiveFollowed.Add(1)
					}
					passiveRun.Add(1)
					if relaxed {
						t.Log("needed the leaf lifetime relaxation")
					}
				})
			}
		})
	}
}
