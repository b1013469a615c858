package mls_test

// The crash test: a child process (this test binary, running
// TestCrashChild) drives three members, each with its own SQLite file,
// through a long run of commits (self-updates, removes and re-adds) and
// application messages, and the parent kills it with SIGKILL at random
// moments. After each kill the parent loads every member's group and
// checks that each state change was atomic: every member is where its last
// logged write left it, except that the one write in flight may have
// happened too. Then a new child recovers from the stored state, completes
// the interrupted operation, checks that every member still reads every
// other member's messages, and goes on.
//
// The members talk through a journal directory that plays the delivery
// service: a message is written there (atomically, fsynced) before any
// member acts on it, so that a restarted child can deliver it to the
// members that had not processed it yet. An operation is applied to the
// members in a fixed order, and the child logs each member's write (with
// the member's epoch, activity and pending commit) on stdout after it
// returns.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/storage/sqlite"
)

const (
	crashDirEnv   = "MLS_CRASH_DIR"
	crashUntilEnv = "MLS_CRASH_UNTIL"
	crashSuite    = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	crashPrefix   = "CRASH "
)

var (
	crashNames   = []string{"alice", "bob", "charlie"}
	crashGroupID = []byte("crash test group")
	crashCfg     = mls.JoinConfig{UseRatchetTreeExtension: true, MaxPastEpochs: 1}
)

// crashMember is one member in one process.
type crashMember struct {
	name  string
	id    mls.Identity
	store *sqlite.Store
	g     *mls.Group
}

// crashWorld is the three members and the journal of one process.
type crashWorld struct {
	dir string
	ms  []*crashMember
	out io.Writer // the log
	// recovering is the operation a restarted child completes first.
	recovering int
}

// crashState is what the log records of a member after each write.
type crashState struct {
	epoch           uint64
	active, pending bool
}

func (s crashState) String() string {
	return fmt.Sprintf("%d %v %v", s.epoch, s.active, s.pending)
}

func stateOf(g *mls.Group) crashState {
	return crashState{g.Epoch(), g.IsActive(), g.PendingCommit() != nil}
}

