package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/ds/dsclient"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/sqlite"
)

// mls chat is a terminal chat client of mlsd (package ds). Its MLS state,
// and its place in each group's log, live in one SQLite file, so a
// restarted client goes on where it stopped. It reads one command per line
// from standard input and prints one line per event, so scripts and tests
// can drive it:
//
//	[GROUP epoch E] NAME: TEXT          a message from NAME
//	[GROUP epoch E] sent: TEXT          this client's message went out
//	[GROUP epoch E] NAME committed: ... a commit of another member, merged
//	error: ...                          a command failed

func init() {
	register(&command{name: "chat", summary: "chat through an mlsd delivery service, one command per line on standard input", run: runChat})
}

const chatHelp = `Commands (a line without a leading / is sent as a message):
  /create GROUP      create a group and make it the current one
  /invite NAME       add NAME (from a key package it published) to the group
  /join [SECONDS]    join the groups whose Welcomes are in the mailbox, waiting up to SECONDS (default 10) for one
  /rejoin GROUP      after losing this client's state: rejoin GROUP by an external commit that replaces its old leaf
  /send TEXT         send TEXT to the group
  /leave             ask to leave the group (another member commits it)
  /remove NAME       remove NAME from the group
  /members           list the members, and the epoch authenticator (equal for all members in one epoch)
  /rotate            rotate this member's keys (a self-update commit)
  /sync              read the group's log now
  /wait N [SECONDS]  wait until N more messages have arrived (default timeout 10 s)
  /epoch E [SECONDS] wait until the group reaches epoch E
  /group GROUP       switch to another group this client is in
  /help              this list
  /quit              stop (so does the end of the input)

Output: one line per event, such as
  [GROUP epoch E] NAME: TEXT           a message from NAME
  [GROUP epoch E] NAME committed: ...  another member's commit, merged (E is the new epoch)
  error: ...                           a command failed
`

func runChat(args []string, stdout, stderr io.Writer) int {
	return runChatIO(args, os.Stdin, stdout, stderr)
}

func runChatIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	url := fs.String("ds", "", "the delivery service's `URL`, for example http://127.0.0.1:7420 (required)")
	name := fs.String("name", "", "this client's `NAME`: the identity of its basic credential (required)")
	db := fs.String("db", "", "keep the state in the SQLite file `FILE`, and resume from it (default: a temporary file)")
	suiteName := fs.String("suite", "1", "the cipher `SUITE`, by IANA name or number")
	if ok, status := parseFlags(fs, "chat -ds URL -name NAME [-db FILE] [-suite SUITE]", args, stdout, stderr); !ok {
		if status == 0 { // -h
			fmt.Fprint(stdout, "\n"+chatHelp)
		}
		return status
	}
	suite, err := parseSuite(*suiteName)
	switch {
	case err != nil:
		err = fmt.Errorf("-suite: %w", err)
	case *url == "":
		err = errors.New("-ds: the delivery service's URL is required")
	case *name == "":
		err = errors.New("-name: a name is required")
	}
	if err != nil {
		fmt.Fprintf(stderr, "mls chat: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := openChat(ctx, *url, *name, *db, suite, &lineWriter{w: stdout})
	if err != nil {
		fmt.Fprintf(stderr, "mls chat: %v\n", err)
		return 1
	}
	defer ch.close()
	ch.loop(ctx, stdin)
	return 0
}

// lineWriter prints whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", args...)
}

// chat is one running client.
type chat struct {
	ctx     context.Context // the client's life: subscriptions end with it
	out     *lineWriter
	name    string
	store   *sqlite.Store
	tmpDir  string
	ds      *dsclient.Client
	timeout time.Duration

	mu      sync.Mutex
	cond    *sync.Cond // signalled on every event
	group   *mls.Group // the current group, or nil
	stopSub context.CancelFunc
	subDone chan struct{}
	unread  int // messages not yet waited for by /wait
	commits chan *mls.Group
}

// chatBucket holds the client's own settings in its store: the current group.
const chatBucket = "mls-chat"

