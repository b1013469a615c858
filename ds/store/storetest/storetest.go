package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlskit/mls/ds"
)

// Opener returns a Store on the database of t. The first call for a test
// (or subtest) t opens a fresh, empty database; later calls with the same t
// open the same database again, as a restarted process or a second replica
// would. The opener closes what it opened in t.Cleanup (Close is
// idempotent).
type Opener func(t *testing.T) ds.Store

// base is the suite's clock: a whole number of microseconds, since both
// backends keep times to the microsecond.
var base = time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)

// MaxGroupIDLen is the longest group ID both backends accept.
const MaxGroupIDLen = 2048

// MaxPage is the largest Entries limit the suite uses; both backends
// accept it whole.
const MaxPage = 1000

// watchWait bounds how long a test waits for a Watch notification.
const watchWait = 10 * time.Second

// Run runs the conformance suite on the backend that open opens.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Challenges", testChallenges},
		{"Sessions", testSessions},
		{"KeyPackages", testKeyPackages},
		{"KeyPackagesExpired", testKeyPackagesExpired},
		{"KeyPackagesPrune", testKeyPackagesPrune},
		{"KeyPackagesConcurrentTake", testKeyPackagesConcurrentTake},
		{"Groups", testGroups},
		{"AppendCommit", testAppendCommit},
		{"AppendCommitBadInput", testAppendCommitBadInput},
		{"AppendCommitRace", testAppendCommitRace},
		{"AppendWrongEpoch", testAppendWrongEpoch},
		{"SeqGaplessConcurrent", testSeqGapless},
		{"EntriesPaging", testEntriesPaging},
		{"Proposals", testProposals},
		{"Cursors", testCursors},
		{"Removals", testRemovals},
		{"Welcomes", testWelcomes},
		{"Watch", testWatch},
		{"Restart", testRestart},
		{"PruneExpired", testPruneExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func rnd(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func isConflict(err, target error) (*ds.ConflictError, bool) {
	var ce *ds.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, target) {
		return nil, false
	}
	return ce, true
}

// newGroup creates a group at epoch 0 and returns it.
func newGroup(t testing.TB, s ds.Store) ds.Group {
	t.Helper()
	g := ds.Group{
		ID:                 rnd(t, 16),
		Mode:               ds.HandshakePublic,
		AllowExternalJoins: true,
		State:              ds.GroupState{Epoch: 0, GroupInfo: rnd(t, 40), RatchetTree: rnd(t, 60)},
		Created:            base,
	}
	if err := s.CreateGroup(t.Context(), g); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	return g
}

func commitFor(t testing.TB, groupID []byte, epoch uint64, welcomeTo ...[]byte) ds.Commit {
	c := ds.Commit{
		Entry: ds.Entry{
			GroupID:  groupID,
			Epoch:    epoch,
			Kind:     ds.KindCommit,
			Sender:   rnd(t, 8),
			Data:     rnd(t, 32),
			Received: base,
		},
		NewState: ds.GroupState{Epoch: epoch + 1, GroupInfo: rnd(t, 40), RatchetTree: rnd(t, 60)},
	}
	for _, id := range welcomeTo {
		c.Welcomes = append(c.Welcomes, ds.Welcome{
			Identity:      id,
			KeyPackageRef: rnd(t, 32),
			GroupID:       groupID,
			Data:          rnd(t, 50),
			RatchetTree:   rnd(t, 60),
		})
	}
	return c
}

func entryFor(t testing.TB, groupID []byte, epoch uint64, kind ds.Kind) ds.Entry {
	return ds.Entry{GroupID: groupID, Epoch: epoch, Kind: kind, Sender: rnd(t, 8), Data: rnd(t, 24), Received: base}
}

func sameEntry(t testing.TB, got, want ds.Entry) {
	t.Helper()
	if !bytes.Equal(got.GroupID, want.GroupID) || got.Seq != want.Seq || got.Epoch != want.Epoch || got.Kind != want.Kind ||
		!bytes.Equal(got.Sender, want.Sender) || !bytes.Equal(got.Data, want.Data) || !got.Received.Equal(want.Received) {
		t.Errorf("entry = %+v, want %+v", got, want)
	}
}

func sameGroup(t testing.TB, got, want ds.Group) {
	t.Helper()
	if !bytes.Equal(got.ID, want.ID) || got.Mode != want.Mode || got.AllowExternalJoins != want.AllowExternalJoins ||
		got.State.Epoch != want.State.Epoch || !bytes.Equal(got.State.GroupInfo, want.State.GroupInfo) ||
		!bytes.Equal(got.State.RatchetTree, want.State.RatchetTree) || got.LastSeq != want.LastSeq || !got.Created.Equal(want.Created) {
		t.Errorf("group = %+v, want %+v", got, want)
	}
}

func allEntries(t testing.TB, s ds.Store, groupID []byte) []ds.Entry {
	t.Helper()
	var out []ds.Entry
	var after uint64
	for range 1000 {
		page, err := s.Entries(t.Context(), groupID, after, 100)
		if err != nil {
			t.Fatalf("Entries: %v", err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
	t.Fatal("Entries does not end")
	return nil
}

func testChallenges(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	c := ds.Challenge{Nonce: rnd(t, 32), Credential: rnd(t, 20), SignatureKey: rnd(t, 32), CipherSuite: 3, Expires: base.Add(time.Minute)}
	if err := s.PutChallenge(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.TakeChallenge(ctx, c.Nonce, base)
	if err != nil {
		t.Fatalf("TakeChallenge: %v", err)
	}
	if !bytes.Equal(got.Nonce, c.Nonce) || !bytes.Equal(got.Credential, c.Credential) || !bytes.Equal(got.SignatureKey, c.SignatureKey) ||
		got.CipherSuite != 3 || !got.Expires.Equal(c.Expires) {
		t.Errorf("TakeChallenge = %+v, want %+v", got, c)
	}
	// Single use.
	if _, err := s.TakeChallenge(ctx, c.Nonce, base); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("second TakeChallenge: err = %v, want ErrNotFound", err)
	}
	if _, err := s.TakeChallenge(ctx, rnd(t, 32), base); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("TakeChallenge(unknown): err = %v, want ErrNotFound", err)
	}
	// Expired: at the expiry instant and after it, never usable, even
	// when asked again with an earlier clock.
	for _, at := range []time.Duration{time.Minute, time.Hour} {
		c := ds.Challenge{Nonce: rnd(t, 32), Credential: rnd(t, 20), SignatureKey: rnd(t, 32), CipherSuite: 1, Expires: base.Add(time.Minute)}
		if err := s.PutChallenge(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeChallenge(ctx, c.Nonce, base.Add(at)); !errors.Is(err, ds.ErrNotFound) {
			t.Errorf("TakeChallenge(expired at +%v): err = %v, want ErrNotFound", at, err)
		}
		if _, err := s.TakeChallenge(ctx, c.Nonce, base); !errors.Is(err, ds.ErrNotFound) {
			t.Errorf("TakeChallenge after an expired take: err = %v, want ErrNotFound", err)
		}
	}
}

func testSessions(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	ses := ds.Session{TokenHash: rnd(t, 32), Identity: []byte("alice"), Credential: rnd(t, 20), SignatureKey: rnd(t, 32), CipherSuite: 1, Expires: base.Add(time.Hour)}
	if err := s.PutSession(ctx, ses); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(ctx, ses.TokenHash, base)
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	if !bytes.Equal(got.TokenHash, ses.TokenHash) || !bytes.Equal(got.Identity, ses.Identity) || !bytes.Equal(got.Credential, ses.Credential) ||
		!bytes.Equal(got.SignatureKey, ses.SignatureKey) || got.CipherSuite != 1 || !got.Expires.Equal(ses.Expires) {
		t.Errorf("GetSession = %+v, want %+v", got, ses)
	}
	// Reusable until it expires.
	if _, err := s.GetSession(ctx, ses.TokenHash, base.Add(time.Hour-time.Microsecond)); err != nil {
		t.Errorf("GetSession just before expiry: %v", err)
	}
	for _, at := range []time.Duration{time.Hour, 2 * time.Hour} {
		if _, err := s.GetSession(ctx, ses.TokenHash, base.Add(at)); !errors.Is(err, ds.ErrNotFound) {
			t.Errorf("GetSession at +%v: err = %v, want ErrNotFound", at, err)
		}
	}
	if _, err := s.GetSession(ctx, rnd(t, 32), base); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("GetSession(unknown): err = %v, want ErrNotFound", err)
	}
}

func kp(t testing.TB, identity []byte, suite uint16, lastResort bool, notAfter time.Time) ds.KeyPackage {
	return ds.KeyPackage{Ref: rnd(t, 32), Identity: identity, Suite: suite, Data: rnd(t, 64), LastResort: lastResort, NotAfter: notAfter}
}

func sameKP(t testing.TB, got, want ds.KeyPackage) {
	t.Helper()
	if !bytes.Equal(got.Ref, want.Ref) || !bytes.Equal(got.Identity, want.Identity) || got.Suite != want.Suite ||
		!bytes.Equal(got.Data, want.Data) || got.LastResort != want.LastResort || !got.NotAfter.Equal(want.NotAfter) {
		t.Errorf("key package = %+v, want %+v", got, want)
	}
}

func wantCount(t testing.TB, s ds.Store, identity []byte, suite uint16, now time.Time, n int, lr bool) {
	t.Helper()
	gn, glr, err := s.CountKeyPackages(t.Context(), identity, suite, now)
	if err != nil {
		t.Fatalf("CountKeyPackages: %v", err)
	}
	if gn != n || glr != lr {
		t.Errorf("CountKeyPackages(%q, %d) = %d, %v; want %d, %v", identity, suite, gn, glr, n, lr)
	}
}

func testKeyPackages(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	alice, bob := []byte("alice"), []byte("bob")
	later := base.Add(24 * time.Hour)
	normal := []ds.KeyPackage{kp(t, alice, 1, false, later), kp(t, alice, 1, false, later), kp(t, alice, 1, false, later)}
	last := kp(t, alice, 1, true, later)
	others := []ds.KeyPackage{kp(t, alice, 2, false, later), kp(t, bob, 1, false, later), kp(t, alice, 1, false, base.Add(-time.Second))}
	if err := s.PutKeyPackages(ctx, append(append(slices.Clone(normal), last), others...)); err != nil {
		t.Fatal(err)
	}
	wantCount(t, s, alice, 1, base, 3, true)
	wantCount(t, s, alice, 2, base, 1, false)
	wantCount(t, s, bob, 1, base, 1, false)
	wantCount(t, s, []byte("carol"), 1, base, 0, false)

	// Storing a known ref again leaves it as it is.
	dup := normal[0]
	dup.Data = rnd(t, 64)
	if err := s.PutKeyPackages(ctx, []ds.KeyPackage{dup}); err != nil {
		t.Fatal(err)
	}
	wantCount(t, s, alice, 1, base, 3, true)

	// Each normal one is handed out once, then the last-resort one, again
	// and again.
	var got []ds.KeyPackage
	for range normal {
		k, err := s.TakeKeyPackage(ctx, alice, 1, base)
		if err != nil {
			t.Fatalf("TakeKeyPackage: %v", err)
		}
		got = append(got, k)
	}
	for _, want := range normal {
		i := slices.IndexFunc(got, func(k ds.KeyPackage) bool { return bytes.Equal(k.Ref, want.Ref) })
		if i < 0 {
			t.Errorf("key package %x was not handed out; got %d others", want.Ref[:4], len(got))
			continue
		}
		sameKP(t, got[i], want)
		got = slices.Delete(got, i, i+1)
	}
	wantCount(t, s, alice, 1, base, 0, true)
	for range 3 {
		k, err := s.TakeKeyPackage(ctx, alice, 1, base)
		if err != nil {
			t.Fatalf("TakeKeyPackage (last resort): %v", err)
		}
		sameKP(t, k, last)
	}
	wantCount(t, s, alice, 1, base, 0, true)
	// The other suite and identity are untouched.
	wantCount(t, s, alice, 2, base, 1, false)
	k, err := s.TakeKeyPackage(ctx, bob, 1, base)
	if err != nil {
		t.Fatal(err)
	}
	sameKP(t, k, others[1])
	if _, err := s.TakeKeyPackage(ctx, bob, 1, base); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("TakeKeyPackage (none left): err = %v, want ErrNotFound", err)
	}
	wantCount(t, s, bob, 1, base, 0, false)

	// Owners, handed out or not.
	for _, k := range []ds.KeyPackage{normal[0], last, others[0], others[1], others[2]} {
		id, err := s.KeyPackageOwner(ctx, k.Ref)
		if err != nil {
			t.Fatalf("KeyPackageOwner: %v", err)
		}
		if !bytes.Equal(id, k.Identity) {
			t.Errorf("KeyPackageOwner = %q, want %q", id, k.Identity)
		}
	}
	if _, err := s.KeyPackageOwner(ctx, rnd(t, 32)); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("KeyPackageOwner(unknown): err = %v, want ErrNotFound", err)
	}
}

func testKeyPackagesExpired(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	carol := []byte("carol")
	// NotAfter is the last valid instant (RFC 9420, Section 7.2).
	edge := kp(t, carol, 1, false, base)
	if err := s.PutKeyPackages(ctx, []ds.KeyPackage{
		kp(t, carol, 1, false, base.Add(-time.Microsecond)),
		kp(t, carol, 1, true, base.Add(-time.Hour)),
		edge,
	}); err != nil {
		t.Fatal(err)
	}
	wantCount(t, s, carol, 1, base, 1, false)
	wantCount(t, s, carol, 1, base.Add(time.Microsecond), 0, false)
	if _, err := s.TakeKeyPackage(ctx, carol, 1, base.Add(time.Microsecond)); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("TakeKeyPackage with only expired ones: err = %v, want ErrNotFound", err)
	}
	k, err := s.TakeKeyPackage(ctx, carol, 1, base)
	if err != nil {
		t.Fatal(err)
	}
	sameKP(t, k, edge)
	// A package that has expired is not handed out later even though a
	// last-resort one expired earlier still exists.
	if _, err := s.TakeKeyPackage(ctx, carol, 1, base.Add(time.Second)); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("TakeKeyPackage after the last one expired: err = %v, want ErrNotFound", err)
	}
}

