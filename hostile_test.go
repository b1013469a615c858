package mls

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage/memory"
)

// Hostile ratchet trees (RFC 9420, Section 12.4.3.3) given to StageWelcome
// (in WelcomeOptions.RatchetTree or in the GroupInfo's ratchet_tree
// extension) and to JoinExternal (in ExternalJoinOptions.RatchetTree or in
// the extension): trees padded with blank nodes, over the leaf limit, and
// structurally bad. Each is rejected with a typed error, and what it costs
// is bounded by its size: the tests check allocations, the benchmark
// (BenchmarkHostileRatchetTree) time and allocations.

// hostileFixture is a group of Alice and Bob in which Alice has just
// added Erin with a path (so the tree has parent nodes), with what the
// hostile trees are made of.
type hostileFixture struct {
	wc     *welcomeCase
	alice  crypto.Signer
	real   message.RatchetTree // the tree Erin is welcomed into
	extra  *message.LeafNode   // a validly signed leaf of a client outside the group
	giExt  *message.GroupInfo  // Alice's GroupInfo of the epoch, with external_pub
	joiner *vMember            // who joins by external commit
}

func newHostileFixture(t testing.TB) *hostileFixture {
	t.Helper()
	wc := newWelcomeCase(t, true)
	alice := wc.vg.m[0]
	real, err := message.UnmarshalRatchetTree(wc.tree)
	if err != nil {
		t.Fatal(err)
	}
	zed := newVMember(t, "zed")
	kp := zed.keyPackage(t, vSuite, KeyPackageOptions{})
	giMsg, err := alice.g.ExportGroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	return &hostileFixture{wc: wc, alice: alice.g.signer, real: real, extra: &kp.kp.LeafNode,
		giExt: giMsg.m.GroupInfo, joiner: newVMember(t, "frank")}
}

// hostileTree encodes a ratchet_tree of size bytes (give or take one):
// the nodes of fixed at their indexes, blank nodes elsewhere, and last as
// the final node, at the first index past the others of the parity its
// type needs (leaves even, parents odd).
func hostileTree(fixed map[int]*message.Node, size int, last *message.Node) []byte {
	maxFixed := -1
	for i := range fixed {
		maxFixed = max(maxFixed, i)
	}
	tail := wire.NewEncoder(nil)
	tail.Optional(true)
	last.Encode(tail)
	e := wire.NewEncoder(make([]byte, 0, size))
	i := 0
	for i <= maxFixed || e.Len()+tail.Len()+4 < size-1 {
		n := fixed[i]
		e.Optional(n != nil)
		if n != nil {
			n.Encode(e)
		}
		i++
	}
	if (i%2 == 0) != (last.Leaf != nil) {
		e.Optional(false)
	}
	body := append(e.MustBytes(), tail.MustBytes()...)
	return append(wire.AppendVarint(nil, uint64(len(body))), body...)
}

// realNodes returns the fixture's tree as a map, to add nodes to.
func (f *hostileFixture) realNodes() map[int]*message.Node {
	m := map[int]*message.Node{}
	for i, n := range f.real {
		if n != nil {
			m[i] = n
		}
	}
	return m
}

// hostileCase is one hostile tree and what it must be rejected with.
type hostileCase struct {
	name string
	tree []byte
	// hash is the tree hash the GroupInfo claims: the tree's own, so that
	// validation runs on it, or nil to keep the real one.
	hash []byte
	// forge signs the GroupInfo with a key that is not in the tree.
	forge bool
	// want matches the error; external and welcome may differ when the
	// two paths stop at different checks.
	want, wantExternal error
}

// treeHashOf returns the tree hash of an encoded tree, for a GroupInfo
// that claims it (the fixture's setup, not an expected output).
func treeHashOf(t testing.TB, raw []byte) []byte {
	t.Helper()
	rt, err := message.UnmarshalSparseRatchetTree(raw, 1<<31)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tree.FromSparse(mustSuite(t, vSuite), rt, tree.MaxLeaves)
	if err != nil {
		t.Fatal(err)
	}
	return tr.TreeHash()
}

const (
	kib = 1 << 10
	mib = 1 << 20
)