func openChat(ctx context.Context, url, name, db string, suite mls.CipherSuite, out *lineWriter) (*chat, error) {
	ch := &chat{ctx: ctx, out: out, name: name, timeout: 10 * time.Second, commits: make(chan *mls.Group, 16)}
	ch.cond = sync.NewCond(&ch.mu)
	if db == "" {
		dir, err := os.MkdirTemp("", "mls-chat-")
		if err != nil {
			return nil, err
		}
		ch.tmpDir, db = dir, filepath.Join(dir, name+".db")
	}
	s, err := sqlite.Open(db)
	if err != nil {
		ch.close()
		return nil, fmt.Errorf("opening %s: %w", db, err)
	}
	ch.store = s
	mc, err := mls.NewClient(ctx, s, credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{SignatureSuite: suite})
	if err != nil {
		ch.close()
		return nil, fmt.Errorf("%s: %w", db, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if ch.ds, err = dsclient.Dial(dctx, url, mc, dsclient.Options{Suite: suite}); err != nil {
		ch.close()
		return nil, err
	}
	if err := ch.topUpKeyPackages(dctx); err != nil {
		ch.close()
		return nil, err
	}
	go ch.committer(ctx)
	out.printf("ready: %s on %s", name, url)
	if id := ch.storedCurrent(ctx); id != nil {
		g, err := mc.LoadGroup(ctx, id)
		if err == nil && g.IsActive() {
			out.printf("%s resumed at seq %d; members: %s", ch.tag(g), ch.cursor(ctx, g), memberNames(g))
			ch.setGroup(ctx, g) // then what came meanwhile
		}
	}
	return ch, nil
}

// topUpKeyPackages keeps 5 or more key packages and a last-resort one on
// the service, so that others can invite this client.
func (ch *chat) topUpKeyPackages(ctx context.Context) error {
	n, last, err := ch.ds.CountKeyPackages(ctx)
	if err != nil {
		return err
	}
	if n >= 5 && last {
		return nil
	}
	_, err = ch.ds.PublishKeyPackages(ctx, max(0, 10-n), !last)
	return err
}

func (ch *chat) close() {
	ch.mu.Lock()
	stop, done := ch.stopSub, ch.subDone
	ch.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	if ch.store != nil {
		ch.store.Close()
	}
	if ch.tmpDir != "" {
		os.RemoveAll(ch.tmpDir)
	}
}

func (ch *chat) storedCurrent(ctx context.Context) []byte {
	var id []byte
	ch.store.View(ctx, func(tx storage.Tx) error {
		id, _ = tx.Get(chatBucket, []byte("current"))
		return nil
	})
	return id
}

func (ch *chat) cursor(ctx context.Context, g *mls.Group) uint64 {
	n, _ := ch.ds.Cursor(ctx, g.GroupID())
	return n
}

// setGroup makes g the current group and follows its log in the
// background. Callers print what they did first: the events follow.
func (ch *chat) setGroup(ctx context.Context, g *mls.Group) {
	ch.mu.Lock()
	stop, done := ch.stopSub, ch.subDone
	ch.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	ch.store.Update(ctx, func(tx storage.Tx) error { return tx.Put(chatBucket, []byte("current"), g.GroupID()) })
	sctx, cancel := context.WithCancel(ch.ctx)
	done = make(chan struct{})
	ch.mu.Lock()
	ch.group, ch.stopSub, ch.subDone = g, cancel, done
	ch.mu.Unlock()
	go func() {
		defer close(done)
		err := ch.ds.Subscribe(sctx, g, ch.handle)
		if sctx.Err() == nil && err != nil {
			if !g.IsActive() {
				return // removed: said when it happened
			}
			ch.out.printf("error: %s: following the group: %v", ch.tag(g), err)
		}
	}()
}

func (ch *chat) tag(g *mls.Group) string {
	return fmt.Sprintf("[%s epoch %d]", g.GroupID(), g.Epoch())
}

// handle prints one entry of a group's log.
func (ch *chat) handle(ev dsclient.Event) error {
	g, p := ev.Group, ev.Processed
	defer func() {
		ch.mu.Lock()
		ch.cond.Broadcast()
		ch.mu.Unlock()
	}()
	switch {
	case ev.Err != nil:
		ch.out.printf("%s unreadable message from %s: %v", ch.tag(g), ev.Sender, ev.Err)
	case p.Kind == mls.KindApplication:
		ch.out.printf("[%s epoch %d] %s: %s", g.GroupID(), p.Epoch, p.Credential.Identity(), p.ApplicationData)
		ch.mu.Lock()
		ch.unread++
		ch.mu.Unlock()
	case p.Kind == mls.KindProposal:
		ch.out.printf("%s %s proposes %s", ch.tag(g), p.Credential.Identity(), describeProposal(g, p.Proposal))
		// The member with the lowest leaf that the proposals do not remove
		// commits them: a Remove proposal of someone leaving, for one.
		select {
		case ch.commits <- g:
		default: // a commit is queued already
		}
	case p.Kind == mls.KindCommit:
		var parts []string
		removed := false
		for _, q := range p.Commit.Proposals() {
			if leaf, ok := q.Removed(); ok && leaf == g.OwnLeafIndex() {
				removed = true
			}
			parts = append(parts, describeProposal(g, q))
		}
		if len(parts) == 0 {
			parts = []string{"new keys"}
		}
		ch.out.printf("[%s epoch %d] %s committed: %s", g.GroupID(), p.Commit.Epoch(), p.Credential.Identity(), strings.Join(parts, ", "))
		if removed {
			ch.out.printf("[%s epoch %d] removed from the group by %s", g.GroupID(), p.Commit.Epoch(), p.Credential.Identity())
		}
	}
	return nil
}

// describeProposal says what a proposal does, in g's current epoch.
func describeProposal(g *mls.Group, q *mls.QueuedProposal) string {
	name := func(leaf uint32) string {
		if m, ok := g.Member(leaf); ok {
			return string(m.Credential.Identity())
		}
		return fmt.Sprintf("leaf %d", leaf)
	}
	switch q.Type() {
	case mls.ProposalAdd:
		c, _ := q.AddedCredential()
		return "add " + string(c.Identity())
	case mls.ProposalRemove:
		leaf, _ := q.Removed()
		return "remove " + name(leaf)
	case mls.ProposalUpdate:
		return "update " + name(q.Sender().Index)
	case mls.ProposalExternalInit:
		return "join by external commit"
	}
	return q.Type().String()
}

// committer commits the proposals others left pending, when this client is
// the member with the lowest leaf not removed by them.
func (ch *chat) committer(ctx context.Context) {
	for {
		var g *mls.Group
		select {
		case <-ctx.Done():
			return
		case g = <-ch.commits:
		}
		if !ch.shouldCommit(g) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		posted, err := ch.ds.Commit(cctx, g, commitPending, ch.handle)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			ch.out.printf("error: %s committing pending proposals: %v", ch.tag(g), err)
		case posted != nil:
			ch.out.printf("%s committed pending proposals%s", ch.tag(g), attempts(posted))
		}
	}
}

func (ch *chat) shouldCommit(g *mls.Group) bool {
	if !g.IsActive() || len(g.PendingProposals()) == 0 {
		return false
	}
	gone := map[uint32]bool{}
	for _, q := range g.PendingProposals() {
		if leaf, ok := q.Removed(); ok {
			gone[leaf] = true
		}
	}
	for _, m := range g.Members() {
		if !gone[m.Index] {
			return m.Index == g.OwnLeafIndex()
		}
	}
	return false
}

// commitPending commits the pending proposals, if any are left.
func commitPending(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
	if len(g.PendingProposals()) == 0 {
		return nil, nil
	}
	return g.CommitPendingProposals(ctx)
}

func attempts(p *dsclient.Posted) string {
	if p.Attempts > 1 {
		return fmt.Sprintf(" (after %d attempts: another commit won first)", p.Attempts)
	}
	return ""
}

func memberNames(g *mls.Group) string {
	var names []string
	for _, m := range g.Members() {
		names = append(names, string(m.Credential.Identity()))
	}
	return strings.Join(names, ", ")
}

// loop runs the commands of in until /quit or its end.
func (ch *chat) loop(ctx context.Context, in io.Reader) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if line == "/quit" {
			break
		}
		if err := ch.command(ctx, line); err != nil {
			ch.out.printf("error: %v", err)
		}
	}
	ch.out.printf("bye")
}

