package main

// Fault tests of mlsd as a real process over 127.0.0.1 (RFC 9750, Section
// 5: a delivery service that loses nothing, duplicates nothing, and accepts
// one commit per epoch): the binaries are built once per test binary, every
// loop is bounded in count and time, and the sizes shrink under -short.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/ds/dsclient"
	"github.com/mlskit/mls/ds/store/storetest"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/storage/memory"
)

// --- Binaries ---------------------------------------------------------------

var (
	binMu    sync.Mutex
	binDir   string
	binBuilt = map[string]error{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBin builds cmd/NAME (mlsd or mls) once per test binary and returns
// its path.
func buildBin(t *testing.T, name string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "mlsd-fault-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	path := filepath.Join(binDir, name)
	err, done := binBuilt[name]
	if !done {
		out, berr := exec.Command("go", "build", "-o", path, "github.com/mlskit/mls/cmd/"+name).CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build cmd/%s: %v\n%s", name, berr, out)
		}
		binBuilt[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// --- mlsd processes ---------------------------------------------------------

var listeningLine = regexp.MustCompile(`^mlsd listening on (http://127\.0\.0\.1:(\d+))$`)

// lockedBuffer collects a process's standard error.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines splits what is written into lines, calls fn with each.
type lines struct {
	mu      sync.Mutex
	partial []byte
	fn      func(string)
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.fn(line)
	}
}

// mlsdProc is a running mlsd.
type mlsdProc struct {
	cmd    *exec.Cmd
	url    string
	addr   string // 127.0.0.1:PORT
	stderr *lockedBuffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// startMlsd starts mlsd with args and waits (at most 30 s) for its
// "listening" line. It is killed when t ends, if still running; its log is
// shown if t failed.
func startMlsd(t *testing.T, bin string, args ...string) *mlsdProc {
	t.Helper()
	p, err := launchMlsd(t, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// kill SIGKILLs mlsd and waits for it to exit.
func (p *mlsdProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("mlsd still running 10 s after SIGKILL")
	}
}

// term stops mlsd with SIGTERM and requires a clean exit.
func (p *mlsdProc) term(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("mlsd exited with %v after SIGTERM", p.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("mlsd still running 15 s after SIGTERM")
	}
}

// healthz asks url/healthz once.
func healthz(url string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url + "/healthz")
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s", res.Status)
	}
	return nil
}

// waitHealthy polls /healthz until it answers 200 or limit passes.
func waitHealthy(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := healthz(url)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// --- In-process members -----------------------------------------------------

// fmember is a client in this process (dsclient, MLS state in memory).
type fmember struct {
	name string
	c    *dsclient.Client
	g    *mls.Group
}

func newFMember(t *testing.T, url, name string, opts dsclient.Options) *fmember {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	mc, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dsclient.Dial(ctx, url, mc, opts)
	if err != nil {
		t.Fatalf("%s: Dial %s: %v", name, url, err)
	}
	return &fmember{name: name, c: c}
}

// makeGroup has ms[0] create group gid and add the others in one commit;
// they join from their Welcomes.
func makeGroup(t *testing.T, gid string, ms ...*fmember) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	first := ms[0]
	g, err := first.c.MLS().CreateGroup(ctx, first.c.Suite(), mls.GroupConfig{GroupID: []byte(gid)})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.c.CreateGroup(ctx, g, dsclient.CreateOptions{}); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	first.g = g
	var kps []*mls.KeyPackage
	for _, m := range ms[1:] {
		if _, err := m.c.PublishKeyPackages(ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		kp, err := first.c.FetchKeyPackage(ctx, []byte(m.name))
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	if len(kps) == 0 {
		return
	}
	if _, err := first.c.Commit(ctx, g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		return g.AddMembers(ctx, kps...)
	}, nil); err != nil {
		t.Fatalf("adding the members: %v", err)
	}
	for _, m := range ms[1:] {
		js, err := m.c.Join(ctx, mls.JoinConfig{})
		if err != nil || len(js) != 1 || js[0].Err != nil {
			t.Fatalf("%s: Join: %v, %+v", m.name, err, js)
		}
		m.g = js[0].Group
	}
}

// readLog reads a group's whole log as member c sees it from the service,
// checking that the seqs run 1, 2, 3... without a gap.
func readLog(t *testing.T, c *dsclient.Client, gid []byte) []*mlsdv1.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var all []*mlsdv1.Envelope
	for range 1000 {
		res, err := c.RPC().FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: gid, AfterSeq: uint64(len(all))}))
		if err != nil {
			t.Fatalf("FetchMessages: %v", err)
		}
		for _, e := range res.Msg.Messages {
			if e.Seq != uint64(len(all))+1 {
				t.Fatalf("the log has seq %d after seq %d: a gap or a repeat", e.Seq, len(all))
			}
			all = append(all, e)
		}
		if len(res.Msg.Messages) == 0 || uint64(len(all)) >= res.Msg.LastSeq {
			if uint64(len(all)) != res.Msg.LastSeq {
				t.Fatalf("read %d entries, the service says the last seq is %d", len(all), res.Msg.LastSeq)
			}
			return all
		}
	}
	t.Fatal("the log did not end within 1000 pages")
	return nil
}