// hostileCases builds the hostile trees of about size bytes (the
// over-limit one is overSize bytes).
func (f *hostileFixture) hostileCases(t testing.TB, size, overSize int) []hostileCase {
	t.Helper()
	s := mustSuite(t, vSuite)
	lastLeaf := &message.Node{Leaf: f.extra}
	rule := func(r string) error { return &ValidationError{Rule: r} }
	var cs []hostileCase

	// Blank padding, otherwise a valid tree: it passes every tree check,
	// so a Welcome fails only at its confirmation tag (the tree hash is
	// part of the key schedule, RFC 9420, Section 8) and an external join
	// at the tree hash it claims (the real one).
	blank := hostileTree(f.realNodes(), size, lastLeaf)
	cs = append(cs, hostileCase{name: "blank", tree: blank, hash: treeHashOf(t, blank), want: rule("ValSem205")})
	cs = append(cs, hostileCase{name: "blank/real_hash", tree: blank, want: rule("TreeValidation"), wantExternal: rule("TreeValidation")})
	// The same tree in a GroupInfo signed by someone outside it: rejected
	// before the tree is hashed.
	cs = append(cs, hostileCase{name: "blank/forged", tree: blank, forge: true, want: rule("GroupInfoSignature")})
	// Over the leaf limit: rejected while decoding.
	cs = append(cs, hostileCase{name: "over_limit", tree: hostileTree(f.realNodes(), overSize, lastLeaf), want: ErrMalformed})
	// A node count that is not a full tree, one node past the limit's
	// full tree: it would need twice the leaves.
	{
		limitNodes := int(2*DefaultMaxTreeLeaves - 1)
		if size < 2*mib {
			limitNodes = int(2*hostileTestLeaves - 1)
		}
		nodes := f.realNodes()
		nodes[limitNodes+1] = lastLeaf // a leaf position
		e := wire.NewEncoder(nil)
		for i := 0; i <= limitNodes+1; i++ {
			n := nodes[i]
			e.Optional(n != nil)
			if n != nil {
				n.Encode(e)
			}
		}
		body := e.MustBytes()
		cs = append(cs, hostileCase{name: "not_full", tree: append(wire.AppendVarint(nil, uint64(len(body))), body...), want: ErrMalformed})
	}
	// Truncated in its last node.
	cs = append(cs, hostileCase{name: "truncated", tree: blank[:len(blank)-3], want: ErrMalformed})
	// A vector that claims more bytes than there are.
	cs = append(cs, hostileCase{name: "short_vector", tree: append(wire.AppendVarint(nil, 1<<27), blank[4:]...), want: ErrMalformed})
	// The last node blank (trailing blank nodes).
	{
		body := append(blank[4:len(blank):len(blank)], 0, 0)
		cs = append(cs, hostileCase{name: "trailing_blank", tree: append(wire.AppendVarint(nil, uint64(len(body))), body...), want: rule("RatchetTree")})
	}
	// A parent node whose parent_hash is wrong.
	{
		nodes := f.realNodes()
		x := -1
		for i, n := range f.real {
			if n != nil && n.Parent != nil && len(n.Parent.ParentHash) > 0 {
				x = i
			}
		}
		if x < 0 {
			t.Fatal("the fixture's tree has no parent node below the root")
		}
		p := *nodes[x].Parent
		p.ParentHash = append([]byte{^p.ParentHash[0]}, p.ParentHash[1:]...)
		nodes[x] = &message.Node{Parent: &p}
		raw := hostileTree(nodes, size, lastLeaf)
		cs = append(cs, hostileCase{name: "parent_hash", tree: raw, hash: treeHashOf(t, raw), want: rule("TreeValidation")})
	}
	// Non-blank parents with blank children, scattered over the padding:
	// no descendant links to any of them.
	{
		nodes := f.realNodes()
		for k := 0; k < 256; k++ {
			x := 64*kib + k*(size/512) | 1 // odd: a parent position
			key, _ := s.GenerateSignatureKey(nil)
			pub, _ := s.SignaturePublicKey(key) // any 32 unique bytes
			nodes[x] = &message.Node{Parent: &message.ParentNode{EncryptionKey: pub, ParentHash: []byte{}, UnmergedLeaves: []uint32{}}}
		}
		raw := hostileTree(nodes, size, lastLeaf)
		cs = append(cs, hostileCase{name: "orphan_parents", tree: raw, hash: treeHashOf(t, raw), want: rule("TreeValidation")})
	}
	// Duplicated keys: Alice's leaf again at the end.
	{
		raw := hostileTree(f.realNodes(), size, &message.Node{Leaf: f.real[0].Leaf})
		cs = append(cs, hostileCase{name: "duplicate_keys", tree: raw, hash: treeHashOf(t, raw), want: rule("TreeValidation")})
	}
	return cs
}

