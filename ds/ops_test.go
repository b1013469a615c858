package ds_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ds"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// A subscriber gets the stored entries after its cursor, then every new
// one, in order and without gaps, while two members post concurrently;
// a member removed from the group gets the log up to its removal and then
// NOT_MEMBER.
func TestSubscribe(t *testing.T) { eachBackend(t, testSubscribe) }

func testSubscribe(t *testing.T, b backend) {
	e := newEnvB(t, b, ds.Options{SubscribePoll: time.Hour}) // notifications only
	ctx := t.Context()
	alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	id := alice.group.GroupID()
	const n = 40
	for i := range 5 {
		if _, err := alice.send("before " + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := bob.api.Subscribe(sctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: id, AfterSeq: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Receive() || st.Msg().Seq != 0 || st.Msg().Epoch != 1 {
		t.Fatalf("first message is not the marker: %v %v", st.Msg(), st.Err())
	}
	// A subscriber on another replica: on PostgreSQL it is woken by
	// LISTEN/NOTIFY (no polling); two SQLite Stores share no notifications,
	// so there it polls.
	poll := time.Hour
	if b.name == "sqlite" {
		poll = 20 * time.Millisecond
	}
	e2 := e.replica(ds.Options{SubscribePoll: poll})
	bob2 := e2.newUser("bob")
	bob2.token = bob.token
	st2, err := bob2.api.Subscribe(sctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: id, AfterSeq: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Receive() || st2.Msg().Seq != 0 {
		t.Fatalf("replica stream: first message is not the marker: %v %v", st2.Msg(), st2.Err())
	}
	done := make(chan error, 2)
	for _, u := range []*user{alice, bob} {
		go func() {
			for range n / 2 {
				if _, err := u.send("x"); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	want := uint64(3)
	last := uint64(1 + 5 + n)
	for want <= last && st.Receive() {
		m := st.Msg()
		if m.Seq != want {
			t.Fatalf("received seq %d; want %d", m.Seq, want)
		}
		if m.Kind != mlsdv1.Kind_KIND_APPLICATION || len(m.Message) == 0 {
			t.Fatalf("entry %d: kind %v, %d bytes", m.Seq, m.Kind, len(m.Message))
		}
		want++
	}
	if want != last+1 {
		t.Fatalf("stream ended at seq %d (%v); want %d entries", want-1, st.Err(), last)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for want := uint64(3); want <= last; want++ {
		if !st2.Receive() {
			t.Fatalf("replica stream ended before seq %d: %v", want, st2.Err())
		}
		if m := st2.Msg(); m.Seq != want {
			t.Fatalf("replica stream: seq %d; want %d", m.Seq, want)
		}
	}
	st2.Close()

	// alice removes bob: bob's stream gets the commit, then NOT_MEMBER.
	alice.commit(alice.group.RemoveMembers(ctx, bob.group.OwnLeafIndex()))
	if !st.Receive() {
		t.Fatalf("no removal commit: %v", st.Err())
	}
	if m := st.Msg(); m.Kind != mlsdv1.Kind_KIND_COMMIT || m.Seq != last+1 {
		t.Fatalf("got seq %d kind %v; want the removal commit at %d", m.Seq, m.Kind, last+1)
	}
	if _, err := alice.send("after bob left"); err != nil {
		t.Fatal(err)
	}
	if st.Receive() {
		t.Fatalf("removed member received seq %d", st.Msg().Seq)
	}
	wantReason(t, st.Err(), connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	st.Close()
}

// Closing the server ends streams (so that shutdown never hangs).
func TestSubscribeEndsOnClose(t *testing.T) {
	e := newEnv(t, ds.Options{})
	alice := e.login("alice")
	alice.createGroup(mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := alice.api.Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: alice.group.GroupID()}))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Receive() || st.Msg().Seq != 0 {
		t.Fatalf("first message is not the marker: %v %v", st.Msg(), st.Err())
	}
	e.srv.Close()
	if st.Receive() {
		t.Fatal("received an entry from an empty log")
	}
	if c := connect.CodeOf(st.Err()); c != connect.CodeUnavailable {
		t.Fatalf("stream ended with %v; want unavailable", st.Err())
	}
}

// The rate limit: Burst requests pass, the next is RATE_LIMITED, and the
// bucket refills with time. It is per identity.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, ds.Options{RatePerSecond: 2, Burst: 5})
	ctx := t.Context()
	alice, bob := e.login("alice"), e.login("bob")
	count := func(u *user) error {
		_, err := u.api.CountKeyPackages(ctx, connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{}))
		return err
	}
	for i := range 5 {
		if err := count(alice); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	wantReason(t, count(alice), connect.CodeResourceExhausted, mlsdv1.Error_REASON_RATE_LIMITED)
	if err := count(bob); err != nil {
		t.Fatalf("bob is limited by alice's requests: %v", err)
	}
	e.clock.advance(time.Second) // two tokens
	for i := range 2 {
		if err := count(alice); err != nil {
			t.Fatalf("after a second, request %d: %v", i, err)
		}
	}
	wantReason(t, count(alice), connect.CodeResourceExhausted, mlsdv1.Error_REASON_RATE_LIMITED)
	// Unauthenticated requests are limited per address.
	for range 10 {
		alice.challenge()
		if _, err := alice.api.Challenge(ctx, connect.NewRequest(&mlsdv1.ChallengeRequest{})); ds.ErrorReason(err) != nil && ds.ErrorReason(err).Reason == mlsdv1.Error_REASON_RATE_LIMITED {
			return
		}
	}
	t.Fatal("Challenge was never rate limited")
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestHealthzAndMetrics(t *testing.T) {
	store := openSQLite(t)
	e := newEnvOn(t, store, ds.Options{})
	ctx := t.Context()
	alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	// A conflict for the counter.
	r1, _ := alice.group.SelfUpdate(ctx)
	r2, _ := bob.group.SelfUpdate(ctx)
	q1, q2 := alice.commitRequest(alice.group, r1), bob.commitRequest(bob.group, r2)
	if _, err := alice.postCommit(q1); err != nil {
		t.Fatal(err)
	}
	_, err := bob.postCommit(q2)
	wantReason(t, err, connect.CodeAborted, mlsdv1.Error_REASON_COMMIT_CONFLICT)

	code, body := get(t, e.url+"/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body = get(t, e.url+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`mlsd_requests_total{code="ok",rpc="Authenticate"} 2`,
		`mlsd_requests_total{code="aborted",rpc="PostCommit"} 1`,
		`mlsd_commit_conflicts_total 1`,
		`mlsd_groups_created_total 1`,
		`mlsd_messages_total{kind="commit"} 2`,
		`mlsd_messages_total{kind="welcome"} 1`,
		`mlsd_request_duration_seconds_count{rpc="PostCommit"} 3`,
		// Both accepted commits' GroupInfos were checked directly.
		`mlsd_groupinfo_checks_total{path="direct"} 2`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// A closed store fails the health check.
	store.Close()
	if code, _ := get(t, e.url+"/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with a closed store: %d", code)
	}
}

// One handler speaks gRPC (over h2c), gRPC-Web and Connect's JSON, with
// the same error details.
func TestProtocols(t *testing.T) {
	e := newEnv(t, ds.Options{})
	for name, opt := range map[string]connect.ClientOption{
		"grpc":         connect.WithGRPC(),
		"grpc-web":     connect.WithGRPCWeb(),
		"connect-json": connect.WithProtoJSON(),
	} {
		t.Run(name, func(t *testing.T) {
			u := e.login(name, opt)
			kp, _ := u.keyPackage(mls.KeyPackageOptions{})
			u.publish(kp)
			res, err := u.api.CountKeyPackages(t.Context(), connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{}))
			if err != nil || res.Msg.Count != 1 {
				t.Fatalf("count %v %v", res, err)
			}
			_, err = u.api.FetchKeyPackage(t.Context(), connect.NewRequest(&mlsdv1.FetchKeyPackageRequest{Identity: []byte("nobody"), CipherSuite: uint32(suite)}))
			wantReason(t, err, connect.CodeNotFound, mlsdv1.Error_REASON_NO_KEY_PACKAGE)
		})
	}
}

// Listen serves on a loopback port until stopped.
func TestListen(t *testing.T) {
	store := openSQLite(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	url, stop, err := ds.Listen(ctx, "127.0.0.1:0", store, ds.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("url %q", url)
	}
	if code, _ := get(t, url+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	c := &http.Client{Timeout: 2 * time.Second}
	if res, err := c.Get(url + "/healthz"); err == nil {
		res.Body.Close()
		t.Fatal("server still answers after stop")
	}
}
