package mls_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"testing"
	"testing/cryptotest"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

// The fuzz targets of this package run against fixtures that are built
// from a fixed random seed and clock, so that the seed corpus committed
// under testdata/fuzz (written by TestGenerateFuzzCorpus from the same
// fixtures) holds messages of exactly the group the target holds: a seed
// gets past the group ID, epoch, membership tag and AEAD checks instead of
// failing at the first one. A fixture is built lazily by the first input
// because cryptotest.SetGlobalRandom needs a *testing.T.

// fuzzSeed seeds cryptotest.SetGlobalRandom for the fixtures.
const fuzzSeed = 9420

// fuzzClient is the client of an identity over a store at the fixtures'
// fixed clock.
func fuzzClient(store storage.Store, id mls.Identity) *mls.Client {
	return clientWith(store, id, credential.AcceptAll, mls.ClientOptions{Now: fuzzcorpus.Now})
}

// fuzzKeyPackage is c.keyPackage at the fixed clock.
func fuzzKeyPackage(t testing.TB, c *client, suite mls.CipherSuite) *mls.KeyPackage {
	t.Helper()
	kp, err := fuzzClient(c.store, c.id).NewKeyPackage(context.Background(), suite, mls.KeyPackageOptions{Lifetime: fuzzcorpus.Lifetime})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// fuzzGroup is newGroupOf made deterministic: it resets the global
// randomness to fuzzSeed, runs on one thread for the rest of t, and creates the group at the fixed clock. The
// members listed in private send their handshake messages as
// PrivateMessage.
func fuzzGroup(t *testing.T, suite mls.CipherSuite, forcePath bool, private []string, names ...string) []*client {
	t.Helper()
	cryptotest.SetGlobalRandom(t, fuzzSeed)
	// HPKE encryptions run in parallel on GOMAXPROCS workers, drawing
	// from the global randomness in whatever order they are scheduled;
	// one worker makes the order fixed.
	procs := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
	ctx := context.Background()
	jc := func(name string) mls.JoinConfig {
		var c mls.JoinConfig
		c.WireFormatPolicy.OutgoingPrivate = slices.Contains(private, name)
		return c
	}
	cs := make([]*client, len(names))
	for i, n := range names {
		cs[i] = newClient(t, n, suite)
	}
	var err error
	cs[0].group, err = fuzzClient(cs[0].store, cs[0].id).CreateGroup(ctx, suite, mls.GroupConfig{
		JoinConfig: jc(names[0]), Lifetime: fuzzcorpus.Lifetime,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 1 {
		return cs
	}
	var kps []*mls.KeyPackage
	for _, c := range cs[1:] {
		kps = append(kps, fuzzKeyPackage(t, c, suite))
	}
	res, err := cs[0].group.Commit(ctx, mls.CommitOptions{Add: kps, ForcePath: forcePath})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs[0].group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	rt, err := cs[0].group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[1:] {
		sw, err := fuzzClient(c.store, c.id).StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{JoinConfig: jc(c.name), RatchetTree: rt})
		if err != nil {
			t.Fatal(err)
		}
		if c.group, err = sw.Join(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return cs
}

// processFixture is the group FuzzProcess feeds: bob is the receiver,
// alice and carol (who sends private handshakes) the senders.
type processFixture struct {
	alice, bob, carol *client
	epoch             uint64
	auth              []byte
}

func newProcessFixture(t *testing.T) *processFixture {
	cs := fuzzGroup(t, regressSuite, true, []string{"carol"}, "alice", "bob", "carol")
	return &processFixture{alice: cs[0], bob: cs[1], carol: cs[2], epoch: cs[1].group.Epoch(), auth: cs[1].group.EpochAuthenticator()}
}

// FuzzProcess feeds arbitrary bytes to a member as if they came from the
// delivery service: parsing and processing must never panic, and whatever
// is rejected must leave the group as it was (same epoch and epoch
// authenticator). The corpus (testdata/fuzz/FuzzProcess) holds real
// messages of every kind for the fixture's group.
func FuzzProcess(f *testing.F) {
	fuzzcorpus.Require(f, 0)
	ctx := context.Background()
	var fx *processFixture
	f.Fuzz(func(t *testing.T, b []byte) {
		if fx == nil {
			fx = newProcessFixture(t)
		}
		m, err := mls.ParseMessage(b)
		if err != nil {
			return
		}
		// Accepting a fuzzed message is fine (a seed, or a valid
		// mutation); either way the group must not move without a merge.
		_, err = fx.bob.group.Process(ctx, m)
		if fx.bob.group.Epoch() != fx.epoch || !bytes.Equal(fx.bob.group.EpochAuthenticator(), fx.auth) {
			t.Fatalf("processing changed the group (err %v)", err)
		}
	})
}

// externalFixture is the group FuzzJoinExternal feeds: bob is the member
// that processes, dave the joiner.
type externalFixture struct {
	alice, bob, dave *client
	epoch            uint64
	auth             []byte
}

func newExternalFixture(t *testing.T) *externalFixture {
	cs := fuzzGroup(t, regressSuite, false, nil, "alice", "bob")
	return &externalFixture{alice: cs[0], bob: cs[1], dave: newClient(t, "dave", regressSuite), epoch: cs[1].group.Epoch(), auth: cs[1].group.EpochAuthenticator()}
}

// TestGenerateFuzzCorpus writes the seed corpora of this package's fuzz
// targets, of internal/message and of internal/tree's FuzzRatchetTree,
// from real groups in every suite. It runs only with
// MLS_UPDATE_FUZZ_CORPUS=1; the output is the same on every run.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	ctx := context.Background()
	msgs := map[string]*fuzzcorpus.Corpus{}
	for _, name := range []string{"FuzzMLSMessage", "FuzzKeyPackage", "FuzzWelcome", "FuzzGroupInfo", "FuzzRatchetTree", "FuzzGroupSecrets", "FuzzCommit"} {
		msgs[name] = fuzzcorpus.New(filepath.Join("internal", "message"), name)
	}
	trees := fuzzcorpus.New(filepath.Join("internal", "tree"), "FuzzRatchetTree")
	// raw is a message as bytes; body strips the MLSMessage header
	// (version and wire_format).
	raw := func(m *mls.Message) []byte {
		t.Helper()
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	body := func(b []byte) []byte { return b[4:] }
	must := func(m *mls.Message, err error) *mls.Message {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// addMessage files an MLSMessage under every target that decodes it
	// or a part of it.
	addMessage := func(b []byte) {
		t.Helper()
		msgs["FuzzMLSMessage"].Add(b)
		mm, err := message.UnmarshalMLSMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case mm.KeyPackage != nil:
			msgs["FuzzKeyPackage"].Add(body(b))
		case mm.Welcome != nil:
			msgs["FuzzWelcome"].Add(body(b))
		case mm.GroupInfo != nil:
			msgs["FuzzGroupInfo"].Add(body(b))
		case mm.PublicMessage != nil && mm.PublicMessage.Content.Commit != nil:
			msgs["FuzzCommit"].Add(message.MustMarshal(mm.PublicMessage.Content.Commit))
		}
	}
	addTree := func(suite mls.CipherSuite, g *mls.Group) {
		t.Helper()
		rt, err := g.ExportRatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		msgs["FuzzRatchetTree"].Add(rt)
		trees.Add(uint16(suite), rt)
		if suite == regressSuite {
			// Short prefixes cover the error paths of the first fields,
			// which the fuzzer would otherwise find first and spend its
			// first seconds minimizing.
			for _, n := range []int{1, 2, 4, 8, 32, len(rt) / 2} {
				msgs["FuzzRatchetTree"].Add(rt[:n])
				trees.Add(uint16(suite), rt[:n])
			}
		}
	}

	// FuzzProcess: every kind of message alice (public handshakes) and
	// carol (private handshakes) can send to bob in the fixture's epoch.
	// FuzzPublicGroupProcess gets the same messages.
	process := fuzzcorpus.New(".", "FuzzProcess")
	public := fuzzcorpus.New(".", "FuzzPublicGroupProcess")
	{
		fx := newProcessFixture(t)
		joiners := map[*client]*client{fx.alice: newClient(t, "dave", regressSuite), fx.carol: newClient(t, "erin", regressSuite)}
		add := func(m *mls.Message, err error) {
			t.Helper()
			b := raw(must(m, err))
			process.Add(b)
			public.Add(b)
			addMessage(b)
		}
		commit := func(c *client, opts mls.CommitOptions) {
			t.Helper()
			res, err := c.group.Commit(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			add(res.Commit, nil)
			for _, m := range []*mls.Message{res.Welcome, res.GroupInfo} {
				if m != nil {
					add(m, nil)
				}
			}
			if err := c.group.ClearPendingCommit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []*client{fx.alice, fx.carol} {
			add(c.group.Seal(ctx, []byte("hello"), []byte("aad")))
			add(c.group.Seal(ctx, nil, nil))
			add(c.group.Seal(ctx, bytes.Repeat([]byte("x"), 300), nil))
			add(msgOnly(c.group.ProposeSelfUpdate(ctx)))
			add(msgOnly(c.group.ProposeAdd(ctx, fuzzKeyPackage(t, joiners[c], regressSuite))))
			add(msgOnly(c.group.ProposeGroupContextExtensions(ctx, []mls.Extension{{Type: 3, Data: []byte{0, 0, 0}}}))) // an empty required_capabilities
		}
		add(msgOnly(fx.alice.group.ProposeRemove(ctx, 2)))
		add(msgOnly(fx.carol.group.ProposeRemove(ctx, 0)))
		commit(fx.alice, mls.CommitOptions{})
		commit(fx.alice, mls.CommitOptions{ForcePath: true})
		commit(fx.alice, mls.CommitOptions{Add: []*mls.KeyPackage{fuzzKeyPackage(t, newClient(t, "frank", regressSuite), regressSuite)}})
		commit(fx.carol, mls.CommitOptions{ForcePath: true})
		add(fx.alice.group.ExportGroupInfo(true))
		add(fx.alice.group.ExportGroupInfo(false))
		kp, err := fuzzKeyPackage(t, joiners[fx.alice], regressSuite).MarshalMessage()
		if err != nil {
			t.Fatal(err)
		}
		process.Add(kp)
		addMessage(kp)
		addTree(regressSuite, fx.alice.group)
	}
	process.Write(t)
	public.Write(t)

	// FuzzJoinExternal: GroupInfos (with and without the tree extension)
	// with the tree, external commits, and a join proposal.
	external := fuzzcorpus.New(".", "FuzzJoinExternal")
	{
		fx := newExternalFixture(t)
		rt, err := fx.alice.group.ExportRatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		for _, withTree := range []bool{true, false} {
			gi := must(fx.alice.group.ExportGroupInfo(withTree))
			_, res, err := fuzzClient(fx.dave.store, fx.dave.id).JoinExternal(ctx, gi, mls.ExternalJoinOptions{RatchetTree: rt})
			if err != nil {
				t.Fatal(err)
			}
			external.Add(raw(gi), rt)
			external.Add(raw(gi), []byte{})
			external.Add(raw(res.Commit), []byte{})
			addMessage(raw(res.Commit))
		}
		jp := must(mls.NewJoinProposal(fuzzKeyPackage(t, fx.dave, regressSuite), fx.dave.id.Signer, must(fx.alice.group.ExportGroupInfo(false))))
		external.Add(raw(jp), []byte{})
		addMessage(raw(jp))
	}
	external.Write(t)

	// FuzzStageWelcome: carol's Welcome with and without its tree.
	welcomes := fuzzcorpus.New(".", "FuzzStageWelcome")
	{
		fx := newWelcomeFixture(t)
		welcomes.Add(fx.welcome, fx.tree)
		welcomes.Add(fx.welcome, []byte{})
		welcomes.Add(fx.welcome, fx.tree[:len(fx.tree)/2])
		welcomes.Add(fx.welcome[:len(fx.welcome)-8], fx.tree)
	}
	welcomes.Write(t)

	// Every suite: a group of two, its tree and GroupInfo, a key
	// package, the commit adding a third member with its Welcome, and an
	// application message. The trees are kept small: the fuzzing engine
	// minimizes each new input in time quadratic in its length, and
	// counts no executions meanwhile.
	for _, suite := range ciphersuite.All() {
		alice := fuzzGroup(t, suite, true, nil, "alice", "bob")[0]
		addTree(suite, alice.group)
		addMessage(raw(must(alice.group.ExportGroupInfo(true))))
		addMessage(raw(must(alice.group.Seal(ctx, []byte("hi"), nil))))
		kp := fuzzKeyPackage(t, newClient(t, "carol", suite), suite)
		b, err := kp.MarshalMessage()
		if err != nil {
			t.Fatal(err)
		}
		addMessage(b)
		res, err := alice.group.Commit(ctx, mls.CommitOptions{Add: []*mls.KeyPackage{kp}})
		if err != nil {
			t.Fatal(err)
		}
		addMessage(raw(res.Commit))
		addMessage(raw(res.Welcome))
	}
	// Suite 1: a group of five, then one member removed (a blank leaf)
	// and one added without a path (unmerged leaves).
	{
		cs := fuzzGroup(t, regressSuite, true, nil, "alice", "bob", "carol", "dave", "erin")
		alice := cs[0]
		addTree(regressSuite, alice.group)
		commitAndFan(t, alice, mls.CommitOptions{Remove: []uint32{2}}, cs[1], cs[3], cs[4])
		addTree(regressSuite, alice.group)
		kp := fuzzKeyPackage(t, newClient(t, "frank", regressSuite), regressSuite)
		res, err := alice.group.Commit(ctx, mls.CommitOptions{Add: []*mls.KeyPackage{kp}})
		if err != nil {
			t.Fatal(err)
		}
		addMessage(raw(res.Commit))
		if err := alice.group.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		addTree(regressSuite, alice.group)
		addMessage(raw(must(alice.group.ExportGroupInfo(false))))
	}

	// GroupSecrets are only seen encrypted; these are built by hand in
	// the shapes RFC 9420, Section 12.4.3.1 allows.
	for _, gs := range []message.GroupSecrets{
		{JoinerSecret: bytes.Repeat([]byte{1}, 32), PSKs: []message.PreSharedKeyID{}},
		{JoinerSecret: bytes.Repeat([]byte{2}, 32), PathSecret: bytes.Repeat([]byte{3}, 32), PSKs: []message.PreSharedKeyID{}},
		{JoinerSecret: bytes.Repeat([]byte{4}, 64), PSKs: []message.PreSharedKeyID{
			{Type: message.PSKExternal, PSKID: []byte("psk"), Nonce: bytes.Repeat([]byte{5}, 64)},
			{Type: message.PSKResumption, Usage: message.ResumptionApplication, PSKGroupID: []byte("group"), PSKEpoch: 7, Nonce: bytes.Repeat([]byte{6}, 64)},
		}},
	} {
		msgs["FuzzGroupSecrets"].Add(message.MustMarshal(&gs))
	}
	for _, c := range msgs {
		c.Write(t)
	}
	trees.Write(t)
}

// fuzzFuncRE finds the fuzz targets in a test file.
var fuzzFuncRE = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(\w+ \*testing\.F\)`)

// TestFuzzCorpora checks that every fuzz target in the module has a seed
// corpus committed under its package's testdata/fuzz, in Go's corpus
// format: the seed glob must find something, so the targets run as
// regression tests without the official vectors.
func TestFuzzCorpora(t *testing.T) {
	targets := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (d.Name() == "testdata" || d.Name()[0] == '.') {
			return filepath.SkipDir
		}
		if d.IsDir() || filepath.Ext(path) != ".go" || !bytes.HasSuffix([]byte(path), []byte("_test.go")) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range fuzzFuncRE.FindAllSubmatch(src, -1) {
			targets++
			name := string(m[1])
			files, err := fuzzcorpus.Files(filepath.Dir(path), name)
			if err != nil || len(files) == 0 {
				t.Errorf("%s: %s has no seed corpus in %s (%v); regenerate with %s=1 go test -run TestGenerateFuzzCorpus ./...",
					path, name, filepath.Join(filepath.Dir(path), "testdata", "fuzz", name), err, fuzzcorpus.EnvVar)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if targets < 20 {
		t.Fatalf("found only %d fuzz targets; is the pattern still right?", targets)
	}
}

// TestFuzzCorpusFitsFixtures checks that the committed seeds of FuzzProcess
// and FuzzJoinExternal still belong to the groups those targets build. If
// a change in the library (or in how Go's crypto draws randomness) made
// the fixtures differ, every seed would fail at the first check and the
// corpus would test nothing; regenerate it then.
func TestFuzzCorpusFitsFixtures(t *testing.T) {
	ctx := context.Background()
	parse := func(b any) *mls.Message {
		t.Helper()
		m, err := mls.ParseMessage(b.([]byte))
		if err != nil {
			t.Fatalf("a seed does not parse: %v", err)
		}
		return m
	}
	read := func(name string) [][]any {
		t.Helper()
		seeds, err := fuzzcorpus.Read(".", name)
		if err != nil {
			t.Fatal(err)
		}
		return seeds
	}
	const regenerate = "; regenerate the corpus with " + fuzzcorpus.EnvVar + "=1 go test -run TestGenerateFuzzCorpus ./..."

	px := newProcessFixture(t)
	processed := 0
	seeds := read("FuzzProcess")
	for _, s := range seeds {
		if _, err := px.bob.group.Process(ctx, parse(s[0])); err == nil {
			processed++
		}
	}
	// Welcomes, GroupInfos, key packages and commits by reference to
	// proposals bob has not seen are rejected; the rest is accepted.
	if processed < 10 {
		t.Errorf("bob accepts %d of %d FuzzProcess seeds, want at least 10"+regenerate, processed, len(seeds))
	}

	ex := newExternalFixture(t)
	joined, processed := 0, 0
	for _, s := range read("FuzzJoinExternal") {
		m := parse(s[0])
		if m.WireFormat() == mls.WireFormatGroupInfo {
			if _, _, err := fuzzClient(memory.New(), ex.dave.id).JoinExternal(ctx, m, mls.ExternalJoinOptions{RatchetTree: s[1].([]byte)}); err == nil {
				joined++
			}
		} else if _, err := ex.bob.group.Process(ctx, m); err == nil {
			processed++
		}
	}
	if joined == 0 || processed == 0 {
		t.Errorf("FuzzJoinExternal seeds: %d GroupInfos joined, %d messages accepted, want some of each"+regenerate, joined, processed)
	}
}
