package ds_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/ds"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

func TestAuthenticate(t *testing.T) {
	e := newEnv(t, ds.Options{SessionTTL: time.Hour})
	ctx := t.Context()

	t.Run("good", func(t *testing.T) {
		u := e.newUser("alice")
		ch := u.challenge()
		if ch.ServerName != "mlsd-test" || len(ch.Challenge) != 32 {
			t.Fatalf("challenge %x for %q", ch.Challenge, ch.ServerName)
		}
		res, err := u.api.Authenticate(ctx, connect.NewRequest(&mlsdv1.AuthenticateRequest{Challenge: ch.Challenge, Signature: u.sign(ch.Challenge, ch.ServerName)}))
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Msg.Identity) != "alice" || len(res.Msg.Token) < 40 {
			t.Fatalf("identity %q token %q", res.Msg.Identity, res.Msg.Token)
		}
		u.token = res.Msg.Token
		if _, err := u.api.CountKeyPackages(ctx, connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{})); err != nil {
			t.Fatalf("authenticated call: %v", err)
		}
		// The token is stored hashed: a replica with an empty cache finds it.
		e2 := newEnvOn(t, e.store, ds.Options{})
		u2 := e2.newUser("alice")
		u2.token = u.token
		if _, err := u2.api.CountKeyPackages(ctx, connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{})); err != nil {
			t.Fatalf("token at a second server on the same store: %v", err)
		}
	})

	t.Run("wrong signature", func(t *testing.T) {
		u, mallory := e.newUser("bob"), e.newUser("mallory")
		ch := u.challenge()
		// Signed by another key.
		_, err := u.api.Authenticate(ctx, connect.NewRequest(&mlsdv1.AuthenticateRequest{Challenge: ch.Challenge, Signature: mallory.sign(ch.Challenge, ch.ServerName)}))
		wantReason(t, err, connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
		// Signed for another server name.
		ch = u.challenge()
		_, err = u.api.Authenticate(ctx, connect.NewRequest(&mlsdv1.AuthenticateRequest{Challenge: ch.Challenge, Signature: u.sign(ch.Challenge, "other-server")}))
		wantReason(t, err, connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
	})

	t.Run("replayed challenge", func(t *testing.T) {
		u := e.newUser("carol")
		ch := u.challenge()
		req := &mlsdv1.AuthenticateRequest{Challenge: ch.Challenge, Signature: u.sign(ch.Challenge, ch.ServerName)}
		if _, err := u.api.Authenticate(ctx, connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
		_, err := u.api.Authenticate(ctx, connect.NewRequest(req))
		wantReason(t, err, connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
	})

	t.Run("expired challenge", func(t *testing.T) {
		u := e.newUser("dave")
		ch := u.challenge()
		e.clock.advance(ds.DefaultChallengeTTL + time.Second)
		_, err := u.api.Authenticate(ctx, connect.NewRequest(&mlsdv1.AuthenticateRequest{Challenge: ch.Challenge, Signature: u.sign(ch.Challenge, ch.ServerName)}))
		wantReason(t, err, connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
	})

	t.Run("expired token", func(t *testing.T) {
		u := e.login("erin")
		if _, err := u.api.CountKeyPackages(ctx, connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{})); err != nil {
			t.Fatal(err)
		}
		e.clock.advance(time.Hour + time.Second)
		_, err := u.api.CountKeyPackages(ctx, connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{}))
		wantReason(t, err, connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
	})

	t.Run("no or unknown token", func(t *testing.T) {
		u := e.newUser("frank")
		_, err := u.api.CountKeyPackages(ctx, connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{}))
		wantReason(t, err, connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
		u.token = "not-a-token"
		_, err = u.api.FetchWelcomes(ctx, connect.NewRequest(&mlsdv1.FetchWelcomesRequest{}))
		wantReason(t, err, connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
		// A stream too.
		st, err := u.api.Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: []byte("g")}))
		if err != nil {
			t.Fatal(err)
		}
		if st.Receive() {
			t.Fatal("unauthenticated stream received a message")
		}
		wantReason(t, st.Err(), connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
	})

	t.Run("bad credential", func(t *testing.T) {
		u := e.newUser("gina")
		_, err := u.api.Challenge(ctx, connect.NewRequest(&mlsdv1.ChallengeRequest{Credential: []byte{0xff}, SignatureKey: u.sigKey(), CipherSuite: uint32(suite)}))
		wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED)
		_, err = u.api.Challenge(ctx, connect.NewRequest(&mlsdv1.ChallengeRequest{Credential: u.credBytes(), SignatureKey: u.sigKey(), CipherSuite: 0x7777}))
		wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED)
	})
}

