package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlskit/mls/ds"
	dssqlite "github.com/mlskit/mls/ds/store/sqlite"
)

// The chat tests run the mls binary as real processes, fed by standard
// input, against an mlsd (ds.Listen over an SQLite store) on 127.0.0.1.

// startMLSD starts an mlsd in the test process and returns its URL.
func startMLSD(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	st, err := dssqlite.Open(ctx, filepath.Join(t.TempDir(), "mlsd.db"))
	if err != nil {
		t.Fatal(err)
	}
	url, stop, err := ds.Listen(ctx, "127.0.0.1:0", st, ds.Options{Logger: slog.New(slog.DiscardHandler), SubscribePoll: 100 * time.Millisecond})
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

// buildMLS builds the mls command into a temporary directory, and mlsd
// next to it.
func buildMLS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "mls")
	out, err := exec.Command("go", "build", "-o", dir, ".", "../mlsd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// chatProc is one running `mls chat`.
type chatProc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	mu    sync.Mutex
	seen  []string // every line so far, for failure messages
	done  chan struct{}
	err   error // how the process ended, once done is closed
}

func startChat(t *testing.T, bin, url, name string, args ...string) *chatProc {
	t.Helper()
	p := &chatProc{t: t, name: name, lines: make(chan string, 1000), done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"chat", "-ds", url, "-name", name}, args...)...)
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	p.cmd.Stderr = &stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.seen = append(p.seen, sc.Text())
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		p.err = p.cmd.Wait()
		if stderr.Len() > 0 {
			p.err = fmt.Errorf("%v; stderr: %s", p.err, stderr.String())
		}
		close(p.done)
		close(p.lines)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
		}
	})
	p.expect(`^ready: ` + name + ` on `)
	return p
}

func (p *chatProc) send(lines ...string) {
	p.t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(p.stdin, l+"\n"); err != nil {
			p.t.Fatalf("%s: writing %q: %v", p.name, l, err)
		}
	}
}

// expect waits up to 20 s for a line matching re, skipping others, and
// returns its submatches. An "error:" line fails the test unless re
// expects it.
func (p *chatProc) expect(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				p.t.Fatalf("%s exited (%v) before printing a line matching %q; output:\n%s", p.name, p.err, re, p.output())
			}
			if testing.Verbose() {
				p.t.Logf("%s %s: %s", time.Now().Format("05.000"), p.name, l)
			}
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
			if strings.HasPrefix(l, "error:") {
				p.t.Fatalf("%s: %s (while waiting for %q); output:\n%s", p.name, l, re, p.output())
			}
		case <-timeout:
			p.t.Fatalf("%s printed no line matching %q within 20 s; output:\n%s", p.name, re, p.output())
		}
	}
}

func (p *chatProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.seen, "\n")
}

// quit ends the process and checks that it exits cleanly.
func (p *chatProc) quit() {
	p.t.Helper()
	p.send("/quit")
	p.expect(`^bye$`)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Errorf("%s exited with %v", p.name, p.err)
		}
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s did not exit after /quit", p.name)
	}
}

// members asks for the member list and returns it with the epoch and the
// epoch authenticator.
func (p *chatProc) members(group string) (epoch, names, auth string) {
	p.t.Helper()
	p.send("/members")
	m := p.expect(`^\[` + group + ` epoch (\d+)\] members: (.*); authenticator ([0-9a-f]+)$`)
	return m[1], m[2], m[3]
}

// TestChatProcesses builds the mls command once and runs the process
// tests with it.
func TestChatProcesses(t *testing.T) {
	t.Parallel()
	bin := buildMLS(t)
	t.Run("group", func(t *testing.T) { t.Parallel(); testChatGroup(t, bin) })
	t.Run("mlsd-killed", func(t *testing.T) { t.Parallel(); testChatMLSDKilled(t, bin) })
	t.Run("restart", func(t *testing.T) { t.Parallel(); testChatRestart(t, bin) })
	t.Run("rejoin", func(t *testing.T) { t.Parallel(); testChatRejoin(t, bin) })
}

