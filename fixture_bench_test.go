package mls_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fixture"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// Full trees come from internal/fixture: the tree every member's commit
// would leave, built directly in O(N) key derivations and signatures, and
// each live member's state written to its store as its own save would
// have, then opened with Client.LoadGroup. All members share one
// GroupContext and joiner secret, so they agree on the epoch.

// fixtureMember writes the state of the member at leaf into a new memory
// store (with or without the ratchet_tree extension) and loads it.
func fixtureMember(tb testing.TB, fg *fixture.Group, leaf uint32, rte bool) *benchMember {
	tb.Helper()
	m := &benchMember{id: fixtureIdentity(fg, leaf), store: memory.New()}
	m.group = loadFixtureMember(tb, fg, leaf, rte, m.store)
	return m
}

func fixtureIdentity(fg *fixture.Group, leaf uint32) mls.Identity {
	return mls.Identity{Credential: credential.NewBasic(tree.MemberIdentity(tree.LeafIndex(leaf))), Signer: fg.Full.Signer(tree.LeafIndex(leaf))}
}

func loadFixtureMember(tb testing.TB, fg *fixture.Group, leaf uint32, rte bool, store storage.Store) *mls.Group {
	tb.Helper()
	ctx := context.Background()
	fg.Config.RatchetTreeExtension = rte
	if err := fg.Write(ctx, store, tree.LeafIndex(leaf)); err != nil {
		tb.Fatal(err)
	}
	g, err := clientOf(store, fixtureIdentity(fg, leaf)).LoadGroup(ctx, fg.GroupContext.GroupID)
	if err != nil {
		tb.Fatalf("LoadGroup of fixture member %d: %v", leaf, err)
	}
	return g
}