// The Validator (the Authentication Service) decides who may
// authenticate, and whose credentials a group may hold.
func TestValidator(t *testing.T) {
	e := newEnv(t, ds.Options{Validator: credential.ValidatorFunc(func(c credential.Credential, _ []byte) error {
		if string(c.Identity()) == "mallory" {
			return errors.New("mallory is banned")
		}
		return nil
	})})
	ctx := t.Context()
	m := e.newUser("mallory")
	_, err := m.api.Challenge(ctx, connect.NewRequest(&mlsdv1.ChallengeRequest{Credential: m.credBytes(), SignatureKey: m.sigKey(), CipherSuite: uint32(suite)}))
	wantReason(t, err, connect.CodeUnauthenticated, mlsdv1.Error_REASON_UNAUTHENTICATED)
	if err := e.newUser("alice").authenticate(); err != nil {
		t.Fatal(err)
	}
}

func TestKeyPackages(t *testing.T) { eachBackend(t, testKeyPackages) }

func testKeyPackages(t *testing.T, b backend) {
	e := newEnvB(t, b, ds.Options{})
	ctx := t.Context()
	alice, bob := e.login("alice"), e.login("bob")

	kp1, k1 := bob.keyPackage(mls.KeyPackageOptions{})
	kp2, k2 := bob.keyPackage(mls.KeyPackageOptions{})
	lr, klr := bob.keyPackage(mls.KeyPackageOptions{LastResort: true})
	res := bob.publish(kp1, kp2, lr)
	if len(res.Refs) != 3 || !bytes.Equal(res.Refs[0], k1.Ref()) || !bytes.Equal(res.Refs[2], klr.Ref()) {
		t.Fatalf("refs %x", res.Refs)
	}
	cnt, err := bob.api.CountKeyPackages(ctx, connect.NewRequest(&mlsdv1.CountKeyPackagesRequest{CipherSuite: uint32(suite)}))
	if err != nil {
		t.Fatal(err)
	}
	if cnt.Msg.Count != 2 || !cnt.Msg.HasLastResort {
		t.Fatalf("count %d last resort %v; want 2 true", cnt.Msg.Count, cnt.Msg.HasLastResort)
	}

	// Handed out once each, then the last-resort one, again and again.
	seen := map[string]bool{}
	for range 2 {
		kp, err := alice.fetchKP(bob)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(kp.Ref())] {
			t.Fatalf("key package %x handed out twice", kp.Ref())
		}
		seen[string(kp.Ref())] = true
	}
	if !seen[string(k1.Ref())] || !seen[string(k2.Ref())] {
		t.Fatalf("handed out %v, not bob's two key packages", seen)
	}
	for range 2 {
		r, err := alice.api.FetchKeyPackage(ctx, connect.NewRequest(&mlsdv1.FetchKeyPackageRequest{Identity: []byte("bob"), CipherSuite: uint32(suite)}))
		if err != nil {
			t.Fatal(err)
		}
		kp, err := mls.ParseKeyPackage(r.Msg.KeyPackage)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Msg.LastResort || !bytes.Equal(kp.Ref(), klr.Ref()) {
			t.Fatalf("got %x last resort %v; want the last-resort key package", kp.Ref(), r.Msg.LastResort)
		}
	}
	_, err = alice.fetchKP(alice)
	wantReason(t, err, connect.CodeNotFound, mlsdv1.Error_REASON_NO_KEY_PACKAGE)

	t.Run("expired not handed out", func(t *testing.T) {
		carol := e.login("carol")
		short, _ := carol.keyPackage(mls.KeyPackageOptions{Lifetime: time.Hour})
		carol.publish(short)
		e.clock.advance(2 * time.Hour)
		_, err := alice.fetchKP(carol)
		wantReason(t, err, connect.CodeNotFound, mlsdv1.Error_REASON_NO_KEY_PACKAGE)
		// And it is refused when published expired.
		_, err = carol.api.PublishKeyPackages(ctx, connect.NewRequest(&mlsdv1.PublishKeyPackagesRequest{KeyPackages: [][]byte{short}}))
		wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE)
	})

	t.Run("wrong owner", func(t *testing.T) {
		kp, _ := bob.keyPackage(mls.KeyPackageOptions{})
		_, err := alice.api.PublishKeyPackages(ctx, connect.NewRequest(&mlsdv1.PublishKeyPackagesRequest{KeyPackages: [][]byte{kp}}))
		wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_OWNER)
		n, _, err := e.store.CountKeyPackages(ctx, []byte("alice"), uint16(suite), e.clock.now())
		if err != nil || n != 0 {
			t.Fatalf("alice has %d key packages (%v) after a refused publish", n, err)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		good, _ := alice.keyPackage(mls.KeyPackageOptions{})
		for name, b := range map[string][]byte{
			"garbage":   {1, 2, 3},
			"truncated": good[:len(good)-10],
		} {
			_, err := alice.api.PublishKeyPackages(ctx, connect.NewRequest(&mlsdv1.PublishKeyPackagesRequest{KeyPackages: [][]byte{good, b}}))
			wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED)
			_ = name
		}
		// A flipped signature byte: decodes, but does not verify.
		bad := bytes.Clone(good)
		bad[len(bad)-1] ^= 1
		_, err := alice.api.PublishKeyPackages(ctx, connect.NewRequest(&mlsdv1.PublishKeyPackagesRequest{KeyPackages: [][]byte{bad}}))
		wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE)
		// None of the batch was stored.
		n, _, err := e.store.CountKeyPackages(ctx, []byte("alice"), uint16(suite), e.clock.now())
		if err != nil || n != 0 {
			t.Fatalf("alice has %d key packages (%v) after refused publishes", n, err)
		}
	})
}