var errNoGroup = errors.New("no current group: /create one or /join one")

func (ch *chat) current() (*mls.Group, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.group == nil {
		return nil, errNoGroup
	}
	if !ch.group.IsActive() {
		return nil, fmt.Errorf("%s: no longer a member", ch.group.GroupID())
	}
	return ch.group, nil
}

// command runs one line.
func (ch *chat) command(ctx context.Context, line string) error {
	if !strings.HasPrefix(line, "/") {
		line = "/send " + line
	}
	cmd, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	switch cmd {
	case "/help":
		for _, l := range strings.Split(strings.TrimSpace(chatHelp), "\n") {
			ch.out.printf("%s", l)
		}
		return nil
	case "/create":
		if arg == "" {
			return errors.New("/create GROUP")
		}
		g, err := ch.ds.MLS().CreateGroup(ctx, ch.ds.Suite(), mls.GroupConfig{GroupID: []byte(arg)})
		if err != nil {
			return err
		}
		if err := ch.ds.CreateGroup(ctx, g, dsclient.CreateOptions{}); err != nil {
			ch.ds.MLS().DeleteGroup(ctx, g.GroupID())
			return err
		}
		ch.out.printf("%s created", ch.tag(g))
		ch.setGroup(ctx, g)
		return nil
	case "/join":
		return ch.join(ctx, arg)
	case "/rejoin":
		if arg == "" {
			return errors.New("/rejoin GROUP")
		}
		g, posted, err := ch.ds.JoinExternal(ctx, []byte(arg), true)
		if err != nil {
			return err
		}
		ch.out.printf("%s rejoined, replacing this identity's old leaf%s; members: %s", ch.tag(g), attempts(posted), memberNames(g))
		ch.setGroup(ctx, g)
		return nil
	case "/group":
		g, err := ch.ds.MLS().LoadGroup(ctx, []byte(arg))
		if err != nil {
			return err
		}
		ch.out.printf("%s current group; members: %s", ch.tag(g), memberNames(g))
		ch.setGroup(ctx, g)
		return nil
	case "/wait":
		return ch.wait(arg)
	case "/epoch":
		return ch.waitEpoch(arg)
	}
	g, err := ch.current()
	if err != nil {
		return err
	}
	switch cmd {
	case "/send":
		if _, err := ch.ds.Send(ctx, g, []byte(arg), ch.handle); err != nil {
			return err
		}
		ch.out.printf("%s sent: %s", ch.tag(g), arg)
	case "/invite":
		if arg == "" {
			return errors.New("/invite NAME")
		}
		kp, err := ch.ds.FetchKeyPackage(ctx, []byte(arg))
		if err != nil {
			return err
		}
		posted, err := ch.ds.Commit(ctx, g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
			return g.AddMembers(ctx, kp)
		}, ch.handle)
		if err != nil {
			return err
		}
		ch.out.printf("%s invited %s%s", ch.tag(g), arg, attempts(posted))
	case "/remove":
		if arg == "" {
			return errors.New("/remove NAME")
		}
		posted, err := ch.ds.Commit(ctx, g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
			return g.RemoveMembersByIdentity(ctx, []byte(arg))
		}, ch.handle)
		if err != nil {
			return err
		}
		ch.out.printf("%s removed %s%s", ch.tag(g), arg, attempts(posted))
	case "/rotate":
		posted, err := ch.ds.Commit(ctx, g, (*mls.Group).SelfUpdate, ch.handle)
		if err != nil {
			return err
		}
		ch.out.printf("%s rotated keys%s", ch.tag(g), attempts(posted))
	case "/leave":
		if _, err := ch.ds.Propose(ctx, g, (*mls.Group).LeaveGroup, ch.handle); err != nil {
			return err
		}
		ch.out.printf("%s asked to leave; another member commits it", ch.tag(g))
	case "/members":
		ch.out.printf("%s members: %s; authenticator %x", ch.tag(g), memberNames(g), g.EpochAuthenticator())
	case "/sync":
		n, err := ch.ds.Sync(ctx, g, ch.handle)
		if err != nil {
			return err
		}
		ch.out.printf("%s synced: %d new entries, cursor %d", ch.tag(g), n, ch.cursor(ctx, g))
	default:
		return fmt.Errorf("unknown command %s (/help lists them)", cmd)
	}
	return nil
}