// testChatGroup: three mls chat processes and mlsd. Alice creates a group
// and invites Bob and Carol; they exchange messages; Alice and Bob rotate
// their keys at the same time (one commit loses and is retried); Carol
// leaves and Alice commits it; Bob fails to remove her again.
func testChatGroup(t *testing.T, bin string) {
	url := startMLSD(t)
	alice := startChat(t, bin, url, "alice")
	bob := startChat(t, bin, url, "bob")
	carol := startChat(t, bin, url, "carol")

	alice.send("/create room")
	alice.expect(`^\[room epoch 0\] created$`)
	alice.send("/invite bob", "/invite carol")
	alice.expect(`^\[room epoch 1\] invited bob$`)
	alice.expect(`^\[room epoch 2\] invited carol$`)
	// Bob's Welcome is for epoch 1; he then reads Carol's addition.
	bob.send("/join")
	bob.expect(`^\[room epoch 1\] joined, invited by alice; members: alice, bob$`)
	bob.expect(`^\[room epoch 2\] alice committed: add carol$`)
	carol.send("/join")
	carol.expect(`^\[room epoch 2\] joined, invited by alice; members: alice, bob, carol$`)

	alice.send("hello everyone")
	alice.expect(`^\[room epoch 2\] sent: hello everyone$`)
	bob.expect(`^\[room epoch 2\] alice: hello everyone$`)
	carol.expect(`^\[room epoch 2\] alice: hello everyone$`)
	bob.send("/send hi from bob")
	alice.expect(`^\[room epoch 2\] bob: hi from bob$`)
	carol.expect(`^\[room epoch 2\] bob: hi from bob$`)
	for _, p := range []*chatProc{alice, carol} {
		p.send("/wait 1 10")
		p.expect(`^waited: 1 messages$`)
	}

	// Both rotate at once: the service takes one commit for epoch 2, the
	// other client catches up and lands its commit in epoch 3.
	alice.send("/rotate")
	bob.send("/rotate")
	alice.expect(`^\[room epoch \d\] rotated keys`)
	bob.expect(`^\[room epoch \d\] rotated keys`)
	for _, p := range []*chatProc{alice, bob, carol} {
		p.send("/epoch 4")
		p.expect(`^\[room epoch 4\] reached$`)
	}
	e1, n1, a1 := alice.members("room")
	for _, p := range []*chatProc{bob, carol} {
		if e, n, a := p.members("room"); e != e1 || n != n1 || a != a1 {
			t.Errorf("%s sees epoch %s, members %q, authenticator %s; alice: %s, %q, %s", p.name, e, n, a, e1, n1, a1)
		}
	}
	if e1 != "4" || n1 != "alice, bob, carol" {
		t.Errorf("after two rotations: epoch %s, members %q", e1, n1)
	}

	// Carol leaves: her Remove proposal is committed by Alice (the lowest
	// leaf), and Carol learns she is out.
	carol.send("/leave")
	carol.expect(`^\[room epoch 4\] asked to leave`)
	alice.expect(`^\[room epoch 5\] committed pending proposals$`)
	bob.expect(`^\[room epoch 5\] alice committed: remove carol$`)
	carol.expect(`^\[room epoch 5\] removed from the group by alice$`)
	bob.send("/epoch 5")
	bob.expect(`^\[room epoch 5\] reached$`)
	e1, n1, a1 = alice.members("room")
	if e, n, a := bob.members("room"); e != e1 || n != n1 || a != a1 || n != "alice, bob" {
		t.Errorf("bob sees epoch %s, members %q, authenticator %s; alice: %s, %q, %s", e, n, a, e1, n1, a1)
	}
	carol.send("hello?")
	carol.expect(`^error: room: no longer a member$`)

	// Bob removes a member who is not there: a clear error, no change.
	bob.send("/remove carol")
	bob.expect(`^error: .*not found`)
	if e, _, a := bob.members("room"); e != e1 || a != a1 {
		t.Errorf("a failed /remove changed bob's group: epoch %s, authenticator %s", e, a)
	}
	bob.send("/bogus")
	bob.expect(`^error: unknown command /bogus`)
	for _, p := range []*chatProc{alice, bob, carol} {
		p.quit()
	}
}