func testKeyPackagesPrune(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	dave := []byte("dave")
	expired := []ds.KeyPackage{kp(t, dave, 1, false, base.Add(-time.Second)), kp(t, dave, 1, true, base.Add(-time.Hour)), kp(t, dave, 1, false, base.Add(-time.Minute))}
	valid := []ds.KeyPackage{kp(t, dave, 1, false, base), kp(t, dave, 1, true, base.Add(time.Hour))}
	if err := s.PutKeyPackages(ctx, append(slices.Clone(expired), valid...)); err != nil {
		t.Fatal(err)
	}
	// A handed-out one is pruned as well once expired.
	handed := kp(t, []byte("dave2"), 1, false, base.Add(-time.Second))
	expired = append(expired, handed)
	if err := s.PutKeyPackages(ctx, []ds.KeyPackage{handed}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeKeyPackage(ctx, []byte("dave2"), 1, base.Add(-2*time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneKeyPackages(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(expired) {
		t.Errorf("PruneKeyPackages = %d, want %d", n, len(expired))
	}
	for _, k := range expired {
		if _, err := s.KeyPackageOwner(ctx, k.Ref); !errors.Is(err, ds.ErrNotFound) {
			t.Errorf("KeyPackageOwner(pruned): err = %v, want ErrNotFound", err)
		}
	}
	for _, k := range valid {
		if _, err := s.KeyPackageOwner(ctx, k.Ref); err != nil {
			t.Errorf("KeyPackageOwner(kept): %v", err)
		}
	}
	wantCount(t, s, dave, 1, base, 1, true)
	if n, err := s.PruneKeyPackages(ctx, base); err != nil || n != 0 {
		t.Errorf("second PruneKeyPackages = %d, %v; want 0, nil", n, err)
	}
}

// takeConcurrently has workers goroutines take alice's key packages until
// none (or only the last-resort one) is left, and checks that no ref was
// handed out twice and that all of want were handed out.
func takeConcurrently(t *testing.T, stores []ds.Store, identity []byte, want []ds.KeyPackage, workers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	seen := make(map[string]int)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for range 10 * len(want) {
				k, err := s.TakeKeyPackage(ctx, identity, 1, base)
				if errors.Is(err, ds.ErrNotFound) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				if k.LastResort {
					return
				}
				mu.Lock()
				seen[string(k.Ref)]++
				mu.Unlock()
			}
			errs <- errors.New("worker did not run out of key packages")
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("TakeKeyPackage: %v", err)
	}
	for ref, n := range seen {
		if n != 1 {
			t.Errorf("key package %x handed out %d times", ref[:4], n)
		}
	}
	for _, k := range want {
		if seen[string(k.Ref)] != 1 {
			t.Errorf("key package %x handed out %d times, want 1", k.Ref[:4], seen[string(k.Ref)])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct key packages handed out, want %d", len(seen), len(want))
	}
}

func testKeyPackagesConcurrentTake(t *testing.T, open Opener) {
	s := open(t)
	n, workers := 60, 12
	if testing.Short() {
		n, workers = 24, 6
	}
	RaceKeyPackages(t, []ds.Store{s}, n, workers)
}

// RaceKeyPackages publishes n key packages and a last-resort one, then has
// workers goroutines, spread over stores (one database), take them all
// concurrently: each is handed out exactly once, the last-resort one is
// kept.
func RaceKeyPackages(t *testing.T, stores []ds.Store, n, workers int) {
	t.Helper()
	id := rnd(t, 8)
	var want []ds.KeyPackage
	for range n {
		want = append(want, kp(t, id, 1, false, base.Add(time.Hour)))
	}
	last := kp(t, id, 1, true, base.Add(time.Hour))
	if err := stores[0].PutKeyPackages(t.Context(), append(slices.Clone(want), last)); err != nil {
		t.Fatal(err)
	}
	takeConcurrently(t, stores, id, want, workers)
	wantCount(t, stores[len(stores)-1], id, 1, base, 0, true)
}

func testGroups(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	got, err := s.GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatalf("GetGroup: %v", err)
	}
	sameGroup(t, got, g)

	enc := ds.Group{ID: rnd(t, 16), Mode: ds.HandshakeEncrypted, State: ds.GroupState{Epoch: 7, GroupInfo: rnd(t, 40)}, Created: base.Add(time.Second)}
	if err := s.CreateGroup(ctx, enc); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetGroup(ctx, enc.ID)
	if err != nil {
		t.Fatal(err)
	}
	enc.State.RatchetTree = []byte{}
	if len(got.State.RatchetTree) != 0 {
		t.Errorf("RatchetTree = %x, want empty", got.State.RatchetTree)
	}
	got.State.RatchetTree = []byte{}
	sameGroup(t, got, enc)

	again := g
	again.State = ds.GroupState{Epoch: 3, GroupInfo: rnd(t, 40), RatchetTree: rnd(t, 10)}
	if err := s.CreateGroup(ctx, again); !errors.Is(err, ds.ErrGroupExists) {
		t.Errorf("CreateGroup(existing): err = %v, want ErrGroupExists", err)
	}
	got, err = s.GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameGroup(t, got, g)
	if _, err := s.GetGroup(ctx, rnd(t, 16)); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("GetGroup(unknown): err = %v, want ErrNotFound", err)
	}

	// Group IDs up to MaxGroupIDLen bytes are stored; longer ones are
	// refused and leave nothing behind.
	long := ds.Group{ID: rnd(t, MaxGroupIDLen), Mode: ds.HandshakePublic, State: ds.GroupState{GroupInfo: rnd(t, 8)}, Created: base}
	if err := s.CreateGroup(ctx, long); err != nil {
		t.Errorf("CreateGroup(%d-byte ID): %v", len(long.ID), err)
	}
	if _, err := s.Append(ctx, entryFor(t, long.ID, 0, ds.KindApplication)); err != nil {
		t.Errorf("Append to a group with a %d-byte ID: %v", len(long.ID), err)
	}
	tooLong := ds.Group{ID: rnd(t, MaxGroupIDLen+1), Mode: ds.HandshakePublic, State: ds.GroupState{GroupInfo: rnd(t, 8)}, Created: base}
	if err := s.CreateGroup(ctx, tooLong); err == nil || errors.Is(err, ds.ErrGroupExists) {
		t.Errorf("CreateGroup(%d-byte ID): err = %v, want a refusal", len(tooLong.ID), err)
	}
	if _, err := s.GetGroup(ctx, tooLong.ID); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("GetGroup(refused group): err = %v, want ErrNotFound", err)
	}
}

func testAppendCommit(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	m1 := entryFor(t, g.ID, 0, ds.KindApplication)
	if seq, err := s.Append(ctx, m1); err != nil || seq != 1 {
		t.Fatalf("Append = %d, %v; want 1, nil", seq, err)
	}
	m1.Seq = 1
	c := commitFor(t, g.ID, 0, []byte("erin"))
	seq, err := s.AppendCommit(ctx, c)
	if err != nil || seq != 2 {
		t.Fatalf("AppendCommit = %d, %v; want 2, nil", seq, err)
	}
	c.Seq = 2
	want := g
	want.State = c.NewState
	want.LastSeq = 2
	got, err := s.GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameGroup(t, got, want)

	// A second commit for epoch 0 loses, and nothing of it is stored.
	lose := commitFor(t, g.ID, 0, []byte("frank"))
	_, err = s.AppendCommit(ctx, lose)
	ce, ok := isConflict(err, ds.ErrConflict)
	if !ok {
		t.Fatalf("AppendCommit(stale epoch): err = %v, want *ConflictError wrapping ErrConflict", err)
	}
	if ce.CurrentEpoch != 1 || ce.LastSeq != 2 {
		t.Errorf("ConflictError = epoch %d, last seq %d; want 1, 2", ce.CurrentEpoch, ce.LastSeq)
	}
	// A commit for a future epoch is refused the same way.
	if _, err := s.AppendCommit(ctx, commitFor(t, g.ID, 5, []byte("frank"))); err == nil {
		t.Error("AppendCommit(future epoch) succeeded")
	} else if _, ok := isConflict(err, ds.ErrConflict); !ok {
		t.Errorf("AppendCommit(future epoch): err = %v, want *ConflictError wrapping ErrConflict", err)
	}
	got, err = s.GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameGroup(t, got, want)
	es := allEntries(t, s, g.ID)
	if len(es) != 2 {
		t.Fatalf("%d entries, want 2", len(es))
	}
	sameEntry(t, es[0], m1)
	sameEntry(t, es[1], c.Entry)
	if ws, err := s.Welcomes(ctx, []byte("frank")); err != nil || len(ws) != 0 {
		t.Errorf("the losing commit's Welcomes = %d, %v; want none", len(ws), err)
	}
	ws, err := s.Welcomes(ctx, []byte("erin"))
	if err != nil || len(ws) != 1 {
		t.Fatalf("Welcomes(erin) = %d, %v; want 1", len(ws), err)
	}

	// The next epoch goes on.
	c2 := commitFor(t, g.ID, 1)
	if seq, err := s.AppendCommit(ctx, c2); err != nil || seq != 3 {
		t.Fatalf("AppendCommit(epoch 1) = %d, %v; want 3, nil", seq, err)
	}
	if _, err := s.AppendCommit(ctx, commitFor(t, rnd(t, 16), 0)); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("AppendCommit(unknown group): err = %v, want ErrNotFound", err)
	}
}

