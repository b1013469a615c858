package mls

// Persistence tests (persist.go): a group loaded from its store continues
// exactly where it was, with both backends; damaged records give a
// *CorruptStateError; secrets that the protocol makes obsolete leave no
// trace in the SQLite files; and writes are incremental. The crash test
// (atomicity under SIGKILL) is in crash_test.go.

import (
	"bytes"
	"context"
	"crypto"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// psSuite is the suite of the persistence tests (the fastest one).
const psSuite = MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// psKind is a storage backend the persistence tests run with. Reopening a
// memory store keeps the same store (LoadGroup still decodes everything);
// reopening an SQLite store closes the file and opens it again.
type psKind struct {
	name   string
	sqlite bool
}

var psKinds = []psKind{{"memory", false}, {"sqlite", true}}

// psMember is one client of a persistence test.
type psMember struct {
	tb    testing.TB
	name  string
	id    Identity
	kind  psKind
	path  string
	store storage.Store
	g     *Group
}

func newPSMember(tb testing.TB, kind psKind, dir, name string) *psMember {
	tb.Helper()
	s, err := ciphersuite.Lookup(psSuite)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	m := &psMember{tb: tb, name: name, id: Identity{Credential: credential.NewBasic([]byte(name)), Signer: signer}, kind: kind}
	if kind.sqlite {
		m.path = filepath.Join(dir, name+".db")
	}
	m.open()
	tb.Cleanup(func() { m.store.Close() })
	return m
}

func (m *psMember) open() {
	m.tb.Helper()
	if !m.kind.sqlite {
		m.store = memory.New()
		return
	}
	s, err := sqlite.Open(m.path)
	if err != nil {
		m.tb.Fatal(err)
	}
	m.store = s
}

// reopen closes and reopens the member's store (SQLite only) and, if the
// member is in a group, loads the group again and checks that it is where
// it was: same epoch, epoch authenticator, members and pending commit.
func (m *psMember) reopen() {
	m.tb.Helper()
	if m.kind.sqlite {
		if err := m.store.Close(); err != nil {
			m.tb.Fatal(err)
		}
		m.open()
	}
	if m.g == nil {
		return
	}
	old := m.g
	g, err := LoaderOf(m.store, m.id.Signer).LoadGroup(context.Background(), old.GroupID())
	if err != nil {
		m.tb.Fatalf("%s: LoadGroup: %v", m.name, err)
	}
	if g.Epoch() != old.Epoch() || !bytes.Equal(g.EpochAuthenticator(), old.EpochAuthenticator()) || g.IsActive() != old.IsActive() {
		m.tb.Fatalf("%s: reloaded at epoch %d (active %v), was %d (active %v), or the epoch authenticator differs", m.name, g.Epoch(), g.IsActive(), old.Epoch(), old.IsActive())
	}
	if !slices.EqualFunc(g.Members(), old.Members(), func(a, b Member) bool {
		return a.Index == b.Index && bytes.Equal(a.SignatureKey, b.SignatureKey) && bytes.Equal(a.EncryptionKey, b.EncryptionKey)
	}) {
		m.tb.Fatalf("%s: reloaded members differ", m.name)
	}
	if (g.PendingCommit() == nil) != (old.PendingCommit() == nil) {
		m.tb.Fatalf("%s: pending commit lost or invented by reloading", m.name)
	}
	if err := psConsistent(g); err != nil {
		m.tb.Fatalf("%s: reloaded group: %v", m.name, err)
	}
	m.g = g
}

func (m *psMember) keyPackage() *KeyPackage {
	m.tb.Helper()
	kp, err := ClientOf(m.store, m.id).NewKeyPackage(context.Background(), psSuite, KeyPackageOptions{})
	if err != nil {
		m.tb.Fatal(err)
	}
	return kp
}

func (m *psMember) join(w *Message, cfg JoinConfig, rt []byte) {
	m.tb.Helper()
	ctx := context.Background()
	sw, err := ClientOf(m.store, m.id).StageWelcome(ctx, psWire(m.tb, w), WelcomeOptions{JoinConfig: cfg, RatchetTree: rt})
	if err != nil {
		m.tb.Fatalf("%s: StageWelcome: %v", m.name, err)
	}
	if m.g, err = sw.Join(ctx); err != nil {
		m.tb.Fatalf("%s: Join: %v", m.name, err)
	}
}

func (m *psMember) process(msg *Message) (*Processed, error) {
	return m.g.Process(context.Background(), psWire(m.tb, msg))
}

// follow processes and merges a commit.
func (m *psMember) follow(commit *Message) {
	m.tb.Helper()
	p, err := m.process(commit)
	if err != nil {
		m.tb.Fatalf("%s: Process commit: %v", m.name, err)
	}
	if p.Kind != KindCommit {
		m.tb.Fatalf("%s: got %v, want a commit", m.name, p.Kind)
	}
	if err := m.g.MergeStagedCommit(context.Background(), p.Commit); err != nil {
		m.tb.Fatalf("%s: merge: %v", m.name, err)
	}
}

// commit runs f on m's group, merges the result and has others follow.
func (m *psMember) commit(f func(ctx context.Context, g *Group) (*CommitResult, error), others ...*psMember) *CommitResult {
	m.tb.Helper()
	ctx := context.Background()
	res, err := f(ctx, m.g)
	if err != nil {
		m.tb.Fatalf("%s: commit: %v", m.name, err)
	}
	if err := m.g.MergePendingCommit(ctx); err != nil {
		m.tb.Fatalf("%s: MergePendingCommit: %v", m.name, err)
	}
	for _, o := range others {
		o.follow(res.Commit)
	}
	return res
}

func selfUpdate(ctx context.Context, g *Group) (*CommitResult, error) { return g.SelfUpdate(ctx) }

// psWire sends a message over the "wire": encoded and parsed again.
func psWire(tb testing.TB, m *Message) *Message {
	tb.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := ParseMessage(b)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// psSend has from send an application message that every member of to
// reads.
func psSend(tb testing.TB, from *psMember, text string, to ...*psMember) {
	tb.Helper()
	msg, err := from.g.Seal(context.Background(), []byte(text), nil)
	if err != nil {
		tb.Fatalf("%s: Seal: %v", from.name, err)
	}
	for _, m := range to {
		p, err := m.process(msg)
		if err != nil {
			tb.Fatalf("%s reading %s's message: %v", m.name, from.name, err)
		}
		if p.Kind != KindApplication || string(p.ApplicationData) != text {
			tb.Fatalf("%s: read %v %q, want %q", m.name, p.Kind, p.ApplicationData, text)
		}
	}
}

func psAgree(tb testing.TB, ms ...*psMember) {
	tb.Helper()
	for _, m := range ms[1:] {
		if m.g.Epoch() != ms[0].g.Epoch() || !bytes.Equal(m.g.EpochAuthenticator(), ms[0].g.EpochAuthenticator()) {
			tb.Fatalf("%s (epoch %d) and %s (epoch %d) disagree", ms[0].name, ms[0].g.Epoch(), m.name, m.g.Epoch())
		}
	}
}

// psConsistent checks what LoadGroup must guarantee of a group it returns:
// its parts fit together (RFC 9420, Section 4.2 for the private keys,
// Section 7.8 for the tree hash, Section 6.1 for the confirmation tag).
func psConsistent(g *Group) error {
	st := g.st
	if g.active {
		if st.ownLeaf() == nil {
			return errors.New("own leaf is blank")
		}
		if err := st.priv.Check(st.Tree.View()); err != nil {
			return fmt.Errorf("private keys: %w", err)
		}
		if !bytes.Equal(st.Tree.TreeHash(), st.GC.TreeHash) {
			return errors.New("tree hash differs from the group context")
		}
	}
	if !st.keys.VerifyConfirmationTag(st.GC.ConfirmedTranscriptHash, st.ConfTag) {
		return errors.New("confirmation tag does not verify")
	}
	if st.secrets.Leaves() == 0 {
		return errors.New("empty secret tree")
	}
	if sc := g.pending; sc != nil {
		if err := sc.next.priv.Check(sc.diff); err != nil {
			return fmt.Errorf("pending commit private keys: %w", err)
		}
		if !bytes.Equal(sc.diff.TreeHash(), sc.next.GC.TreeHash) {
			return errors.New("pending commit tree hash")
		}
		if sc.base != st || sc.next.GC.Epoch != st.GC.Epoch+1 {
			return errors.New("pending commit is not on top of the current epoch")
		}
	}
	for i, p := range g.past {
		if p.epoch > st.GC.Epoch || p.epoch == st.GC.Epoch && g.active || (i > 0 && p.epoch <= g.past[i-1].epoch) {
			return fmt.Errorf("past epoch %d out of order", p.epoch)
		}
	}
	// Reading accessors must not panic.
	_ = g.Members()
	_, _ = g.ExportRatchetTree()
	_ = g.PendingProposals()
	return nil
}

func TestPersistGroupContinues(t *testing.T) {
	for _, kind := range psKinds {
		t.Run(kind.name, func(t *testing.T) { testPersistContinues(t, kind) })
	}
}

func testPersistContinues(t *testing.T, kind psKind) {
	ctx := context.Background()
	dir := t.TempDir()
	alice, bob, charlie := newPSMember(t, kind, dir, "alice"), newPSMember(t, kind, dir, "bob"), newPSMember(t, kind, dir, "charlie")
	cfg := GroupConfig{JoinConfig: JoinConfig{MaxPastEpochs: 2}}
	var err error
	if alice.g, err = ClientOf(alice.store, alice.id).CreateGroup(ctx, psSuite, cfg); err != nil {
		t.Fatal(err)
	}
	alice.reopen()

	// Key package private keys survive a restart: the Welcome is joined
	// after the stores were reopened.
	kpB, kpC := bob.keyPackage(), charlie.keyPackage()
	bob.reopen()
	charlie.reopen()
	res := alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) { return g.AddMembers(ctx, kpB, kpC) })
	rt, err := alice.g.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	bob.join(res.Welcome, cfg.JoinConfig, rt)
	charlie.join(res.Welcome, cfg.JoinConfig, rt)
	all := []*psMember{alice, bob, charlie}
	psAgree(t, all...)

	// The reloaded groups decrypt each other's next messages.
	psSend(t, alice, "before", bob, charlie)
	for _, m := range all {
		m.reopen()
	}
	psSend(t, alice, "after reload", bob, charlie)
	psSend(t, bob, "bob after reload", alice, charlie)
	// A sender's ratchet position survives too: the next message after a
	// reload is not a reused generation.
	bob.reopen()
	psSend(t, alice, "again", bob)
	psSend(t, bob, "bob again", alice, charlie)

	// External PSKs persist.
	pskID, psk := []byte("psk id"), []byte("a pre-shared key of 32 bytes....")
	for _, m := range all {
		if err := LoaderOf(m.store, nil).StorePSK(ctx, pskID, psk); err != nil {
			t.Fatal(err)
		}
		m.reopen()
	}
	alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) {
		return g.Commit(ctx, CommitOptions{ExternalPSKs: [][]byte{pskID}})
	}, bob, charlie)
	psAgree(t, all...)

	// A reloaded member commits and the others (reloaded) process it.
	for _, m := range all {
		m.reopen()
	}
	bob.commit(selfUpdate, alice, charlie)
	psAgree(t, all...)
	psSend(t, charlie, "after bob's update", alice, bob)

	// Pending proposals survive, and so does the private key of an Update
	// proposal: the commit covering it is processed after a reload.
	prop, _, err := charlie.g.ProposeSelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ref []byte
	for _, m := range []*psMember{alice, bob} {
		p, err := m.process(prop)
		if err != nil {
			t.Fatal(err)
		}
		ref = p.Proposal.Ref()
		if err := m.g.StorePendingProposal(ctx, p.Proposal); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range all {
		m.reopen()
	}
	for _, m := range all {
		pp := m.g.PendingProposals()
		if len(pp) != 1 || !bytes.Equal(pp[0].Ref(), ref) || pp[0].Type() != ProposalUpdate {
			t.Fatalf("%s: pending proposals after reload: %v", m.name, pp)
		}
	}
	alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) { return g.CommitPendingProposals(ctx) }, bob, charlie)
	psAgree(t, all...)
	psSend(t, charlie, "with my updated leaf", alice, bob)

	// A pending commit survives: the Welcome of an Add made before the
	// restart is still good, and the commit merges after it.
	dave := newPSMember(t, kind, dir, "dave")
	kpD := dave.keyPackage()
	dave.reopen()
	res, err = alice.g.AddMembers(ctx, kpD)
	if err != nil {
		t.Fatal(err)
	}
	wantCommit, _ := res.Commit.MarshalBinary()
	alice.reopen()
	sc := alice.g.PendingCommit()
	if sc == nil || sc.Epoch() != alice.g.Epoch()+1 || len(sc.AddProposals()) != 1 || sc.SelfRemoved() {
		t.Fatalf("pending commit after reload: %+v", sc)
	}
	if gotCommit, _ := sc.commit.MarshalBinary(); !bytes.Equal(gotCommit, wantCommit) {
		t.Fatal("the reloaded pending commit holds another commit message")
	}
	if _, err := alice.g.Seal(ctx, []byte("x"), nil); !errors.Is(err, ErrPendingCommit) {
		t.Fatalf("Seal with a reloaded pending commit: %v", err)
	}
	bob.follow(res.Commit)
	charlie.follow(res.Commit)
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	rt, _ = alice.g.ExportRatchetTree()
	dave.join(res.Welcome, cfg.JoinConfig, rt)
	all = append(all, dave)
	psAgree(t, all...)
	for _, m := range all {
		m.reopen()
	}
	psSend(t, dave, "hi", alice, bob, charlie)

	// The delivery service echoes the pending commit back: the reloaded
	// member recognises it as its own.
	res, err = bob.g.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bob.reopen()
	bob.follow(res.Commit)
	for _, m := range []*psMember{alice, charlie, dave} {
		m.follow(res.Commit)
	}
	psAgree(t, all...)

	// A reloaded pending commit can be cleared, and the group goes on.
	if _, err := charlie.g.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	charlie.reopen()
	if err := charlie.g.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	charlie.reopen()
	psSend(t, charlie, "still here", alice, bob, dave)

	// Past epochs survive (MaxPastEpochs = 2): a late message of the
	// previous epoch is read after a reload, once.
	late, err := bob.g.Seal(ctx, []byte("late"), nil)
	if err != nil {
		t.Fatal(err)
	}
	lateEpoch := bob.g.Epoch()
	alice.commit(selfUpdate, bob, charlie, dave)
	charlie.reopen()
	p, err := charlie.process(late)
	if err != nil {
		t.Fatalf("late message after reload: %v", err)
	}
	if string(p.ApplicationData) != "late" || p.Epoch != lateEpoch {
		t.Fatalf("late message: %q epoch %d", p.ApplicationData, p.Epoch)
	}
	charlie.reopen()
	if _, err := charlie.process(late); !errors.Is(err, ErrReplayed) {
		t.Fatalf("the late message read again after a reload: %v, want ErrReplayed (its key must stay consumed: processPast must save the ratchet with g.savePastRatchet)", err)
	}
	// Two more epochs and it is gone.
	alice.commit(selfUpdate, bob, charlie, dave)
	alice.commit(selfUpdate, bob, charlie, dave)
	dave.reopen()
	if len(dave.g.past) != 2 || dave.g.past[0].epoch != lateEpoch+1 {
		t.Fatalf("dave keeps past epochs %v after reload", pastEpochs(dave.g))
	}
	if _, err := dave.process(late); !errors.Is(err, ErrPastEpoch) {
		t.Fatalf("message of an epoch no longer kept: %v, want ErrPastEpoch", err)
	}
	psAgree(t, all...)

	// Removal: the removed member's stored group is inactive.
	alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) {
		return g.RemoveMembers(ctx, dave.g.OwnLeafIndex())
	}, bob, charlie, dave)
	dave.reopen()
	if dave.g.IsActive() {
		t.Fatal("dave active after removal and reload")
	}
	for _, m := range all[:3] {
		m.reopen()
	}
	psSend(t, alice, "three again", bob, charlie)
}