// openCrashWorld opens the stores and identities in dir; with create, it
// creates them and the group (alice adds bob and charlie).
func openCrashWorld(dir string, create bool) (*crashWorld, error) {
	ctx := context.Background()
	s, err := ciphersuite.Lookup(crashSuite)
	if err != nil {
		return nil, err
	}
	w := &crashWorld{dir: dir, out: io.Discard}
	for _, name := range crashNames {
		m := &crashMember{name: name}
		keyFile := filepath.Join(dir, name+".key")
		var priv []byte
		if create {
			signer, err := s.GenerateSignatureKey(nil)
			if err != nil {
				return nil, err
			}
			if priv, err = s.MarshalSigner(signer); err != nil {
				return nil, err
			}
			if err := atomicWrite(keyFile, priv); err != nil {
				return nil, err
			}
		} else if priv, err = os.ReadFile(keyFile); err != nil {
			return nil, err
		}
		signer, err := s.NewSigner(priv)
		if err != nil {
			return nil, err
		}
		m.id = mls.Identity{Credential: credential.NewBasic([]byte(name)), Signer: signer}
		if m.store, err = sqlite.Open(filepath.Join(dir, name+".db")); err != nil {
			return nil, err
		}
		w.ms = append(w.ms, m)
		if !create {
			if m.g, err = loaderOf(m.store, signer).LoadGroup(ctx, crashGroupID); err != nil {
				w.close()
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if create {
		if err := os.MkdirAll(filepath.Join(dir, "journal"), 0o755); err != nil {
			return nil, err
		}
		a := w.ms[0]
		if a.g, err = clientOf(a.store, a.id).CreateGroup(ctx, crashSuite, mls.GroupConfig{GroupID: crashGroupID, JoinConfig: crashCfg}); err != nil {
			return nil, err
		}
		var kps []*mls.KeyPackage
		for _, m := range w.ms[1:] {
			kp, err := clientOf(m.store, m.id).NewKeyPackage(ctx, crashSuite, mls.KeyPackageOptions{})
			if err != nil {
				return nil, err
			}
			kps = append(kps, kp)
		}
		res, err := a.g.AddMembers(ctx, kps...)
		if err != nil {
			return nil, err
		}
		if err := a.g.MergePendingCommit(ctx); err != nil {
			return nil, err
		}
		for _, m := range w.ms[1:] {
			if err := m.joinWith(res.Welcome); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

func (w *crashWorld) close() {
	for _, m := range w.ms {
		m.store.Close()
	}
}

func (m *crashMember) joinWith(welcome *mls.Message) error {
	ctx := context.Background()
	sw, err := clientOf(m.store, m.id).StageWelcome(ctx, welcome, mls.WelcomeOptions{JoinConfig: crashCfg})
	if err != nil {
		return fmt.Errorf("%s: StageWelcome: %w", m.name, err)
	}
	m.g, err = sw.Join(ctx)
	return err
}

// log records that m finished a write in operation k.
func (w *crashWorld) log(k int, m *crashMember, step string) {
	fmt.Fprintf(w.out, "%s%d %s %s %s\n", crashPrefix, k, m.name, step, stateOf(m.g))
}

// atomicWrite writes a file so that it exists either whole or not at all,
// and is on disk when atomicWrite returns.
func atomicWrite(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// journal files are named <op>-<phase> and hold length-prefixed messages.
func (w *crashWorld) journalPath(k int, phase string) string {
	return filepath.Join(w.dir, "journal", fmt.Sprintf("%06d-%s", k, phase))
}

func (w *crashWorld) post(k int, phase string, msgs ...[]byte) error {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		b = append(b, m...)
	}
	return atomicWrite(w.journalPath(k, phase), b)
}

// fetch returns the messages posted for (k, phase), or nil.
func (w *crashWorld) fetch(k int, phase string) ([][]byte, error) {
	b, err := os.ReadFile(w.journalPath(k, phase))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
			return nil, fmt.Errorf("journal %d-%s is damaged", k, phase)
		}
		n := binary.BigEndian.Uint32(b)
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out, nil
}

func (w *crashWorld) fetchMessage(k int, phase string) (*mls.Message, error) {
	ms, err := w.fetch(k, phase)
	if err != nil || ms == nil {
		return nil, err
	}
	return mls.ParseMessage(ms[0])
}

func marshal(m *mls.Message) []byte {
	b, err := m.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

// lastJournaled returns the highest operation with a journal entry.
func (w *crashWorld) lastJournaled() (int, error) {
	entries, err := os.ReadDir(filepath.Join(w.dir, "journal"))
	if err != nil {
		return 0, err
	}
	last := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			continue
		}
		k, err := strconv.Atoi(strings.SplitN(name, "-", 2)[0])
		if err != nil {
			return 0, fmt.Errorf("journal file %q", name)
		}
		last = max(last, k)
	}
	return last, nil
}

// crashOp is operation k of the run: an application message, a
// self-update, or a member removing another and adding it back.
type crashOp struct {
	kind      string // "app", "update", "readd"
	actor, to int
}

func opFor(k int) crashOp {
	r := rand.New(rand.NewPCG(uint64(k), 0x5eed))
	op := crashOp{actor: r.IntN(3)}
	op.to = (op.actor + 1 + r.IntN(2)) % 3
	switch x := r.IntN(10); {
	case x < 5:
		op.kind = "app"
	case x < 8:
		op.kind = "update"
	default:
		op.kind = "readd"
	}
	return op
}

// run performs operation k, completing whatever part of it a killed
// process left undone.
func (w *crashWorld) run(k int) error {
	op := opFor(k)
	switch op.kind {
	case "app":
		return w.app(k, w.ms[op.actor])
	case "update":
		return w.commitStep(k, "update", w.ms[op.actor], nil, func(ctx context.Context, g *mls.Group) (*mls.CommitResult, error) {
			return g.SelfUpdate(ctx)
		})
	}
	x, y := w.ms[op.actor], w.ms[op.to]
	if err := w.commitStep(k, "remove", x, nil, func(ctx context.Context, g *mls.Group) (*mls.CommitResult, error) {
		return g.RemoveMembers(ctx, y.g.OwnLeafIndex())
	}); err != nil {
		return err
	}
	// y publishes a fresh key package (its private keys are in y's store).
	kpMsgs, err := w.fetch(k, "kp")
	if err != nil {
		return err
	}
	if kpMsgs == nil {
		kp, err := clientOf(y.store, y.id).NewKeyPackage(context.Background(), crashSuite, mls.KeyPackageOptions{})
		if err != nil {
			return err
		}
		w.log(k, y, "keypackage")
		b, err := kp.MarshalBinary()
		if err != nil {
			return err
		}
		if err := w.post(k, "kp", b); err != nil {
			return err
		}
		kpMsgs = [][]byte{b}
	}
	kp, err := mls.ParseKeyPackage(kpMsgs[0])
	if err != nil {
		return err
	}
	return w.commitStep(k, "add", x, y, func(ctx context.Context, g *mls.Group) (*mls.CommitResult, error) {
		return g.AddMembers(ctx, kp)
	})
}

// app: the actor sends a message that the others read.
func (w *crashWorld) app(k int, x *crashMember) error {
	ctx := context.Background()
	text := fmt.Sprintf("message %d from %s", k, x.name)
	msg, err := w.fetchMessage(k, "app")
	if err != nil {
		return err
	}
	if msg == nil {
		m, err := x.g.Seal(ctx, []byte(text), nil)
		if err != nil {
			return fmt.Errorf("%s: Seal: %w", x.name, err)
		}
		w.log(k, x, "seal")
		if err := w.post(k, "app", marshal(m)); err != nil {
			return err
		}
		msg = m
	}
	for _, y := range w.ms {
		if y == x {
			continue
		}
		p, err := y.g.Process(ctx, msg)
		switch {
		case err == nil:
			if string(p.ApplicationData) != text {
				return fmt.Errorf("%s read %q, want %q", y.name, p.ApplicationData, text)
			}
			w.log(k, y, "open")
		case errors.Is(err, secrettree.ErrGenerationUsed) && k == w.recovering:
			// Read before the crash: its key is consumed.
		default:
			return fmt.Errorf("op %d: %s reading %s's message: %w", k, y.name, x.name, err)
		}
	}
	return nil
}

// commitStep: x commits (unless the journal shows it already did), merges,
// the others process and merge in order, and joiner, if any, joins with
// the Welcome.
func (w *crashWorld) commitStep(k int, phase string, x, joiner *crashMember, f func(context.Context, *mls.Group) (*mls.CommitResult, error)) error {
	ctx := context.Background()
	posted, err := w.fetch(k, phase)
	if err != nil {
		return err
	}
	if posted == nil {
		if x.g.PendingCommit() != nil {
			// Committed, but the commit never reached the delivery
			// service: drop it and commit again.
			if err := x.g.ClearPendingCommit(ctx); err != nil {
				return err
			}
			w.log(k, x, "clear")
		}
		res, err := f(ctx, x.g)
		if err != nil {
			return fmt.Errorf("op %d %s: %s: commit: %w", k, phase, x.name, err)
		}
		w.log(k, x, "commit")
		posted = [][]byte{marshal(res.Commit)}
		if res.Welcome != nil {
			posted = append(posted, marshal(res.Welcome))
		}
		if err := w.post(k, phase, posted...); err != nil {
			return err
		}
	}
	commit, err := mls.ParseMessage(posted[0])
	if err != nil {
		return err
	}
	epoch := commit.Epoch()
	// x's pending commit is this one only if x is still at its epoch (it
	// may be the unposted commit of a later phase).
	if x.g.PendingCommit() != nil && x.g.Epoch() == epoch {
		if err := x.g.MergePendingCommit(ctx); err != nil {
			return err
		}
		w.log(k, x, "merge")
	} else if x.g.Epoch() <= epoch {
		return fmt.Errorf("op %d %s: %s at epoch %d lost its pending commit for epoch %d", k, phase, x.name, x.g.Epoch(), epoch)
	}
	for _, y := range w.ms {
		if y == x || y == joiner {
			continue
		}
		switch {
		case !y.g.IsActive() || y.g.Epoch() > epoch:
			continue // done before the crash
		case y.g.Epoch() < epoch:
			return fmt.Errorf("op %d %s: %s at epoch %d, the commit is for epoch %d", k, phase, y.name, y.g.Epoch(), epoch)
		}
		p, err := y.g.Process(ctx, commit)
		if err != nil {
			return fmt.Errorf("op %d %s: %s: Process: %w", k, phase, y.name, err)
		}
		if err := y.g.MergeStagedCommit(ctx, p.Commit); err != nil {
			return err
		}
		w.log(k, y, "merge")
	}
	if joiner != nil && (!joiner.g.IsActive() || joiner.g.Epoch() <= epoch) {
		if len(posted) < 2 {
			return fmt.Errorf("op %d %s: no Welcome", k, phase)
		}
		welcome, err := mls.ParseMessage(posted[1])
		if err != nil {
			return err
		}
		if err := joiner.joinWith(welcome); err != nil {
			return fmt.Errorf("op %d: %w", k, err)
		}
		w.log(k, joiner, "join")
	}
	return nil
}

// probe has every member send a message that every other member reads:
// no message key was lost.
func (w *crashWorld) probe() error {
	ctx := context.Background()
	for _, x := range w.ms {
		text := fmt.Sprintf("probe from %s in process %d", x.name, os.Getpid())
		m, err := x.g.Seal(ctx, []byte(text), nil)
		if err != nil {
			return fmt.Errorf("probe: %s: Seal: %w", x.name, err)
		}
		for _, y := range w.ms {
			if y == x {
				continue
			}
			p, err := y.g.Process(ctx, m)
			if err != nil || string(p.ApplicationData) != text {
				return fmt.Errorf("probe: %s cannot read %s: %v", y.name, x.name, err)
			}
		}
	}
	return nil
}

// TestCrashChild is the child process of TestCrashAtomicity.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashAtomicity; runs only from it")
	}
	until, err := strconv.Atoi(os.Getenv(crashUntilEnv))
	if err != nil {
		t.Fatal(err)
	}
	w, err := openCrashWorld(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	w.out = os.Stdout
	k, err := w.lastJournaled()
	if err != nil {
		t.Fatal(err)
	}
	k = max(k, 1)
	w.recovering = k
	if err := w.run(k); err != nil {
		t.Fatalf("recovering op %d: %v", k, err)
	}
	// A pending commit now is the next operation's, never posted: drop it
	// (that operation would) so that the members can send the probe.
	for _, m := range w.ms {
		if m.g.PendingCommit() != nil {
			if err := m.g.ClearPendingCommit(context.Background()); err != nil {
				t.Fatal(err)
			}
			w.log(k+1, m, "clear")
		}
	}
	if err := w.probe(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%sready %d\n", crashPrefix, k)
	for k++; k <= until; k++ {
		if err := w.run(k); err != nil {
			t.Fatal(err)
		}
	}
}

// legalStep reports whether one write can take a member from state a to b.
func legalStep(a, b crashState) bool {
	switch {
	case a == b:
		return true
	case !a.active:
		return b.active && !b.pending && b.epoch > a.epoch // joined again
	case !b.active:
		return b.epoch == a.epoch && !a.pending // removed
	case !a.pending && b.pending:
		return b.epoch == a.epoch // committed
	case a.pending && !b.pending:
		return b.epoch == a.epoch || b.epoch == a.epoch+1 // cleared or merged
	}
	return b.epoch == a.epoch+1 && !a.pending && !b.pending // merged a received commit
}

// TestCrashAtomicity kills a child process running group operations at
// random moments and checks the stored states after each kill; see the
// file comment.
func TestCrashAtomicity(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child process")
	}
	kills := 200
	if testing.Short() {
		kills = 20
	}
	dir := t.TempDir()
	w, err := openCrashWorld(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]crashState{}
	for _, m := range w.ms {
		logged[m.name] = stateOf(m.g)
	}
	w.close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := time.Now()
	lastOp, ahead := 0, 0
	for i := 0; i <= kills; i++ {
		final := i == kills
		until := 1 << 30
		if final {
			until = lastOp + 5
		}
		out, killed, err := runCrashChild(t, dir, until, final, time.Duration(rng.IntN(40_000))*time.Microsecond)
		ops := applyLog(t, out, logged)
		lastOp = max(lastOp, ops)
		if final {
			if err != nil {
				t.Fatalf("final child: %v\n%s", err, out)
			}
		} else if !killed {
			t.Fatalf("child %d exited on its own (%v):\n%s", i, err, out)
		}
		if checkCrashState(t, dir, logged, fmt.Sprintf("after kill %d (op %d)", i, lastOp), out) {
			ahead++
		}
	}
	t.Logf("%d kills, %d operations in %v; %d kills fell between a write and its log line", kills, lastOp, time.Since(start).Round(time.Millisecond), ahead)
	if lastOp < kills/2 {
		t.Errorf("only %d operations completed over %d kills", lastOp, kills)
	}
}

// runCrashChild runs the child; unless final, it kills it delay after it
// reported ready. It returns the child's output.
func runCrashChild(t *testing.T, dir string, until int, final bool, delay time.Duration) (out []byte, killed bool, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v=false", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashUntilEnv+"="+strconv.Itoa(until))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(stdout)
		sent := false
		for {
			line, err := r.ReadBytes('\n')
			buf.Write(line)
			if !sent && bytes.HasPrefix(line, []byte(crashPrefix+"ready")) {
				close(ready)
				sent = true
			}
			if err != nil {
				return
			}
		}
	}()
	if !final {
		select {
		case <-ready:
			time.Sleep(delay)
		case <-done:
		}
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed = true
		}
	}
	<-done
	err = cmd.Wait()
	if killed {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			killed = false // it had already exited
		} else if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			killed = false
		}
	}
	return buf.Bytes(), killed, err
}

