package mls_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/vectors"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// errorClass returns the name of the class of errors.go that err matches,
// or "" if it matches none. The order puts the refinements first:
// ErrDecrypt before ErrValidation (ValSem006 matches both), ErrReplayed
// apart from both.
func errorClass(err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "context"
	}
	for _, c := range []struct {
		name string
		err  error
	}{
		{"replayed", mls.ErrReplayed},
		{"decrypt", mls.ErrDecrypt},
		{"stale state", mls.ErrStaleState},
		{"corrupt state", mls.ErrCorruptState},
		{"storage", mls.ErrStorage},
		{"not found", mls.ErrNotFound},
		{"malformed", mls.ErrMalformed},
		{"unsupported", mls.ErrUnsupported},
		{"invalid argument", mls.ErrInvalidArgument},
		{"pending commit", mls.ErrPendingCommit},
		{"no pending commit", mls.ErrNoPendingCommit},
		{"inactive", mls.ErrInactive},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	// The validation class is a *ValidationError that names its rule.
	var ve *mls.ValidationError
	if errors.Is(err, mls.ErrValidation) && errors.As(err, &ve) && ve.Rule != "" {
		return "validation"
	}
	return ""
}

// classTally counts the outcomes of the calls an error class test makes
// and reports every error outside the classes (once per message text).
type classTally struct {
	t      *testing.T
	mu     sync.Mutex
	calls  int
	counts map[string]int
	seen   map[string]bool
}

func newClassTally(t *testing.T) *classTally {
	return &classTally{t: t, counts: map[string]int{}, seen: map[string]bool{}}
}

// check records the result of one call; what names the call.
func (c *classTally) check(what string, err error) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if err == nil {
		c.counts["ok"]++
		return
	}
	class := errorClass(err)
	c.counts[class]++
	if class == "" {
		key := what + ": " + err.Error()
		if !c.seen[key] {
			c.seen[key] = true
			c.t.Errorf("%s: error outside the classes: %v (%T)", what, err, err)
		}
	}
}

// want records a call that must fail with the given class.
func (c *classTally) want(what, class string, err error) {
	c.t.Helper()
	c.check(what, err)
	got := errorClass(err)
	if err == nil {
		got = "ok"
	}
	if got != class {
		c.t.Errorf("%s: got %q (%v), want class %q", what, got, err, class)
	}
}

func (c *classTally) report(what string) {
	names := make([]string, 0, len(c.counts))
	for n := range c.counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		label := n
		if label == "" {
			label = "UNCLASSIFIED"
		}
		fmt.Fprintf(&b, " %s=%d", label, c.counts[n])
	}
	c.t.Logf("%s: %d calls:%s", what, c.calls, b.String())
}

// classFixture is a group of three (alice, bob, carol) whose member bob
// receives the inputs, with the messages the inputs are made from.
type classFixture struct {
	alice, bob  *client
	dave, erin  *client // dave has a Welcome waiting; erin joins externally
	welcome     *mls.Message
	welcomeTree []byte // the tree for welcome (it has no ratchet_tree extension)
	giNoTree    *mls.Message
	tree        []byte // the tree of bob's epoch, for giNoTree
	seeds       map[string][]byte
}