func pastEpochs(g *Group) []uint64 {
	var out []uint64
	for _, p := range g.past {
		out = append(out, p.epoch)
	}
	return out
}

// TestPersistPendingNewSigner: a pending commit that moves the member to a
// new signature key (SelfUpdateWithNewSigner) survives a reload with either
// signer; signing with the one LoadGroup was not given fails cleanly until
// the group is loaded with it.
func TestPersistPendingNewSigner(t *testing.T) {
	ctx := context.Background()
	kind := psKind{"memory", false}
	alice, bob := newPSMember(t, kind, "", "alice"), newPSMember(t, kind, "", "bob")
	cfg := GroupConfig{}
	var err error
	if alice.g, err = ClientOf(alice.store, alice.id).CreateGroup(ctx, psSuite, cfg); err != nil {
		t.Fatal(err)
	}
	kp := bob.keyPackage()
	res := alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) { return g.AddMembers(ctx, kp) })
	rt, _ := alice.g.ExportRatchetTree()
	bob.join(res.Welcome, cfg.JoinConfig, rt)
	s, _ := ciphersuite.Lookup(psSuite)
	other, _ := s.GenerateSignatureKey(nil)
	gid := alice.g.GroupID()
	for i, loadNew := range []bool{true, false} {
		newSigner, err := s.GenerateSignatureKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		newID := Identity{Credential: credential.NewBasic(fmt.Appendf(nil, "alice %d", i)), Signer: newSigner}
		res, err := alice.g.SelfUpdateWithNewSigner(ctx, newID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := LoaderOf(alice.store, other).LoadGroup(ctx, gid); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("LoadGroup with an unrelated signer: %v", err)
		}
		loadWith := alice.id.Signer
		if loadNew {
			loadWith = newSigner
		}
		g, err := LoaderOf(alice.store, loadWith).LoadGroup(ctx, gid)
		if err != nil {
			t.Fatalf("LoadGroup with the new signer %v: %v", loadNew, err)
		}
		if err := g.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		bob.follow(res.Commit)
		if !loadNew {
			if _, err := g.Seal(ctx, []byte("x"), nil); !errors.Is(err, errSignerUnavailable) {
				t.Fatalf("Seal with the signer LoadGroup was not given: %v", err)
			}
			if g, err = LoaderOf(alice.store, newSigner).LoadGroup(ctx, gid); err != nil {
				t.Fatal(err)
			}
		}
		alice.g, alice.id = g, newID
		psAgree(t, alice, bob)
		psSend(t, alice, "signed with the new key", bob)
		psSend(t, bob, "to the new key", alice)
	}
}