// applyLog updates logged from the complete log lines of a child's
// output and returns the highest operation number seen.
func applyLog(t *testing.T, out []byte, logged map[string]crashState) int {
	t.Helper()
	last := 0
	for _, line := range strings.SplitAfter(string(out), "\n") {
		if !strings.HasSuffix(line, "\n") || !strings.HasPrefix(line, crashPrefix) {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, crashPrefix))
		if f[0] == "ready" {
			continue
		}
		if len(f) != 6 {
			t.Fatalf("bad log line %q", line)
		}
		k, _ := strconv.Atoi(f[0])
		epoch, _ := strconv.ParseUint(f[3], 10, 64)
		logged[f[1]] = crashState{epoch, f[4] == "true", f[5] == "true"}
		last = max(last, k)
	}
	return last
}

// checkCrashState loads every member from its file and compares it with
// the log: at most one member may be one write ahead of its last logged
// state (the write the kill interrupted after it committed). Then logged
// becomes the stored state. It reports whether a member was ahead.
func checkCrashState(t *testing.T, dir string, logged map[string]crashState, when string, out []byte) bool {
	t.Helper()
	w, err := openCrashWorld(dir, false)
	if err != nil {
		t.Fatalf("%s: loading the stored groups: %v\nchild output:\n%s", when, err, out)
	}
	defer w.close()
	var ahead []string
	byEpoch := map[uint64][]*crashMember{}
	for _, m := range w.ms {
		got, want := stateOf(m.g), logged[m.name]
		if got != want {
			ahead = append(ahead, m.name)
			if !legalStep(want, got) {
				t.Fatalf("%s: %s stored at %v, last logged %v: not one atomic write apart\nchild output:\n%s", when, m.name, got, want, out)
			}
		}
		if got.active {
			byEpoch[got.epoch] = append(byEpoch[got.epoch], m)
		}
		logged[m.name] = got
	}
	if len(ahead) > 1 {
		t.Fatalf("%s: %v all differ from their logged states; only the interrupted write may\nchild output:\n%s", when, ahead, out)
	}
	epochs := slices.Sorted(maps.Keys(byEpoch))
	if len(epochs) > 2 || len(epochs) == 2 && epochs[1] != epochs[0]+1 {
		t.Fatalf("%s: active members at epochs %v", when, epochs)
	}
	for e, ms := range byEpoch {
		for _, m := range ms[1:] {
			if !bytes.Equal(m.g.EpochAuthenticator(), ms[0].g.EpochAuthenticator()) {
				t.Fatalf("%s: %s and %s at epoch %d disagree on the epoch authenticator", when, ms[0].name, m.name, e)
			}
		}
	}
	return len(ahead) > 0
}