// errDetail returns the mlsd.v1.Error detail of a Connect error, or nil.
func errDetail(err error) *mlsdv1.Error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if me, ok := v.(*mlsdv1.Error); ok {
				return me
			}
		}
	}
	return nil
}

// countFrom counts the application messages of sender in a log.
func countFrom(log []*mlsdv1.Envelope, sender string) int {
	n := 0
	for _, e := range log {
		if e.Kind == mlsdv1.Kind_KIND_APPLICATION && string(e.Sender) == sender {
			n++
		}
	}
	return n
}

// --- Crash: SIGKILL mid-stream, restart on the same file and port ---------

// received collects the application messages one member handled.
type received struct {
	mu  sync.Mutex
	got []string
}

func (r *received) handler(ev dsclient.Event) error {
	if ev.Kind != mlsdv1.Kind_KIND_APPLICATION {
		return nil
	}
	if ev.Err != nil {
		return fmt.Errorf("an unreadable message at seq %d: %w", ev.Seq, ev.Err)
	}
	r.mu.Lock()
	r.got = append(r.got, string(ev.Processed.ApplicationData))
	r.mu.Unlock()
	return nil
}

func (r *received) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// Three members stream messages through an mlsd on SQLite; mlsd is SIGKILLed
// once a third of them are out and restarted on the same database file and
// port (the clients know only its URL). Every message reaches every other member exactly once, in its
// sender's order; the log has no gap and holds each message once; every
// member's cursor ends at the log's end.
//
// What a sender does with a send that got no answer (the connection broke,
// so it cannot know whether mlsd appended it): dsclient.Send does not retry
// it (the protocol has no idempotency key, and a retry seals a new
// ciphertext), it returns the transport error. The sender here waits until
// mlsd answers again, counts its own application messages in the log (it
// sends one at a time, so the count says whether the last one landed), and
// sends again only when it did not. Its messages are then in the log once
// each, which the test checks.
func TestCrashRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "mlsd.db")
	crashRestart(t, func(addr string) []string {
		return []string{"-addr", addr, "-db", db, "-rate", "-1", "-log-level", "warn"}
	})
}

// The same on PostgreSQL: what a replica had committed survives its crash.
func TestCrashRestartPostgres(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	crashRestart(t, func(addr string) []string {
		return []string{"-addr", addr, "-postgres", dsn, "-rate", "-1", "-log-level", "warn"}
	})
}