// hostileTestLeaves is the leaf limit the tests use, so that their trees
// stay small; the benchmark uses the default.
const hostileTestLeaves = 1 << 17

// welcome returns Erin's Welcome whose GroupInfo claims hc's tree hash,
// signed by Alice (or a stranger if hc.forge), carrying the tree in the
// ratchet_tree extension if inExt.
func (f *hostileFixture) welcome(t testing.TB, hc *hostileCase, inExt bool) *Message {
	t.Helper()
	wp := openWelcome(t, f.wc.joiner, f.wc.welcome)
	f.dress(t, wp.gi, hc, inExt)
	return wireMsg(t, wp.seal(t, nil))
}

// groupInfo returns Alice's GroupInfo for an external join, changed as
// for welcome.
func (f *hostileFixture) groupInfo(t testing.TB, hc *hostileCase, inExt bool) *Message {
	t.Helper()
	gi, err := message.UnmarshalGroupInfo(message.MustMarshal(f.giExt))
	if err != nil {
		t.Fatal(err)
	}
	f.dress(t, gi, hc, inExt)
	return wireMsg(t, wrapGroupInfo(gi))
}

func (f *hostileFixture) dress(t testing.TB, gi *message.GroupInfo, hc *hostileCase, inExt bool) {
	t.Helper()
	s := mustSuite(t, vSuite)
	var exts []message.Extension
	for _, e := range gi.Extensions {
		if e.Type != message.ExtensionRatchetTree {
			exts = append(exts, e)
		}
	}
	if inExt {
		exts = append(exts, message.Extension{Type: message.ExtensionRatchetTree, Data: hc.tree})
	}
	gi.Extensions = exts
	if hc.hash != nil {
		gi.GroupContext.TreeHash = hc.hash
	}
	signer := f.alice
	if hc.forge {
		signer, _ = s.GenerateSignatureKey(nil)
	}
	if err := gi.Sign(s, signer); err != nil {
		t.Fatal(err)
	}
}

// hostilePath is one way a tree reaches the library.
type hostilePath struct {
	name     string
	external bool
	inExt    bool
}

var hostilePaths = []hostilePath{
	{"StageWelcome/option", false, false},
	{"StageWelcome/extension", false, true},
	{"JoinExternal/option", true, false},
	{"JoinExternal/extension", true, true},
}

// run feeds hc's tree through path p once and returns the error.
// prepare returns a function that feeds hc's tree through path p once,
// with a client whose leaf limit is maxLeaves (0: the default), and
// returns the error.
func (f *hostileFixture) prepare(t testing.TB, hc *hostileCase, p hostilePath, maxLeaves uint32) func() error {
	t.Helper()
	ctx := context.Background()
	var given []byte
	if !p.inExt {
		given = hc.tree
	}
	opts := ClientOptions{MaxTreeLeaves: maxLeaves}
	if p.external {
		gi := f.groupInfo(t, hc, p.inExt)
		return func() error {
			c := ClientWith(memory.New(), f.joiner.id, credential.AcceptAll, opts)
			_, _, err := c.JoinExternal(ctx, gi, ExternalJoinOptions{RatchetTree: given})
			return err
		}
	}
	w := f.welcome(t, hc, p.inExt)
	c := ClientWith(f.wc.joiner.store, f.wc.joiner.id, credential.AcceptAll, opts)
	return func() error {
		_, err := c.StageWelcome(ctx, w, WelcomeOptions{RatchetTree: given})
		return err
	}
}

// allocated returns the bytes fn allocates (loosely: the process-wide
// counter, with nothing else running in this test).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileRatchetTree feeds every hostile tree (of 256 KiB, with a
// leaf limit of 2^17; the over-limit tree is 1 MiB) through every path and
// checks the typed error and that what was allocated stays within 10x the
// tree's size (plus a fixed 512 KiB for the group setup each call makes).
func TestHostileRatchetTree(t *testing.T) {
	f := newHostileFixture(t)
	for _, hc := range f.hostileCases(t, 256*kib, 1*mib) {
		for _, p := range hostilePaths {
			t.Run(hc.name+"/"+p.name, func(t *testing.T) {
				run := f.prepare(t, &hc, p, hostileTestLeaves)
				var err error
				n := allocated(func() { err = run() })
				want := hc.want
				if p.external && hc.wantExternal != nil {
					want = hc.wantExternal
				}
				if p.external && hc.name == "blank" {
					// The tree is valid and its hash the claimed one: the
					// external join succeeds.
					want = nil
				}
				switch {
				case want == nil && err != nil:
					t.Fatalf("%d-byte tree: got %v, want success", len(hc.tree), err)
				case want != nil && !errors.Is(err, want):
					t.Fatalf("%d-byte tree: got %v, want %s", len(hc.tree), err, describe(want))
				}
				if limit := uint64(10*len(hc.tree) + 512*kib); n > limit {
					t.Errorf("%d-byte tree: %d bytes allocated, more than %d", len(hc.tree), n, limit)
				}
			})
		}
	}
}

