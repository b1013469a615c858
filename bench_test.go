package mls_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fixture"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

// The group benchmarks follow the measurements of the OpenMLS performance
// chapter (reference/openmls-book.txt, "Performance") and DESIGN.md: for
// each operation, group size N and tree shape, one sub-benchmark named
// BenchmarkGroup/<op>/N=<n>/<tree>.
//
// Tree shapes:
//
//   - fresh: the creator added N-1 members in one commit without a path,
//     so every parent node is blank (RFC 9420, Section 12.1.1 adds leaves
//     only). Encrypting a path then costs one HPKE encryption per member.
//   - full: every member has committed once, so every parent node is set
//     and no node has unmerged leaves; a path costs O(log N) encryptions.
//
// The fresh tree is built through the public API. The full tree is built
// directly by internal/fixture (fixture_bench_test.go): grown through the
// API every joiner would validate the whole tree, O(N^2) signature checks.
// The fresh tree stops at N=10000, where a self-update already encrypts to
// every member.
//
// Setup is never timed. Every operation leaves the group as it found it:
// commits are cleared with ClearPendingCommit, received commits are staged
// but not merged, so the same group serves every iteration.

// benchSizes are the group sizes measured.
var benchSizes = []int{10, 100, 1000, 10000, 100000}

// maxFreshN is the largest N for which the fresh tree is measured.
const maxFreshN = 10000

// shortMaxN is the largest N measured with -short.
const shortMaxN = 100

// benchSuite is the suite of the group benchmarks, the mandatory one.
const benchSuite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// benchOps are the measured operations, in reporting order.
var benchOps = []struct {
	name string
	run  func(b *testing.B, g *benchGroup)
}{
	{"SelfUpdateCommit", benchSelfUpdateCommit},
	{"ProcessSelfUpdate", benchProcessSelfUpdate},
	{"ProcessSelfUpdateNoRTE", benchProcessSelfUpdateNoRTE},
	{"ParseProcessSelfUpdate", benchParseProcessSelfUpdate},
	{"AddMember", benchAddMember},
	{"AddMemberWithTree", benchAddMemberWithTree},
	{"JoinFromWelcome", benchJoinFromWelcome},
	{"RemoveMember", benchRemoveMember},
	{"ProcessRemove", benchProcessRemove},
	{"SealApp1KB", benchSealApp},
	{"OpenApp1KB", benchOpenApp},
}

func BenchmarkGroup(b *testing.B) {
	for _, op := range benchOps {
		b.Run(op.name, func(b *testing.B) {
			for _, n := range benchSizes {
				for _, shape := range []string{"fresh", "full"} {
					b.Run(fmt.Sprintf("N=%d/%s", n, shape), func(b *testing.B) {
						if testing.Short() && n > shortMaxN {
							b.Skipf("N=%d: setup takes too long for -short (limit N=%d)", n, shortMaxN)
						}
						if shape == "fresh" && n > maxFreshN {
							b.Skipf("fresh tree at N=%d: a self-update encrypts to every member, seconds per operation (limit N=%d)", n, maxFreshN)
						}
						g := cachedBenchGroup(b, n, shape)
						op.run(b, g)
					})
				}
			}
		})
	}
}

// benchMember is a client taking part in a benchmark group.
type benchMember struct {
	id    mls.Identity
	store storage.Store
	group *mls.Group
}

func newBenchMember(tb testing.TB, name string) *benchMember {
	tb.Helper()
	s, err := ciphersuite.Lookup(benchSuite)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &benchMember{id: mls.Identity{Credential: credential.NewBasic([]byte(name)), Signer: signer}, store: memory.New()}
}

func (m *benchMember) keyPackage(tb testing.TB, lastResort bool) *mls.KeyPackage {
	tb.Helper()
	kp, err := clientOf(m.store, m.id).NewKeyPackage(context.Background(), benchSuite, mls.KeyPackageOptions{LastResort: lastResort})
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}

// join stages a Welcome and joins with cfg; tree is the ratchet tree when
// the Welcome does not carry it.
func (m *benchMember) join(tb testing.TB, w *mls.Message, cfg mls.JoinConfig, tree []byte) {
	tb.Helper()
	ctx := context.Background()
	sw, err := clientOf(m.store, m.id).StageWelcome(ctx, w, mls.WelcomeOptions{JoinConfig: cfg, RatchetTree: tree})
	if err != nil {
		tb.Fatalf("StageWelcome: %v", err)
	}
	if m.group, err = sw.Join(ctx); err != nil {
		tb.Fatalf("Join: %v", err)
	}
}