// A group's life through the server: create, add by Welcome, messages in
// order, fetch, cursor.
func TestGroupLifecycle(t *testing.T) { eachBackend(t, testGroupLifecycle) }

func testGroupLifecycle(t *testing.T, b backend) {
	e := newEnvB(t, b, ds.Options{})
	ctx := t.Context()
	alice, bob := e.login("alice"), e.login("bob")
	kp, _ := bob.keyPackage(mls.KeyPackageOptions{})
	bob.publish(kp)
	g := alice.createGroup(mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)

	gi, err := alice.api.GetGroupInfo(ctx, connect.NewRequest(&mlsdv1.GetGroupInfoRequest{GroupId: g.GroupID()}))
	if err != nil {
		t.Fatal(err)
	}
	if gi.Msg.Epoch != 0 || gi.Msg.LastSeq != 0 || gi.Msg.HandshakeMode != mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC {
		t.Fatalf("GetGroupInfo: %v", gi.Msg)
	}
	// bob is not a member yet.
	_, err = bob.api.GetGroupInfo(ctx, connect.NewRequest(&mlsdv1.GetGroupInfoRequest{GroupId: g.GroupID()}))
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	// Registering it again fails.
	gim, _ := g.ExportGroupInfo(true)
	_, err = alice.api.CreateGroup(ctx, connect.NewRequest(&mlsdv1.CreateGroupRequest{GroupInfo: marshal(t, gim)}))
	wantReason(t, err, connect.CodeAlreadyExists, mlsdv1.Error_REASON_GROUP_EXISTS)

	alice.add(bob)
	if bob.group.Epoch() != 1 || len(bob.group.Members()) != 2 {
		t.Fatalf("bob at epoch %d with %d members", bob.group.Epoch(), len(bob.group.Members()))
	}
	for i, u := range []*user{alice, bob, alice} {
		seq, err := u.send("hello " + u.name)
		if err != nil {
			t.Fatalf("%s send: %v", u.name, err)
		}
		if seq != uint64(i+2) {
			t.Errorf("message %d got seq %d; want %d", i, seq, i+2)
		}
	}
	f := bob.fetch(1)
	if len(f.Messages) != 3 || f.LastSeq != 4 || f.Epoch != 1 {
		t.Fatalf("fetched %d messages, last seq %d epoch %d", len(f.Messages), f.LastSeq, f.Epoch)
	}
	want := []string{"alice", "bob", "alice"}
	for i, m := range f.Messages {
		if m.Seq != uint64(i+2) || m.Kind != mlsdv1.Kind_KIND_APPLICATION || string(m.Sender) != want[i] || m.Epoch != 1 {
			t.Errorf("entry %d: seq %d kind %v sender %q epoch %d", i, m.Seq, m.Kind, m.Sender, m.Epoch)
		}
		msg, err := mls.ParseMessage(m.Message)
		if err != nil {
			t.Fatal(err)
		}
		if want[i] == "bob" {
			continue
		}
		p, err := bob.group.Process(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		if string(p.ApplicationData) != "hello alice" {
			t.Errorf("decrypted %q", p.ApplicationData)
		}
	}
	// A page of at most limit entries.
	page, err := bob.api.FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: g.GroupID(), AfterSeq: 1, Limit: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Msg.Messages) != 2 || page.Msg.Messages[0].Seq != 2 || page.Msg.Messages[1].Seq != 3 || page.Msg.LastSeq != 4 {
		t.Fatalf("page of 2 after 1: %d entries, last seq %d", len(page.Msg.Messages), page.Msg.LastSeq)
	}
	// The commit is entry 1.
	all := alice.fetch(0)
	if all.Messages[0].Kind != mlsdv1.Kind_KIND_COMMIT || all.Messages[0].Epoch != 0 {
		t.Errorf("entry 1: kind %v epoch %d", all.Messages[0].Kind, all.Messages[0].Epoch)
	}

	// Cursor.
	if _, err := bob.api.Ack(ctx, connect.NewRequest(&mlsdv1.AckRequest{GroupId: g.GroupID(), Seq: 3})); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.api.Ack(ctx, connect.NewRequest(&mlsdv1.AckRequest{GroupId: g.GroupID(), Seq: 2})); err != nil {
		t.Fatal(err)
	}
	cur, err := bob.api.GetCursor(ctx, connect.NewRequest(&mlsdv1.GetCursorRequest{GroupId: g.GroupID()}))
	if err != nil || cur.Msg.Seq != 3 {
		t.Fatalf("cursor %v %v; want 3 (never backwards)", cur, err)
	}
	_, err = bob.api.Ack(ctx, connect.NewRequest(&mlsdv1.AckRequest{GroupId: g.GroupID(), Seq: 99}))
	wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED)

	// An unknown group.
	_, err = bob.api.FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: []byte("nope")}))
	wantReason(t, err, connect.CodeNotFound, mlsdv1.Error_REASON_UNKNOWN_GROUP)
}