// TestHostileRatchetTreeDefaultLimit: an 8 MiB tree of blank nodes is over
// the default leaf limit (2^20 leaves) and rejected as malformed, on every
// path, allocating less than 80 MiB (the Welcome and GroupInfo carrying it
// are copied a few times) and without being hashed.
func TestHostileRatchetTreeDefaultLimit(t *testing.T) {
	f := newHostileFixture(t)
	raw := hostileTree(f.realNodes(), 8*mib, &message.Node{Leaf: f.extra})
	if n := tree.LeavesFor(uint32(len(raw))); n <= DefaultMaxTreeLeaves {
		t.Fatalf("the %d-byte tree needs only %d leaves", len(raw), n)
	}
	hc := hostileCase{name: "over_limit", tree: raw}
	for _, p := range hostilePaths {
		t.Run(p.name, func(t *testing.T) {
			run := f.prepare(t, &hc, p, 0)
			var err error
			n := allocated(func() { err = run() })
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			if n > 80*mib {
				t.Errorf("%d bytes allocated, more than 80 MiB", n)
			}
		})
	}
}

// TestMaxTreeLeaves: a tree exactly at ClientOptions.MaxTreeLeaves is
// accepted (the Welcome joins), one leaf-doubling over it is ErrMalformed.
func TestMaxTreeLeaves(t *testing.T) {
	f := newHostileFixture(t)
	ctx := context.Background()
	// The real tree has 4 leaves (Alice, Bob, Erin and a blank one).
	for _, tc := range []struct {
		limit uint32
		ok    bool
	}{{4, true}, {5, true}, {3, false}, {2, false}} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			c := ClientWith(f.wc.joiner.store, f.wc.joiner.id, credential.AcceptAll, ClientOptions{MaxTreeLeaves: tc.limit})
			_, err := c.StageWelcome(ctx, wireMsg(t, f.wc.welcome), WelcomeOptions{RatchetTree: f.wc.tree})
			switch {
			case tc.ok && err != nil:
				t.Fatalf("limit %d: %v", tc.limit, err)
			case !tc.ok && !errors.Is(err, ErrMalformed):
				t.Fatalf("limit %d: got %v, want ErrMalformed", tc.limit, err)
			}
		})
	}
}

// BenchmarkHostileRatchetTree feeds blank-padded and structurally bad
// ratchet trees through StageWelcome and JoinExternal (tree given apart or
// in the ratchet_tree extension) with the default leaf limit (2^20): 2 MiB
// trees (2^20 leaves, within the limit) and an 8 MiB one (2^22 leaves,
// over it). b.SetBytes is the tree's size, so MB/s and B/op compare with
// it.
func BenchmarkHostileRatchetTree(b *testing.B) {
	f := newHostileFixture(b)
	for _, hc := range f.hostileCases(b, 2*mib, 8*mib) {
		for _, p := range hostilePaths {
			if hc.name == "blank" && p.external {
				// Valid and with its own hash, this one joins; the join
				// itself is measured by BenchmarkExternalJoin.
				continue
			}
			b.Run(fmt.Sprintf("%s/%s/%dB/%dleaves", hc.name, p.name, len(hc.tree), tree.LeavesFor(treeWidth(b, hc.tree))), func(b *testing.B) {
				run := f.prepare(b, &hc, p, 0)
				b.SetBytes(int64(len(hc.tree)))
				b.ReportAllocs()
				for b.Loop() {
					if err := run(); err == nil {
						b.Fatal("the hostile tree was accepted")
					}
				}
			})
		}
	}
}

// treeWidth counts the entries of an encoded tree, for the benchmark's
// names (0 if it does not decode).
func treeWidth(tb testing.TB, raw []byte) uint32 {
	rt, err := message.UnmarshalSparseRatchetTree(raw, 1<<31)
	if err != nil {
		return 0
	}
	return rt.Width
}
