package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlskit/mls/ds"
	dssqlite "github.com/mlskit/mls/ds/store/sqlite"
)

// chatProc is a running `mls chat`, driven through its standard input.
type chatProc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu     sync.Mutex
	lines  []string
	used   []bool
	exited chan struct{}
	err    error
}

func startChat(t *testing.T, bin, url, name, dir string) *chatProc {
	t.Helper()
	c := &chatProc{t: t, name: name, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, "chat", "-ds", url, "-name", name, "-db", filepath.Join(dir, name+".db"))
	c.cmd.Stdout = &lines{fn: func(l string) {
		c.mu.Lock()
		c.lines = append(c.lines, l)
		c.used = append(c.used, false)
		c.mu.Unlock()
	}}
	stderr := new(lockedBuffer)
	c.cmd.Stderr = stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("%s's output:\n%s\n%s's standard error:\n%s", name, strings.Join(c.all(), "\n"), name, stderr.String())
		}
	})
	c.expect(`^ready: ` + name + ` on `)
	return c
}

func (c *chatProc) say(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("%s: writing %q: %v", c.name, line, err)
	}
}

func (c *chatProc) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// expect waits (at most 60 s) for an output line matching re that no
// earlier expect took, takes it and returns its submatches.
func (c *chatProc) expect(re string) []string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c.mu.Lock()
		for i, l := range c.lines {
			if m := rx.FindStringSubmatch(l); m != nil && !c.used[i] {
				c.used[i] = true
				c.mu.Unlock()
				return m
			}
		}
		c.mu.Unlock()
		select {
		case <-c.exited:
			c.t.Fatalf("%s exited (%v) without printing a line matching %s", c.name, c.err, re)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s printed no line matching %s within 60 s", c.name, re)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quit ends the chat and requires a clean exit.
func (c *chatProc) quit() {
	c.t.Helper()
	c.say("/quit")
	c.stdin.Close()
	select {
	case <-c.exited:
		if c.err != nil {
			c.t.Errorf("%s exited with %v", c.name, c.err)
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s did not exit within 30 s of /quit", c.name)
	}
}

// chatEvent is one line of a chat's output about another member's entry
// of the log: a message (epoch it was sent in) or a commit (epoch it
// creates).
type chatEvent struct {
	commit bool
	epoch  uint64
	sender string
	text   string
}

var (
	msgLine    = regexp.MustCompile(`^\[room epoch (\d+)\] (alice|bob|carol): (m-\S+)$`)
	commitLine = regexp.MustCompile(`^\[room epoch (\d+)\] (alice|bob|carol) committed: `)
)

func (c *chatProc) events() []chatEvent {
	var evs []chatEvent
	for _, l := range c.all() {
		if m := msgLine.FindStringSubmatch(l); m != nil {
			e, _ := strconv.ParseUint(m[1], 10, 64)
			evs = append(evs, chatEvent{epoch: e, sender: m[2], text: m[3]})
		} else if m := commitLine.FindStringSubmatch(l); m != nil {
			e, _ := strconv.ParseUint(m[1], 10, 64)
			evs = append(evs, chatEvent{commit: true, epoch: e, sender: m[2]})
		}
	}
	return evs
}

// An mlsd process and three `mls chat` processes: Alice creates a group and
// invites Bob and Carol, everyone sends at once, Bob rotates his keys while
// the others send, Alice removes Carol, Alice and Bob go on. What each
// client prints is then checked against the service's log, read from its
// SQLite file after mlsd stopped: every client saw every message of the
// others from its membership, exactly once, in the log's order, at the
// log's epoch, and every commit of the others at the epoch it creates.
func TestProcessesChat(t *testing.T) {
	mlsdBin, mlsBin := buildBin(t, "mlsd"), buildBin(t, "mls")
	dir := t.TempDir()
	db := filepath.Join(dir, "mlsd.db")
	d := startMlsd(t, mlsdBin, "-addr", "127.0.0.1:0", "-db", db, "-log-level", "warn")
	k := 5
	if testing.Short() {
		k = 2
	}
	alice := startChat(t, mlsBin, d.url, "alice", dir)
	bob := startChat(t, mlsBin, d.url, "bob", dir)
	carol := startChat(t, mlsBin, d.url, "carol", dir)
	everyone := []*chatProc{alice, bob, carol}

	alice.say("/create room")
	alice.expect(`^\[room epoch 0\] created$`)
	alice.say("/invite bob")
	alice.expect(`^\[room epoch 1\] invited bob$`)
	bob.say("/join 30")
	bob.expect(`^\[room epoch 1\] joined, invited by alice; members: alice, bob$`)
	alice.say("/invite carol")
	alice.expect(`^\[room epoch 2\] invited carol$`)
	carol.say("/join 30")
	carol.expect(`^\[room epoch 2\] joined, invited by alice; members: alice, bob, carol$`)
	bob.say("/epoch 2 30")
	bob.expect(`^\[room epoch 2\] reached$`)

	sent := map[string][]string{} // each sender's messages, in order
	send := func(round int, who ...*chatProc) {
		for _, c := range who {
			for i := range k {
				text := fmt.Sprintf("m-%s-%d-%d", c.name, round, i)
				c.say(text)
				sent[c.name] = append(sent[c.name], text)
			}
		}
	}
	confirm := func(round int, who ...*chatProc) {
		for _, c := range who {
			for i := range k {
				c.expect(fmt.Sprintf(`^\[room epoch \d+\] sent: m-%s-%d-%d$`, c.name, round, i))
			}
		}
	}
	wait := func(n int, who ...*chatProc) {
		for _, c := range who {
			c.say(fmt.Sprintf("/wait %d 60", n))
		}
		for _, c := range who {
			c.expect(fmt.Sprintf(`^waited: %d messages$`, n))
		}
	}

	// Round 1, at epoch 2: all three at once.
	send(1, everyone...)
	confirm(1, everyone...)
	wait(2*k, everyone...)

	// Round 2: Bob rotates his keys, then all send. (A commit racing
	// the others' messages is TestCommitWhileSending.)
	bob.say("/rotate")
	bob.expect(`^\[room epoch 3\] rotated keys$`)
	for _, c := range everyone {
		c.say("/epoch 3 60")
		c.expect(`^\[room epoch 3\] reached$`)
	}
	send(2, everyone...)
	confirm(2, everyone...)
	wait(2*k, everyone...)

	// Round 3: Alice removes Carol; Alice and Bob go on.
	alice.say("/remove carol")
	alice.expect(`^\[room epoch 4\] removed carol$`)
	carol.expect(`^\[room epoch \d+\] removed from the group by alice$`)
	bob.say("/epoch 4 60")
	bob.expect(`^\[room epoch 4\] reached$`)
	send(3, alice, bob)
	confirm(3, alice, bob)
	wait(k, alice, bob)
	// Same members, same epoch, same epoch authenticator (RFC 9420,
	// Section 8.7).
	var auths []string
	for _, c := range []*chatProc{alice, bob} {
		c.say("/members")
		auths = append(auths, c.expect(`^\[room epoch 4\] members: alice, bob; authenticator ([0-9a-f]{16,})$`)[1])
	}
	if auths[0] != auths[1] {
		t.Errorf("epoch authenticators: Alice %s, Bob %s", auths[0], auths[1])
	}
	for _, c := range everyone {
		c.quit()
	}
	for _, c := range everyone {
		for _, l := range c.all() {
			if strings.HasPrefix(l, "error:") || strings.Contains(l, "unreadable") {
				t.Errorf("%s printed %q", c.name, l)
			}
		}
	}
	d.term(t)

	// The log, from mlsd's database.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := dssqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err := st.Entries(ctx, []byte("room"), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var all []chatEvent
	next := map[string]int{}
	var commits []string
	for i, e := range log {
		if e.Seq != uint64(i+1) {
			t.Fatalf("the log's entry %d has seq %d", i, e.Seq)
		}
		sender := string(e.Sender)
		switch e.Kind {
		case ds.KindApplication:
			if next[sender] >= len(sent[sender]) {
				t.Fatalf("the log holds more than the %d messages %s sent", len(sent[sender]), sender)
			}
			// A chat sends one message at a time: its n-th message in the
			// log is the n-th it sent.
			all = append(all, chatEvent{epoch: e.Epoch, sender: sender, text: sent[sender][next[sender]]})
			next[sender]++
		case ds.KindCommit:
			all = append(all, chatEvent{commit: true, epoch: e.Epoch + 1, sender: sender})
			commits = append(commits, fmt.Sprintf("%s@%d", sender, e.Epoch))
		default:
			t.Fatalf("the log's entry %d is a %v", e.Seq, e.Kind)
		}
	}
	for name, texts := range sent {
		if next[name] != len(texts) {
			t.Errorf("the log holds %d of the %d messages %s sent", next[name], len(texts), name)
		}
	}
	if want := []string{"alice@0", "alice@1", "bob@2", "alice@3"}; !slices.Equal(commits, want) {
		t.Errorf("the log's commits (sender@epoch): %v, want %v", commits, want)
	}
	// What each member must have seen: the others' entries of the epochs
	// it was a member in (Bob from epoch 1, Carol in epochs 2 and 3).
	from := map[string][2]uint64{"alice": {0, 99}, "bob": {1, 99}, "carol": {2, 3}}
	for _, c := range everyone {
		var want []chatEvent
		for _, ev := range all {
			sentIn := ev.epoch
			if ev.commit {
				sentIn--
			}
			if ev.sender != c.name && sentIn >= from[c.name][0] && sentIn <= from[c.name][1] {
				want = append(want, ev)
			}
		}
		got := c.events()
		if !slices.Equal(got, want) {
			t.Errorf("%s saw %d entries:\n%v\nwant, from the log, %d:\n%v", c.name, len(got), got, len(want), want)
		}
	}
}