func newFixture(tb testing.TB, n int) *fixture.Group {
	tb.Helper()
	s, err := ciphersuite.Lookup(benchSuite)
	if err != nil {
		tb.Fatal(err)
	}
	fg, err := fixture.New(s, uint32(n), fixture.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return fg
}

// fixtureBenchGroup is the full-tree benchGroup of n >= 3 members: alice
// at leaf 0 (no ratchet_tree extension), bob at leaf n/2 (with it, so his
// Welcomes carry the tree), carol at leaf n/2+1 (without it); n >= 4.
func fixtureBenchGroup(tb testing.TB, n int) *benchGroup {
	tb.Helper()
	if n < 4 {
		tb.Fatalf("fixture bench group of %d members, want at least 4", n)
	}
	fg := newFixture(tb, n)
	g := &benchGroup{n: n, fixture: fg, joiner: newBenchMember(tb, "joiner")}
	g.alice = fixtureMember(tb, fg, 0, false)
	g.bob = fixtureMember(tb, fg, uint32(n/2), true)
	// carol's leaf, like bob's, is in the other half from alice's, so
	// both decrypt at the root and derive the same keys.
	g.carol = fixtureMember(tb, fg, uint32(n/2+1), false)
	g.joinerCfg = mls.JoinConfig{UseRatchetTreeExtension: true}
	g.removeTarget = uint32(n - 1)
	g.prepare(tb)
	return g
}

// TestFixtureGroup: members loaded from a fixture agree on the epoch,
// exchange application messages, and follow each other's commits (every
// receiver decrypts an UpdatePath of the full tree), adds and removes.
func TestFixtureGroup(t *testing.T) {
	ctx := context.Background()
	const n = 37
	fg := newFixture(t, n)
	var ms []*mls.Group
	for _, leaf := range []uint32{0, 1, 18, 36} {
		ms = append(ms, fixtureMember(t, fg, leaf, leaf%2 == 0).group)
	}
	for i, m := range ms {
		if len(m.Members()) != n || !bytes.Equal(m.EpochAuthenticator(), ms[0].EpochAuthenticator()) {
			t.Fatalf("member %d: %d members, epoch authenticator differs: %v", i, len(m.Members()), !bytes.Equal(m.EpochAuthenticator(), ms[0].EpochAuthenticator()))
		}
	}
	msg, err := ms[3].Seal(ctx, []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ms[0].Process(ctx, msg)
	if err != nil || string(p.ApplicationData) != "hello" {
		t.Fatalf("Process application message: %v", err)
	}
	// Each member in turn commits; the others follow.
	joiner := newBenchMember(t, "joiner")
	for c := range ms {
		var res *mls.CommitResult
		switch c {
		case 1:
			res, err = ms[c].AddMembers(ctx, joiner.keyPackage(t, false))
		case 2:
			res, err = ms[c].RemoveMembers(ctx, 5)
		default:
			res, err = ms[c].SelfUpdate(ctx)
		}
		if err != nil {
			t.Fatalf("member %d commit: %v", c, err)
		}
		if err := ms[c].MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		for r, m := range ms {
			if r == c {
				continue
			}
			p, err := m.Process(ctx, res.Commit)
			if err != nil {
				t.Fatalf("member %d processing member %d's commit: %v", r, c, err)
			}
			if err := m.MergeStagedCommit(ctx, p.Commit); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.EpochAuthenticator(), ms[c].EpochAuthenticator()) {
				t.Fatalf("member %d disagrees with member %d after its commit", r, c)
			}
		}
		if c == 1 {
			rt, err := ms[1].ExportRatchetTree()
			if err != nil {
				t.Fatal(err)
			}
			joiner.join(t, res.Welcome, mls.JoinConfig{}, rt)
			if !bytes.Equal(joiner.group.EpochAuthenticator(), ms[1].EpochAuthenticator()) {
				t.Fatal("the joiner disagrees with the group")
			}
		}
	}
}

// BenchmarkFullTree runs the BenchmarkGroup operations on fixture full
// trees of 1,000 to 100,000 members, plus loading from SQLite and merging
// a commit (with the bytes it stores), and reports the heap a loaded
// group keeps per member.
func BenchmarkFullTree(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if testing.Short() && n > shortMaxN {
				b.Skipf("N=%d: setup takes too long for -short (limit N=%d)", n, shortMaxN)
			}
			g := cachedBenchGroup(b, n, "full")
			for _, op := range benchOps {
				b.Run(op.name, func(b *testing.B) { op.run(b, g) })
			}
			b.Run("LoadSQLite", func(b *testing.B) { benchLoadSQLite(b, g) })
			b.Run("MergeCommit", func(b *testing.B) { benchMergeCommit(b, g) })
		})
	}
}

// benchLoadSQLite loads bob from a SQLite store, and reports the heap the
// loaded group keeps, per member.
func benchLoadSQLite(b *testing.B, g *benchGroup) {
	ctx := context.Background()
	store, err := sqlite.Open(filepath.Join(b.TempDir(), "mls.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	leaf := g.bob.group.OwnLeafIndex()
	loadFixtureMember(b, g.fixture, leaf, true, store)
	id := g.fixture.GroupContext.GroupID
	// A new client each time: a client hands out the group it still has
	// open (a weak reference survives until the next GC) instead of
	// loading it again, which would time a map lookup.
	for b.Loop() {
		b.StopTimer()
		c := clientOf(store, fixtureIdentity(g.fixture, leaf))
		b.StartTimer()
		if _, err := c.LoadGroup(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c := clientOf(store, fixtureIdentity(g.fixture, leaf))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept, err := c.LoadGroup(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(g.n), "heapB/member")
	runtime.KeepAlive(kept)
}

// benchMergeCommit: a copy of carol processes and merges alice's
// self-update; reports the bytes the merge stores.
func benchMergeCommit(b *testing.B, g *benchGroup) {
	ctx := context.Background()
	var written uint64
	for b.Loop() {
		b.StopTimer()
		store := memory.New()
		m := loadFixtureMember(b, g.fixture, 1, false, store)
		before := store.Stats()
		b.StartTimer()
		p, err := m.Process(ctx, g.selfUpdate)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.MergeStagedCommit(ctx, p.Commit); err != nil {
			b.Fatal(err)
		}
		written = store.Stats().Sub(before).BytesWritten
	}
	b.ReportMetric(float64(written), "storedB/commit")
}