// newClassFixture builds the seeds of FuzzProcess and FuzzJoinExternal,
// plus a Welcome and a key package, all for bob's current epoch.
func newClassFixture(t *testing.T) *classFixture {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, true, "alice", "bob", "carol")
	f := &classFixture{alice: cs[0], bob: cs[1], dave: newClient(t, "dave", regressSuite), erin: newClient(t, "erin", regressSuite), seeds: map[string][]byte{}}
	add := func(name string) func(m interface{ MarshalBinary() ([]byte, error) }, err error) {
		return func(m interface{ MarshalBinary() ([]byte, error) }, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			f.seeds[name] = b
		}
	}
	var err error
	if f.tree, err = f.alice.group.ExportRatchetTree(); err != nil {
		t.Fatal(err)
	}
	f.giNoTree = exportGroupInfo(t, f.alice, false)
	add("group info")(f.giNoTree, nil)
	add("group info with tree")(exportGroupInfo(t, f.alice, true), nil)
	// FuzzProcess's seeds.
	add("application")(f.alice.group.Seal(ctx, []byte("hello"), []byte("aad")))
	add("application 2")(f.alice.group.Seal(ctx, []byte("hello again"), nil))
	add("self update proposal")(msgOnly(f.alice.group.ProposeSelfUpdate(ctx)))
	add("remove proposal")(msgOnly(f.alice.group.ProposeRemove(ctx, 2)))
	res, err := f.alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add("commit")(res.Commit, nil)
	if res.GroupInfo != nil {
		add("commit group info")(res.GroupInfo, nil)
	}
	if err := f.alice.group.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	// FuzzJoinExternal's seeds.
	_, ext, err := clientOf(memory.New(), f.erin.id).JoinExternal(ctx, f.giNoTree, mls.ExternalJoinOptions{RatchetTree: f.tree})
	add("external commit")(ext.Commit, err)
	add("join proposal")(mls.NewJoinProposal(f.erin.keyPackage(t, regressSuite), f.erin.id.Signer, f.giNoTree))
	add("key package")(f.dave.keyPackage(t, regressSuite), nil)
	// A Welcome for dave, from a commit that alice then merges (bob stays
	// behind, which is fine: he only ever sees inputs).
	res, err = f.alice.group.Commit(ctx, mls.CommitOptions{Add: []*mls.KeyPackage{f.dave.keyPackage(t, regressSuite)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	f.welcome = res.Welcome
	add("welcome")(res.Welcome, nil)
	if f.welcomeTree, err = f.alice.group.ExportRatchetTree(); err != nil {
		t.Fatal(err)
	}
	f.seeds["ratchet tree"] = f.tree
	return f
}

// run feeds b to every entry point that takes bytes or a parsed message,
// as a message and as a ratchet tree, and checks every error's class and
// that bob's group did not move.
func (f *classFixture) run(t *testing.T, c *classTally, name string, b []byte) {
	ctx := context.Background()
	epoch, auth := f.bob.group.Epoch(), f.bob.group.EpochAuthenticator()
	m, err := mls.ParseMessage(b)
	c.check(name+": ParseMessage", err)
	_, err = mls.ParseKeyPackage(b)
	c.check(name+": ParseKeyPackage", err)
	if m != nil {
		switch m.WireFormat() {
		case mls.WireFormatPublicMessage, mls.WireFormatPrivateMessage:
			_, err = f.bob.group.Process(ctx, m)
			c.check(name+": Process", err)
		case mls.WireFormatWelcome:
			_, err = clientOf(f.dave.store, f.dave.id).StageWelcome(ctx, m, mls.WelcomeOptions{RatchetTree: f.welcomeTree})
			c.check(name+": StageWelcome", err)
		case mls.WireFormatGroupInfo:
			_, _, err = clientOf(memory.New(), f.erin.id).JoinExternal(ctx, m, mls.ExternalJoinOptions{RatchetTree: f.tree})
			c.check(name+": JoinExternal", err)
			_, err = mls.NewJoinProposal(f.erin.keyPackage(t, regressSuite), f.erin.id.Signer, m)
			c.check(name+": NewJoinProposal", err)
		case mls.WireFormatKeyPackage:
			_, err = m.KeyPackage()
			c.check(name+": Message.KeyPackage", err)
		}
		if m.WireFormat() != mls.WireFormatPublicMessage && m.WireFormat() != mls.WireFormatPrivateMessage {
			_, err = f.bob.group.Process(ctx, m)
			c.check(name+": Process of a non-group message", err)
		}
	}
	// The same bytes as a ratchet tree, through both options.
	_, _, err = clientOf(memory.New(), f.erin.id).JoinExternal(ctx, f.giNoTree, mls.ExternalJoinOptions{RatchetTree: b})
	c.check(name+": ExternalJoinOptions.RatchetTree", err)
	_, err = clientOf(f.dave.store, f.dave.id).StageWelcome(ctx, f.welcome, mls.WelcomeOptions{RatchetTree: b})
	c.check(name+": WelcomeOptions.RatchetTree", err)
	if f.bob.group.Epoch() != epoch || !bytes.Equal(f.bob.group.EpochAuthenticator(), auth) {
		t.Fatalf("%s: processing changed bob's group", name)
	}
}

// mutations returns b's damaged variants: every proper prefix, every
// byte flipped (low bit, and all bits), one byte appended.
func mutations(b []byte) [][]byte {
	var out [][]byte
	for i := range len(b) {
		out = append(out, b[:i])
	}
	for i := range b {
		for _, x := range []byte{0x01, 0xff} {
			m := bytes.Clone(b)
			m[i] ^= x
			out = append(out, m)
		}
	}
	return append(out, append(bytes.Clone(b), 0))
}

// vectorMessages returns the messages of the official messages.json, or
// nil without the vectors.
func vectorMessages(t *testing.T) map[string][]byte {
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vectors.Read(dir, "messages.json")
	if errors.Is(err, vectors.ErrNotFound) {
		t.Logf("no official vectors: %v", err)
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var vs []map[string]vectors.Hex
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for i, v := range vs {
		for k, b := range v {
			out[fmt.Sprintf("vector %d %s", i, k)] = b
		}
	}
	return out
}

// TestErrorClassInputs runs the fuzz targets' seeds (FuzzProcess,
// FuzzJoinExternal), every truncation and byte flip of them, random bytes
// and the official message vectors through every entry point that takes
// input, and fails on any error outside the classes of errors.go.
func TestErrorClassInputs(t *testing.T) {
	f := newClassFixture(t)
	c := newClassTally(t)
	inputs := 0
	names := make([]string, 0, len(f.seeds))
	for n := range f.seeds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f.run(t, c, n, f.seeds[n])
		inputs++
		for i, m := range mutations(f.seeds[n]) {
			f.run(t, c, fmt.Sprintf("%s mutation %d", n, i), m)
			inputs++
		}
	}
	// Replaying the application seeds, processed once above, is a replay:
	// ErrReplayed, and not ErrDecrypt.
	for _, n := range []string{"application", "application 2"} {
		m, err := mls.ParseMessage(f.seeds[n])
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.bob.group.Process(context.Background(), m)
		c.want(n+" replayed", "replayed", err)
		if errors.Is(err, mls.ErrDecrypt) {
			t.Errorf("%s replayed: %v matches ErrDecrypt", n, err)
		}
	}
	rnd := rand.New(rand.NewPCG(9, 4))
	for i := range 500 {
		b := make([]byte, rnd.IntN(300))
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		if i%2 == 0 && len(b) >= 4 {
			// An MLSMessage header (mls10, a wire format 1 to 5) so that
			// the random bytes reach the decoder of each message kind.
			b[0], b[1], b[2], b[3] = 0, 1, 0, byte(1+i/2%5)
		}
		f.run(t, c, fmt.Sprintf("random %d", i), b)
		inputs++
	}
	// The checked-in corpora of the root fuzz targets, when present.
	corpus := 0
	for _, target := range []string{"FuzzProcess", "FuzzJoinExternal"} {
		for i, vals := range fuzzCorpus(t, target) {
			for j, v := range vals {
				if b, ok := v.([]byte); ok {
					f.run(t, c, fmt.Sprintf("%s corpus %d value %d", target, i, j), b)
					inputs++
					corpus++
				}
			}
		}
	}
	vs := vectorMessages(t)
	vnames := make([]string, 0, len(vs))
	for n := range vs {
		vnames = append(vnames, n)
	}
	sort.Strings(vnames)
	for _, n := range vnames {
		f.run(t, c, n, vs[n])
		inputs++
	}
	t.Logf("%d inputs (%d seeds and their mutations, %d fuzz corpus values, %d official vector messages)", inputs, len(f.seeds), corpus, len(vs))
	c.report("inputs")
}

// TestErrorClassArguments calls the entry points with unusable arguments,
// unknown suites, missing objects and a cancelled context.
func TestErrorClassArguments(t *testing.T) {
	ctx := context.Background()
	f := newClassFixture(t)
	c := newClassTally(t)
	g := f.bob.group
	const unknownSuite = mls.CipherSuite(0xfff0)
	for _, n := range []int{-1, 255*32 + 1, 1 << 30} {
		_, err := g.ExportSecret("label", nil, n)
		c.want(fmt.Sprintf("ExportSecret length %d", n), "invalid argument", err)
	}
	_, err := g.ExportSecret("label", nil, 32)
	c.want("ExportSecret length 32", "ok", err)
	_, err = g.Process(ctx, nil)
	c.want("Process(nil)", "invalid argument", err)
	_, err = g.Process(ctx, f.welcome)
	c.want("Process(Welcome)", "invalid argument", err)
	_, err = mls.ParseMessage(nil)
	c.want("ParseMessage(nil)", "malformed", err)
	_, err = mls.ParseKeyPackage(nil)
	c.want("ParseKeyPackage(nil)", "malformed", err)
	_, err = f.welcome.KeyPackage()
	c.want("Welcome.KeyPackage", "invalid argument", err)
	_, err = clientOf(f.dave.store, f.dave.id).StageWelcome(ctx, f.giNoTree, mls.WelcomeOptions{})
	c.want("StageWelcome(GroupInfo)", "invalid argument", err)
	_, err = clientOf(memory.New(), f.erin.id).StageWelcome(ctx, f.welcome, mls.WelcomeOptions{RatchetTree: f.welcomeTree})
	c.want("StageWelcome without the key package", "not found", err)
	_, _, err = clientOf(memory.New(), f.erin.id).JoinExternal(ctx, f.welcome, mls.ExternalJoinOptions{})
	c.want("JoinExternal(Welcome)", "invalid argument", err)
	_, err = clientOf(memory.New(), f.erin.id).NewKeyPackage(ctx, unknownSuite, mls.KeyPackageOptions{})
	c.want("NewKeyPackage unknown suite", "unsupported", err)
	_, err = clientOf(memory.New(), f.erin.id).CreateGroup(ctx, unknownSuite, mls.GroupConfig{})
	c.want("CreateGroup unknown suite", "unsupported", err)
	_, err = mls.NewExternalProposal(g.GroupID(), g.Epoch(), unknownSuite, 0, f.erin.id.Signer, mls.RemoveProposal(1))
	c.want("NewExternalProposal unknown suite", "unsupported", err)
	_, err = loaderOf(memory.New(), nil).LoadGroup(ctx, []byte("no such group"))
	c.want("LoadGroup of no group", "not found", err)
	err = g.RemovePendingProposal(ctx, []byte("no such proposal"))
	c.want("RemovePendingProposal unknown", "not found", err)
	err = g.StorePendingProposal(ctx, nil)
	c.want("StorePendingProposal(nil)", "invalid argument", err)
	err = g.MergePendingCommit(ctx)
	c.want("MergePendingCommit without one", "no pending commit", err)
	_, _, err = g.ProposePSK(ctx, []byte("no such psk"))
	c.want("ProposePSK unknown", "not found", err)
	_, err = g.RemoveMembers(ctx, 99)
	c.check("RemoveMembers(99)", err)
	_, _, err = g.ProposeRemove(ctx, 99)
	c.check("ProposeRemove(99)", err)
	_, err = g.SelfUpdate(ctx)
	c.want("SelfUpdate", "ok", err)
	_, err = g.SelfUpdate(ctx)
	c.want("SelfUpdate with a pending commit", "pending commit", err)
	if err := g.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	// A signer whose key type is not the suite's.
	p256, err := ciphersuite.Lookup(mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := p256.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := mls.Identity{Credential: f.erin.id.Credential, Signer: wrongKey}
	_, err = clientOf(memory.New(), wrong).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{})
	c.want("NewKeyPackage with a P-256 signer", "invalid argument", err)
	_, err = clientOf(memory.New(), wrong).CreateGroup(ctx, regressSuite, mls.GroupConfig{})
	c.want("CreateGroup with a P-256 signer", "invalid argument", err)
	_, _, err = clientOf(memory.New(), wrong).JoinExternal(ctx, f.giNoTree, mls.ExternalJoinOptions{RatchetTree: f.tree})
	c.want("JoinExternal with a P-256 signer", "invalid argument", err)
	// A client whose key is not the key package's cannot join with it.
	sw, err := clientOf(f.dave.store, mls.Identity{Credential: f.dave.id.Credential, Signer: f.erin.id.Signer}).StageWelcome(ctx, f.welcome, mls.WelcomeOptions{RatchetTree: f.welcomeTree})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sw.Join(ctx)
	c.want("Join with another member's signer", "invalid argument", err)
	_, err = loaderOf(f.bob.store, wrongKey).LoadGroup(ctx, g.GroupID())
	c.want("LoadGroup with a P-256 signer", "invalid argument", err)
	// ImportKeyPackage: damaged key packages, keys that do not match.
	kpRaw := f.seeds["key package"]
	for i, m := range append(mutations(kpRaw), kpRaw) {
		_, err = loaderOf(memory.New(), nil).ImportKeyPackage(ctx, m, []byte("init"), []byte("enc"), false)
		c.check(fmt.Sprintf("ImportKeyPackage mutation %d", i), err)
	}
	_, err = loaderOf(memory.New(), nil).ImportKeyPackage(ctx, kpRaw, nil, nil, false)
	c.want("ImportKeyPackage without keys", "invalid argument", err)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = g.Seal(cancelled, []byte("x"), nil)
	c.want("Seal with a cancelled context", "context", err)
	c.report("arguments")
}

// recordingStore remembers the (bucket, key) of every value written, so
// that a test can list a group's records without knowing the layout.
type recordingStore struct {
	storage.Store
	mu   sync.Mutex
	keys map[[2]string]bool
}

func (s *recordingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Update(ctx, func(tx storage.Tx) error { return fn(&recordingTx{tx, s}) })
}

type recordingTx struct {
	storage.Tx
	s *recordingStore
}

func (t *recordingTx) Put(bucket string, key, value []byte) error {
	t.s.mu.Lock()
	t.s.keys[[2]string{bucket, string(key)}] = true
	t.s.mu.Unlock()
	return t.Tx.Put(bucket, key, value)
}

type storedRecord struct {
	bucket string
	key    []byte
	val    []byte
}

// records returns the values still stored under the keys s recorded.
func (s *recordingStore) records(t *testing.T) []storedRecord {
	var out []storedRecord
	err := s.Store.View(context.Background(), func(tx storage.Tx) error {
		for k := range s.keys {
			v, err := tx.Get(k[0], []byte(k[1]))
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, storedRecord{k[0], []byte(k[1]), v})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].bucket != out[j].bucket {
			return out[i].bucket < out[j].bucket
		}
		return bytes.Compare(out[i].key, out[j].key) < 0
	})
	return out
}

// fill writes recs into s, with record i's value replaced by val.
func fill(t *testing.T, s storage.Store, recs []storedRecord, i int, val []byte) {
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		for j, r := range recs {
			v := r.val
			if j == i {
				v = val
			}
			if err := tx.Put(r.bucket, r.key, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// damages returns damaged variants of a stored value: cut in half, cut by
// one byte, empty, and one byte flipped at the start, the middle and the
// end.
func damages(v []byte) [][]byte {
	out := [][]byte{v[:len(v)/2], {}}
	if len(v) > 0 {
		out = append(out, v[:len(v)-1])
		for _, i := range []int{0, len(v) / 2, len(v) - 1} {
			m := bytes.Clone(v)
			m[i] ^= 0x5a
			out = append(out, m)
		}
	}
	return out
}

// damagedStoreFixture is alice's store after a group's life (a member
// added, messages both ways, a pending proposal, a kept past epoch) and
// the messages bob sent her last, for the loaded group to process.
type damagedStoreFixture struct {
	alice, bob *client
	recs       []storedRecord
	gid        []byte
	toAlice    []*mls.Message
	welcome    *mls.Message // for alice's unused key package
}

func newDamagedStoreFixture(t *testing.T) *damagedStoreFixture {
	ctx := context.Background()
	alice, bob := newClient(t, "alice", regressSuite), newClient(t, "bob", regressSuite)
	rec := &recordingStore{Store: alice.store, keys: map[[2]string]bool{}}
	alice.store = rec
	cfg := mls.GroupConfig{JoinConfig: mls.JoinConfig{MaxPastEpochs: 2, UseRatchetTreeExtension: true}}
	var err error
	if alice.group, err = clientOf(alice.store, alice.id).CreateGroup(ctx, regressSuite, cfg); err != nil {
		t.Fatal(err)
	}
	unused := alice.keyPackage(t, regressSuite) // a key package record
	res, err := alice.group.AddMembers(ctx, bob.keyPackage(t, regressSuite))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.join(t, roundTrip(t, res.Welcome), cfg.JoinConfig, nil)
	f := &damagedStoreFixture{alice: alice, bob: bob, gid: alice.group.GroupID()}
	send := func(from, to *client) *mls.Message {
		m, err := from.group.Seal(ctx, []byte("hi"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := to.group.Process(ctx, roundTrip(t, m)); err != nil {
			t.Fatal(err)
		}
		return m
	}
	send(bob, alice)
	send(alice, bob)
	res, err = bob.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.processCommit(t, res.Commit)
	send(bob, alice)
	// Unread by alice: a message and a proposal of bob's, for the loaded
	// group to process.
	m, err := bob.group.Seal(ctx, []byte("later"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.toAlice = append(f.toAlice, m)
	prop, _, err := bob.group.ProposeSelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.toAlice = append(f.toAlice, prop)
	if _, _, err := alice.group.ProposeSelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	// A Welcome to another group for alice's unused key package.
	carol := newClient(t, "carol", regressSuite)
	if carol.group, err = clientOf(carol.store, carol.id).CreateGroup(ctx, regressSuite, cfg); err != nil {
		t.Fatal(err)
	}
	if res, err = carol.group.AddMembers(ctx, unused); err != nil {
		t.Fatal(err)
	}
	f.welcome = roundTrip(t, res.Welcome)
	f.recs = rec.records(t)
	return f
}

// exercise loads the group from s and, if that works, uses it: every
// error must have a class, nothing may panic. It returns LoadGroup's error.
func (f *damagedStoreFixture) exercise(t *testing.T, c *classTally, what string, s storage.Store) (loadErr error) {
	ctx := context.Background()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: panic: %v", what, r)
		}
	}()
	g, err := loaderOf(s, f.alice.id.Signer).LoadGroup(ctx, f.gid)
	c.check(what+": LoadGroup", err)
	if err != nil {
		return err
	}
	for i, m := range f.toAlice {
		_, err = g.Process(ctx, roundTrip(t, m))
		c.check(fmt.Sprintf("%s: Process %d", what, i), err)
	}
	_, err = g.Seal(ctx, []byte("after"), nil)
	c.check(what+": Seal", err)
	_, err = g.ExportSecret("x", nil, 16)
	c.check(what+": ExportSecret", err)
	_, err = g.ExportGroupInfo(true)
	c.check(what+": ExportGroupInfo", err)
	_, err = g.CommitPendingProposals(ctx)
	c.check(what+": CommitPendingProposals", err)
	if err == nil {
		c.check(what+": MergePendingCommit", g.MergePendingCommit(ctx))
	}
	_, err = clientOf(s, f.alice.id).StageWelcome(ctx, f.welcome, mls.WelcomeOptions{})
	c.check(what+": StageWelcome", err)
	return nil
}

// TestErrorClassDamagedStores damages each stored record of a group (in a
// storage/memory store and in a storage/sqlite file), and damages the
// SQLite file itself (byte flips, truncations, garbage), then loads and
// uses the group: no panic, and every error has a class; a damaged SQLite
// file gives ErrCorruptState.
func TestErrorClassDamagedStores(t *testing.T) {
	f := newDamagedStoreFixture(t)
	c := newClassTally(t)
	stores := 0
	dir := t.TempDir()
	for i, r := range f.recs {
		for j, v := range damages(r.val) {
			what := fmt.Sprintf("record %d (%s) damage %d", i, r.bucket, j)
			ms := memory.New()
			fill(t, ms, f.recs, i, v)
			f.exercise(t, c, "memory "+what, ms)
			stores++
			if j%3 != 0 {
				continue // SQLite opens cost milliseconds: a third of them
			}
			path := filepath.Join(dir, fmt.Sprintf("r%d-%d.db", i, j))
			ss, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			fill(t, ss, f.recs, i, v)
			f.exercise(t, c, "sqlite "+what, ss)
			ss.Close()
			stores++
		}
	}
	// FuzzStoredRecord's corpus, when present: its (which, bytes) replace
	// a record, as they do there, raw and behind a CRC-32C like the
	// checksummed records.
	for i, vals := range fuzzCorpus(t, "FuzzStoredRecord") {
		if len(vals) != 2 {
			t.Fatalf("FuzzStoredRecord corpus %d: %d values", i, len(vals))
		}
		which, ok1 := vals[0].(byte)
		b, ok2 := vals[1].([]byte)
		if !ok1 || !ok2 {
			t.Fatalf("FuzzStoredRecord corpus %d: %T, %T", i, vals[0], vals[1])
		}
		k := int(which) % len(f.recs)
		sealed := binary.BigEndian.AppendUint32(bytes.Clone(b), crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
		for j, v := range [][]byte{b, sealed} {
			ms := memory.New()
			fill(t, ms, f.recs, k, v)
			f.exercise(t, c, fmt.Sprintf("FuzzStoredRecord corpus %d variant %d", i, j), ms)
			stores++
		}
	}
	// The SQLite file itself.
	good := filepath.Join(dir, "good.db")
	ss, err := sqlite.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, ss, f.recs, -1, nil)
	if err := ss.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := ss.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var files [][]byte
	for _, n := range []int{len(raw) / 2, len(raw) - 100, 4096 + 100, 4096 * 2} {
		if n > 0 && n < len(raw) {
			files = append(files, raw[:n])
		}
	}
	// Every b-tree page but the first with its page type byte clobbered:
	// SQLite's own integrity checks find these (SQLITE_CORRUPT).
	pageSize := int(raw[16])<<8 | int(raw[17])
	if pageSize == 1 {
		pageSize = 1 << 16
	}
	for off := pageSize; off < len(raw); off += pageSize {
		b := bytes.Clone(raw)
		b[off] = 0xff
		files = append(files, b)
	}
	rnd := rand.New(rand.NewPCG(4, 9))
	for range 40 {
		b := bytes.Clone(raw)
		// Past the 100-byte header, so that most of them still open.
		for range 8 {
			b[100+rnd.IntN(len(b)-100)] ^= byte(1 + rnd.IntN(255))
		}
		files = append(files, b)
	}
	garbage := make([]byte, len(raw))
	for i := range garbage {
		garbage[i] = byte(rnd.Uint32())
	}
	files = append(files, garbage, append([]byte("SQLite format 3\x00"), garbage[16:]...))
	corrupt, opened, backend := 0, 0, 0
	for i, b := range files {
		path := filepath.Join(dir, fmt.Sprintf("file%d.db", i))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		stores++
		s, err := sqlite.Open(path)
		if err != nil {
			continue // sqlite.Open's own typed error; nothing of package mls
		}
		opened++
		before := c.counts["corrupt state"]
		err = f.exercise(t, c, fmt.Sprintf("damaged file %d", i), s)
		if c.counts["corrupt state"] > before {
			corrupt++
		}
		if cl := errorClass(err); err != nil && cl != "corrupt state" && cl != "not found" {
			// A flipped key can hide the group; anything else wrong
			// with the file is corruption, not a failing store.
			t.Errorf("damaged file %d: LoadGroup: %v (class %q), want ErrCorruptState", i, err, cl)
		}
		if errors.Is(err, storage.ErrCorrupt) {
			// SQLite itself found the file damaged.
			if !errors.Is(err, mls.ErrCorruptState) || errors.Is(err, mls.ErrStorage) {
				t.Errorf("damaged file %d: %v is not (only) ErrCorruptState", i, err)
			}
			backend++
		}
		s.Close()
	}
	t.Logf("%d damaged stores (%d records, %d damaged SQLite files of which %d opened, %d gave ErrCorruptState, %d of them found by SQLite)", stores, len(f.recs), len(files), opened, corrupt, backend)
	c.report("damaged stores")
	if corrupt == 0 || backend == 0 {
		t.Errorf("damaged SQLite files: %d gave ErrCorruptState, %d through SQLite's own check; want some of both", corrupt, backend)
	}
	// A closed store is a storage failure, not corruption.
	closed := memory.New()
	fill(t, closed, f.recs, -1, nil)
	g, err := loaderOf(closed, f.alice.id.Signer).LoadGroup(context.Background(), f.gid)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	_, err = g.Seal(context.Background(), []byte("x"), nil)
	c.want("Seal on a closed store", "storage", err)
	_, err = loaderOf(closed, f.alice.id.Signer).LoadGroup(context.Background(), f.gid)
	c.want("LoadGroup on a closed store", "storage", err)
}

// failingSigner has a member's public key but cannot sign, like a key in
// an HSM that is unreachable.
type failingSigner struct{ pub crypto.PublicKey }

func (s failingSigner) Public() crypto.PublicKey { return s.pub }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("the HSM is unreachable")
}

// TestErrorClassSigner runs every operation that signs on a group whose
// signer fails: each error must have a class.
func TestErrorClassSigner(t *testing.T) {
	ctx := context.Background()
	f := newClassFixture(t)
	c := newClassTally(t)
	gid := f.bob.group.GroupID()
	for _, signer := range []crypto.Signer{failingSigner{f.bob.id.Signer.Public()}} {
		g, err := loaderOf(f.bob.store, signer).LoadGroup(ctx, gid)
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("signer %T", signer)
		ops := map[string]func() error{
			"Seal":              func() error { _, err := g.Seal(ctx, []byte("x"), nil); return err },
			"SelfUpdate":        func() error { _, err := g.SelfUpdate(ctx); return err },
			"ProposeSelfUpdate": func() error { _, _, err := g.ProposeSelfUpdate(ctx); return err },
			"ProposeRemove":     func() error { _, _, err := g.ProposeRemove(ctx, 2); return err },
			"RemoveMembers":     func() error { _, err := g.RemoveMembers(ctx, 2); return err },
			"AddMembers":        func() error { _, err := g.AddMembers(ctx, f.erin.keyPackage(t, regressSuite)); return err },
			"LeaveGroup":        func() error { _, _, err := g.LeaveGroup(ctx); return err },
			"ProposeCustom":     func() error { _, _, err := g.ProposeCustom(ctx, 0xf000, []byte("x")); return err },
			"ProposeGCE":        func() error { _, _, err := g.ProposeGroupContextExtensions(ctx, nil); return err },
			"ExportGroupInfo":   func() error { _, err := g.ExportGroupInfo(true); return err },
			"CommitPending":     func() error { _, err := g.CommitPendingProposals(ctx); return err },
		}
		names := make([]string, 0, len(ops))
		for n := range ops {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			err := ops[n]()
			c.check(what+": "+n, err)
			if err == nil {
				t.Errorf("%s: %s succeeded without a working signer", what, n)
			}
		}
	}
	_, err := clientOf(memory.New(), mls.Identity{Credential: f.erin.id.Credential, Signer: failingSigner{f.erin.id.Signer.Public()}}).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{})
	c.check("NewKeyPackage", err)
	_, err = clientOf(memory.New(), mls.Identity{Credential: f.erin.id.Credential, Signer: failingSigner{f.erin.id.Signer.Public()}}).CreateGroup(ctx, regressSuite, mls.GroupConfig{})
	c.check("CreateGroup", err)
	_, _, err = clientOf(memory.New(), mls.Identity{Credential: f.erin.id.Credential, Signer: failingSigner{f.erin.id.Signer.Public()}}).JoinExternal(ctx, f.giNoTree, mls.ExternalJoinOptions{RatchetTree: f.tree})
	c.check("JoinExternal", err)
	// A randomness source that fails.
	var broken brokenReader
	brokenOpts := mls.ClientOptions{Rand: broken}
	_, err = clientWith(memory.New(), f.erin.id, credential.AcceptAll, brokenOpts).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{})
	c.check("NewKeyPackage with a failing Rand", err)
	_, err = clientWith(memory.New(), f.erin.id, credential.AcceptAll, brokenOpts).CreateGroup(ctx, regressSuite, mls.GroupConfig{})
	c.check("CreateGroup with a failing Rand", err)
	g, err := clientWith(f.bob.store, f.bob.id, credential.AcceptAll, brokenOpts).LoadGroup(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.SelfUpdate(ctx)
	c.check("SelfUpdate with a failing Rand", err)
	_, _, err = g.ProposeSelfUpdate(ctx)
	c.check("ProposeSelfUpdate with a failing Rand", err)
	_, err = g.Seal(ctx, []byte("x"), nil)
	c.check("Seal with a failing Rand", err)
	c.report("signer")
}

type brokenReader struct{}

func (brokenReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

// fuzzCorpus reads the seed corpus of a root fuzz target from
// testdata/fuzz/<target> (Go's "go test fuzz v1" files), each file as its
// values: []byte, or byte for a byte argument. Without the directory it
// returns nil.
func fuzzCorpus(t *testing.T, target string) [][]any {
	dir := filepath.Join("testdata", "fuzz", target)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) == 0 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s/%s: not a fuzz corpus file", dir, e.Name())
		}
		var vals []any
		for _, l := range lines[1:] {
			v, err := corpusValue(l)
			if err != nil {
				t.Fatalf("%s/%s: %v", dir, e.Name(), err)
			}
			vals = append(vals, v)
		}
		out = append(out, vals)
	}
	return out
}

// corpusValue decodes one line of a corpus file: []byte("...") or
// byte('.') / uint8(n).
func corpusValue(l string) (any, error) {
	open := strings.IndexByte(l, '(')
	if open < 0 || !strings.HasSuffix(l, ")") {
		return nil, fmt.Errorf("cannot read %q", l)
	}
	typ, lit := l[:open], l[open+1:len(l)-1]
	switch typ {
	case "[]byte":
		v, err := strconv.Unquote(lit)
		return []byte(v), err
	case "byte", "uint8":
		if strings.HasPrefix(lit, "'") {
			v, err := strconv.Unquote(lit)
			if err != nil {
				return nil, err
			}
			r := []rune(v)
			if len(r) != 1 || r[0] > 0xff {
				return nil, fmt.Errorf("byte literal %s", lit)
			}
			return byte(r[0]), nil
		}
		n, err := strconv.ParseUint(lit, 0, 8)
		return byte(n), err
	}
	return nil, fmt.Errorf("value of type %s", typ)
}