// testChatRestart: a client with -db stops, misses messages and a commit,
// and on restart resumes the group from its file and reads exactly what it
// missed, from its cursor.
func testChatRestart(t *testing.T, bin string) {
	url := startMLSD(t)
	db := filepath.Join(t.TempDir(), "bob.db")
	alice := startChat(t, bin, url, "alice")
	bob := startChat(t, bin, url, "bob", "-db", db)
	alice.send("/create g", "/invite bob")
	alice.expect(`^\[g epoch 1\] invited bob$`)
	bob.send("/join")
	bob.expect(`^\[g epoch 1\] joined`)
	alice.send("before")
	bob.expect(`^\[g epoch 1\] alice: before$`)
	bob.quit()

	alice.send("while away 1", "/rotate", "while away 2")
	alice.expect(`^\[g epoch 2\] sent: while away 2$`)

	bob = startChat(t, bin, url, "bob", "-db", db)
	bob.expect(`^\[g epoch 1\] resumed at seq \d+; members: alice, bob$`)
	bob.expect(`^\[g epoch 1\] alice: while away 1$`)
	bob.expect(`^\[g epoch 2\] alice committed: new keys$`)
	bob.expect(`^\[g epoch 2\] alice: while away 2$`)
	bob.send("/sync")
	bob.expect(`^\[g epoch 2\] synced: 0 new entries`)
	if strings.Contains(bob.output(), "before") {
		t.Errorf("bob read a message twice after the restart:\n%s", bob.output())
	}
	e, _, a := alice.members("g")
	if be, _, ba := bob.members("g"); be != e || ba != a {
		t.Errorf("bob at epoch %s (%s), alice at %s (%s)", be, ba, e, a)
	}
	alice.quit()
	bob.quit()
}

func TestChatUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-name", "a"}, "-ds: the delivery service's URL is required"},
		{[]string{"-ds", "http://127.0.0.1:1"}, "-name: a name is required"},
		{[]string{"-ds", "x", "-name", "a", "-suite", "99"}, "unsupported cipher suite 99"},
	} {
		status, stdout, stderr := runCmd(append([]string{"chat"}, tc.args...)...)
		if status != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("chat %v: status %d, stderr %q, stdout %q; want 2 and %q", tc.args, status, stderr, stdout, tc.want)
		}
	}
	status, stdout, _ := runCmd("chat", "-h")
	if status != 0 || !strings.Contains(stdout, "Usage: mls chat -ds URL -name NAME") || !strings.Contains(stdout, "/invite NAME") {
		t.Errorf("chat -h: status %d, stdout:\n%s", status, stdout)
	}
	// No service at the URL: exit status 1 with the error.
	status, _, stderr := runCmd("chat", "-ds", "http://127.0.0.1:1", "-name", "a")
	if status != 1 || !strings.Contains(stderr, "mls chat: dsclient: Challenge: ") {
		t.Errorf("chat against no service: status %d, stderr %q", status, stderr)
	}
}