// join polls the Welcome mailbox until a Welcome arrives or the timeout.
func (ch *chat) join(ctx context.Context, arg string) error {
	timeout, err := seconds(arg, ch.timeout)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		js, err := ch.ds.Join(ctx, mls.JoinConfig{})
		if err != nil {
			return err
		}
		var last *mls.Group
		for _, j := range js {
			switch {
			case errors.Is(j.Err, mls.ErrNoKeyPackage):
				ch.out.printf("error: the Welcome to %s is for a key package this client does not hold (an earlier installation's): /rejoin %s takes its place", j.GroupID, j.GroupID)
				continue
			case j.Err != nil:
				ch.out.printf("error: the Welcome to %s could not be used: %v", j.GroupID, j.Err)
				continue
			}
			ch.out.printf("%s joined, invited by %s; members: %s", ch.tag(j.Group), j.Staged.Sender().Credential.Identity(), memberNames(j.Group))
			last = j.Group
		}
		if last != nil {
			ch.setGroup(ctx, last)
			return ch.topUpKeyPackages(ctx)
		}
		if len(js) > 0 {
			return errors.New("no usable Welcome")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no Welcome arrived within %v", timeout)
		}
		time.Sleep(pause)
	}
}

func seconds(arg string, def time.Duration) (time.Duration, error) {
	if arg == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(arg, 64)
	if err != nil || f <= 0 || f > 3600 {
		return 0, fmt.Errorf("bad number of seconds %q", arg)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// waitFor waits until cond holds (checked under ch.mu on every event) or
// the timeout.
func (ch *chat) waitFor(timeout time.Duration, cond func() bool) bool {
	// Events wake the waiter; so does a tick, for what changes after an
	// event's handler ran (a commit is merged after it is shown).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ch.mu.Lock()
				ch.cond.Broadcast()
				ch.mu.Unlock()
			}
		}
	}()
	deadline := time.Now().Add(timeout)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for !cond() {
		if !time.Now().Before(deadline) {
			return false
		}
		ch.cond.Wait()
	}
	return true
}