// follow processes and merges a commit.
func (m *benchMember) follow(tb testing.TB, commit *mls.Message) {
	tb.Helper()
	ctx := context.Background()
	p, err := m.group.Process(ctx, commit)
	if err != nil {
		tb.Fatalf("Process: %v", err)
	}
	if p.Kind != mls.KindCommit {
		tb.Fatalf("Process: got a %v, want a commit", p.Kind)
	}
	if err := m.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		tb.Fatalf("MergeStagedCommit: %v", err)
	}
}

// benchGroup is a group of N members of which two are live: alice (leaf
// 0, the committer) and bob (the receiver). The other members exist only
// as leaves. joiner is a client outside the group with a last-resort key
// package, so that it can join from the same Welcome again and again.
type benchGroup struct {
	n            int
	alice, bob   *benchMember
	joiner       *benchMember
	joinerKP     *mls.KeyPackage
	joinerCfg    mls.JoinConfig
	removeTarget uint32

	// Prepared once, for the Process and Join benchmarks.
	selfUpdate *mls.Message // alice's self-update commit, never merged
	remove     *mls.Message // alice's commit removing removeTarget, never merged
	welcome    *mls.Message // bob's Welcome for joiner, with the ratchet tree

	selfUpdateRaw []byte       // selfUpdate encoded
	carol         *benchMember // a receiver without the ratchet_tree extension
	fixture       *fixture.Group
}

var benchGroups = struct {
	sync.Mutex
	m map[string]*benchGroup
}{m: map[string]*benchGroup{}}

// cachedBenchGroup builds the group of n members of the given shape once
// per process; the sub-benchmarks of every operation share it.
func cachedBenchGroup(b *testing.B, n int, shape string) *benchGroup {
	b.Helper()
	key := fmt.Sprintf("%d/%s", n, shape)
	benchGroups.Lock()
	defer benchGroups.Unlock()
	if g, ok := benchGroups.m[key]; ok {
		return g
	}
	b.StopTimer()
	defer b.StartTimer()
	start := time.Now()
	var g *benchGroup
	if shape == "full" {
		g = fixtureBenchGroup(b, n)
	} else {
		g = buildBenchGroup(b, n)
	}
	b.Logf("setup of the %s group of %d members: %v", shape, n, time.Since(start).Round(time.Millisecond))
	benchGroups.m[key] = g
	return g
}

// buildBenchGroup builds the fresh group of n >= 3 members; see the
// comment at the top of the file.
func buildBenchGroup(tb testing.TB, n int) *benchGroup {
	tb.Helper()
	ctx := context.Background()
	g := &benchGroup{n: n, alice: newBenchMember(tb, "alice"), bob: newBenchMember(tb, "bob"), joiner: newBenchMember(tb, "joiner")}
	// Alice commits without the ratchet_tree extension, so her commits do
	// not serialize the whole tree into their GroupInfo. Bob uses it, so
	// his Welcome for the joiner is self-contained.
	aliceCfg := mls.JoinConfig{}
	g.joinerCfg = mls.JoinConfig{UseRatchetTreeExtension: true}
	var err error
	g.alice.group, err = clientOf(g.alice.store, g.alice.id).CreateGroup(ctx, benchSuite, mls.GroupConfig{JoinConfig: aliceCfg})
	if err != nil {
		tb.Fatal(err)
	}
	alice := g.alice.group

	// addAndJoin has alice add the key packages (and merge), bob follow
	// (if he is in), and returns the Welcome and the new tree.
	addAndJoin := func(kps []*mls.KeyPackage) (*mls.Message, []byte) {
		res, err := alice.AddMembers(ctx, kps...)
		if err != nil {
			tb.Fatalf("AddMembers: %v", err)
		}
		if err := alice.MergePendingCommit(ctx); err != nil {
			tb.Fatal(err)
		}
		if g.bob.group != nil {
			g.bob.follow(tb, res.Commit)
		}
		rt, err := alice.ExportRatchetTree()
		if err != nil {
			tb.Fatal(err)
		}
		return res.Welcome, rt
	}

	kps := make([]*mls.KeyPackage, 0, n-1)
	g.carol = newBenchMember(tb, "carol")
	kps = append(kps, g.bob.keyPackage(tb, false), g.carol.keyPackage(tb, false))
	for i := 3; i < n; i++ {
		kps = append(kps, newBenchMember(tb, fmt.Sprintf("member-%d", i)).keyPackage(tb, false))
	}
	w, rt := addAndJoin(kps)
	g.bob.join(tb, w, g.joinerCfg, rt)
	g.carol.join(tb, w, aliceCfg, rt)
	if got := len(alice.Members()); got != n {
		tb.Fatalf("built a group of %d members, want %d", got, n)
	}
	if alice.Epoch() != g.bob.group.Epoch() || !bytes.Equal(alice.EpochAuthenticator(), g.bob.group.EpochAuthenticator()) {
		tb.Fatal("alice and bob disagree after setup")
	}
	g.removeTarget = uint32(n - 1)
	g.prepare(tb)
	return g
}