// psRecord is one stored key-value pair.
type psRecord struct {
	bucket   string
	key, val []byte
}

var psBuckets = []string{bucketGroups, bucketNodes, bucketRatchets, bucketPast, bucketUpdateKeys, bucketKeyPackages, bucketPSKs}

// psDump returns every record of a store.
func psDump(tb testing.TB, s storage.Store) []psRecord {
	tb.Helper()
	var out []psRecord
	err := s.View(context.Background(), func(tx storage.Tx) error {
		for _, b := range psBuckets {
			if err := tx.Scan(b, nil, func(k, v []byte) error {
				out = append(out, psRecord{b, k, v})
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// psRestore writes records into a new memory store, with record i's value
// replaced by val (nil: the record is left out).
func psRestore(tb testing.TB, recs []psRecord, i int, val []byte) storage.Store {
	tb.Helper()
	s := memory.New()
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		for j, r := range recs {
			v := r.val
			if j == i {
				if val == nil {
					continue
				}
				v = val
			}
			if err := tx.Put(r.bucket, r.key, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// richState builds a group whose store holds every kind of record: a
// pending commit with a Welcome, a past epoch, pending proposals, sender
// ratchets and an Update proposal key. It returns alice (whose store is
// examined) and the group ID.
func richState(tb testing.TB) (*psMember, []byte) {
	tb.Helper()
	ctx := context.Background()
	kind := psKind{"memory", false}
	alice, bob, charlie := newPSMember(tb, kind, "", "alice"), newPSMember(tb, kind, "", "bob"), newPSMember(tb, kind, "", "charlie")
	// With the ratchet_tree extension, the pending commit's record leaves
	// the tree out of its GroupInfo (state.PendingRecord).
	cfg := GroupConfig{JoinConfig: JoinConfig{MaxPastEpochs: 1, UseRatchetTreeExtension: true}}
	var err error
	if alice.g, err = ClientOf(alice.store, alice.id).CreateGroup(ctx, psSuite, cfg); err != nil {
		tb.Fatal(err)
	}
	kpB := bob.keyPackage()
	res := alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) { return g.AddMembers(ctx, kpB) })
	rt, _ := alice.g.ExportRatchetTree()
	bob.join(res.Welcome, cfg.JoinConfig, rt)
	psSend(tb, bob, "one", alice)
	bob.commit(selfUpdate, alice)
	psSend(tb, bob, "two", alice)
	psSend(tb, alice, "three", bob)
	prop, _, err := bob.g.ProposeRemove(ctx, 0)
	if err == nil {
		var p *Processed
		if p, err = alice.process(prop); err == nil {
			err = alice.g.StorePendingProposal(ctx, p.Proposal)
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := alice.g.ProposeSelfUpdate(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := alice.g.AddMembers(ctx, charlie.keyPackage()); err != nil {
		tb.Fatal(err)
	}
	if len(alice.g.past) != 1 || alice.g.pending == nil || len(alice.g.props) != 2 {
		tb.Fatalf("rich state: %d past epochs, pending %v, %d proposals", len(alice.g.past), alice.g.pending != nil, len(alice.g.props))
	}
	return alice, alice.g.GroupID()
}

// psLoad loads the group from s and checks the outcome: a
// *CorruptStateError naming the group, or (if acceptOK) a consistent group.
func psLoad(t *testing.T, what string, s storage.Store, groupID []byte, signer crypto.Signer, acceptOK bool) {
	t.Helper()
	g, err := LoaderOf(s, signer).LoadGroup(context.Background(), groupID)
	if err == nil {
		if !acceptOK {
			t.Fatalf("%s: loaded without error", what)
		}
		if err := psConsistent(g); err != nil {
			t.Fatalf("%s: loaded an inconsistent group: %v", what, err)
		}
		return
	}
	var ce *CorruptStateError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorruptState) {
		if acceptOK && errors.Is(err, ErrInvalidArgument) {
			return // a changed own leaf no longer matches the signer
		}
		t.Fatalf("%s: %v (%T), want a *CorruptStateError", what, err, err)
	}
	if !bytes.Equal(ce.GroupID, groupID) || ce.What == "" || !strings.Contains(err.Error(), fmt.Sprintf("%x", groupID)) {
		t.Fatalf("%s: error does not name the group and the problem: %v", what, err)
	}
}

// TestLoadCorruptRecords damages each record of a real group state (every
// truncation, random byte flips, records missing or from elsewhere) and
// checks that LoadGroup reports a *CorruptStateError, never panics and
// never returns an inconsistent group.
func TestLoadCorruptRecords(t *testing.T) {
	alice, gid := richState(t)
	recs := psDump(t, alice.store)
	signer := alice.id.Signer
	// The intact records load.
	psLoad(t, "intact", psRestore(t, recs, -1, nil), gid, signer, true)
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := map[string]int{}
	for i, r := range recs {
		if r.bucket == bucketKeyPackages || r.bucket == bucketPSKs || r.bucket == bucketUpdateKeys {
			continue
		}
		kinds[r.bucket]++
		name := fmt.Sprintf("%s record %x", r.bucket, r.key)
		// Every truncation. Node records have no checksum: a truncated
		// node fails to decode or changes the tree hash.
		for n := range len(r.val) {
			psLoad(t, fmt.Sprintf("%s truncated to %d bytes", name, n), psRestore(t, recs, i, r.val[:n]), gid, signer, false)
		}
		// Random flips of one to three bytes: the checksum or the tree
		// hash catches every one.
		flips := 60
		if r.bucket == bucketGroups {
			flips = 400
		}
		for range flips {
			v := bytes.Clone(r.val)
			for range 1 + rng.IntN(3) {
				v[rng.IntN(len(v))] ^= byte(1 + rng.IntN(255))
			}
			psLoad(t, name+" with flipped bytes", psRestore(t, recs, i, v), gid, signer, false)
		}
		// The record missing (the group record: ErrNotFound).
		if r.bucket != bucketGroups {
			psLoad(t, name+" missing", psRestore(t, recs, i, nil), gid, signer, false)
		}
		// Behind the checksum: flips in the contents with a valid
		// checksum give an error or a group whose parts fit together.
		if r.bucket == bucketGroups || r.bucket == bucketRatchets || r.bucket == bucketPast {
			body := r.val[:len(r.val)-4]
			for range flips {
				v := bytes.Clone(body)
				v[rng.IntN(len(v))] ^= byte(1 + rng.IntN(255))
				psLoad(t, name+" with flipped bytes behind a valid checksum", psRestore(t, recs, i, seal(v)), gid, signer, true)
			}
		}
	}
	for _, b := range []string{bucketGroups, bucketNodes, bucketRatchets, bucketPast} {
		if kinds[b] == 0 {
			t.Fatalf("the rich state has no %s record", b)
		}
	}

	// A record of another group stored under this group's ID.
	other, otherID := richState(t)
	for _, r := range psDump(t, other.store) {
		if r.bucket == bucketGroups && bytes.Equal(r.key, otherID) {
			i := slices.IndexFunc(recs, func(x psRecord) bool { return x.bucket == bucketGroups })
			psLoad(t, "foreign group record", psRestore(t, recs, i, r.val), gid, signer, false)
		}
	}
	// An extra node record beyond the tree, and one with a bad key.
	extra := func(key []byte) []psRecord {
		n := slices.IndexFunc(recs, func(x psRecord) bool { return x.bucket == bucketNodes })
		return append(slices.Clone(recs), psRecord{bucketNodes, key, recs[n].val})
	}
	psLoad(t, "node beyond the tree", psRestore(t, extra(nodeKey(gid, 1<<20)), -1, nil), gid, signer, false)
	badKey := append(gidPrefix(gid), 7, 0, 0, 0, 2) // length octet 7 for node 2
	psLoad(t, "node key with a wrong length octet", psRestore(t, extra(badKey), -1, nil), gid, signer, false)
	psLoad(t, "short node key", psRestore(t, extra(append(gidPrefix(gid), 1, 2)), -1, nil), gid, signer, false)
	// A version 1 record is refused with a clear error.
	i := slices.IndexFunc(recs, func(x psRecord) bool { return x.bucket == bucketGroups })
	v1 := bytes.Clone(recs[i].val[:len(recs[i].val)-4])
	v1[0] = 1
	_, err := LoaderOf(psRestore(t, recs, i, seal(v1)), signer).LoadGroup(context.Background(), gid)
	if !errors.Is(err, ErrCorruptState) || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("version 1 record: %v", err)
	}
	// A store error is not reported as corruption.
	closed := psRestore(t, recs, -1, nil)
	closed.Close()
	if _, err := LoaderOf(closed, signer).LoadGroup(context.Background(), gid); !errors.Is(err, storage.ErrClosed) || errors.Is(err, ErrCorruptState) {
		t.Fatalf("closed store: %v", err)
	}
	if _, err := LoaderOf(psRestore(t, nil, -1, nil), signer).LoadGroup(context.Background(), gid); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no group: %v", err)
	}
}

// FuzzStoredRecord replaces one record of a real group state with the
// fuzzer's bytes (behind a valid checksum where the record has one) and
// checks that LoadGroup neither panics nor returns an inconsistent group.
// The seeds (testdata/fuzz/FuzzStoredRecord, from
// TestGenerateFuzzCorpusStored) are the real records of the fixture.
func FuzzStoredRecord(f *testing.F) {
	fuzzcorpus.Require(f, 0)
	var fx *storedFixture
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		if fx == nil {
			fx = newStoredFixture(t)
		}
		i := fx.idx[int(which)%len(fx.idx)]
		if fx.sealed(i) {
			b = seal(bytes.Clone(b))
		}
		psLoad(t, "fuzzed record", psRestore(t, fx.recs, i, b), fx.gid, fx.signer, true)
	})
}

// psFiles reports which files of dir contain secret.
func psFiles(tb testing.TB, dir string, secret []byte) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var hits []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.Contains(data, secret) {
			hits = append(hits, e.Name())
		}
	}
	return hits
}

// psSecret is a secret with a name, as stored.
type psSecret struct {
	name string
	b    []byte
}

// stored checks that each secret is in m's SQLite files (so that the
// later check that it is gone means something) and returns them.
func (m *psMember) stored(secrets ...psSecret) []psSecret {
	m.tb.Helper()
	for _, s := range secrets {
		if len(s.b) < 16 {
			m.tb.Fatalf("%s: secret %s of %d bytes is too short to look for", m.name, s.name, len(s.b))
		}
		if hits := psFiles(m.tb, filepath.Dir(m.path), s.b); len(hits) == 0 {
			m.tb.Fatalf("%s: %s is not in the store before it becomes obsolete", m.name, s.name)
		}
	}
	return secrets
}

// gone checkpoints m's store and checks that no file holds the secrets.
func (m *psMember) gone(secrets []psSecret) {
	m.tb.Helper()
	if err := m.store.(*sqlite.Store).Checkpoint(); err != nil {
		m.tb.Fatal(err)
	}
	for _, s := range secrets {
		if hits := psFiles(m.tb, filepath.Dir(m.path), s.b); len(hits) != 0 {
			m.tb.Errorf("%s: obsolete %s still in %v", m.name, s.name, hits)
		}
	}
}

// leafRatchetSecrets parses a stored leaf ratchets record (secrettree's
// LeafRatchets encoding behind a checksum) and returns the two ratchet
// secrets and the skipped keys.
func leafRatchetSecrets(tb testing.TB, m *psMember, epoch uint64, leaf uint32) (secrets, keys [][]byte) {
	tb.Helper()
	var v []byte
	err := m.store.View(context.Background(), func(tx storage.Tx) error {
		var err error
		v, err = tx.Get(bucketRatchets, ratchetKey(m.g.GroupID(), epoch, &leaf))
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	body, err := unseal(v)
	if err != nil {
		tb.Fatal(err)
	}
	d := wire.NewDecoder(body)
	d.U8("version")
	for range 2 {
		d.U64("next")
		secrets = append(secrets, d.Opaque("secret"))
		d.Vector("skipped", func(d *wire.Decoder) {
			d.U32("generation")
			keys = append(keys, d.Opaque("key"))
			d.Opaque("nonce")
		})
	}
	if err := d.Finish(); err != nil {
		tb.Fatal(err)
	}
	return secrets, keys
}

// TestForwardSecrecyInStorage writes secrets through the normal API, finds
// their bytes in the SQLite files, makes them obsolete (RFC 9420, Sections
// 9.2 and 16.6: a commit merged, a key package used, a message read, a
// leaf key replaced, a pending commit cleared, a past epoch dropped) and
// checks that after a checkpoint neither the database nor its log holds
// them.
func TestForwardSecrecyInStorage(t *testing.T) {
	ctx := context.Background()
	kind := psKind{"sqlite", true}
	alice := newPSMember(t, kind, t.TempDir(), "alice")
	bob := newPSMember(t, kind, t.TempDir(), "bob")
	cfg := GroupConfig{JoinConfig: JoinConfig{MaxPastEpochs: 1}}
	var err error
	if alice.g, err = ClientOf(alice.store, alice.id).CreateGroup(ctx, psSuite, cfg); err != nil {
		t.Fatal(err)
	}

	// A used key package's init private key.
	kp := bob.keyPackage()
	var rec keyPackageRecord
	err = bob.store.View(ctx, func(tx storage.Tx) error {
		b, err := tx.Get(bucketKeyPackages, kp.Ref())
		if err == nil {
			err = rec.unmarshal(b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	kpSecrets := bob.stored(psSecret{"key package init private key", rec.initPriv})
	res := alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) { return g.AddMembers(ctx, kp) })
	rt, _ := alice.g.ExportRatchetTree()
	bob.join(res.Welcome, cfg.JoinConfig, rt)
	bob.gone(kpSecrets)

	// Consumed message keys: bob reads alice's third message first, which
	// stores the keys of the first two (out of order, RFC 9420, Section
	// 9.2); reading the second deletes its key. The ratchet secret bob
	// stored before alice's fourth message is gone once it is read.
	var msgs []*Message
	for i := range 4 {
		m, err := alice.g.Seal(ctx, []byte{byte(i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if _, err := bob.process(msgs[2]); err != nil {
		t.Fatal(err)
	}
	aliceLeaf := alice.g.OwnLeafIndex()
	ratchets, skipped := leafRatchetSecrets(t, bob, bob.g.Epoch(), aliceLeaf)
	if len(skipped) != 2 {
		t.Fatalf("%d skipped keys stored, want 2", len(skipped))
	}
	wantKept := bob.stored(psSecret{"skipped key of message 0", skipped[0]})
	consumed := bob.stored(psSecret{"skipped key of message 1", skipped[1]}, psSecret{"application ratchet secret before message 3", ratchets[1]})
	for _, i := range []int{1, 3} {
		if _, err := bob.process(msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	bob.gone(consumed)
	bob.stored(wantKept...) // still needed for message 0

	// An epoch's secrets and its superseded leaf and path keys, once a
	// self-update is merged; the past epoch kept (MaxPastEpochs = 1) keeps
	// only its sender data secret and secret tree, which go one epoch
	// later.
	epochSecrets := func(m *psMember, what string) []psSecret {
		st := m.g.st
		enc, _ := st.keys.EncryptionSecret()
		out := []psSecret{
			{what + " init secret", st.keys.InitSecret().Bytes()},
			{what + " exporter secret", st.keys.ExporterSecret()},
			{what + " membership key", st.keys.MembershipKey()},
			{what + " leaf private key", st.priv.LeafPrivateKey()},
		}
		if enc != nil {
			out = append(out, psSecret{what + " encryption secret", enc})
		}
		for _, x := range st.priv.Nodes() {
			k, _ := st.priv.NodePrivateKey(x)
			out = append(out, psSecret{fmt.Sprintf("%s node %d private key", what, x), k})
		}
		return out
	}
	oldA := alice.stored(epochSecrets(alice, "alice's epoch")...)
	oldB := bob.stored(epochSecrets(bob, "bob's epoch")...)
	pastA := alice.stored(psSecret{"alice's epoch sender data secret", alice.g.st.keys.SenderDataSecret()})
	pastB := bob.stored(psSecret{"bob's epoch sender data secret", bob.g.st.keys.SenderDataSecret()}, psSecret{"skipped key of message 0", skipped[0]})
	alice.commit(selfUpdate, bob)
	alice.gone(oldA)
	bob.gone(slices.DeleteFunc(oldB, func(s psSecret) bool { return strings.Contains(s.name, "leaf private key") }))
	alice.stored(pastA...) // kept for late messages
	bob.stored(pastB...)
	// Bob's leaf key goes when he updates.
	oldBLeaf := bob.stored(psSecret{"bob's leaf private key", bob.g.st.priv.LeafPrivateKey()})
	bob.commit(selfUpdate, alice)
	bob.gone(oldBLeaf)
	alice.gone(pastA)
	bob.gone(pastB)

	// A pending commit's next epoch secrets, once it is cleared.
	if _, err := alice.g.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	next := alice.g.pending.next
	pending := alice.stored(psSecret{"pending epoch init secret", next.keys.InitSecret().Bytes()}, psSecret{"pending leaf private key", next.priv.LeafPrivateKey()})
	if err := alice.g.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.gone(pending)
	// And the Update proposal key of an epoch that ended.
	if _, _, err := alice.g.ProposeSelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	var updKey []byte
	for _, k := range alice.g.updateKeys {
		updKey = k
	}
	upd := alice.stored(psSecret{"Update proposal private key", updKey})
	bob.commit(selfUpdate, alice)
	alice.gone(upd)
}

// countingStore wraps a store and counts writes per bucket.
type countingStore struct {
	storage.Store
	mu    sync.Mutex
	puts  map[string]int
	dels  map[string]int
	bytes map[string]int
}

func newCountingStore(s storage.Store) *countingStore {
	c := &countingStore{Store: s}
	c.reset()
	return c
}

func (c *countingStore) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts, c.dels, c.bytes = map[string]int{}, map[string]int{}, map[string]int{}
}

func (c *countingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return c.Store.Update(ctx, func(tx storage.Tx) error { return fn(&countingTx{Tx: tx, c: c}) })
}

type countingTx struct {
	storage.Tx
	c *countingStore
}

func (t *countingTx) Put(bucket string, key, value []byte) error {
	t.c.mu.Lock()
	t.c.puts[bucket]++
	t.c.bytes[bucket] += len(key) + len(value)
	t.c.mu.Unlock()
	return t.Tx.Put(bucket, key, value)
}

func (t *countingTx) Delete(bucket string, key []byte) error {
	t.c.mu.Lock()
	t.c.dels[bucket]++
	t.c.mu.Unlock()
	return t.Tx.Delete(bucket, key)
}

func (t *countingTx) DeletePrefix(bucket string, prefix []byte) error {
	t.c.mu.Lock()
	t.c.dels[bucket]++
	t.c.mu.Unlock()
	return t.Tx.DeletePrefix(bucket, prefix)
}

// bigGroup is a group of n members built with one bulk AddMembers: the
// creator and one joined member with SQLite stores (in dir), the rest only
// key packages.
type bigGroup struct {
	n          int
	alice, bob *psMember
	aliceStore *countingStore
	bobStore   *countingStore
	groupID    []byte
	cfg        GroupConfig
}

func buildBigGroup(tb testing.TB, n int) *bigGroup {
	tb.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mls-persist-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	kind := psKind{"sqlite", true}
	b := &bigGroup{n: n, alice: newPSMember(tb, kind, dir, "alice"), bob: newPSMember(tb, kind, dir, "bob"), cfg: GroupConfig{}}
	b.aliceStore, b.bobStore = newCountingStore(b.alice.store), newCountingStore(b.bob.store)
	b.alice.store, b.bob.store = b.aliceStore, b.bobStore
	if b.alice.g, err = ClientOf(b.alice.store, b.alice.id).CreateGroup(ctx, psSuite, b.cfg); err != nil {
		tb.Fatal(err)
	}
	kps := make([]*KeyPackage, n-1)
	kps[0] = b.bob.keyPackage()
	others := memory.New()
	s, _ := ciphersuite.Lookup(psSuite)
	errs := make([]error, n-1)
	parallel(n-2, func(i int) {
		signer, err := s.GenerateSignatureKey(nil)
		if err != nil {
			errs[i] = err
			return
		}
		id := Identity{Credential: credential.NewBasic(fmt.Appendf(nil, "member %d", i+2)), Signer: signer}
		kps[i+1], errs[i] = ClientOf(others, id).NewKeyPackage(ctx, psSuite, KeyPackageOptions{})
	})
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	res := b.alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) { return g.AddMembers(ctx, kps...) })
	rt, err := b.alice.g.ExportRatchetTree()
	if err != nil {
		tb.Fatal(err)
	}
	b.bob.join(res.Welcome, b.cfg.JoinConfig, rt)
	b.groupID = b.alice.g.GroupID()
	return b
}

// storeStats returns the StatsReporter counts of the store under a
// countingStore.
func storeStats(s storage.Store) storage.Stats {
	if c, ok := s.(*countingStore); ok {
		s = c.Store
	}
	return s.(storage.StatsReporter).Stats()
}

// opWrites runs f and returns what it wrote to m's store.
func opWrites(tb testing.TB, m *psMember, f func()) storage.Stats {
	tb.Helper()
	before := storeStats(m.store)
	f()
	return storeStats(m.store).Sub(before)
}

// TestIncrementalWrites measures what operations write: an application
// message writes the same number of bytes at N = 10 and N = 1000 (after
// each sender's first message of the epoch, which also writes the secret
// tree's node secrets), and a commit writes O(log N) tree nodes.
func TestIncrementalWrites(t *testing.T) {
	ctx := context.Background()
	type appWrites struct{ seal, open storage.Stats }
	got := map[int]appWrites{}
	for _, n := range []int{10, 1000} {
		if testing.Short() && n > 10 {
			continue
		}
		b := buildBigGroup(t, n)
		// First messages of the epoch from each side: they split node
		// secrets.
		psSend(t, b.alice, "first", b.bob)
		psSend(t, b.bob, "first", b.alice)
		var msg *Message
		w := appWrites{}
		w.seal = opWrites(t, b.alice, func() {
			var err error
			if msg, err = b.alice.g.Seal(ctx, appPayload1KB, nil); err != nil {
				t.Fatal(err)
			}
		})
		w.open = opWrites(t, b.bob, func() {
			if _, err := b.bob.process(msg); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("N=%d: Seal writes %d bytes in %d puts; Open writes %d bytes in %d puts", n, w.seal.BytesWritten, w.seal.Puts, w.open.BytesWritten, w.open.Puts)
		if w.seal.Txs != 1 || w.open.Txs != 1 {
			t.Errorf("N=%d: Seal used %d transactions, Open %d; want one each", n, w.seal.Txs, w.open.Txs)
		}
		got[n] = w
	}
	if !testing.Short() && got[10] != got[1000] {
		t.Errorf("application messages write differently at N=10 (%+v) and N=1000 (%+v)", got[10], got[1000])
	}

	// Commits: a self-update in a full tree changes the committer's leaf
	// and its direct path, log2(N) + 1 nodes.
	sizes := []int{16, 256, 1024}
	if testing.Short() {
		sizes = sizes[:1]
	}
	for _, n := range sizes {
		b := buildBigGroup(t, n)
		for _, m := range []*psMember{b.alice, b.bob} {
			m.store.(*countingStore).reset()
		}
		res, err := b.bob.g.SelfUpdate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.bob.g.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		b.alice.follow(res.Commit)
		want := bits.Len(uint(n)) // log2(N) + 1
		for _, m := range []*psMember{b.bob, b.alice} {
			c := m.store.(*countingStore)
			nodes := c.puts[bucketNodes] + c.dels[bucketNodes]
			t.Logf("N=%d: %s's self-update commit wrote %d tree nodes (%d bytes), group record %d bytes", n, m.name, nodes, c.bytes[bucketNodes], c.bytes[bucketGroups])
			if nodes != want {
				t.Errorf("N=%d: %s wrote %d tree node records for a self-update, want log2(N)+1 = %d (merge must save with g.saveMerged(ctx, sc, ...))", n, m.name, nodes, want)
			}
		}
	}
}

var appPayload1KB = bytes.Repeat([]byte("0123456789abcdef"), 64)

func BenchmarkSealApp1KB(b *testing.B) {
	for _, n := range []int{10, 1000} {
		g := buildBigGroup(b, n)
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ctx := context.Background()
			b.SetBytes(int64(len(appPayload1KB)))
			b.ResetTimer()
			for range b.N {
				if _, err := g.alice.g.Seal(ctx, appPayload1KB, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpenApp1KB(b *testing.B) {
	for _, n := range []int{10, 1000} {
		g := buildBigGroup(b, n)
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ctx := context.Background()
			msgs := make([]*Message, b.N)
			for i := range msgs {
				m, err := g.alice.g.Seal(ctx, appPayload1KB, nil)
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = psWire(b, m)
			}
			b.SetBytes(int64(len(appPayload1KB)))
			b.ResetTimer()
			for _, m := range msgs {
				if _, err := g.bob.g.Process(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLoadGroup(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		g := buildBigGroup(b, n)
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				if _, err := LoaderOf(g.alice.store, g.alice.id.Signer).LoadGroup(ctx, g.groupID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSecretTreeSyncAfterFailedSave: if saving a message's ratchet fails,
// the leaf it initialised exists only in memory; the next first message of
// another leaf, whose save splits node secrets, writes that leaf too, so
// that the stored node secrets and leaves stay consistent.
func TestSecretTreeSyncAfterFailedSave(t *testing.T) {
	ctx := context.Background()
	kind := psKind{"memory", false}
	ms := []*psMember{newPSMember(t, kind, "", "alice"), newPSMember(t, kind, "", "bob"), newPSMember(t, kind, "", "charlie")}
	alice := ms[0]
	cfg := GroupConfig{}
	var err error
	if alice.g, err = ClientOf(alice.store, alice.id).CreateGroup(ctx, psSuite, cfg); err != nil {
		t.Fatal(err)
	}
	res := alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) {
		return g.AddMembers(ctx, ms[1].keyPackage(), ms[2].keyPackage())
	})
	rt, _ := alice.g.ExportRatchetTree()
	for _, m := range ms[1:] {
		m.join(res.Welcome, cfg.JoinConfig, rt)
	}
	fromBob, _ := ms[1].g.Seal(ctx, []byte("bob"), nil)
	fromCharlie, _ := ms[2].g.Seal(ctx, []byte("charlie"), nil)
	// Alice reads bob's message but its save fails.
	failing := &failingStore{Store: alice.store}
	alice.g.store = failing
	failing.fail = true
	if _, err := alice.process(fromBob); err == nil {
		t.Fatal("Process succeeded with a failing store")
	}
	failing.fail = false
	if _, err := alice.process(fromCharlie); err != nil {
		t.Fatal(err)
	}
	alice.g.store = alice.store
	// The stored state loads (node secrets and leaves consistent) and
	// knows bob's ratchet was initialised.
	g, err := LoaderOf(alice.store, alice.id.Signer).LoadGroup(ctx, alice.g.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	if !g.st.secrets.Initialized(tree.LeafIndex(ms[1].g.OwnLeafIndex())) {
		t.Fatal("bob's ratchet, initialised in memory, was not written with the node secrets")
	}
	psSend(t, ms[1], "bob again", ms[0], ms[2])
}

type failingStore struct {
	storage.Store
	fail bool
}

var errInjected = errors.New("injected storage failure")

func (f *failingStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if f.fail {
		return errInjected
	}
	return f.Store.Update(ctx, fn)
}

// TestLoadGroupKeepsValidator: the credential validator is not stored with
// the group, it is the Client's: a group loaded through a Client uses that
// Client's validator, and a Client cannot be built without one.
func TestLoadGroupKeepsValidator(t *testing.T) {
	ctx := context.Background()
	kind := psKind{"memory", false}
	alice, mallory := newPSMember(t, kind, "", "alice"), newPSMember(t, kind, "", "mallory")
	errMallory := errors.New("mallory is not welcome")
	validator := credential.ValidatorFunc(func(c credential.Credential, _ []byte) error {
		if bytes.Equal(c.Identity(), []byte("mallory")) {
			return errMallory
		}
		return nil
	})
	var err error
	if alice.g, err = ClientWith(alice.store, alice.id, validator, ClientOptions{}).CreateGroup(ctx, psSuite, GroupConfig{}); err != nil {
		t.Fatal(err)
	}
	kp := mallory.keyPackage()
	if _, err := alice.g.AddMembers(ctx, kp); !errors.Is(err, errMallory) {
		t.Fatalf("adding mallory before the reload: %v", err)
	}
	// A restart: a new Client with the same validator over the same store.
	g, err := ClientWith(alice.store, alice.id, validator, ClientOptions{}).LoadGroup(ctx, alice.g.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddMembers(ctx, kp); !errors.Is(err, errMallory) {
		t.Fatalf("adding mallory after LoadGroup: %v", err)
	}
	if _, err := NewClient(ctx, alice.store, alice.id.Credential, alice.id.Signer, nil, ClientOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("NewClient without a validator: %v", err)
	}
	if _, err := NewClient(ctx, nil, alice.id.Credential, alice.id.Signer, credential.AcceptAll, ClientOptions{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("NewClient without a store: %v", err)
	}
}

// storedNodes returns the node indexes of m's node records.
func storedNodes(tb testing.TB, m *psMember) []tree.NodeIndex {
	tb.Helper()
	prefix := gidPrefix(m.g.GroupID())
	var out []tree.NodeIndex
	err := m.store.View(context.Background(), func(tx storage.Tx) error {
		return tx.Scan(bucketNodes, prefix, func(k, _ []byte) error {
			out = append(out, tree.NodeIndex(binary.BigEndian.Uint32(k[len(prefix)+1:])))
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// treeNodes returns the indexes of the non-blank nodes of g's tree.
func treeNodes(g *Group) []tree.NodeIndex {
	var out []tree.NodeIndex
	for x, n := range g.st.Tree.RatchetTree() {
		if n != nil {
			out = append(out, tree.NodeIndex(x))
		}
	}
	return out
}

// TestPersistTruncation: a removal that halves the tree (RFC 9420, Section
// 7.7) deletes the records of the nodes that fell off, and blanked nodes
// lose theirs, with the incremental write of the merged commit.
func TestPersistTruncation(t *testing.T) {
	ctx := context.Background()
	kind := psKind{"sqlite", true}
	dir := t.TempDir()
	var ms []*psMember
	for _, name := range []string{"alice", "bob", "charlie", "dave", "erin"} {
		ms = append(ms, newPSMember(t, kind, dir, name))
	}
	alice := ms[0]
	cfg := GroupConfig{}
	var err error
	if alice.g, err = ClientOf(alice.store, alice.id).CreateGroup(ctx, psSuite, cfg); err != nil {
		t.Fatal(err)
	}
	var kps []*KeyPackage
	for _, m := range ms[1:] {
		kps = append(kps, m.keyPackage())
	}
	res := alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) { return g.AddMembers(ctx, kps...) })
	rt, _ := alice.g.ExportRatchetTree()
	for _, m := range ms[1:] {
		m.join(res.Welcome, cfg.JoinConfig, rt)
	}
	// Erin (leaf 4) updates, filling her direct path up to the root 7.
	ms[4].commit(selfUpdate, ms[:4]...)
	if alice.g.st.Tree.NumLeaves() != 8 || alice.g.st.Tree.View().IsBlank(7) {
		t.Fatalf("setup: %d leaves, root blank %v", alice.g.st.Tree.NumLeaves(), alice.g.st.Tree.View().IsBlank(7))
	}
	for _, m := range ms[:4] {
		if got, want := storedNodes(t, m), treeNodes(m.g); !slices.Equal(got, want) {
			t.Fatalf("%s before: stored nodes %v, tree %v", m.name, got, want)
		}
	}
	// Removing erin truncates the tree to four leaves.
	for _, m := range ms[:4] {
		m.store = newCountingStore(m.store)
		m.g.store = m.store
	}
	bob := ms[1]
	bob.commit(func(ctx context.Context, g *Group) (*CommitResult, error) {
		return g.RemoveMembers(ctx, ms[4].g.OwnLeafIndex())
	}, ms[0], ms[2], ms[3])
	for _, m := range ms[:4] {
		if m.g.st.Tree.NumLeaves() != 4 {
			t.Fatalf("%s: %d leaves after the removal", m.name, m.g.st.Tree.NumLeaves())
		}
		if got, want := storedNodes(t, m), treeNodes(m.g); !slices.Equal(got, want) {
			t.Fatalf("%s after: stored nodes %v, tree %v", m.name, got, want)
		}
		c := m.store.(*countingStore)
		if n, all := c.puts[bucketNodes], len(treeNodes(m.g)); n >= all {
			t.Errorf("%s: the truncating commit wrote %d node records, the tree has %d: a rewrite, not the changes", m.name, n, all)
		}
		m.reopen()
	}
	psSend(t, bob, "four of us", ms[0], ms[2], ms[3])
}