func (ch *chat) wait(arg string) error {
	nArg, tArg, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(nArg)
	if err != nil || n < 1 || n > 1_000_000 {
		return errors.New("/wait N [SECONDS]")
	}
	timeout, err := seconds(strings.TrimSpace(tArg), ch.timeout)
	if err != nil {
		return err
	}
	if !ch.waitFor(timeout, func() bool { return ch.unread >= n }) {
		ch.mu.Lock()
		got := ch.unread
		ch.unread = 0
		ch.mu.Unlock()
		return fmt.Errorf("/wait: %d of %d messages within %v", got, n, timeout)
	}
	ch.mu.Lock()
	ch.unread -= n
	ch.mu.Unlock()
	ch.out.printf("waited: %d messages", n)
	return nil
}

func (ch *chat) waitEpoch(arg string) error {
	eArg, tArg, _ := strings.Cut(arg, " ")
	e, err := strconv.ParseUint(eArg, 10, 64)
	if err != nil {
		return errors.New("/epoch E [SECONDS]")
	}
	timeout, err := seconds(strings.TrimSpace(tArg), ch.timeout)
	if err != nil {
		return err
	}
	if !ch.waitFor(timeout, func() bool { return ch.group != nil && ch.group.Epoch() >= e }) {
		return fmt.Errorf("/epoch: still at epoch %d after %v", ch.groupEpoch(), timeout)
	}
	ch.mu.Lock()
	g := ch.group
	ch.mu.Unlock()
	ch.out.printf("%s reached", ch.tag(g))
	return nil
}

func (ch *chat) groupEpoch() uint64 {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.group == nil {
		return 0
	}
	return ch.group.Epoch()
}