// Expired key packages are deleted by the server's timer.
func TestPruneKeyPackages(t *testing.T) {
	e := newEnv(t, ds.Options{PruneInterval: 10 * time.Millisecond})
	ctx := t.Context()
	bob := e.login("bob")
	short, k := bob.keyPackage(mls.KeyPackageOptions{Lifetime: time.Hour})
	bob.publish(short)
	if _, err := e.store.KeyPackageOwner(ctx, k.Ref()); err != nil {
		t.Fatalf("published key package: %v", err)
	}
	e.clock.advance(2 * time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := e.store.KeyPackageOwner(ctx, k.Ref())
		if errors.Is(err, ds.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("expired key package still stored after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CreateGroup refuses bad GroupInfos and creators who are not members,
// and registers nothing.
func TestCreateGroupRefused(t *testing.T) {
	e := newEnv(t, ds.Options{})
	ctx := t.Context()
	alice, bob := e.login("alice"), e.login("bob")
	g, err := alice.mc.CreateGroup(ctx, suite, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	gi := marshal(t, must(g.ExportGroupInfo(false)))
	giTree := marshal(t, must(g.ExportGroupInfo(true)))
	tree := must(g.ExportRatchetTree())
	kp, _ := bob.keyPackage(mls.KeyPackageOptions{})
	bad := bytes.Clone(gi)
	bad[len(bad)-3] ^= 1
	for _, c := range []struct {
		name   string
		u      *user
		req    *mlsdv1.CreateGroupRequest
		code   connect.Code
		reason mlsdv1.Error_Reason
	}{
		{"not a member", bob, &mlsdv1.CreateGroupRequest{GroupInfo: giTree}, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER},
		{"garbage", alice, &mlsdv1.CreateGroupRequest{GroupInfo: []byte{0, 1, 0, 4, 1}}, connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
		{"key package", alice, &mlsdv1.CreateGroupRequest{GroupInfo: kp}, connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
		{"no tree", alice, &mlsdv1.CreateGroupRequest{GroupInfo: gi}, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"forged signature", alice, &mlsdv1.CreateGroupRequest{GroupInfo: bad, RatchetTree: tree}, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"bad mode", alice, &mlsdv1.CreateGroupRequest{GroupInfo: giTree, HandshakeMode: 7}, connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
	} {
		_, err := c.u.api.CreateGroup(ctx, connect.NewRequest(c.req))
		wantReason(t, err, c.code, c.reason)
		if _, err := e.store.GetGroup(ctx, g.GroupID()); !errors.Is(err, ds.ErrNotFound) {
			t.Fatalf("%s: group registered (%v)", c.name, err)
		}
	}
	// The GroupInfo with the tree extension registers the group.
	if _, err := alice.api.CreateGroup(ctx, connect.NewRequest(&mlsdv1.CreateGroupRequest{GroupInfo: giTree})); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