// crashRestart runs the crash test on the mlsd that args starts.
func crashRestart(t *testing.T, args func(addr string) []string) {
	bin := buildBin(t, "mlsd")
	d := startMlsd(t, bin, args("127.0.0.1:0")...)
	url := d.url
	n := 60
	if testing.Short() {
		n = 20
	}
	names := []string{"alice", "bob", "carol"}
	ms := make([]*fmember, len(names))
	for i, name := range names {
		ms[i] = newFMember(t, url, name, dsclient.Options{})
	}
	gid := []byte("crash")
	makeGroup(t, string(gid), ms...)

	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	subCtx, stopSubs := context.WithCancel(ctx)
	recv := make([]*received, len(ms))
	subErrs := make(chan error, len(ms))
	var subs sync.WaitGroup
	for i, m := range ms {
		recv[i] = new(received)
		subs.Add(1)
		go func() {
			defer subs.Done()
			if err := m.c.Subscribe(subCtx, m.g, recv[i].handler); subCtx.Err() == nil {
				subErrs <- fmt.Errorf("%s: Subscribe ended: %v", m.name, err)
			}
		}()
	}
	defer func() {
		stopSubs()
		subs.Wait()
	}()

	// The senders.
	var acked, unanswered, landed, resent atomic.Int64
	sendErrs := make(chan error, len(ms))
	var senders sync.WaitGroup
	for _, m := range ms {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := range n {
				if err := sendOnce(ctx, m, gid, url, i, &unanswered, &landed, &resent); err != nil {
					sendErrs <- fmt.Errorf("%s message %d: %w", m.name, i, err)
					return
				}
				acked.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}

	sendersDone := make(chan struct{})
	go func() {
		senders.Wait()
		close(sendersDone)
	}()

	// The crash, a third of the way in.
	total := int64(n * len(ms))
	for acked.Load() < total/3 {
		select {
		case <-sendersDone:
			close(sendErrs)
			for err := range sendErrs {
				t.Error(err)
			}
			t.Fatal("the senders stopped before the crash")
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	atKill := acked.Load()
	d.kill(t)
	time.Sleep(200 * time.Millisecond)
	var d2 *mlsdProc
	for attempt := 0; ; attempt++ {
		// The same port: the clients know only the URL.
		if d2, _ = launchMlsd(t, bin, args(d.addr)...); d2 != nil || attempt == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d2 == nil {
		t.Fatalf("mlsd did not restart on %s", d.addr)
	}
	<-sendersDone
	close(sendErrs)
	for err := range sendErrs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if atKill >= total {
		t.Fatalf("all %d messages were out before the kill: nothing was tested", total)
	}

	// Every member gets the 2n messages of the others.
	want := n * (len(ms) - 1)
	pollUntil(t, 60*time.Second, subErrs, func() bool {
		for _, r := range recv {
			if r.len() < want {
				return false
			}
		}
		return true
	})
	// A member's own messages advance its cursor without reaching its
	// handler, so the last entries of the log may be its own and still in
	// flight on its stream when the others' have all arrived: the
	// subscriptions end once every cursor is at the log's end (or the
	// deadline passes, and the check below fails).
	log := readLog(t, ms[0].c, gid)
	pollUntil(t, 30*time.Second, subErrs, func() bool {
		for _, m := range ms {
			if cur, err := m.c.Cursor(ctx, gid); err != nil || cur != uint64(len(log)) {
				return false
			}
		}
		return true
	})
	stopSubs()
	subs.Wait()

	for i, m := range ms {
		if c := countFrom(log, m.name); c != n {
			t.Errorf("the log holds %d messages of %s, want %d (each once)", c, m.name, n)
		}
		copies := map[string]int{}
		next := map[string]int{}
		for _, p := range recv[i].got {
			copies[p]++
			from, _, ok := strings.Cut(p, "-")
			if !ok || from == m.name {
				t.Errorf("%s received %q", m.name, p)
				continue
			}
			// Each sender's messages arrive in the order it sent them.
			if want := fmt.Sprintf("%s-%03d", from, next[from]); p != want && copies[p] == 1 {
				t.Errorf("%s received %q where %q was next", m.name, p, want)
			}
			next[from]++
		}
		for _, o := range ms {
			if o == m {
				continue
			}
			for j := range n {
				if p := fmt.Sprintf("%s-%03d", o.name, j); copies[p] != 1 {
					t.Errorf("%s received %q %d times, want once", m.name, p, copies[p])
				}
			}
		}
		if len(recv[i].got) != want {
			t.Errorf("%s received %d messages, want %d", m.name, len(recv[i].got), want)
		}
		cur, err := m.c.Cursor(ctx, gid)
		if err != nil || cur != uint64(len(log)) {
			t.Errorf("%s: cursor %d (%v), want the log's end %d", m.name, cur, err, len(log))
		}
	}
	t.Logf("%d of %d messages acknowledged before the kill; %d sends got no answer: %d were in the log, %d sent again",
		atKill, total, unanswered.Load(), landed.Load(), resent.Load())
	if landed.Load()+resent.Load() != unanswered.Load() {
		t.Errorf("%d unanswered sends, %d found in the log + %d sent again", unanswered.Load(), landed.Load(), resent.Load())
	}
	d2.term(t)
}

// pollUntil checks done every 10 ms until it holds or d has passed, and
// fails the test with the first error from errs.
func pollUntil(t *testing.T, d time.Duration, errs <-chan error, done func() bool) {
	t.Helper()
	deadline := time.After(d)
	for !done() {
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-deadline:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// launchMlsd starts mlsd with args and waits (at most 30 s) for its
// "listening" line. If mlsd exits first (its port still taken, say) or does
// not listen in time, it is killed and the error holds its log; otherwise
// it is killed when t ends, and its log shown if t failed.
func launchMlsd(t *testing.T, bin string, args ...string) (*mlsdProc, error) {
	t.Helper()
	p := &mlsdProc{stderr: new(lockedBuffer), exited: make(chan struct{})}
	urls := make(chan string, 1)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = &lines{fn: func(l string) {
		if m := listeningLine.FindStringSubmatch(l); m != nil {
			select {
			case urls <- m[1]:
			default:
			}
		}
	}}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case u := <-urls:
		p.url, p.addr = u, strings.TrimPrefix(u, "http://")
	case <-p.exited:
		return nil, fmt.Errorf("mlsd %q exited (%v) before listening:\n%s", args, p.err, p.stderr.String())
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return nil, fmt.Errorf("mlsd %q did not listen within 30 s:\n%s", args, p.stderr.String())
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("mlsd %q log:\n%s", args, p.stderr.String())
		}
	})
	return p, nil
}

// sendOnce sends message i of m and makes sure it ends up in the log once:
// a send without an answer is resolved by counting m's messages in the log
// once mlsd answers again.
func sendOnce(ctx context.Context, m *fmember, gid []byte, url string, i int, unanswered, landed, resent *atomic.Int64) error {
	text := []byte(fmt.Sprintf("%s-%03d", m.name, i))
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err := m.c.Send(sctx, m.g, text, nil)
	cancel()
	if err == nil {
		return nil
	}
	if r := dsclient.Reason(err); r != mlsdv1.Error_REASON_UNSPECIFIED {
		return fmt.Errorf("refused: %w", err)
	}
	unanswered.Add(1)
	for attempt := 0; attempt < 5; attempt++ {
		if err := waitHealthy(ctx, url, 30*time.Second); err != nil {
			return fmt.Errorf("mlsd did not come back: %w", err)
		}
		c, err := ownCount(ctx, m, gid)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		switch c {
		case i + 1:
			landed.Add(1)
			return nil
		case i:
			sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			_, err := m.c.Send(sctx, m.g, text, nil)
			cancel()
			if err == nil {
				resent.Add(1)
				return nil
			}
			if r := dsclient.Reason(err); r != mlsdv1.Error_REASON_UNSPECIFIED {
				return fmt.Errorf("refused when sent again: %w", err)
			}
		default:
			return fmt.Errorf("the log holds %d of my messages; %d or %d expected", c, i, i+1)
		}
	}
	return errors.New("no answer after 5 attempts")
}

// ownCount counts m's application messages in the log (without t: it runs
// in a sender's goroutine).
func ownCount(ctx context.Context, m *fmember, gid []byte) (int, error) {
	n := 0
	after := uint64(0)
	for range 1000 {
		res, err := m.c.RPC().FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: gid, AfterSeq: after}))
		if err != nil {
			return 0, err
		}
		for _, e := range res.Msg.Messages {
			after = e.Seq
			if e.Kind == mlsdv1.Kind_KIND_APPLICATION && string(e.Sender) == m.name {
				n++
			}
		}
		if len(res.Msg.Messages) == 0 || after >= res.Msg.LastSeq {
			return n, nil
		}
	}
	return 0, errors.New("the log did not end within 1000 pages")
}