// prepare makes the messages the Process and Join benchmarks use.
func (g *benchGroup) prepare(tb testing.TB) {
	ctx := context.Background()
	if g.removeTarget == g.bob.group.OwnLeafIndex() {
		tb.Fatalf("remove target %d is bob", g.removeTarget)
	}
	// Each commit is created and then cleared, so the group stays at its
	// epoch.
	g.joinerKP = g.joiner.keyPackage(tb, true)
	prepare := func(who *benchMember, f func(*mls.Group) (*mls.CommitResult, error)) *mls.CommitResult {
		res, err := f(who.group)
		if err != nil {
			tb.Fatal(err)
		}
		if err := who.group.ClearPendingCommit(ctx); err != nil {
			tb.Fatal(err)
		}
		return res
	}
	g.selfUpdate = prepare(g.alice, func(x *mls.Group) (*mls.CommitResult, error) { return x.SelfUpdate(ctx) }).Commit
	g.remove = prepare(g.alice, func(x *mls.Group) (*mls.CommitResult, error) { return x.RemoveMembers(ctx, g.removeTarget) }).Commit
	g.welcome = prepare(g.bob, func(x *mls.Group) (*mls.CommitResult, error) { return x.AddMembers(ctx, g.joinerKP) }).Welcome
	var err error
	if g.selfUpdateRaw, err = g.selfUpdate.MarshalBinary(); err != nil {
		tb.Fatal(err)
	}
}