func testAppendCommitBadInput(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	bad := []struct {
		name string
		edit func(c *ds.Commit)
	}{
		{"NewStateEpochNotNext", func(c *ds.Commit) { c.NewState.Epoch = c.Epoch + 2 }},
		{"NewStateEpochSame", func(c *ds.Commit) { c.NewState.Epoch = c.Epoch }},
		{"KindApplication", func(c *ds.Commit) { c.Kind = ds.KindApplication }},
	}
	for _, b := range bad {
		c := commitFor(t, g.ID, 0, []byte("gina"))
		b.edit(&c)
		if _, err := s.AppendCommit(ctx, c); err == nil {
			t.Errorf("%s: AppendCommit succeeded", b.name)
		}
	}
	if _, err := s.Append(ctx, ds.Entry(commitFor(t, g.ID, 0).Entry)); err == nil {
		t.Error("Append(commit) succeeded")
	}
	got, err := s.GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameGroup(t, got, g)
	if es := allEntries(t, s, g.ID); len(es) != 0 {
		t.Errorf("%d entries after refused input, want 0", len(es))
	}
	if ws, err := s.Welcomes(ctx, []byte("gina")); err != nil || len(ws) != 0 {
		t.Errorf("Welcomes after refused input = %d, %v; want none", len(ws), err)
	}
}

