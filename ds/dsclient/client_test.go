package dsclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/ds"
	dssqlite "github.com/mlskit/mls/ds/store/sqlite"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/proto/mlsd/v1/mlsdv1connect"
	"github.com/mlskit/mls/storage/sqlite"
)

// The tests run a real mlsd (ds.Listen over an SQLite ds.Store) on
// 127.0.0.1, and clients whose MLS state is in SQLite files.

func startServer(t testing.TB, opts ds.Options) string {
	t.Helper()
	ctx := context.Background()
	st, err := dssqlite.Open(ctx, filepath.Join(t.TempDir(), "mlsd.db"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RatePerSecond == 0 {
		opts.RatePerSecond = -1
	}
	url, stop, err := ds.Listen(ctx, "127.0.0.1:0", st, opts)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stopping mlsd: %v", err)
		}
		st.Close()
	})
	return url
}

// member is a test client: its SQLite file, its Client and its group.
type member struct {
	name  string
	path  string
	store *sqlite.Store
	c     *Client
	g     *mls.Group
}

func newMember(t testing.TB, url, name string) *member {
	t.Helper()
	m := &member{name: name, path: filepath.Join(t.TempDir(), name+".db")}
	m.open(t, url)
	return m
}

// open opens (or reopens) the member's file and connects it.
func (m *member) open(t testing.TB, url string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(m.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	mc, err := mls.NewClient(ctx, s, credential.NewBasic([]byte(m.name)), nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ctx, url, mc, Options{})
	if err != nil {
		t.Fatalf("%s: Dial: %v", m.name, err)
	}
	m.store, m.c = s, c
	if m.g != nil {
		if m.g, err = mc.LoadGroup(ctx, m.g.GroupID()); err != nil {
			t.Fatal(err)
		}
	}
}

// group creates a group of alice with the others added in one commit.
func group(t testing.TB, url string, names ...string) []*member {
	t.Helper()
	ctx := context.Background()
	ms := make([]*member, len(names))
	for i, n := range names {
		ms[i] = newMember(t, url, n)
	}
	alice := ms[0]
	var err error
	if alice.g, err = alice.c.MLS().CreateGroup(ctx, alice.c.Suite(), mls.GroupConfig{GroupID: []byte("g-" + t.Name())}); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.CreateGroup(ctx, alice.g, CreateOptions{}); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if len(ms) == 1 {
		return ms
	}
	var kps []*mls.KeyPackage
	for _, m := range ms[1:] {
		if _, err := m.c.PublishKeyPackages(ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		kp, err := alice.c.FetchKeyPackage(ctx, []byte(m.name))
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	posted, err := alice.c.Commit(ctx, alice.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) { return g.AddMembers(ctx, kps...) }, nil)
	if err != nil {
		t.Fatalf("adding members: %v", err)
	}
	if posted.Epoch != 1 || alice.g.Epoch() != 1 || posted.Attempts != 1 {
		t.Fatalf("the add commit: %+v, Alice at epoch %d; want epoch 1 in one attempt", posted, alice.g.Epoch())
	}
	for _, m := range ms[1:] {
		js, err := m.c.Join(ctx, mls.JoinConfig{})
		if err != nil {
			t.Fatalf("%s: Join: %v", m.name, err)
		}
		if len(js) != 1 || js[0].Err != nil {
			t.Fatalf("%s: Join returned %+v, want one group", m.name, js)
		}
		m.g = js[0].Group
		if got := string(js[0].Staged.Sender().Credential.Identity()); got != "alice" {
			t.Errorf("%s: welcomed by %q, want alice", m.name, got)
		}
	}
	agree(t, ms...)
	return ms
}

// agree checks that the members share epoch and epoch authenticator.
func agree(t testing.TB, ms ...*member) {
	t.Helper()
	for _, m := range ms[1:] {
		if m.g.Epoch() != ms[0].g.Epoch() || !bytes.Equal(m.g.EpochAuthenticator(), ms[0].g.EpochAuthenticator()) {
			t.Fatalf("%s is at epoch %d (%x), %s at epoch %d (%x)", ms[0].name, ms[0].g.Epoch(), ms[0].g.EpochAuthenticator(),
				m.name, m.g.Epoch(), m.g.EpochAuthenticator())
		}
	}
}

// collect returns a handler that records the events.
func collect(evs *[]Event) Handler {
	var mu sync.Mutex
	return func(ev Event) error {
		mu.Lock()
		defer mu.Unlock()
		*evs = append(*evs, ev)
		return nil
	}
}

func texts(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Processed != nil && ev.Processed.Kind == mls.KindApplication {
			out = append(out, fmt.Sprintf("%s: %s", ev.Processed.Credential.Identity(), ev.Processed.ApplicationData))
		}
	}
	return out
}

func TestAuthenticate(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	alice := newMember(t, url, "alice")
	if got := string(alice.c.Identity()); got != "alice" {
		t.Errorf("Identity() = %q, want alice", got)
	}
	// A refused token is replaced once, transparently.
	alice.c.mu.Lock()
	alice.c.token = "not-a-token"
	alice.c.mu.Unlock()
	if _, _, err := alice.c.CountKeyPackages(ctx); err != nil {
		t.Fatalf("CountKeyPackages with a stale token: %v", err)
	}
	alice.c.mu.Lock()
	tok := alice.c.token
	alice.c.mu.Unlock()
	if tok == "not-a-token" || tok == "" {
		t.Errorf("the token was not renewed: %q", tok)
	}
	// Without the interceptor, the service refuses with UNAUTHENTICATED,
	// which the typed error exposes.
	raw := connectClient(url)
	_, err := raw.CountKeyPackages(ctx, connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{CipherSuite: 1}))
	err = wrap("CountKeyPackages", err)
	if !errors.Is(err, ErrUnauthenticated) || Reason(err) != mlsdv1.Error_REASON_UNAUTHENTICATED {
		t.Errorf("unauthenticated call: %v (reason %v), want UNAUTHENTICATED", err, Reason(err))
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != connect.CodeUnauthenticated || errors.Is(err, ErrNotMember) {
		t.Errorf("unauthenticated call: %#v, want an *Error with code unauthenticated matching only its reason", err)
	}
	// A client whose signer does not fit the suite cannot authenticate.
	_, err = Dial(ctx, url, alice.c.MLS(), Options{Suite: mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256})
	if err == nil {
		t.Errorf("Dial with a P-256 suite and an Ed25519 key succeeded")
	}
	if _, err := Dial(ctx, url, nil, Options{}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Errorf("Dial(nil client) = %v, want ErrInvalidArgument", err)
	}
}

func TestKeyPackages(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	alice, bob := newMember(t, url, "alice"), newMember(t, url, "bob")
	kps, err := bob.c.PublishKeyPackages(ctx, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(kps) != 3 || kps[0].IsLastResort() || kps[1].IsLastResort() || !kps[2].IsLastResort() {
		t.Fatalf("published %d key packages, want 2 and a last-resort one", len(kps))
	}
	if n, last, err := bob.c.CountKeyPackages(ctx); err != nil || n != 2 || !last {
		t.Fatalf("CountKeyPackages = %d, %v, %v; want 2, true", n, last, err)
	}
	// Each is handed out once, then the last-resort one every time.
	seen := map[string]bool{}
	for i := range 4 {
		kp, err := alice.c.FetchKeyPackage(ctx, []byte("bob"))
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		ref := string(kp.Ref())
		switch {
		case i < 2 && (seen[ref] || kp.IsLastResort()):
			t.Errorf("fetch %d: key package %x handed out again, or last-resort too early", i, kp.Ref())
		case i >= 2 && !bytes.Equal(kp.Ref(), kps[2].Ref()):
			t.Errorf("fetch %d: got %x, want the last-resort key package %x", i, kp.Ref(), kps[2].Ref())
		}
		seen[ref] = true
	}
	if !seen[string(kps[0].Ref())] || !seen[string(kps[1].Ref())] {
		t.Errorf("not both regular key packages were handed out")
	}
	if n, last, err := bob.c.CountKeyPackages(ctx); err != nil || n != 0 || !last {
		t.Errorf("CountKeyPackages after = %d, %v, %v; want 0, true", n, last, err)
	}
	_, err = alice.c.FetchKeyPackage(ctx, []byte("nobody"))
	if !errors.Is(err, ErrNoKeyPackage) {
		t.Errorf("FetchKeyPackage(nobody) = %v, want ErrNoKeyPackage", err)
	}
	if _, err := alice.c.PublishKeyPackages(ctx, -1, false); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Errorf("PublishKeyPackages(-1) = %v, want ErrInvalidArgument", err)
	}
}

func TestGroupMessages(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	ms := group(t, url, "alice", "bob", "carol")
	alice, bob, carol := ms[0], ms[1], ms[2]
	for i, m := range ms {
		if _, err := m.c.Send(ctx, m.g, fmt.Appendf(nil, "hello %d", i), nil); err != nil {
			t.Fatalf("%s: Send: %v", m.name, err)
		}
	}
	for _, m := range ms {
		var evs []Event
		n, err := m.c.Sync(ctx, m.g, collect(&evs))
		if err != nil {
			t.Fatalf("%s: Sync: %v", m.name, err)
		}
		var want []string
		for i, o := range ms {
			if o != m {
				want = append(want, fmt.Sprintf("%s: hello %d", o.name, i))
			}
		}
		if got := texts(evs); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s read %q, want %q", m.name, got, want)
		}
		if n < 2 {
			t.Errorf("%s: Sync handled %d entries", m.name, n)
		}
		// Nothing new: a second Sync handles nothing.
		if n, err := m.c.Sync(ctx, m.g, collect(&evs)); n != 0 || err != nil {
			t.Errorf("%s: second Sync = %d, %v", m.name, n, err)
		}
	}
	// A proposal, committed by another member.
	if _, err := bob.c.Propose(ctx, bob.g, (*mls.Group).ProposeSelfUpdate, nil); err != nil {
		t.Fatal(err)
	}
	var evs []Event
	if _, err := carol.c.Commit(ctx, carol.g, (*mls.Group).CommitPendingProposals, collect(&evs)); err != nil {
		t.Fatalf("carol commits bob's proposal: %v", err)
	}
	if len(evs) != 1 || evs[0].Kind != mlsdv1.Kind_KIND_PROPOSAL || string(evs[0].Sender) != "bob" {
		t.Errorf("carol's catch-up before committing saw %+v, want bob's proposal", evs)
	}
	for _, m := range []*member{alice, bob} {
		if _, err := m.c.Sync(ctx, m.g, nil); err != nil {
			t.Fatal(err)
		}
	}
	agree(t, ms...)
	if alice.g.Epoch() != 2 {
		t.Errorf("epoch %d, want 2", alice.g.Epoch())
	}
	// Removal: alice removes carol, who is refused afterwards.
	if _, err := alice.c.Commit(ctx, alice.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		return g.RemoveMembersByIdentity(ctx, []byte("carol"))
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.Sync(ctx, bob.g, nil); err != nil {
		t.Fatal(err)
	}
	agree(t, alice, bob)
	// Carol, offline at her removal, reads the log up to the commit that
	// removed her (the service lets her), and learns of it.
	evs = nil
	n, err := carol.c.Sync(ctx, carol.g, collect(&evs))
	if !errors.Is(err, ErrRemoved) || !errors.Is(err, mls.ErrInactive) {
		t.Errorf("removed carol's Sync = %v, want ErrRemoved", err)
	}
	if n != 1 || len(evs) != 1 || evs[0].Processed == nil || evs[0].Processed.Kind != mls.KindCommit || string(evs[0].Sender) != "alice" {
		t.Errorf("removed carol's Sync handled %d entries, events %+v; want Alice's commit", n, evs)
	}
	if carol.g.IsActive() {
		t.Error("carol's group is still active after her removal")
	}
	if n, err := carol.c.Sync(ctx, carol.g, nil); n != 0 || !errors.Is(err, ErrRemoved) {
		t.Errorf("removed carol's second Sync = %d, %v; want 0, ErrRemoved", n, err)
	}
	if _, err := carol.c.Send(ctx, carol.g, []byte("still here?"), nil); !errors.Is(err, ErrRemoved) {
		t.Errorf("removed carol's Send = %v, want ErrRemoved", err)
	}
}

// TestCommitConflict: bob's commit lands while alice's is in flight; alice's
// is refused with COMMIT_CONFLICT, cleared, and retried after catching up.
func TestCommitConflict(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	ms := group(t, url, "alice", "bob", "carol")
	alice, bob, carol := ms[0], ms[1], ms[2]
	var evs []Event
	first := true
	posted, err := alice.c.Commit(ctx, alice.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		if first {
			first = false
			if _, err := bob.c.Commit(ctx, bob.g, (*mls.Group).SelfUpdate, nil); err != nil {
				return nil, fmt.Errorf("bob's commit: %w", err)
			}
		}
		return g.SelfUpdate(ctx)
	}, collect(&evs))
	if err != nil {
		t.Fatalf("alice's commit: %v", err)
	}
	if posted.Attempts != 2 || posted.Epoch != 3 || alice.g.Epoch() != 3 {
		t.Errorf("alice's commit: %d attempts, epoch %d (group at %d); want 2 attempts and epoch 3", posted.Attempts, posted.Epoch, alice.g.Epoch())
	}
	if len(evs) != 1 || evs[0].Kind != mlsdv1.Kind_KIND_COMMIT || string(evs[0].Sender) != "bob" || evs[0].Epoch != 1 {
		t.Errorf("alice caught up with %+v, want bob's commit of epoch 1", evs)
	}
	for _, m := range []*member{bob, carol} {
		if _, err := m.c.Sync(ctx, m.g, nil); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	agree(t, ms...)
	// Exhausted attempts: every attempt loses.
	tight, err := Dial(ctx, url, alice.c.MLS(), Options{MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	before := alice.g.Epoch()
	_, err = tight.Commit(ctx, alice.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		if _, err := bob.c.Commit(ctx, bob.g, (*mls.Group).SelfUpdate, nil); err != nil {
			return nil, err
		}
		return g.SelfUpdate(ctx)
	}, nil)
	if !errors.Is(err, ErrTooManyAttempts) {
		t.Errorf("always losing: %v, want ErrTooManyAttempts", err)
	}
	if alice.g.PendingCommit() != nil {
		t.Errorf("a losing commit is left pending")
	}
	if _, err := alice.c.Sync(ctx, alice.g, nil); err != nil {
		t.Fatal(err)
	}
	if alice.g.Epoch() != before+2 {
		t.Errorf("alice at epoch %d, want %d (bob's two commits)", alice.g.Epoch(), before+2)
	}
}

// TestCommitRace: two members commit concurrently, many times; every
// commit lands (retrying as needed) and all members agree.
func TestCommitRace(t *testing.T) {
	url := startServer(t, ds.Options{})
	ms := group(t, url, "alice", "bob", "carol")
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	attempts := make([]int, 2)
	errs := make([]error, 2)
	for i, m := range ms[:2] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				p, err := m.c.Commit(ctx, m.g, (*mls.Group).SelfUpdate, nil)
				if err != nil {
					errs[i] = err
					return
				}
				attempts[i] += p.Attempts
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", ms[i].name, err)
		}
	}
	for _, m := range ms {
		if _, err := m.c.Sync(ctx, m.g, nil); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	agree(t, ms...)
	if want := uint64(1 + 2*rounds); ms[0].g.Epoch() != want {
		t.Errorf("epoch %d, want %d: every commit lands once", ms[0].g.Epoch(), want)
	}
	t.Logf("%d commits took %d attempts", 2*rounds, attempts[0]+attempts[1])
}

// TestSendWrongEpoch: a message sealed in an epoch that has ended is
// refused (WRONG_EPOCH); Send catches up and seals it again.
func TestSendWrongEpoch(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	ms := group(t, url, "alice", "bob")
	alice, bob := ms[0], ms[1]
	if _, err := bob.c.Commit(ctx, bob.g, (*mls.Group).SelfUpdate, nil); err != nil {
		t.Fatal(err)
	}
	var evs []Event
	msg, err := alice.c.Send(ctx, alice.g, []byte("late"), collect(&evs))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if msg.Epoch() != 2 || len(evs) != 1 || evs[0].Kind != mlsdv1.Kind_KIND_COMMIT {
		t.Errorf("sent in epoch %d after catching up with %d entries; want epoch 2 after bob's commit", msg.Epoch(), len(evs))
	}
	evs = nil
	if _, err := bob.c.Sync(ctx, bob.g, collect(&evs)); err != nil {
		t.Fatal(err)
	}
	if got := texts(evs); fmt.Sprint(got) != "[alice: late]" {
		t.Errorf("bob read %q", got)
	}
	// A proposal made in an ended epoch: withdrawn, made again, posted.
	if _, err := bob.c.Commit(ctx, bob.g, (*mls.Group).SelfUpdate, nil); err != nil {
		t.Fatal(err)
	}
	tries := 0
	if _, err := alice.c.Propose(ctx, alice.g, func(g *mls.Group, ctx context.Context) (*mls.Message, mls.ProposalRef, error) {
		tries++
		return g.ProposeSelfUpdate(ctx)
	}, nil); err != nil {
		t.Fatalf("Propose: %v", err)
	}
	if q := alice.g.PendingProposals(); tries != 2 || len(q) != 1 || alice.g.Epoch() != 3 {
		t.Errorf("%d tries, %d pending proposals at epoch %d; want 2 tries and 1 proposal at epoch 3", tries, len(q), alice.g.Epoch())
	}
	if _, err := bob.c.Commit(ctx, bob.g, (*mls.Group).CommitPendingProposals, nil); err != nil {
		t.Fatalf("bob commits alice's proposal: %v", err)
	}
	if _, err := alice.c.Sync(ctx, alice.g, nil); err != nil {
		t.Fatal(err)
	}
	agree(t, alice, bob)
}

// TestRestart: a client stopped and reopened from its SQLite file goes on
// from its cursor: nothing read twice, nothing missed.
func TestRestart(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	ms := group(t, url, "alice", "bob")
	alice, bob := ms[0], ms[1]
	send := func(texts ...string) {
		for _, s := range texts {
			if _, err := alice.c.Send(ctx, alice.g, []byte(s), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	send("one", "two")
	var evs []Event
	if _, err := bob.c.Sync(ctx, bob.g, collect(&evs)); err != nil {
		t.Fatal(err)
	}
	cur, err := bob.c.Cursor(ctx, bob.g.GroupID())
	if err != nil || cur == 0 {
		t.Fatalf("cursor %d, %v", cur, err)
	}
	if err := bob.store.Close(); err != nil {
		t.Fatal(err)
	}
	send("three")
	if _, err := alice.c.Commit(ctx, alice.g, (*mls.Group).SelfUpdate, nil); err != nil {
		t.Fatal(err)
	}
	send("four")
	bob.open(t, url)
	if got, _ := bob.c.Cursor(ctx, bob.g.GroupID()); got != cur {
		t.Fatalf("reopened cursor %d, want %d", got, cur)
	}
	if _, err := bob.c.Sync(ctx, bob.g, collect(&evs)); err != nil {
		t.Fatalf("Sync after restart: %v", err)
	}
	if got := texts(evs); fmt.Sprint(got) != "[alice: one alice: two alice: three alice: four]" {
		t.Errorf("bob read %q across the restart", got)
	}
	agree(t, alice, bob)
}

// TestSubscribe: entries arrive on the stream as they are posted, in order.
func TestSubscribe(t *testing.T) {
	url := startServer(t, ds.Options{SubscribePoll: 50 * time.Millisecond})
	ms := group(t, url, "alice", "bob")
	alice, bob := ms[0], ms[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan string, 16)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- bob.c.Subscribe(sctx, bob.g, func(ev Event) error {
			if ev.Processed != nil && ev.Processed.Kind == mls.KindApplication {
				got <- string(ev.Processed.ApplicationData)
			}
			return nil
		})
	}()
	want := []string{"a", "b", "c"}
	for i, s := range want {
		if i == 2 { // a commit in between
			if _, err := alice.c.Commit(ctx, alice.g, (*mls.Group).SelfUpdate, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := alice.c.Send(ctx, alice.g, []byte(s), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Errorf("received %q, want %q", g, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing received within 10 s; want %q", w)
		}
	}
	stop()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not return after its context ended")
	}
	agree(t, alice, bob)
}

func TestReason(t *testing.T) {
	if r := Reason(nil); r != mlsdv1.Error_REASON_UNSPECIFIED {
		t.Errorf("Reason(nil) = %v", r)
	}
	if r := Reason(errors.New("x")); r != mlsdv1.Error_REASON_UNSPECIFIED {
		t.Errorf("Reason(plain error) = %v", r)
	}
	ce := connect.NewError(connect.CodeAborted, errors.New("lost"))
	d, err := connect.NewErrorDetail(&mlsdv1.Error{Reason: mlsdv1.Error_REASON_COMMIT_CONFLICT, CurrentEpoch: 7, LastSeq: 42})
	if err != nil {
		t.Fatal(err)
	}
	ce.AddDetail(d)
	e := wrap("PostCommit", ce)
	if Reason(e) != mlsdv1.Error_REASON_COMMIT_CONFLICT || Reason(ce) != mlsdv1.Error_REASON_COMMIT_CONFLICT {
		t.Errorf("Reason = %v / %v, want COMMIT_CONFLICT", Reason(e), Reason(ce))
	}
	if !errors.Is(e, ErrCommitConflict) || errors.Is(e, ErrWrongEpoch) {
		t.Errorf("errors.Is does not match the reason alone")
	}
	const want = "dsclient: PostCommit: aborted COMMIT_CONFLICT: lost (group at epoch 7, last seq 42)"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
}

func connectClient(url string) mlsdv1connect.DeliveryServiceClient {
	return mlsdv1connect.NewDeliveryServiceClient(http.DefaultClient, url)
}

// TestRateLimited: calls refused with RATE_LIMITED are retried after a
// growing pause, a bounded number of times.
func TestRateLimited(t *testing.T) {
	url := startServer(t, ds.Options{RatePerSecond: 20, Burst: 3})
	ctx := context.Background()
	alice := newMember(t, url, "alice")
	for i := range 12 { // well past the burst: every call waits for a token
		if _, _, err := alice.c.CountKeyPackages(ctx); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// A bucket that refills every 100 s: the retries give up.
	slow := startServer(t, ds.Options{RatePerSecond: 0.01, Burst: 3})
	bob := newMember(t, slow, "bob") // Challenge and Authenticate take 2 tokens
	c, err := Dial(ctx, slow, bob.c.MLS(), Options{RateLimitWait: time.Millisecond})
	if err != nil && !errors.Is(err, ErrRateLimited) {
		t.Fatalf("Dial: %v", err)
	}
	if err == nil {
		for range 3 {
			if _, _, err = c.CountKeyPackages(ctx); err != nil {
				break
			}
		}
	}
	if !errors.Is(err, ErrRateLimited) {
		t.Errorf("past the bucket: %v, want ErrRateLimited", err)
	}
}

// TestGRPC: the same client over gRPC on unencrypted HTTP/2, streams
// included.
func TestGRPC(t *testing.T) {
	url := startServer(t, ds.Options{SubscribePoll: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: p}}
	ms := group(t, url, "alice", "bob")
	alice, bob := ms[0], ms[1]
	grpcBob, err := Dial(ctx, url, bob.c.MLS(), Options{HTTPClient: hc, ConnectOptions: []connect.ClientOption{connect.WithGRPC()}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go grpcBob.Subscribe(sctx, bob.g, func(ev Event) error {
		if ev.Processed != nil && ev.Processed.Kind == mls.KindApplication {
			got <- string(ev.Processed.ApplicationData)
		}
		return nil
	})
	if _, err := alice.c.Send(ctx, alice.g, []byte("over h2c"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "over h2c" {
			t.Errorf("received %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received over gRPC within 10 s")
	}
	if _, err := grpcBob.FetchKeyPackage(ctx, []byte("nobody")); !errors.Is(err, ErrNoKeyPackage) {
		t.Errorf("gRPC error details: %v, want ErrNoKeyPackage", err)
	}
}

// TestLostAnswer: a commit whose post's answer never arrived is merged
// when the log shows the service took it, and cleared before the next
// commit when it did not.
func TestLostAnswer(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	ms := group(t, url, "alice", "bob")
	alice, bob := ms[0], ms[1]
	// Accepted, answer lost: posted by hand, not merged.
	res, err := alice.g.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := commitRequest(alice.g, res)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.c.setPosted(ctx, alice.g.GroupID(), req.Commit); err != nil { // as Commit does
		t.Fatal(err)
	}
	if _, err := call(ctx, alice.c, "PostCommit", alice.c.rpc.PostCommit, req); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Sync(ctx, alice.g, nil); err != nil {
		t.Fatalf("Sync with the accepted commit pending: %v", err)
	}
	if alice.g.PendingCommit() != nil || alice.g.Epoch() != 2 {
		t.Fatalf("after Sync: epoch %d, pending %v; want the commit merged at epoch 2", alice.g.Epoch(), alice.g.PendingCommit() != nil)
	}
	if _, err := bob.c.Sync(ctx, bob.g, nil); err != nil {
		t.Fatal(err)
	}
	agree(t, alice, bob)
	// Never accepted: made, not posted. The next Commit clears it.
	if _, err := alice.g.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Commit(ctx, alice.g, (*mls.Group).SelfUpdate, nil); err != nil {
		t.Fatalf("Commit over an unposted pending commit: %v", err)
	}
	if _, err := bob.c.Sync(ctx, bob.g, nil); err != nil {
		t.Fatal(err)
	}
	agree(t, alice, bob)
	if alice.g.Epoch() != 3 {
		t.Errorf("epoch %d, want 3", alice.g.Epoch())
	}
}

// TestSubscribeServerRestart: mlsd stops and starts again on the same
// database and address; a subscriber reconnects by itself and goes on from
// its cursor, and the clients' tokens still hold (they are in the Store).
func TestSubscribeServerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "mlsd.db")
	opts := ds.Options{Logger: slog.New(slog.DiscardHandler), RatePerSecond: -1, SubscribePoll: 50 * time.Millisecond}
	listen := func(addr string) (string, func()) {
		st, err := dssqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		url, stop, err := ds.Listen(ctx, addr, st, opts)
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		return url, func() { stop(); st.Close() }
	}
	url, stop := listen("127.0.0.1:0")
	ms := group(t, url, "alice", "bob")
	alice, bob := ms[0], ms[1]
	got := make(chan string, 8)
	sctx, stopSub := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- bob.c.Subscribe(sctx, bob.g, func(ev Event) error {
			if ev.Processed != nil && ev.Processed.Kind == mls.KindApplication {
				got <- string(ev.Processed.ApplicationData)
			}
			return nil
		})
	}()
	receive := func(want string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Errorf("received %q, want %q", s, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%q not received within 15 s", want)
		}
	}
	if _, err := alice.c.Send(ctx, alice.g, []byte("before"), nil); err != nil {
		t.Fatal(err)
	}
	receive("before")
	stop()
	_, stop = listen(strings.TrimPrefix(url, "http://"))
	defer stop()
	if _, err := alice.c.Send(ctx, alice.g, []byte("after"), nil); err != nil {
		t.Fatalf("Send after the restart: %v", err)
	}
	receive("after")
	stopSub()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe returned %v", err)
	}
	select {
	case s := <-got:
		t.Errorf("received %q twice or more", s)
	default:
	}
}

// TestJoinExternal: a client that lost its state rejoins by a resync
// external commit, replacing its old leaf; a stranger may join only a
// group that allows external joins.
func TestJoinExternal(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	ms := group(t, url, "alice", "bob")
	alice, bob := ms[0], ms[1]
	gid := alice.g.GroupID()
	// Bob's device is lost: a new one, same identity, new keys.
	bob2 := newMember(t, url, "bob")
	g, posted, err := bob2.c.JoinExternal(ctx, gid, true)
	if err != nil {
		t.Fatalf("resync: %v", err)
	}
	bob2.g = g
	if posted.Epoch != 2 || g.Epoch() != 2 {
		t.Errorf("resync commit created epoch %d, group at %d; want 2", posted.Epoch, g.Epoch())
	}
	var evs []Event
	if _, err := alice.c.Sync(ctx, alice.g, collect(&evs)); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Processed.Kind != mls.KindCommit || len(evs[0].Processed.Commit.RemoveProposals()) != 1 {
		t.Errorf("alice saw %+v, want the resync commit with one Remove", evs)
	}
	agree(t, alice, bob2)
	if got := len(alice.g.Members()); got != 2 {
		t.Errorf("%d members after the resync, want 2", got)
	}
	if _, err := bob2.c.Send(ctx, bob2.g, []byte("back"), nil); err != nil {
		t.Fatal(err)
	}
	evs = nil
	if _, err := alice.c.Sync(ctx, alice.g, collect(&evs)); err != nil || fmt.Sprint(texts(evs)) != "[bob: back]" {
		t.Errorf("alice read %q, %v", texts(evs), err)
	}
	// The old device is out.
	if _, err := bob.c.Sync(ctx, bob.g, nil); !errors.Is(err, ErrNotMember) {
		t.Errorf("the replaced device's Sync = %v, want ErrNotMember", err)
	}
	// A stranger: refused here, and a resync finds no leaf of hers.
	carol := newMember(t, url, "carol")
	if _, _, err := carol.c.JoinExternal(ctx, gid, false); !errors.Is(err, ErrNotMember) && !errors.Is(err, ErrExternalJoinForbidden) {
		t.Errorf("a stranger's external join: %v, want a refusal", err)
	}
	// A group that allows external joins takes her.
	open := newMember(t, url, "dave")
	open.g, err = open.c.MLS().CreateGroup(ctx, open.c.Suite(), mls.GroupConfig{GroupID: []byte("open")})
	if err != nil {
		t.Fatal(err)
	}
	if err := open.c.CreateGroup(ctx, open.g, CreateOptions{AllowExternalJoins: true}); err != nil {
		t.Fatal(err)
	}
	if carol.g, _, err = carol.c.JoinExternal(ctx, []byte("open"), false); err != nil {
		t.Fatalf("external join where allowed: %v", err)
	}
	if _, err := open.c.Sync(ctx, open.g, nil); err != nil {
		t.Fatal(err)
	}
	agree(t, open, carol)
}

// TestEncryptedHandshakes: a group whose handshakes are PrivateMessages;
// the service orders them by their header's epoch.
func TestEncryptedHandshakes(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	private := mls.JoinConfig{WireFormatPolicy: mls.WireFormatPolicy{OutgoingPrivate: true}}
	alice, bob, carol := newMember(t, url, "alice"), newMember(t, url, "bob"), newMember(t, url, "carol")
	var err error
	if alice.g, err = alice.c.MLS().CreateGroup(ctx, alice.c.Suite(), mls.GroupConfig{GroupID: []byte("secret"), JoinConfig: private}); err != nil {
		t.Fatal(err)
	}
	if err := alice.c.CreateGroup(ctx, alice.g, CreateOptions{Encrypted: true}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{bob, carol} {
		if _, err := m.c.PublishKeyPackages(ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		kp, err := alice.c.FetchKeyPackage(ctx, []byte(m.name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.c.Commit(ctx, alice.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) { return g.AddMembers(ctx, kp) }, nil); err != nil {
			t.Fatalf("adding %s: %v", m.name, err)
		}
		js, err := m.c.Join(ctx, private)
		if err != nil || len(js) != 1 || js[0].Err != nil {
			t.Fatalf("%s: Join: %v %+v", m.name, err, js)
		}
		m.g = js[0].Group
	}
	if _, err := bob.c.Sync(ctx, bob.g, nil); err != nil { // carol's addition
		t.Fatal(err)
	}
	// A forced conflict, as in TestCommitConflict, with encrypted commits.
	first := true
	posted, err := bob.c.Commit(ctx, bob.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		if first {
			first = false
			if _, err := carol.c.Commit(ctx, carol.g, (*mls.Group).SelfUpdate, nil); err != nil {
				return nil, err
			}
		}
		return g.SelfUpdate(ctx)
	}, nil)
	if err != nil || posted.Attempts != 2 {
		t.Fatalf("bob's commit: %+v, %v; want it to land on the second attempt", posted, err)
	}
	if posted.Result.Commit.WireFormat() != mls.WireFormatPrivateMessage {
		t.Errorf("the commit went out as %v", posted.Result.Commit.WireFormat())
	}
	if _, err := bob.c.Send(ctx, bob.g, []byte("sealed"), nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, carol} {
		var evs []Event
		if _, err := m.c.Sync(ctx, m.g, collect(&evs)); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if got := fmt.Sprint(texts(evs)); got != "[bob: sealed]" {
			t.Errorf("%s read %s", m.name, got)
		}
	}
	agree(t, alice, bob, carol)
	if alice.g.Epoch() != 4 {
		t.Errorf("epoch %d, want 4", alice.g.Epoch())
	}
}

// TestJoinLostKeyPackage: a Welcome for a key package of a lost
// installation is returned with mls.ErrNoKeyPackage and its group, and
// leaves the mailbox.
func TestJoinLostKeyPackage(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	alice := group(t, url, "alice")[0]
	if _, err := newMember(t, url, "bob").c.PublishKeyPackages(ctx, 1, false); err != nil {
		t.Fatal(err)
	}
	kp, err := alice.c.FetchKeyPackage(ctx, []byte("bob"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Commit(ctx, alice.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) { return g.AddMembers(ctx, kp) }, nil); err != nil {
		t.Fatal(err)
	}
	bob2 := newMember(t, url, "bob") // the first installation is gone
	js, err := bob2.c.Join(ctx, mls.JoinConfig{})
	if err != nil || len(js) != 1 || !errors.Is(js[0].Err, mls.ErrNoKeyPackage) || !bytes.Equal(js[0].GroupID, alice.g.GroupID()) || js[0].Group != nil {
		t.Fatalf("Join = %+v, %v; want one Welcome failing with ErrNoKeyPackage for %q", js, err, alice.g.GroupID())
	}
	if groups, _ := bob2.c.MLS().Groups(ctx); len(groups) != 0 {
		t.Errorf("the failed Welcome left groups %q", groups)
	}
	if js, err := bob2.c.Join(ctx, mls.JoinConfig{}); err != nil || len(js) != 0 {
		t.Errorf("second Join = %+v, %v; want an empty mailbox", js, err)
	}
}

// TestCommitReadsOldEpochFirst: entries of the old epoch that the log
// holds before a member's accepted commit (posted after the member's last
// read) are handled by Commit before it merges the commit, while they can
// still be decrypted; the cursor then moves past the commit. The same when
// the answer to the post was lost and Sync finds the commit in the log.
func TestCommitReadsOldEpochFirst(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ms := group(t, url, "alice", "bob", "carol")
	alice, bob, carol := ms[0], ms[1], ms[2]
	if _, err := bob.c.Sync(ctx, bob.g, nil); err != nil {
		t.Fatal(err)
	}
	var evs []Event
	posted, err := bob.c.Commit(ctx, bob.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		// After Bob's read of the log, before his post.
		if _, err := alice.c.Send(ctx, alice.g, []byte("before-1"), nil); err != nil {
			return nil, err
		}
		if _, err := carol.c.Propose(ctx, carol.g, (*mls.Group).ProposeSelfUpdate, nil); err != nil {
			return nil, err
		}
		if _, err := alice.c.Send(ctx, alice.g, []byte("before-2"), nil); err != nil {
			return nil, err
		}
		return g.SelfUpdate(ctx)
	}, collect(&evs))
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if posted.Epoch != 2 || bob.g.Epoch() != 2 || bob.g.PendingCommit() != nil {
		t.Fatalf("after Commit: posted %+v, Bob at epoch %d, pending %v; want epoch 2, merged", posted, bob.g.Epoch(), bob.g.PendingCommit() != nil)
	}
	for _, ev := range evs {
		if ev.Err != nil {
			t.Errorf("entry %d (epoch %d): %v", ev.Seq, ev.Epoch, ev.Err)
		}
	}
	if got, want := texts(evs), []string{"alice: before-1", "alice: before-2"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Commit's handler got messages %q, want %q", got, want)
	}
	if len(evs) != 3 || evs[1].Kind != mlsdv1.Kind_KIND_PROPOSAL || string(evs[1].Sender) != "carol" {
		t.Errorf("Commit's handler got %d events, want message, Carol's proposal, message", len(evs))
	}
	if cur, err := bob.c.Cursor(ctx, bob.g.GroupID()); err != nil || cur != posted.Seq {
		t.Errorf("Bob's cursor %d (%v), want the commit's seq %d", cur, err, posted.Seq)
	}
	evs = nil
	if n, err := bob.c.Sync(ctx, bob.g, collect(&evs)); err != nil || n != 0 || len(evs) != 0 {
		t.Errorf("Sync after Commit: %d entries, %d events, %v; want none", n, len(evs), err)
	}
	for _, m := range []*member{alice, carol} {
		if _, err := m.c.Sync(ctx, m.g, nil); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	agree(t, alice, bob, carol)

	// The answer lost: Bob's commit is posted by hand after Carol's
	// message; Sync reads the message, then merges the commit.
	res, err := bob.g.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.c.Send(ctx, carol.g, []byte("before-3"), nil); err != nil {
		t.Fatal(err)
	}
	req, err := commitRequest(bob.g, res)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.c.setPosted(ctx, bob.g.GroupID(), req.Commit); err != nil {
		t.Fatal(err)
	}
	pr, err := call(ctx, bob.c, "PostCommit", bob.c.rpc.PostCommit, req)
	if err != nil {
		t.Fatal(err)
	}
	evs = nil
	if _, err := bob.c.Sync(ctx, bob.g, collect(&evs)); err != nil {
		t.Fatalf("Sync with the accepted commit pending: %v", err)
	}
	if got, want := texts(evs), []string{"carol: before-3"}; fmt.Sprint(got) != fmt.Sprint(want) || len(evs) != 1 {
		t.Errorf("Sync's handler got %d events, messages %q; want %q", len(evs), got, want)
	}
	if bob.g.Epoch() != 3 || bob.g.PendingCommit() != nil {
		t.Errorf("after Sync: epoch %d, pending %v; want the commit merged at epoch 3", bob.g.Epoch(), bob.g.PendingCommit() != nil)
	}
	if cur, err := bob.c.Cursor(ctx, bob.g.GroupID()); err != nil || cur != pr.Seq {
		t.Errorf("Bob's cursor %d (%v), want the commit's seq %d", cur, err, pr.Seq)
	}
}

// TestSubscribeRemoved: a member removed while following the log, and one
// that opens its subscription only after its removal, both see the commit
// that removed them (and the message before it), and Subscribe returns
// ErrRemoved.
func TestSubscribeRemoved(t *testing.T) {
	url := startServer(t, ds.Options{SubscribePoll: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms := group(t, url, "alice", "bob", "carol")
	alice, bob, carol := ms[0], ms[1], ms[2]
	type result struct {
		evs []Event
		err error
	}
	done := make(chan result, 1)
	ready := make(chan struct{})
	go func() {
		var evs []Event
		err := bob.c.Subscribe(ctx, bob.g, func(ev Event) error {
			evs = append(evs, ev)
			if ev.Kind == mlsdv1.Kind_KIND_APPLICATION && ev.Processed != nil && string(ev.Processed.ApplicationData) == "ready" {
				close(ready)
			}
			return nil
		})
		done <- result{evs, err}
	}()
	if _, err := alice.c.Send(ctx, alice.g, []byte("ready"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("Bob's subscription did not start")
	}
	if _, err := alice.c.Send(ctx, alice.g, []byte("last words"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Commit(ctx, alice.g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		return g.RemoveMembersByIdentity(ctx, []byte("bob"), []byte("carol"))
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, alice.g, []byte("after"), nil); err != nil {
		t.Fatal(err)
	}
	check := func(name string, r result) {
		t.Helper()
		if !errors.Is(r.err, ErrRemoved) {
			t.Errorf("%s's Subscribe returned %v, want ErrRemoved", name, r.err)
		}
		if len(r.evs) < 2 {
			t.Fatalf("%s saw %d events, want the message and the commit last", name, len(r.evs))
		}
		last := r.evs[len(r.evs)-1]
		if last.Processed == nil || last.Processed.Kind != mls.KindCommit {
			t.Errorf("%s's last event: %+v, want the commit", name, last)
		}
		if got := texts(r.evs[len(r.evs)-2:]); fmt.Sprint(got) != "[alice: last words]" {
			t.Errorf("%s read %q before the commit, want Alice's last words", name, got)
		}
	}
	select {
	case r := <-done:
		check("bob", r)
	case <-ctx.Done():
		t.Fatal("Bob's Subscribe did not return after his removal")
	}
	var evs []Event
	err := carol.c.Subscribe(ctx, carol.g, collect(&evs))
	check("carol", result{evs, err})
}