// --- Replicas: two mlsd processes on one PostgreSQL database --------------

// commitRequest is the post of g's pending commit res: the commit, the new
// epoch's GroupInfo and ratchet tree (as dsclient.Commit posts it).
func commitRequest(t *testing.T, g *mls.Group, res *mls.CommitResult) *mlsdv1.PostCommitRequest {
	t.Helper()
	req := &mlsdv1.PostCommitRequest{GroupId: g.GroupID()}
	var err error
	if req.Commit, err = res.Commit.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if req.GroupInfo, err = res.GroupInfo.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if req.RatchetTree, err = g.PendingCommit().RatchetTree(); err != nil {
		t.Fatal(err)
	}
	return req
}

// Two mlsd processes serve one PostgreSQL database. Alice (on replica A)
// and Bob (on replica B) commit for the same epoch at the same moment,
// round after round: exactly one commit wins each round, the other is
// refused with COMMIT_CONFLICT naming the new epoch, and both converge on
// the same epoch and epoch authenticator. Carol follows the group on
// replica B and receives every commit and every message Alice posts
// through replica A (LISTEN/NOTIFY between the replicas).
func TestReplicasCommitRace(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	bin := buildBin(t, "mlsd")
	a := startMlsd(t, bin, "-addr", "127.0.0.1:0", "-postgres", dsn, "-rate", "-1", "-log-level", "warn")
	b := startMlsd(t, bin, "-addr", "127.0.0.1:0", "-postgres", dsn, "-rate", "-1", "-log-level", "warn")
	alice := newFMember(t, a.url, "alice", dsclient.Options{})
	bob := newFMember(t, b.url, "bob", dsclient.Options{})
	carol := newFMember(t, b.url, "carol", dsclient.Options{})
	gid := []byte("replicas")
	makeGroup(t, string(gid), alice, bob, carol)

	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	subCtx, stopSub := context.WithCancel(ctx)
	var carolGot received
	// When Alice's post of each message returned, and when Carol read it:
	// logged, not asserted (a lost notification would only delay delivery
	// to the subscription's poll, DefaultSubscribePoll).
	var lagMu sync.Mutex
	posted := map[string]time.Time{}
	var lags []time.Duration
	var carolCommits atomic.Int64
	subDone := make(chan error, 1)
	go func() {
		subDone <- carol.c.Subscribe(subCtx, carol.g, func(ev dsclient.Event) error {
			if ev.Kind == mlsdv1.Kind_KIND_COMMIT {
				carolCommits.Add(1)
			}
			if ev.Kind == mlsdv1.Kind_KIND_APPLICATION && ev.Processed != nil {
				lagMu.Lock()
				if at, ok := posted[string(ev.Processed.ApplicationData)]; ok {
					lags = append(lags, time.Since(at))
				}
				lagMu.Unlock()
			}
			return carolGot.handler(ev)
		})
	}()
	defer func() {
		stopSub()
		<-subDone
	}()

	rounds := 30
	if testing.Short() {
		rounds = 8
	}
	wins := map[string]int{}
	for r := range rounds {
		for _, m := range []*fmember{alice, bob} {
			if _, err := m.c.Sync(ctx, m.g, nil); err != nil {
				t.Fatalf("round %d: %s: Sync: %v", r, m.name, err)
			}
		}
		e := alice.g.Epoch()
		if bob.g.Epoch() != e || !bytes.Equal(alice.g.EpochAuthenticator(), bob.g.EpochAuthenticator()) {
			t.Fatalf("round %d: Alice at epoch %d, Bob at %d, or their epoch authenticators differ", r, e, bob.g.Epoch())
		}
		var reqs [2]*mlsdv1.PostCommitRequest
		for i, m := range []*fmember{alice, bob} {
			res, err := m.g.SelfUpdate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			reqs[i] = commitRequest(t, m.g, res)
		}
		var errs [2]error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, m := range []*fmember{alice, bob} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = m.c.RPC().PostCommit(ctx, connect.NewRequest(reqs[i]))
			}()
		}
		close(start)
		wg.Wait()
		var winner, loser *fmember
		switch {
		case errs[0] == nil && errs[1] != nil:
			winner, loser = alice, bob
		case errs[1] == nil && errs[0] != nil:
			winner, loser = bob, alice
		default:
			t.Fatalf("round %d (epoch %d): Alice's post: %v; Bob's: %v; want exactly one accepted", r, e, errs[0], errs[1])
		}
		lerr := errs[0]
		if loser == bob {
			lerr = errs[1]
		}
		if de := errDetail(lerr); de == nil || de.Reason != mlsdv1.Error_REASON_COMMIT_CONFLICT || de.CurrentEpoch != e+1 {
			t.Fatalf("round %d: the losing post (%s): %v; want COMMIT_CONFLICT at epoch %d", r, loser.name, lerr, e+1)
		}
		wins[winner.name]++
		if err := winner.g.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := loser.g.ClearPendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		// A message through replica A, for Carol on replica B.
		text := fmt.Sprintf("round-%d", r)
		if _, err := alice.c.Send(ctx, alice.g, []byte(text), nil); err != nil {
			t.Fatalf("round %d: Alice's message: %v", r, err)
		}
		lagMu.Lock()
		posted[text] = time.Now()
		lagMu.Unlock()
	}
	for _, m := range []*fmember{alice, bob} {
		if _, err := m.c.Sync(ctx, m.g, nil); err != nil {
			t.Fatal(err)
		}
	}
	final := uint64(1 + rounds)
	deadline := time.After(30 * time.Second)
	for carol.g.Epoch() != final || carolGot.len() < rounds {
		select {
		case err := <-subDone:
			t.Fatalf("Carol's subscription ended: %v", err)
		case <-deadline:
			t.Fatalf("Carol (on replica B) at epoch %d with %d messages after 30 s; want epoch %d and %d messages", carol.g.Epoch(), carolGot.len(), final, rounds)
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, m := range []*fmember{alice, bob, carol} {
		if m.g.Epoch() != final || !bytes.Equal(m.g.EpochAuthenticator(), alice.g.EpochAuthenticator()) {
			t.Errorf("%s at epoch %d (want %d), or its epoch authenticator differs from Alice's", m.name, m.g.Epoch(), final)
		}
	}
	carolGot.mu.Lock()
	for r, p := range carolGot.got {
		if want := fmt.Sprintf("round-%d", r); p != want {
			t.Errorf("Carol's message %d: %q, want %q", r, p, want)
		}
	}
	carolGot.mu.Unlock()
	if c := carolCommits.Load(); c != int64(rounds) {
		t.Errorf("Carol handled %d commits, want %d", c, rounds)
	}
	// The log: one commit per epoch, through either replica.
	for _, via := range []*fmember{alice, bob} {
		log := readLog(t, via.c, gid)
		var epochs []uint64
		for _, e := range log {
			if e.Kind == mlsdv1.Kind_KIND_COMMIT {
				epochs = append(epochs, e.Epoch)
			}
		}
		if len(epochs) != rounds+1 {
			t.Errorf("the log (via %s) has %d commits, want %d", via.name, len(epochs), rounds+1)
		}
		for i, e := range epochs {
			if e != uint64(i) {
				t.Errorf("the log's commit %d is for epoch %d, want %d", i, e, i)
				break
			}
		}
	}
	lagMu.Lock()
	t.Logf("%d rounds: Alice (replica A) won %d, Bob (replica B) won %d; Carol (replica B) read Alice's messages (replica A) %v after the post returned (p50), %v at most (%d of %d read after the post returned)",
		rounds, wins["alice"], wins["bob"], latencies(lags).pct(50), latencies(lags).pct(100), len(lags), rounds)
	lagMu.Unlock()
	for _, p := range []*mlsdProc{a, b} {
		if err := healthz(p.url); err != nil {
			t.Error(err)
		}
	}
}

// --- Key packages: concurrent fetches ---------------------------------------

// kpRace has 16 clients fetch an owner's key packages at once, through the
// given replicas in turn, 32 more times in all than there are key packages:
// each ordinary key package is handed out exactly once, and the
// last-resort one only once the others are gone (then every time).
func kpRace(t *testing.T, urls []string) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const fetchers = 16
	per := 4 // 64 fetches of 32 key packages and a last-resort one
	if testing.Short() {
		per = 3 // 48 of 16
	}
	p := fetchers*per - 32
	owner := newFMember(t, urls[0], "owner", dsclient.Options{})
	kps, err := owner.c.PublishKeyPackages(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	ordinary := map[string]bool{}
	var lastResort string
	for _, kp := range kps {
		if kp.IsLastResort() {
			lastResort = string(kp.Ref())
		} else {
			ordinary[string(kp.Ref())] = true
		}
	}
	if len(ordinary) != p || lastResort == "" {
		t.Fatalf("published %d ordinary key packages and last resort %v; want %d and one", len(ordinary), lastResort != "", p)
	}
	fs := make([]*fmember, fetchers)
	for i := range fs {
		fs[i] = newFMember(t, urls[i%len(urls)], fmt.Sprintf("fetcher-%d", i), dsclient.Options{})
	}
	got := make([][]string, fetchers)
	errs := make([]error, fetchers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range per {
				kp, err := f.c.FetchKeyPackage(ctx, []byte("owner"))
				if err != nil {
					errs[i] = err
					return
				}
				got[i] = append(got[i], string(kp.Ref()))
			}
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	handed := map[string]int{}
	lr := 0
	for i, refs := range got {
		sawLast := false
		for j, ref := range refs {
			switch {
			case ref == lastResort:
				lr++
				sawLast = true
			case !ordinary[ref]:
				t.Errorf("fetcher %d got a key package that was never published", i)
			case sawLast:
				t.Errorf("fetcher %d got an ordinary key package (fetch %d) after the last-resort one", i, j)
				handed[ref]++
			default:
				handed[ref]++
			}
		}
	}
	for ref := range ordinary {
		if handed[ref] != 1 {
			t.Errorf("key package %x handed out %d times, want once", ref[:8], handed[ref])
		}
	}
	if want := fetchers*per - p; lr != want {
		t.Errorf("the last-resort key package was handed out %d times, want %d (once all %d others were gone)", lr, want, p)
	}
	n, last, err := owner.c.CountKeyPackages(ctx)
	if err != nil || n != 0 || !last {
		t.Errorf("CountKeyPackages: %d, last resort %v (%v); want 0 and the last-resort one kept", n, last, err)
	}
}

func TestKeyPackageRaceSQLite(t *testing.T) {
	d := startMlsd(t, buildBin(t, "mlsd"), "-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "mlsd.db"), "-rate", "-1", "-log-level", "warn")
	kpRace(t, []string{d.url})
	if err := healthz(d.url); err != nil {
		t.Error(err)
	}
}

func TestKeyPackageRacePostgresReplicas(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	bin := buildBin(t, "mlsd")
	a := startMlsd(t, bin, "-addr", "127.0.0.1:0", "-postgres", dsn, "-rate", "-1", "-log-level", "warn")
	b := startMlsd(t, bin, "-addr", "127.0.0.1:0", "-postgres", dsn, "-rate", "-1", "-log-level", "warn")
	kpRace(t, []string{a.url, b.url})
}