func testAppendCommitRace(t *testing.T, open Opener) {
	s := open(t)
	n, rounds := 16, 5
	if testing.Short() {
		n, rounds = 8, 3
	}
	RaceCommits(t, []ds.Store{s}, n, rounds)
}

// RaceCommits has n goroutines, spread over stores (one database), race
// to commit each of rounds epochs of a new group: exactly one commit wins
// each epoch, the losers get a *ConflictError with the new epoch and the
// winner's seq, and nothing of theirs (entry, Welcome) is stored.
func RaceCommits(t *testing.T, stores []ds.Store, n, rounds int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	g := newGroup(t, stores[0])
	type result struct {
		c   ds.Commit
		seq uint64
		err error
	}
	for epoch := range uint64(rounds) {
		results := make([]result, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			results[i].c = commitFor(t, g.ID, epoch, fmt.Appendf(nil, "joiner-%d-%d", epoch, i))
			s := stores[i%len(stores)]
			wg.Go(func() {
				<-start
				results[i].seq, results[i].err = s.AppendCommit(ctx, results[i].c)
			})
		}
		close(start)
		wg.Wait()
		var winner *result
		for i := range results {
			r := &results[i]
			if r.err == nil {
				if winner != nil {
					t.Fatalf("epoch %d: two commits won (seq %d and %d)", epoch, winner.seq, r.seq)
				}
				winner = r
			}
		}
		if winner == nil {
			t.Fatalf("epoch %d: no commit won; first error: %v", epoch, results[0].err)
		}
		if winner.seq != epoch+1 {
			t.Errorf("epoch %d: winner's seq = %d, want %d", epoch, winner.seq, epoch+1)
		}
		for i := range results {
			r := &results[i]
			if r == winner {
				continue
			}
			ce, ok := isConflict(r.err, ds.ErrConflict)
			if !ok {
				t.Errorf("epoch %d: loser's err = %v, want *ConflictError wrapping ErrConflict", epoch, r.err)
				continue
			}
			if ce.CurrentEpoch != epoch+1 || ce.LastSeq != winner.seq {
				t.Errorf("epoch %d: ConflictError = epoch %d, last seq %d; want %d, %d", epoch, ce.CurrentEpoch, ce.LastSeq, epoch+1, winner.seq)
			}
			if ws, err := stores[0].Welcomes(ctx, r.c.Welcomes[0].Identity); err != nil || len(ws) != 0 {
				t.Errorf("epoch %d: loser's Welcomes = %d, %v; want none", epoch, len(ws), err)
			}
		}
		ws, err := stores[len(stores)-1].Welcomes(ctx, winner.c.Welcomes[0].Identity)
		if err != nil || len(ws) != 1 || !bytes.Equal(ws[0].Data, winner.c.Welcomes[0].Data) {
			t.Errorf("epoch %d: winner's Welcomes = %d, %v; want its one", epoch, len(ws), err)
		}
		got, err := stores[len(stores)-1].GetGroup(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State.Epoch != epoch+1 || got.LastSeq != winner.seq || !bytes.Equal(got.State.GroupInfo, winner.c.NewState.GroupInfo) {
			t.Errorf("epoch %d: group at epoch %d, last seq %d, after the race; want %d, %d and the winner's GroupInfo", epoch, got.State.Epoch, got.LastSeq, epoch+1, winner.seq)
		}
	}
	es := allEntries(t, stores[0], g.ID)
	if len(es) != rounds {
		t.Fatalf("%d entries, want one commit per epoch (%d)", len(es), rounds)
	}
	for i, e := range es {
		if e.Seq != uint64(i+1) || e.Epoch != uint64(i) || e.Kind != ds.KindCommit {
			t.Errorf("entry %d: seq %d, epoch %d, kind %d; want %d, %d, commit", i, e.Seq, e.Epoch, e.Kind, i+1, i)
		}
	}
}

func testAppendWrongEpoch(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	if _, err := s.AppendCommit(ctx, commitFor(t, g.ID, 0)); err != nil {
		t.Fatal(err)
	}
	before, err := s.GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, epoch := range []uint64{0, 2, 1 << 63, ^uint64(0)} {
		for _, kind := range []ds.Kind{ds.KindProposal, ds.KindApplication} {
			_, err := s.Append(ctx, entryFor(t, g.ID, epoch, kind))
			ce, ok := isConflict(err, ds.ErrWrongEpoch)
			if !ok {
				t.Errorf("Append(epoch %d, kind %d): err = %v, want *ConflictError wrapping ErrWrongEpoch", epoch, kind, err)
				continue
			}
			if ce.CurrentEpoch != 1 || ce.LastSeq != 1 {
				t.Errorf("ConflictError = epoch %d, last seq %d; want 1, 1", ce.CurrentEpoch, ce.LastSeq)
			}
		}
	}
	after, err := s.GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameGroup(t, after, before)
	if es := allEntries(t, s, g.ID); len(es) != 1 {
		t.Errorf("%d entries, want 1", len(es))
	}
	if ps, err := s.Proposals(ctx, g.ID, 0); err != nil || len(ps) != 0 {
		t.Errorf("Proposals(0) = %d, %v; want none", len(ps), err)
	}
	if _, err := s.Append(ctx, entryFor(t, rnd(t, 16), 0, ds.KindApplication)); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("Append(unknown group): err = %v, want ErrNotFound", err)
	}
	if seq, err := s.Append(ctx, entryFor(t, g.ID, 1, ds.KindApplication)); err != nil || seq != 2 {
		t.Errorf("Append(current epoch) = %d, %v; want 2, nil", seq, err)
	}
}

