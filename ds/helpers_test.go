package ds_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/jackc/pgx/v5"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/store/postgres"
	"github.com/mlskit/mls/ds/store/sqlite"
	"github.com/mlskit/mls/ds/store/storetest"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/proto/mlsd/v1/mlsdv1connect"
	"github.com/mlskit/mls/storage/memory"
)

const suite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// env is one mlsd Server on a real SQLite store, served over HTTP on a
// loopback port.
type env struct {
	t     testing.TB
	store ds.Store
	srv   *ds.Server
	url   string
	hc    *http.Client
	clock *clock

	reopen func() ds.Store
}

// clock is a settable clock shared by the server and the MLS clients.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backend is a Store implementation the tests run on: open returns a fresh
// store and a function that opens another Store on the same database, as
// another mlsd replica (or process) would.
type backend struct {
	name string
	open func(t testing.TB) (ds.Store, func() ds.Store)
}

var backends = []backend{
	{"sqlite", func(t testing.TB) (ds.Store, func() ds.Store) {
		p := filepath.Join(t.TempDir(), "mlsd.db")
		open := func() ds.Store {
			s, err := sqlite.Open(t.Context(), p)
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	}},
	// Skipped with a message when MLSD_TEST_POSTGRES is unset (a failure
	// under CI=true): see storetest.PostgresDSN.
	{"postgres", func(t testing.TB) (ds.Store, func() ds.Store) {
		dsn := postgresDSN(t)
		open := func() ds.Store {
			s, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	}},
}

// postgresDSN is storetest.PostgresDSN for tests, and for benchmarks a
// fresh database made the same way (storetest's harness takes a *testing.T).
func postgresDSN(t testing.TB) string {
	if tt, ok := t.(*testing.T); ok {
		return storetest.PostgresDSN(tt)
	}
	admin := os.Getenv(storetest.PostgresEnv)
	if admin == "" {
		t.Skip(storetest.PostgresEnv + " is not set: no PostgreSQL server for this benchmark")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("mlsd_bench_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil || u.Scheme == "" {
		t.Fatalf("%s must be a URL for benchmarks: %v", storetest.PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// eachBackend runs f as a subtest per backend.
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// newEnvB starts a server on a fresh store of backend b.
func newEnvB(t testing.TB, b backend, opts ds.Options) *env {
	t.Helper()
	store, reopen := b.open(t)
	e := newEnvOn(t, store, opts)
	e.reopen = reopen
	return e
}

// replica starts another server on another Store of e's database.
func (e *env) replica(opts ds.Options) *env {
	e.t.Helper()
	if e.reopen == nil {
		e.t.Fatal("env has no reopen")
	}
	if opts.Now == nil {
		opts.Now = e.clock.now
	}
	r := newEnvOn(e.t, e.reopen(), opts)
	r.reopen = e.reopen
	r.clock = e.clock
	return r
}

func openSQLite(t testing.TB) ds.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mlsd.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newEnv starts a server with opts (Now and, unless set, the rate limit
// are filled in) on a fresh SQLite store.
func newEnv(t testing.TB, opts ds.Options) *env {
	t.Helper()
	return newEnvOn(t, openSQLite(t), opts)
}

func newEnvOn(t testing.TB, store ds.Store, opts ds.Options) *env {
	t.Helper()
	c := &clock{t: time.Now()}
	if opts.Now == nil {
		opts.Now = c.now
	}
	if opts.RatePerSecond == 0 {
		opts.RatePerSecond = -1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.ServerName == "" {
		opts.ServerName = "mlsd-test"
	}
	srv, err := ds.NewServer(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := ds.NewHTTPServer(srv.Handler())
	go hs.Serve(ln)
	t.Cleanup(func() {
		if err := ds.Shutdown(hs, srv, 2*time.Second); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: p}}
	t.Cleanup(hc.CloseIdleConnections)
	return &env{t: t, store: store, srv: srv, url: "http://" + ln.Addr().String(), hc: hc, clock: c}
}

// bearer adds the Authorization header to every call of a client.
type bearer struct{ token *string }

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if *b.token != "" {
			req.Header().Set("Authorization", "Bearer "+*b.token)
		}
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if *b.token != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+*b.token)
		}
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// user is one MLS client with its own Connect client of the server.
type user struct {
	t     testing.TB
	e     *env
	name  string
	mc    *mls.Client
	api   mlsdv1connect.DeliveryServiceClient
	token string
	id    []byte
	group *mls.Group
	// private: send handshakes as PrivateMessages in the groups it joins.
	private bool
}

func (e *env) newUser(name string, opts ...connect.ClientOption) *user {
	e.t.Helper()
	mc, err := mls.NewClient(e.t.Context(), memory.New(), credential.NewBasic([]byte(name)), nil, credential.AcceptAll,
		mls.ClientOptions{Now: e.clock.now})
	if err != nil {
		e.t.Fatal(err)
	}
	u := &user{t: e.t, e: e, name: name, mc: mc}
	u.api = mlsdv1connect.NewDeliveryServiceClient(e.hc, e.url, append(opts, connect.WithInterceptors(bearer{&u.token}))...)
	return u
}

// login is newUser followed by a successful authentication.
func (e *env) login(name string, opts ...connect.ClientOption) *user {
	e.t.Helper()
	u := e.newUser(name, opts...)
	if err := u.authenticate(); err != nil {
		e.t.Fatalf("authenticate %s: %v", name, err)
	}
	return u
}

func (u *user) credBytes() []byte {
	b, err := u.mc.Credential().MarshalBinary()
	if err != nil {
		u.t.Fatal(err)
	}
	return b
}

func (u *user) sigKey() []byte {
	k, err := u.mc.SignatureKey(suite)
	if err != nil {
		u.t.Fatal(err)
	}
	return k
}

func (u *user) challenge() *mlsdv1.ChallengeResponse {
	u.t.Helper()
	res, err := u.api.Challenge(u.t.Context(), connect.NewRequest(&mlsdv1.ChallengeRequest{
		Credential: u.credBytes(), SignatureKey: u.sigKey(), CipherSuite: uint32(suite),
	}))
	if err != nil {
		u.t.Fatalf("Challenge: %v", err)
	}
	return res.Msg
}

func (u *user) sign(challenge []byte, serverName string) []byte {
	s, err := ciphersuite.Lookup(suite)
	if err != nil {
		u.t.Fatal(err)
	}
	sig, err := s.SignWithLabel(u.mc.Signer(), ds.AuthLabel, ds.AuthContent(challenge, serverName))
	if err != nil {
		u.t.Fatal(err)
	}
	return sig
}

func (u *user) authenticate() error {
	ch := u.challenge()
	res, err := u.api.Authenticate(u.t.Context(), connect.NewRequest(&mlsdv1.AuthenticateRequest{
		Challenge: ch.Challenge, Signature: u.sign(ch.Challenge, ch.ServerName),
	}))
	if err != nil {
		return err
	}
	u.token, u.id = res.Msg.Token, res.Msg.Identity
	return nil
}

// keyPackage makes a key package and returns its MLSMessage.
func (u *user) keyPackage(opts mls.KeyPackageOptions) ([]byte, *mls.KeyPackage) {
	u.t.Helper()
	kp, err := u.mc.NewKeyPackage(u.t.Context(), suite, opts)
	if err != nil {
		u.t.Fatal(err)
	}
	b, err := kp.MarshalMessage()
	if err != nil {
		u.t.Fatal(err)
	}
	return b, kp
}

func (u *user) publish(kps ...[]byte) *mlsdv1.PublishKeyPackagesResponse {
	u.t.Helper()
	res, err := u.api.PublishKeyPackages(u.t.Context(), connect.NewRequest(&mlsdv1.PublishKeyPackagesRequest{KeyPackages: kps}))
	if err != nil {
		u.t.Fatalf("%s PublishKeyPackages: %v", u.name, err)
	}
	return res.Msg
}

func (u *user) fetchKP(who *user) (*mls.KeyPackage, error) {
	res, err := u.api.FetchKeyPackage(u.t.Context(), connect.NewRequest(&mlsdv1.FetchKeyPackageRequest{Identity: []byte(who.name), CipherSuite: uint32(suite)}))
	if err != nil {
		return nil, err
	}
	return mls.ParseKeyPackage(res.Msg.KeyPackage)
}

func marshal(t testing.TB, m *mls.Message) []byte {
	t.Helper()
	if m == nil {
		return nil
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// createGroup creates an MLS group and registers it.
func (u *user) createGroup(mode mlsdv1.HandshakeMode, allowExternal bool) *mls.Group {
	u.t.Helper()
	cfg := mls.GroupConfig{}
	if mode == mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED {
		cfg.WireFormatPolicy.OutgoingPrivate = true
	}
	g, err := u.mc.CreateGroup(u.t.Context(), suite, cfg)
	if err != nil {
		u.t.Fatal(err)
	}
	gi, err := g.ExportGroupInfo(false)
	if err != nil {
		u.t.Fatal(err)
	}
	tree, err := g.ExportRatchetTree()
	if err != nil {
		u.t.Fatal(err)
	}
	if _, err := u.api.CreateGroup(u.t.Context(), connect.NewRequest(&mlsdv1.CreateGroupRequest{
		GroupInfo: marshal(u.t, gi), RatchetTree: tree, HandshakeMode: mode, AllowExternalJoins: allowExternal,
	})); err != nil {
		u.t.Fatalf("CreateGroup: %v", err)
	}
	u.group = g
	return g
}

// commitRequest builds the PostCommit request of a commit result: the
// GroupInfo of the new epoch and its tree (from the pending commit).
func (u *user) commitRequest(g *mls.Group, res *mls.CommitResult) *mlsdv1.PostCommitRequest {
	u.t.Helper()
	tree, err := g.PendingCommit().RatchetTree()
	if err != nil {
		u.t.Fatal(err)
	}
	req := &mlsdv1.PostCommitRequest{
		GroupId: g.GroupID(), Commit: marshal(u.t, res.Commit), GroupInfo: marshal(u.t, res.GroupInfo), RatchetTree: tree,
	}
	if res.Welcome != nil {
		req.Welcome, req.WelcomeRatchetTree = marshal(u.t, res.Welcome), tree
	}
	return req
}

func (u *user) postCommit(req *mlsdv1.PostCommitRequest) (*mlsdv1.PostCommitResponse, error) {
	res, err := u.api.PostCommit(u.t.Context(), connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

// commit posts a commit of u.group and merges it once accepted.
func (u *user) commit(res *mls.CommitResult, err error) *mlsdv1.PostCommitResponse {
	u.t.Helper()
	if err != nil {
		u.t.Fatal(err)
	}
	out, err := u.postCommit(u.commitRequest(u.group, res))
	if err != nil {
		u.t.Fatalf("%s PostCommit: %v", u.name, err)
	}
	if err := u.group.MergePendingCommit(u.t.Context()); err != nil {
		u.t.Fatal(err)
	}
	return out
}

// join takes the first Welcome in u's mailbox, joins, and acks it.
func (u *user) join() *mls.Group {
	u.t.Helper()
	res, err := u.api.FetchWelcomes(u.t.Context(), connect.NewRequest(&mlsdv1.FetchWelcomesRequest{}))
	if err != nil {
		u.t.Fatal(err)
	}
	if len(res.Msg.Welcomes) == 0 {
		u.t.Fatalf("%s has no Welcome", u.name)
	}
	w := res.Msg.Welcomes[0]
	msg, err := mls.ParseMessage(w.Welcome)
	if err != nil {
		u.t.Fatal(err)
	}
	opts := mls.WelcomeOptions{RatchetTree: w.RatchetTree}
	opts.WireFormatPolicy.OutgoingPrivate = u.private
	sw, err := u.mc.StageWelcome(u.t.Context(), msg, opts)
	if err != nil {
		u.t.Fatal(err)
	}
	g, err := sw.Join(u.t.Context())
	if err != nil {
		u.t.Fatal(err)
	}
	if _, err := u.api.AckWelcome(u.t.Context(), connect.NewRequest(&mlsdv1.AckWelcomeRequest{Id: w.Id})); err != nil {
		u.t.Fatal(err)
	}
	u.group = g
	return g
}

// add has u fetch who's key package, commit the add, and who join.
func (u *user) add(who *user) {
	u.t.Helper()
	kp, err := u.fetchKP(who)
	if err != nil {
		u.t.Fatalf("fetch %s's key package: %v", who.name, err)
	}
	u.commit(u.group.AddMembers(u.t.Context(), kp))
	who.join()
}

func (u *user) fetch(after uint64) *mlsdv1.FetchMessagesResponse {
	u.t.Helper()
	res, err := u.api.FetchMessages(u.t.Context(), connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: u.group.GroupID(), AfterSeq: after}))
	if err != nil {
		u.t.Fatalf("%s FetchMessages: %v", u.name, err)
	}
	return res.Msg
}

// catchUp processes every entry after the group's own commits.
func (u *user) process(envs []*mlsdv1.Envelope) {
	u.t.Helper()
	for _, e := range envs {
		if e.Epoch < u.group.Epoch() {
			continue
		}
		msg, err := mls.ParseMessage(e.Message)
		if err != nil {
			u.t.Fatal(err)
		}
		p, err := u.group.Process(u.t.Context(), msg)
		if err != nil {
			u.t.Fatalf("%s processing seq %d: %v", u.name, e.Seq, err)
		}
		switch {
		case p.Commit != nil:
			if err := u.group.MergeStagedCommit(u.t.Context(), p.Commit); err != nil {
				u.t.Fatal(err)
			}
		case p.Proposal != nil:
			if err := u.group.StorePendingProposal(u.t.Context(), p.Proposal); err != nil {
				u.t.Fatal(err)
			}
		}
	}
}

func (u *user) send(text string) (uint64, error) {
	msg, err := u.group.CreateMessage(u.t.Context(), []byte(text))
	if err != nil {
		u.t.Fatal(err)
	}
	res, err := u.api.PostMessage(u.t.Context(), connect.NewRequest(&mlsdv1.PostMessageRequest{GroupId: u.group.GroupID(), Message: marshal(u.t, msg)}))
	if err != nil {
		return 0, err
	}
	return res.Msg.Seq, nil
}

// wantReason checks that err is a Connect error with the code and the
// mlsd.v1.Error reason.
func wantReason(t testing.TB, err error, code connect.Code, reason mlsdv1.Error_Reason) *mlsdv1.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %v %v", code, reason)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a Connect error", err)
	}
	if ce.Code() != code {
		t.Errorf("code %v (%v); want %v", ce.Code(), err, code)
	}
	d := ds.ErrorReason(err)
	if d == nil {
		t.Fatalf("error %v has no mlsd.v1.Error detail", err)
	}
	if d.Reason != reason {
		t.Errorf("reason %v (%s); want %v", d.Reason, d.Detail, reason)
	}
	return d
}

// snapshot is what the Store holds of a group, to check that a refused
// request changed nothing.
type snapshot struct {
	group   ds.Group
	entries []ds.Entry
}

func (e *env) snap(groupID []byte) snapshot {
	e.t.Helper()
	g, err := e.store.GetGroup(e.t.Context(), groupID)
	if err != nil {
		e.t.Fatal(err)
	}
	es, err := e.store.Entries(e.t.Context(), groupID, 0, 10000)
	if err != nil {
		e.t.Fatal(err)
	}
	return snapshot{g, es}
}

func (e *env) unchanged(before snapshot) {
	e.t.Helper()
	after := e.snap(before.group.ID)
	if after.group.State.Epoch != before.group.State.Epoch || after.group.LastSeq != before.group.LastSeq ||
		!bytes.Equal(after.group.State.GroupInfo, before.group.State.GroupInfo) || !bytes.Equal(after.group.State.RatchetTree, before.group.State.RatchetTree) {
		e.t.Errorf("group changed: epoch %d→%d, last seq %d→%d", before.group.State.Epoch, after.group.State.Epoch, before.group.LastSeq, after.group.LastSeq)
	}
	if len(after.entries) != len(before.entries) {
		e.t.Errorf("log changed: %d entries, was %d", len(after.entries), len(before.entries))
	}
}

// quiet is a logger for benchmarks: warnings and errors only.
func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