// benchCommitAndClear times f (a commit) and clears the pending commit untimed.
func benchCommitAndClear(b *testing.B, m *benchMember, f func(ctx context.Context) (*mls.CommitResult, error)) {
	ctx := context.Background()
	for b.Loop() {
		if _, err := f(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.group.ClearPendingCommit(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func benchSelfUpdateCommit(b *testing.B, g *benchGroup) {
	benchCommitAndClear(b, g.alice, g.alice.group.SelfUpdate)
}

func benchAddMember(b *testing.B, g *benchGroup) {
	benchCommitAndClear(b, g.alice, func(ctx context.Context) (*mls.CommitResult, error) {
		res, err := g.alice.group.AddMembers(ctx, g.joinerKP)
		if err == nil && res.Welcome == nil {
			err = fmt.Errorf("AddMembers returned no Welcome")
		}
		return res, err
	})
}

func benchRemoveMember(b *testing.B, g *benchGroup) {
	benchCommitAndClear(b, g.alice, func(ctx context.Context) (*mls.CommitResult, error) {
		return g.alice.group.RemoveMembers(ctx, g.removeTarget)
	})
}

// benchProcess times bob staging a commit without merging it.
func benchProcess(b *testing.B, g *benchGroup, commit *mls.Message) {
	ctx := context.Background()
	for b.Loop() {
		p, err := g.bob.group.Process(ctx, commit)
		if err != nil {
			b.Fatal(err)
		}
		if p.Kind != mls.KindCommit {
			b.Fatalf("got a %v, want a commit", p.Kind)
		}
	}
}

func benchProcessSelfUpdate(b *testing.B, g *benchGroup) { benchProcess(b, g, g.selfUpdate) }

// benchProcessSelfUpdateNoRTE: carol, whose configuration does not use the
// ratchet_tree extension, stages the same commit as bob.
func benchProcessSelfUpdateNoRTE(b *testing.B, g *benchGroup) {
	benchProcess(b, &benchGroup{bob: g.carol}, g.selfUpdate)
}

// benchParseProcessSelfUpdate: bob parses the encoded commit and stages it.
func benchParseProcessSelfUpdate(b *testing.B, g *benchGroup) {
	ctx := context.Background()
	b.SetBytes(int64(len(g.selfUpdateRaw)))
	for b.Loop() {
		m, err := mls.ParseMessage(g.selfUpdateRaw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := g.bob.group.Process(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// benchAddMemberWithTree: bob, who uses the ratchet_tree extension, adds
// the joiner; his Welcome carries the whole tree.
func benchAddMemberWithTree(b *testing.B, g *benchGroup) {
	benchCommitAndClear(b, g.bob, func(ctx context.Context) (*mls.CommitResult, error) {
		res, err := g.bob.group.AddMembers(ctx, g.joinerKP)
		if err == nil && res.Welcome == nil {
			err = fmt.Errorf("AddMembers returned no Welcome")
		}
		return res, err
	})
}

func benchProcessRemove(b *testing.B, g *benchGroup) { benchProcess(b, g, g.remove) }

func benchJoinFromWelcome(b *testing.B, g *benchGroup) {
	ctx := context.Background()
	for b.Loop() {
		sw, err := clientOf(g.joiner.store, g.joiner.id).StageWelcome(ctx, g.welcome, mls.WelcomeOptions{JoinConfig: g.joinerCfg})
		if err != nil {
			b.Fatal(err)
		}
		jg, err := sw.Join(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(jg.Members()); n != g.n+1 {
			b.Fatalf("joined a group of %d members, want %d", n, g.n+1)
		}
	}
}

// benchPayload is the 1 KB application message.
var benchPayload = bytes.Repeat([]byte("0123456789abcdef"), 64)

// benchSealApp has bob seal; alice's ratchet is kept for benchOpenApp, so
// that the receiver never has to skip ahead past the forward distance.
func benchSealApp(b *testing.B, g *benchGroup) {
	ctx := context.Background()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if _, err := g.bob.group.Seal(ctx, benchPayload, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// benchOpenApp has bob open messages alice sealed in batches, untimed.
func benchOpenApp(b *testing.B, g *benchGroup) {
	ctx := context.Background()
	b.SetBytes(int64(len(benchPayload)))
	const batch = 256
	var queue []*mls.Message
	for b.Loop() {
		if len(queue) == 0 {
			b.StopTimer()
			queue = benchSealBatch(b, g.alice.group, batch)
			b.StartTimer()
		}
		p, err := g.bob.group.Process(ctx, queue[0])
		if err != nil {
			b.Fatal(err)
		}
		if p.Kind != mls.KindApplication || len(p.ApplicationData) != len(benchPayload) {
			b.Fatalf("got %v with %d bytes", p.Kind, len(p.ApplicationData))
		}
		queue = queue[1:]
	}
	// Drain what is left so that the next run starts in order.
	for _, m := range queue {
		if _, err := g.bob.group.Process(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSealBatch(tb testing.TB, sender *mls.Group, n int) []*mls.Message {
	tb.Helper()
	out := make([]*mls.Message, n)
	for i := range out {
		m, err := sender.Seal(context.Background(), benchPayload, nil)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = m
	}
	return out
}

// TestBenchGroupSetup checks the benchmark setup itself at a small size:
// both shapes build, the prepared messages are accepted, and every
// operation runs once and leaves the group usable for the next.
func TestBenchGroupSetup(t *testing.T) {
	// testing.Benchmark runs for -test.benchtime; two iterations suffice.
	bt := flag.Lookup("test.benchtime")
	old := bt.Value.String()
	if err := bt.Value.Set("2x"); err != nil {
		t.Fatal(err)
	}
	defer bt.Value.Set(old)
	for _, full := range []bool{false, true} {
		var g *benchGroup
		if full {
			g = fixtureBenchGroup(t, 6)
		} else {
			g = buildBenchGroup(t, 6)
		}
		if got := len(g.bob.group.Members()); got != 6 {
			t.Fatalf("full=%v: bob sees %d members, want 6", full, got)
		}
		for _, op := range benchOps {
			for range 2 {
				res := testing.Benchmark(func(b *testing.B) { op.run(b, g) })
				if res.N == 0 {
					t.Fatalf("full=%v: %s did not run (it failed)", full, op.name)
				}
			}
		}
		if g.alice.group.Epoch() != g.bob.group.Epoch() || !bytes.Equal(g.alice.group.EpochAuthenticator(), g.bob.group.EpochAuthenticator()) {
			t.Fatalf("full=%v: alice and bob disagree after the operations", full)
		}
	}
}