func testSeqGapless(t *testing.T, open Opener) {
	s := open(t)
	workers, each := 8, 25
	if testing.Short() {
		workers, each = 4, 10
	}
	AppendConcurrently(t, []ds.Store{s}, workers, each)
}

// AppendConcurrently has workers goroutines, spread over stores (one
// database), append each messages to one group concurrently: the seqs
// returned are exactly 1..workers*each, and Entries returns every message
// at the seq it was given.
func AppendConcurrently(t *testing.T, stores []ds.Store, workers, each int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	g := newGroup(t, stores[0])
	var mu sync.Mutex
	bySeq := make(map[uint64]ds.Entry)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for range each {
				e := entryFor(t, g.ID, 0, ds.KindApplication)
				seq, err := s.Append(ctx, e)
				if err != nil {
					errs <- err
					return
				}
				e.Seq = seq
				mu.Lock()
				_, dup := bySeq[seq]
				bySeq[seq] = e
				mu.Unlock()
				if dup {
					errs <- fmt.Errorf("seq %d returned twice", seq)
					return
				}
			}
		})
	}
	// Meanwhile a reader never sees a gap: what is visible of the log is
	// always seqs 1..n, so that a subscriber that advances its cursor to
	// the last entry it read skips nothing.
	readerDone := make(chan error, 1)
	stopReader := make(chan struct{})
	go func() {
		reader := stores[len(stores)-1]
		for i := 0; ; i++ {
			select {
			case <-stopReader:
				readerDone <- nil
				return
			default:
			}
			es, err := reader.Entries(ctx, g.ID, 0, MaxPage)
			if err != nil {
				readerDone <- err
				return
			}
			for j, e := range es {
				if e.Seq != uint64(j+1) {
					readerDone <- fmt.Errorf("read %d: entry %d has seq %d: a gap is visible", i, j, e.Seq)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stopReader)
	if err := <-readerDone; err != nil {
		t.Errorf("concurrent reader: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	total := workers * each
	es := allEntries(t, stores[len(stores)-1], g.ID)
	if len(es) != total {
		t.Fatalf("%d entries, want %d", len(es), total)
	}
	for i, e := range es {
		want, ok := bySeq[uint64(i+1)]
		if !ok {
			t.Fatalf("seq %d was never returned by Append", i+1)
		}
		sameEntry(t, e, want)
	}
	got, err := stores[0].GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastSeq != uint64(total) {
		t.Errorf("LastSeq = %d, want %d", got.LastSeq, total)
	}
}

func testEntriesPaging(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	other := newGroup(t, s)
	var want []ds.Entry
	for i := range 25 {
		e := entryFor(t, g.ID, 0, ds.KindApplication)
		if i%5 == 4 {
			e.Kind = ds.KindProposal
		}
		seq, err := s.Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		e.Seq = seq
		want = append(want, e)
		if _, err := s.Append(ctx, entryFor(t, other.ID, 0, ds.KindApplication)); err != nil {
			t.Fatal(err)
		}
	}
	var after uint64
	var sizes []int
	var got []ds.Entry
	for range 10 {
		page, err := s.Entries(ctx, g.ID, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page))
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	if !slices.Equal(sizes, []int{10, 10, 5, 0}) {
		t.Errorf("page sizes %v, want [10 10 5 0]", sizes)
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		sameEntry(t, got[i], want[i])
	}
	page, err := s.Entries(ctx, g.ID, 17, 3)
	if err != nil || len(page) != 3 || page[0].Seq != 18 || page[2].Seq != 20 {
		t.Errorf("Entries(after 17, limit 3) = %d entries, %v; want seqs 18..20", len(page), err)
	}
	for _, after := range []uint64{25, 26, 1 << 63, ^uint64(0)} {
		if page, err := s.Entries(ctx, g.ID, after, 10); err != nil || len(page) != 0 {
			t.Errorf("Entries(after %d) = %d entries, %v; want none", after, len(page), err)
		}
	}
	if page, err := s.Entries(ctx, rnd(t, 16), 0, 10); err != nil || len(page) != 0 {
		t.Errorf("Entries(unknown group) = %d entries, %v; want none", len(page), err)
	}
	if _, err := s.Entries(ctx, g.ID, 0, 0); err == nil {
		t.Error("Entries(limit 0) succeeded")
	}
	if _, err := s.Entries(ctx, g.ID, 0, -1); err == nil {
		t.Error("Entries(limit -1) succeeded")
	}
}

func testProposals(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	appendE := func(e ds.Entry) ds.Entry {
		t.Helper()
		seq, err := s.Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		e.Seq = seq
		return e
	}
	p1 := appendE(entryFor(t, g.ID, 0, ds.KindProposal))
	appendE(entryFor(t, g.ID, 0, ds.KindApplication))
	p2 := appendE(entryFor(t, g.ID, 0, ds.KindProposal))
	if _, err := s.AppendCommit(ctx, commitFor(t, g.ID, 0)); err != nil {
		t.Fatal(err)
	}
	p3 := appendE(entryFor(t, g.ID, 1, ds.KindProposal))
	check := func(epoch uint64, want ...ds.Entry) {
		t.Helper()
		got, err := s.Proposals(ctx, g.ID, epoch)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("Proposals(%d) = %d entries, want %d", epoch, len(got), len(want))
		}
		for i := range got {
			sameEntry(t, got[i], want[i])
		}
	}
	check(0, p1, p2)
	check(1, p3)
	check(2)
	check(^uint64(0))
}

func testCursors(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := rnd(t, 16)
	alice, bob := []byte("alice"), []byte("bob")
	want := func(id []byte, v uint64) {
		t.Helper()
		got, err := s.Cursor(ctx, g, id)
		if err != nil || got != v {
			t.Errorf("Cursor(%s) = %d, %v; want %d", id, got, err, v)
		}
	}
	want(alice, 0)
	for _, step := range []struct{ set, want uint64 }{{5, 5}, {3, 5}, {5, 5}, {0, 5}, {9, 9}} {
		if err := s.SetCursor(ctx, g, alice, step.set); err != nil {
			t.Fatal(err)
		}
		want(alice, step.want)
	}
	want(bob, 0)
	if err := s.SetCursor(ctx, g, bob, 2); err != nil {
		t.Fatal(err)
	}
	want(bob, 2)
	want(alice, 9)
	if got, err := s.Cursor(ctx, rnd(t, 16), alice); err != nil || got != 0 {
		t.Errorf("Cursor(other group) = %d, %v; want 0", got, err)
	}
}

// testRemovals: AppendCommit records the identities a commit removes, with
// its seq; a later removal of the same identity replaces the record; a
// losing commit records nothing.
func testRemovals(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	other := newGroup(t, s)
	carol, dave := []byte("carol"), []byte("dave")
	want := func(groupID, id []byte, seq uint64) {
		t.Helper()
		got, err := s.RemovedAt(ctx, groupID, id)
		if seq == 0 {
			if !errors.Is(err, ds.ErrNotFound) {
				t.Errorf("RemovedAt(%s) = %d, %v; want ErrNotFound", id, got, err)
			}
			return
		}
		if err != nil || got != seq {
			t.Errorf("RemovedAt(%s) = %d, %v; want %d", id, got, err, seq)
		}
	}
	want(g.ID, carol, 0)
	if _, err := s.Append(ctx, entryFor(t, g.ID, 0, ds.KindApplication)); err != nil {
		t.Fatal(err)
	}
	c := commitFor(t, g.ID, 0)
	c.Removed = [][]byte{carol, dave}
	if seq, err := s.AppendCommit(ctx, c); err != nil || seq != 2 {
		t.Fatalf("AppendCommit = %d, %v; want 2", seq, err)
	}
	want(g.ID, carol, 2)
	want(g.ID, dave, 2)
	want(other.ID, carol, 0)
	want(rnd(t, 16), carol, 0)
	// A losing commit records nothing.
	lose := commitFor(t, g.ID, 0)
	lose.Removed = [][]byte{[]byte("erin")}
	if _, err := s.AppendCommit(ctx, lose); err == nil {
		t.Fatal("AppendCommit(stale epoch) succeeded")
	}
	want(g.ID, []byte("erin"), 0)
	// Carol, added back and removed again: the newer commit counts.
	if _, err := s.AppendCommit(ctx, commitFor(t, g.ID, 1)); err != nil {
		t.Fatal(err)
	}
	c = commitFor(t, g.ID, 2)
	c.Removed = [][]byte{carol}
	if seq, err := s.AppendCommit(ctx, c); err != nil || seq != 4 {
		t.Fatalf("AppendCommit = %d, %v; want 4", seq, err)
	}
	want(g.ID, carol, 4)
	want(g.ID, dave, 2)
}

func testWelcomes(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	hal, ivy := []byte("hal"), []byte("ivy")
	c0 := commitFor(t, g.ID, 0, hal, ivy)
	if _, err := s.AppendCommit(ctx, c0); err != nil {
		t.Fatal(err)
	}
	c1 := commitFor(t, g.ID, 1, hal)
	if _, err := s.AppendCommit(ctx, c1); err != nil {
		t.Fatal(err)
	}
	got, err := s.Welcomes(ctx, hal)
	if err != nil {
		t.Fatal(err)
	}
	wantW := []ds.Welcome{c0.Welcomes[0], c1.Welcomes[0]}
	if len(got) != len(wantW) {
		t.Fatalf("Welcomes(hal) = %d, want %d", len(got), len(wantW))
	}
	for i, w := range got {
		x := wantW[i]
		if !bytes.Equal(w.Identity, x.Identity) || !bytes.Equal(w.KeyPackageRef, x.KeyPackageRef) || !bytes.Equal(w.GroupID, x.GroupID) ||
			!bytes.Equal(w.Data, x.Data) || !bytes.Equal(w.RatchetTree, x.RatchetTree) {
			t.Errorf("Welcome %d = %+v, want %+v", i, w, x)
		}
	}
	if got[0].ID == got[1].ID {
		t.Errorf("two Welcomes share ID %d", got[0].ID)
	}
	ivyW, err := s.Welcomes(ctx, ivy)
	if err != nil || len(ivyW) != 1 {
		t.Fatalf("Welcomes(ivy) = %d, %v; want 1", len(ivyW), err)
	}
	// Deleting another identity's Welcome does nothing.
	if err := s.DeleteWelcome(ctx, hal, ivyW[0].ID); err != nil {
		t.Fatal(err)
	}
	if ws, err := s.Welcomes(ctx, ivy); err != nil || len(ws) != 1 {
		t.Errorf("Welcomes(ivy) after hal deleted its ID = %d, %v; want 1", len(ws), err)
	}
	if err := s.DeleteWelcome(ctx, hal, got[0].ID); err != nil {
		t.Fatal(err)
	}
	after, err := s.Welcomes(ctx, hal)
	if err != nil || len(after) != 1 || after[0].ID != got[1].ID {
		t.Errorf("Welcomes(hal) after delete = %+v, %v; want only ID %d", after, err, got[1].ID)
	}
	// Absent: not an error.
	if err := s.DeleteWelcome(ctx, hal, got[0].ID); err != nil {
		t.Errorf("DeleteWelcome(absent): %v", err)
	}
	if ws, err := s.Welcomes(ctx, []byte("nobody")); err != nil || len(ws) != 0 {
		t.Errorf("Welcomes(nobody) = %d, %v; want none", len(ws), err)
	}
}

// waitFor waits until ch delivers id, skipping other IDs, for at most
// watchWait.
func waitFor(t testing.TB, ch <-chan []byte, id []byte) {
	t.Helper()
	timer := time.NewTimer(watchWait)
	defer timer.Stop()
	for {
		select {
		case got := <-ch:
			if bytes.Equal(got, id) {
				return
			}
		case <-timer.C:
			t.Fatalf("no Watch notification for group %x within %v", id[:4], watchWait)
		}
	}
}

func watchChan(t testing.TB, ctx context.Context, s ds.Store) <-chan []byte {
	t.Helper()
	ch := make(chan []byte, 1024)
	if err := s.Watch(ctx, func(id []byte) {
		select {
		case ch <- bytes.Clone(id):
		default:
		}
	}); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	return ch
}

func testWatch(t *testing.T, open Opener) {
	s := open(t)
	WatchAcross(t, s, s)
}

// WatchAcross checks that a Watch on watched is notified of appends and
// commits made through writer (the same Store or another replica on the
// same database), for each group, and not after its context is done.
func WatchAcross(t *testing.T, watched, writer ds.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := watchChan(t, ctx, watched)
	ch2 := watchChan(t, t.Context(), watched)
	g1, g2 := newGroup(t, writer), newGroup(t, writer)
	if _, err := writer.Append(ctx, entryFor(t, g1.ID, 0, ds.KindApplication)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, g1.ID)
	waitFor(t, ch2, g1.ID)
	if _, err := writer.AppendCommit(ctx, commitFor(t, g2.ID, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, g2.ID)
	if _, err := writer.Append(ctx, entryFor(t, g1.ID, 0, ds.KindProposal)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, g1.ID)
	waitFor(t, ch2, g2.ID)

	// A refused append need not notify, but a later one must.
	if _, err := writer.Append(ctx, entryFor(t, g2.ID, 0, ds.KindApplication)); err == nil {
		t.Fatal("Append(stale epoch) succeeded")
	}
	if _, err := writer.Append(ctx, entryFor(t, g2.ID, 1, ds.KindApplication)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, g2.ID)

	// Once its context is done, a watcher is called no more. The other
	// watcher, still running, sees the append, which bounds the wait.
	cancel()
	time.Sleep(50 * time.Millisecond) // let the cancelled watcher see ctx.Done
	for len(ch) > 0 {
		<-ch
	}
	if _, err := writer.Append(t.Context(), entryFor(t, g1.ID, 0, ds.KindApplication)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch2, g1.ID)
	time.Sleep(50 * time.Millisecond)
	select {
	case id := <-ch:
		t.Errorf("cancelled watcher was called with group %x", id)
	default:
	}
}

func testRestart(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	g := newGroup(t, s)
	m := entryFor(t, g.ID, 0, ds.KindProposal)
	if _, err := s.Append(ctx, m); err != nil {
		t.Fatal(err)
	}
	m.Seq = 1
	c := commitFor(t, g.ID, 0, []byte("jack"))
	if _, err := s.AppendCommit(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Seq = 2
	ses := ds.Session{TokenHash: rnd(t, 32), Identity: []byte("jack"), Credential: rnd(t, 8), SignatureKey: rnd(t, 32), CipherSuite: 1, Expires: base.Add(time.Hour)}
	if err := s.PutSession(ctx, ses); err != nil {
		t.Fatal(err)
	}
	ch := ds.Challenge{Nonce: rnd(t, 32), Credential: rnd(t, 8), SignatureKey: rnd(t, 32), CipherSuite: 1, Expires: base.Add(time.Hour)}
	if err := s.PutChallenge(ctx, ch); err != nil {
		t.Fatal(err)
	}
	taken, avail := kp(t, []byte("jack"), 1, false, base.Add(time.Hour)), kp(t, []byte("jack"), 1, false, base.Add(time.Hour))
	if err := s.PutKeyPackages(ctx, []ds.KeyPackage{taken}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeKeyPackage(ctx, []byte("jack"), 1, base); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKeyPackages(ctx, []ds.KeyPackage{avail}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor(ctx, g.ID, []byte("jack"), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Reopen twice: migrations already applied are not applied again.
	for round := range 2 {
		s = open(t)
		got, err := s.GetGroup(ctx, g.ID)
		if err != nil {
			t.Fatalf("round %d: GetGroup: %v", round, err)
		}
		want := g
		want.State, want.LastSeq = c.NewState, 2
		if round == 1 {
			want.LastSeq = 3
		}
		sameGroup(t, got, want)
		es := allEntries(t, s, g.ID)
		if len(es) != int(want.LastSeq) {
			t.Fatalf("round %d: %d entries, want %d", round, len(es), want.LastSeq)
		}
		sameEntry(t, es[0], m)
		sameEntry(t, es[1], c.Entry)
		if _, err := s.GetSession(ctx, ses.TokenHash, base); err != nil {
			t.Errorf("round %d: GetSession: %v", round, err)
		}
		if cur, err := s.Cursor(ctx, g.ID, []byte("jack")); err != nil || cur != 2 {
			t.Errorf("round %d: Cursor = %d, %v; want 2", round, cur, err)
		}
		if ws, err := s.Welcomes(ctx, []byte("jack")); err != nil || len(ws) != 1 {
			t.Errorf("round %d: Welcomes = %d, %v; want 1", round, len(ws), err)
		}
		if ps, err := s.Proposals(ctx, g.ID, 0); err != nil || len(ps) != 1 {
			t.Errorf("round %d: Proposals = %d, %v; want 1", round, len(ps), err)
		}
		if round == 0 {
			// The handed-out key package stays handed out; the other is
			// still there; the challenge is still usable once.
			k, err := s.TakeKeyPackage(ctx, []byte("jack"), 1, base)
			if err != nil {
				t.Fatal(err)
			}
			sameKP(t, k, avail)
			if _, err := s.TakeChallenge(ctx, ch.Nonce, base); err != nil {
				t.Errorf("TakeChallenge after restart: %v", err)
			}
			// The log goes on without a gap.
			if seq, err := s.Append(ctx, entryFor(t, g.ID, 1, ds.KindApplication)); err != nil || seq != 3 {
				t.Errorf("Append after restart = %d, %v; want 3", seq, err)
			}
			if _, err := s.AppendCommit(ctx, commitFor(t, g.ID, 0)); err == nil {
				t.Error("AppendCommit(epoch 0) after restart succeeded")
			}
		} else {
			if _, err := s.TakeKeyPackage(ctx, []byte("jack"), 1, base); !errors.Is(err, ds.ErrNotFound) {
				t.Errorf("TakeKeyPackage after second restart: err = %v, want ErrNotFound", err)
			}
			if _, err := s.TakeChallenge(ctx, ch.Nonce, base); !errors.Is(err, ds.ErrNotFound) {
				t.Errorf("TakeChallenge after second restart: err = %v, want ErrNotFound", err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Pruner is implemented by the stores that can delete expired challenges
// and sessions (both backends; not part of ds.Store).
type Pruner interface {
	PruneExpired(ctx context.Context, now time.Time) (int, error)
}

func testPruneExpired(t *testing.T, open Opener) {
	s := open(t)
	p, ok := s.(Pruner)
	if !ok {
		t.Skipf("%T has no PruneExpired method", s)
	}
	ctx := t.Context()
	var live []ds.Challenge
	for i, exp := range []time.Duration{-time.Hour, 0, time.Second, time.Hour} {
		c := ds.Challenge{Nonce: rnd(t, 32), Credential: rnd(t, 8), SignatureKey: rnd(t, 32), CipherSuite: 1, Expires: base.Add(exp)}
		if err := s.PutChallenge(ctx, c); err != nil {
			t.Fatal(err)
		}
		ses := ds.Session{TokenHash: rnd(t, 32), Identity: []byte{byte(i)}, Credential: rnd(t, 8), SignatureKey: rnd(t, 32), CipherSuite: 1, Expires: base.Add(exp)}
		if err := s.PutSession(ctx, ses); err != nil {
			t.Fatal(err)
		}
		if exp > 0 {
			live = append(live, c)
		}
	}
	n, err := p.PruneExpired(ctx, base)
	if err != nil || n != 4 {
		t.Errorf("PruneExpired = %d, %v; want 4 (2 challenges, 2 sessions)", n, err)
	}
	if n, err := p.PruneExpired(ctx, base); err != nil || n != 0 {
		t.Errorf("second PruneExpired = %d, %v; want 0", n, err)
	}
	// What is left is still usable: the challenges that had not expired
	// are there (taken at an earlier clock, so that only pruning decides).
	for _, c := range live {
		if _, err := s.TakeChallenge(ctx, c.Nonce, base.Add(-time.Hour)); err != nil {
			t.Errorf("TakeChallenge(live) after PruneExpired: %v", err)
		}
	}
}
