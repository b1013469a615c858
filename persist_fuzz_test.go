package mls

import (
	"bytes"
	"context"
	"crypto"
	"runtime"
	"testing"
	"testing/cryptotest"
	"testing/synctest"

	"github.com/mlskit/mls/internal/fuzzcorpus"
)

// storedFixture is the group state FuzzStoredRecord damages: the records
// of richState, built from a fixed random seed on one thread and inside a
// synctest bubble, whose clock stands still at 2000-01-01 UTC, so that the
// records, and so the corpus under testdata/fuzz/FuzzStoredRecord, are the
// same on every run.
type storedFixture struct {
	recs   []psRecord
	idx    []int // the records the fuzzer may replace
	gid    []byte
	signer crypto.Signer
}

// storedFuzzSeed seeds cryptotest.SetGlobalRandom for the fixture.
const storedFuzzSeed = 9420

func newStoredFixture(t *testing.T) *storedFixture {
	t.Helper()
	cryptotest.SetGlobalRandom(t, storedFuzzSeed)
	// HPKE encryptions run in parallel on GOMAXPROCS workers, drawing
	// from the global randomness in scheduling order.
	procs := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
	fx := &storedFixture{}
	synctest.Test(t, func(t *testing.T) {
		alice, gid := richState(t)
		fx.recs, fx.gid, fx.signer = psDump(t, alice.store), gid, alice.id.Signer
	})
	for i, r := range fx.recs {
		switch r.bucket {
		case bucketGroups, bucketRatchets, bucketPast, bucketNodes:
			fx.idx = append(fx.idx, i)
		}
	}
	if len(fx.idx) == 0 {
		t.Fatal("the fixture has no records to replace")
	}
	return fx
}

// sealed reports whether record i of the fixture ends in a checksum
// (which the fuzz target recomputes over the fuzzed contents).
func (fx *storedFixture) sealed(i int) bool { return fx.recs[i].bucket != bucketNodes }

// TestGenerateFuzzCorpusStored writes testdata/fuzz/FuzzStoredRecord:
// every replaceable record of the fixture (without its checksum), and
// prefixes of it. The short prefixes cover the first fields' error paths,
// which the fuzzer would otherwise find in its first seconds and then
// spend a minute each minimizing (at about half a millisecond per
// LoadGroup) while counting no executions. It runs only with
// MLS_UPDATE_FUZZ_CORPUS=1.
func TestGenerateFuzzCorpusStored(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	fx := newStoredFixture(t)
	c := fuzzcorpus.New(".", "FuzzStoredRecord")
	for k, i := range fx.idx {
		v := fx.recs[i].val
		if fx.sealed(i) {
			v = v[:len(v)-4]
		}
		c.Add(uint8(k), v)
		for _, n := range []int{1, 2, 4, 8, 32, len(v) / 2} {
			c.Add(uint8(k), v[:min(n, len(v))])
		}
	}
	c.Write(t)
}

// TestFuzzCorpusFitsStoredFixture checks that every full record among the
// committed FuzzStoredRecord seeds loads into the fixture: the corpus still
// holds the records the target replaces (see TestFuzzCorpusFitsFixtures).
func TestFuzzCorpusFitsStoredFixture(t *testing.T) {
	fx := newStoredFixture(t)
	seeds, err := fuzzcorpus.Read(".", "FuzzStoredRecord")
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, s := range seeds {
		i := fx.idx[int(s[0].(byte))%len(fx.idx)]
		b := s[1].([]byte)
		if fx.sealed(i) {
			b = seal(bytes.Clone(b))
		}
		if _, err := LoaderOf(psRestore(t, fx.recs, i, b), fx.signer).LoadGroup(context.Background(), fx.gid); err == nil {
			loaded++
		}
	}
	if loaded < len(fx.idx) {
		t.Errorf("%d of %d FuzzStoredRecord seeds load, want at least the %d full records; regenerate the corpus with %s=1 go test -run TestGenerateFuzzCorpus .",
			loaded, len(seeds), len(fx.idx), fuzzcorpus.EnvVar)
	}
}