// testChatRejoin: Bob's state is lost (no -db: a temporary file); a new
// Bob rejoins by an external commit that replaces his old leaf. Carol is
// invited with a key package of a lost installation and rejoins too.
func testChatRejoin(t *testing.T, bin string) {
	url := startMLSD(t)
	alice := startChat(t, bin, url, "alice")
	bob := startChat(t, bin, url, "bob")
	alice.send("/create g", "/invite bob")
	alice.expect(`^\[g epoch 1\] invited bob$`)
	bob.send("/join")
	bob.expect(`^\[g epoch 1\] joined`)
	bob.quit()

	bob = startChat(t, bin, url, "bob")
	bob.send("/rejoin g")
	bob.expect(`^\[g epoch 2\] rejoined, replacing this identity's old leaf; members: alice, bob$`)
	alice.expect(`^\[g epoch 2\] bob committed: join by external commit, remove bob$`)
	bob.send("back again")
	alice.expect(`^\[g epoch 2\] bob: back again$`)

	// Carol publishes key packages and loses her state before Alice
	// invites her: her new installation cannot open the Welcome, says so,
	// and rejoins in the place it was meant for.
	carol := startChat(t, bin, url, "carol")
	carol.quit()
	alice.send("/invite carol")
	alice.expect(`^\[g epoch 3\] invited carol$`)
	carol = startChat(t, bin, url, "carol")
	carol.send("/join")
	carol.expect(`^error: the Welcome to g is for a key package this client does not hold \(an earlier installation's\): /rejoin g takes its place$`)
	carol.expect(`^error: no usable Welcome$`)
	carol.send("/rejoin g")
	carol.expect(`^\[g epoch 4\] rejoined, replacing this identity's old leaf; members: alice, bob, carol$`)
	bob.expect(`^\[g epoch 4\] carol committed: join by external commit, remove carol$`)
	// Every client follows the log in the background and prints a commit
	// before it has merged it: wait until each has reached epoch 4 before
	// comparing their views.
	for _, p := range []*chatProc{alice, bob, carol} {
		p.send("/epoch 4")
		p.expect(`^\[g epoch 4\] reached$`)
	}
	e, n, a := alice.members("g")
	for _, p := range []*chatProc{bob, carol} {
		if pe, pn, pa := p.members("g"); pe != e || pn != n || pa != a || n != "alice, bob, carol" {
			t.Errorf("%s: epoch %s, members %q, %s; alice: %s, %q, %s", p.name, pe, pn, pa, e, n, a)
		}
	}
	alice.quit()
	bob.quit()
	carol.quit()
}

// mlsdProc is mlsd running as a process.
type mlsdProc struct {
	cmd *exec.Cmd
	url string
}

// startMLSDProc starts the mlsd binary next to bin on addr over the SQLite
// file db, and waits for it to listen.
func startMLSDProc(t *testing.T, bin, addr, db string) *mlsdProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(filepath.Dir(bin), "mlsd"), "-addr", addr, "-db", db, "-log-level", "error")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &mlsdProc{cmd: cmd}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-lines:
		url, ok := strings.CutPrefix(l, "mlsd listening on ")
		if !ok {
			t.Fatalf("mlsd said %q", l)
		}
		p.url = url
	case <-time.After(20 * time.Second):
		t.Fatal("mlsd did not report its address within 20 s")
	}
	return p
}

// testChatMLSDKilled: mlsd runs as a process and is SIGKILLed between
// messages, then started again on the same database and port. The chat
// clients resume from their cursors: every message arrives once.
func testChatMLSDKilled(t *testing.T, bin string) {
	db := filepath.Join(t.TempDir(), "mlsd.db")
	d := startMLSDProc(t, bin, "127.0.0.1:0", db)
	alice := startChat(t, bin, d.url, "alice")
	bob := startChat(t, bin, d.url, "bob")
	alice.send("/create g", "/invite bob")
	alice.expect(`^\[g epoch 1\] invited bob$`)
	bob.send("/join")
	bob.expect(`^\[g epoch 1\] joined`)
	alice.send("m1", "m2", "m3")
	bob.send("/wait 3")
	bob.expect(`^waited: 3 messages$`)

	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d.cmd.Wait()
	if again := startMLSDProc(t, bin, strings.TrimPrefix(d.url, "http://"), db); again.url != d.url {
		t.Fatalf("mlsd came back at %s, not %s", again.url, d.url)
	}

	alice.send("m4", "/rotate", "m5", "m6")
	alice.expect(`^\[g epoch 2\] sent: m6$`)
	bob.send("/wait 3 20")
	bob.expect(`^waited: 3 messages$`)
	bob.send("/sync")
	bob.expect(`^\[g epoch 2\] synced: 0 new entries`)
	out := bob.output()
	for i := 1; i <= 6; i++ {
		if n := strings.Count(out, fmt.Sprintf("] alice: m%d\n", i)); n != 1 {
			t.Errorf("bob read m%d %d times:\n%s", i, n, out)
		}
	}
	alice.quit()
	bob.quit()
}
