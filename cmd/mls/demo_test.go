package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// storySteps are the step headers of the default run, in order.
var storySteps = []string{
	"== Step 1: Alice creates the group ",
	"== Step 2: Bob and Charlie publish key packages; Alice adds them ",
	"== Step 3: Members exchange application messages ",
	"== Step 4: Bob proposes an update; Alice commits it ",
	"== Step 5: Alice rotates her keys (self-update) ",
	"== Step 6: Alice removes Charlie ",
	"== Step 7: Charlie can no longer read the group ",
}

// inOrder checks that each of wants occurs in s, after the previous one.
func inOrder(t *testing.T, s string, wants ...string) {
	t.Helper()
	rest := s
	for _, w := range wants {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("output lacks %q (or has it out of order); output:\n%s", w, s)
			return
		}
		rest = rest[i+len(w):]
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	status, stdout, stderr := runCmd("demo")
	if status != 0 {
		t.Fatalf("demo exited %d; stderr:\n%s\nstdout:\n%s", status, stderr, stdout)
	}
	if stderr != "" {
		t.Errorf("demo wrote to stderr:\n%s", stderr)
	}
	inOrder(t, stdout, storySteps...)
	// The state lives in a temporary directory, gone after the run.
	m := regexp.MustCompile(`^State: one SQLite file per member in (.+) \(temporary, removed at the end\)\.\n`).FindStringSubmatch(stdout)
	if m == nil {
		t.Errorf("output does not start with the state directory:\n%s", stdout)
	} else if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary state directory %s is still there after the run (stat: %v)", m[1], err)
	}
	if strings.Contains(stdout, "run the demo again with -db") {
		t.Errorf("a run without -db tells how to continue it:\n%s", stdout)
	}
	inOrder(t, stdout,
		"Bob     joins at leaf 1.",
		"Charlie joins at leaf 2.",
		`Bob     reads "Hi Bob and Charlie, welcome to secure-chat!" from Alice.`,
		`Charlie reads "Hi Bob and Charlie, welcome to secure-chat!" from Alice.`,
		`Alice   reads "Thanks Alice. Hi Charlie!" from Bob.`,
		`Bob     reads "Hello both. Meeting at 2pm?" from Charlie.`,
		"Alice   receives Bob's Update proposal and queues it (1 pending).",
		"Charlie receives Bob's Update proposal and queues it (1 pending).",
		"Alice commits the pending proposals: commit of ",
		"Bob     processes Alice's commit: my update applied; epoch 2.",
		"Charlie processes Alice's commit: Bob's update applied; epoch 2.",
		"Bob's leaf encryption key changed",
		"Charlie processes Alice's commit: new keys for Alice's leaf and path; epoch 3.",
		"Charlie's device is backed up at epoch 3",
		"Bob     processes Alice's commit: Charlie removed by Alice; epoch 4.",
		"Charlie processes Alice's commit: it removes me",
		"Charlie          -      3  (removed)",
		"members (2): Alice, Bob",
		`Bob     reads "Charlie is gone. The new keys are ours only." from Alice.`,
		"Charlie (removed) cannot read it: "+mls.ErrInactive.Error(),
		"Charlie restores his backup: a member again, at epoch 3",
		"The backup fails to decrypt the new message: mls: message from a future epoch",
		"All 2 active members are in sync at epoch 4",
	)
	// Every step ends with the agreement check; none failed.
	if n := strings.Count(stdout, "\n  OK: "); n != len(storySteps) {
		t.Errorf("%d agreement checks passed, want one per step (%d)", n, len(storySteps))
	}
	if strings.Contains(stdout, "FAIL") {
		t.Errorf("output reports a failure:\n%s", stdout)
	}
	if strings.Contains(stdout, "Timings") {
		t.Errorf("timings printed without -members")
	}
	// Charlie's plaintext never reaches him after his removal.
	for _, line := range strings.Split(stdout, "\n") {
		if strings.Contains(line, "Charlie reads") && strings.Contains(line, "Charlie is gone") {
			t.Errorf("Charlie read the message after his removal: %q", line)
		}
	}
}

func TestDemoMembers(t *testing.T) {
	t.Parallel()
	status, stdout, stderr := runCmd("demo", "-members", "20", "-batch", "8")
	if status != 0 {
		t.Fatalf("demo -members 20 exited %d; stderr:\n%s\nstdout:\n%s", status, stderr, stdout)
	}
	inOrder(t, stdout,
		"== Step 3: The group grows to 20 members ",
		"17 more clients publish key packages; Alice adds them in commits of up to 8,",
		"After 3 commits, the group has 20 members.",
		"17 others               4  ",
		"members (20): Alice, Bob, Charlie, member-04, member-05, ..., member-20",
		"OK: all 20 active members agree on epoch 4",
		"...and 17 more members read it too.",
		"members (19): Alice, Bob, member-04",
		"== Step 8: Charlie can no longer read the group ",
		"The backup fails to decrypt the new message: ",
		"All 19 active members are in sync at epoch 7",
		"Timings with up to N=20 members",
	)
	for _, op := range []string{"bulk add commit", "process bulk add commit", "join (stage Welcome + join)", "update proposal",
		"process update proposal", "update commit", "process update commit", "self-update commit",
		"process self-update commit", "seal application message", "open application message", "remove commit", "process remove commit"} {
		if !strings.Contains(stdout, "\n  "+op+" ") {
			t.Errorf("timing table lacks %q", op)
		}
	}
	// Bob, Charlie and the 17 others joined.
	if !strings.Contains(stdout, fmt.Sprintf("  %-34s %6d ", "join (stage Welcome + join)", 19)) {
		t.Errorf("timing table does not count 19 joins:\n%s", stdout)
	}
	if !strings.Contains(stderr, "growing the group [") || !strings.HasSuffix(stderr, "] 17/17 joined\n") {
		t.Errorf("stderr does not end with a full progress bar:\n%q", stderr)
	}
}

func TestDemoSuites(t *testing.T) {
	t.Parallel()
	for _, id := range ciphersuite.All() {
		for _, arg := range []string{id.String(), fmt.Sprint(uint16(id))} {
			t.Run(arg, func(t *testing.T) {
				t.Parallel()
				status, stdout, stderr := runCmd("demo", "-suite", arg)
				if status != 0 {
					t.Fatalf("exited %d; stderr:\n%s", status, stderr)
				}
				inOrder(t, stdout, fmt.Sprintf("with cipher suite %s (0x%04x)", id, uint16(id)), "All 2 active members are in sync")
			})
		}
	}
}

func TestDemoUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-suite", "MLS_999"}, `unknown cipher suite "MLS_999"`},
		{[]string{"-suite", "9"}, "unsupported cipher suite 9; known: 1=MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, 2="},
		{[]string{"-suite", "0x10000"}, "unknown cipher suite"},
		{[]string{"-members", "2"}, "-members 2: want 3 to 1000"},
		{[]string{"-members", "1001"}, "-members 1001: want 3 to 1000"},
		{[]string{"-batch", "0"}, "-batch 0: want at least 1"},
		{[]string{"-members", "x"}, "invalid value"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		status, stdout, stderr := runCmd(append([]string{"demo"}, tc.args...)...)
		if status != 2 {
			t.Errorf("demo %v exited %d, want 2", tc.args, status)
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("demo %v: stderr %q lacks %q", tc.args, stderr, tc.want)
		}
		if stdout != "" {
			t.Errorf("demo %v printed to stdout:\n%s", tc.args, stdout)
		}
	}
	status, stdout, _ := runCmd("demo", "-h")
	if status != 0 || !strings.Contains(stdout, "Usage: mls demo") || !strings.Contains(stdout, "-members N") {
		t.Errorf("demo -h: status %d, stdout:\n%s", status, stdout)
	}
}

func TestParseSuite(t *testing.T) {
	for in, want := range map[string]mls.CipherSuite{
		"1":      mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		"0x0002": mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256,
		"mls_256_dhkemx448_chacha20poly1305_sha512_ed448": mls.MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448,
		"MLS_256_DHKEMP384_AES256GCM_SHA384_P384":         mls.MLS_256_DHKEMP384_AES256GCM_SHA384_P384,
	} {
		got, err := parseSuite(in)
		if err != nil || got != want {
			t.Errorf("parseSuite(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "8", "-1", "MLS_128", "65536"} {
		if got, err := parseSuite(in); err == nil {
			t.Errorf("parseSuite(%q) = %v, want an error", in, got)
		}
	}
}

func TestCheckAgreement(t *testing.T) {
	a := []byte{1, 2, 3, 4, 5, 6}
	b := []byte{1, 2, 3, 4, 5, 7} // differs after the printed prefix
	alice := memberView{Name: "Alice", Epoch: 4, Auth: a}
	for _, tc := range []struct {
		name  string
		views []memberView
		bad   string // the member reported, "" if they agree
		want  string // in the message
	}{
		{"none", nil, "", ""},
		{"one", []memberView{alice}, "", ""},
		{"agree", []memberView{alice, {"Bob", 4, bytes.Clone(a)}, {"Charlie", 4, bytes.Clone(a)}}, "", ""},
		{"epoch", []memberView{alice, {"Bob", 4, a}, {"Charlie", 3, a}}, "Charlie", "Alice is at epoch 4, Charlie at epoch 3"},
		{"authenticator", []memberView{alice, {"Bob", 4, b}, {"Charlie", 4, a}}, "Bob", "Alice and Bob are both at epoch 4 but their epoch authenticators differ (01020304 vs 01020304)"},
		{"missing authenticator", []memberView{alice, {"Bob", 4, nil}}, "Bob", "authenticators differ (01020304 vs )"},
	} {
		err := checkAgreement(tc.views)
		if tc.bad == "" {
			if err != nil {
				t.Errorf("%s: %v, want agreement", tc.name, err)
			}
			continue
		}
		var de *disagreementError
		if !errors.As(err, &de) {
			t.Errorf("%s: got %v, want a *disagreementError", tc.name, err)
			continue
		}
		if de.A.Name != "Alice" || de.B.Name != tc.bad {
			t.Errorf("%s: reported %s and %s, want Alice and %s", tc.name, de.A.Name, de.B.Name, tc.bad)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: message %q lacks %q", tc.name, err, tc.want)
		}
	}
}

// TestDemoDetectsDisagreement makes Bob see a different authenticator
// after his update and checks that the demo stops there with an error.
func TestDemoDetectsDisagreement(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	d := newDemo(demoConfig{members: 3, suite: mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, batch: 1}, &out, &errb)
	tampered := false
	d.tamper = func(step int, views []memberView) {
		if step != 4 {
			return
		}
		for i := range views {
			if views[i].Name == "Bob" {
				views[i].Auth = bytes.Clone(views[i].Auth)
				views[i].Auth[0] ^= 0xff
				tampered = true
			}
		}
	}
	err := d.run(context.Background())
	if !tampered {
		t.Fatal("the hook never saw Bob at step 4")
	}
	var de *disagreementError
	if !errors.As(err, &de) || de.B.Name != "Bob" {
		t.Fatalf("run returned %v, want a disagreement about Bob", err)
	}
	s := out.String()
	inOrder(t, s, storySteps[3], "  FAIL: members disagree: Alice and Bob are both at epoch 2")
	if strings.Contains(s, storySteps[4]) {
		t.Errorf("the demo went on after the disagreement:\n%s", s)
	}
}

func TestBackupStoreCopy(t *testing.T) {
	ctx := context.Background()
	s := newBackupStore(memory.New())
	put := func(bucket, key, value string) {
		t.Helper()
		if err := s.Update(ctx, func(tx storage.Tx) error { return tx.Put(bucket, []byte(key), []byte(value)) }); err != nil {
			t.Fatal(err)
		}
	}
	put("groups", "g1", "state 1")
	put("ratchets", "g1/0", "r0")
	put("ratchets", "g1/1", "r1")
	cp, err := s.copy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put("groups", "g1", "state 2") // after the backup
	put("other", "k", "v")
	want := map[string]string{"groups/g1": "state 1", "ratchets/g1/0": "r0", "ratchets/g1/1": "r1"}
	got := map[string]string{}
	err = cp.View(ctx, func(tx storage.Tx) error {
		for _, b := range []string{"groups", "ratchets", "other"} {
			if err := tx.Scan(b, nil, func(k, v []byte) error {
				got[b+"/"+string(k)] = string(v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("copy holds %v, want %v", got, want)
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "work", "", 4)
	for range 4 {
		p.add(1)
	}
	p.finish()
	p.finish()
	want := "\rwork [" + strings.Repeat(".", 30) + "] 0/4" +
		"\rwork [" + strings.Repeat("#", 7) + strings.Repeat(".", 23) + "] 1/4" +
		"\rwork [" + strings.Repeat("#", 15) + strings.Repeat(".", 15) + "] 2/4" +
		"\rwork [" + strings.Repeat("#", 22) + strings.Repeat(".", 8) + "] 3/4" +
		"\rwork [" + strings.Repeat("#", 30) + "] 4/4\n"
	if b.String() != want {
		t.Errorf("progress drew\n%q\nwant\n%q", b.String(), want)
	}
}

func TestProgressNote(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "grow", "0 joined", 2)
	p.note = "1 joined"
	p.add(1)
	p.note = "2 joined"
	p.add(1)
	p.finish()
	want := "\rgrow [" + strings.Repeat(".", 30) + "] 0 joined" +
		"\rgrow [" + strings.Repeat("#", 15) + strings.Repeat(".", 15) + "] 1 joined" +
		"\rgrow [" + strings.Repeat("#", 30) + "] 2 joined\n"
	if b.String() != want {
		t.Errorf("progress drew\n%q\nwant\n%q", b.String(), want)
	}
}

// --- State in SQLite files, and continued runs ------------------------------

var (
	finalRe = regexp.MustCompile(`\nAll (\d+) active members are in sync at epoch (\d+) \(authenticator ([0-9a-f]{8})\)\.\n`)
	agreeRe = regexp.MustCompile(`\n  OK: all (\d+) active members agree on epoch (\d+) and authenticator ([0-9a-f]{8})\.\n`)
)

// runEnd is how a run of the demo ended.
type runEnd struct {
	active int
	epoch  uint64
	auth   string
}

// demoRun runs the demo with args, wants exit status 0 and no stderr,
// and returns the output and the final line's numbers.
func demoRun(t *testing.T, args ...string) (string, runEnd) {
	t.Helper()
	status, stdout, stderr := runCmd(append([]string{"demo"}, args...)...)
	if status != 0 {
		t.Fatalf("demo %v exited %d; stderr:\n%s\nstdout:\n%s", args, status, stderr, stdout)
	}
	if stderr != "" && !strings.Contains(strings.Join(args, " "), "-members") {
		t.Errorf("demo %v wrote to stderr:\n%s", args, stderr)
	}
	if strings.Contains(stdout, "FAIL") {
		t.Errorf("demo %v reports a failure:\n%s", args, stdout)
	}
	m := finalRe.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("demo %v: no final agreement line:\n%s", args, stdout)
	}
	active, _ := strconv.Atoi(m[1])
	epoch, _ := strconv.ParseUint(m[2], 10, 64)
	return stdout, runEnd{active, epoch, m[3]}
}

// agreedEpochs returns the epoch of each agreement check in s, in order.
func agreedEpochs(s string) []uint64 {
	var out []uint64
	for _, m := range agreeRe.FindAllStringSubmatch(s, -1) {
		e, _ := strconv.ParseUint(m[2], 10, 64)
		out = append(out, e)
	}
	return out
}

// checkResumed checks the start of a continued run: the members load the
// epoch and authenticator the previous run ended with, the group does not
// start over, and the epochs only grow from there.
func checkResumed(t *testing.T, out string, run int, prev runEnd) {
	t.Helper()
	inOrder(t, out,
		"left by an earlier run: the group continues.",
		"== Step 1: The members load the group from their files ",
		fmt.Sprintf("Run %d: 3 clients open their files", run),
		fmt.Sprintf("Alice   loads the group from Alice.db: leaf 0, epoch %d, authenticator %s, as stored by run %d.", prev.epoch, prev.auth, run-1),
		fmt.Sprintf("Bob     loads the group from Bob.db: leaf 1, epoch %d, authenticator %s, as stored by run %d.", prev.epoch, prev.auth, run-1),
		fmt.Sprintf("  OK: all %d active members agree on epoch %d and authenticator %s.", prev.active, prev.epoch, prev.auth),
		"== Step 2: Members exchange application messages ",
		"== Step 3: Bob rotates his keys (self-update) ",
		"Bob commits a self-update: commit of ",
		fmt.Sprintf("Alice   processes Bob's commit: new keys for Bob's leaf and path; epoch %d.", prev.epoch+1),
		fmt.Sprintf("Run %d ends; the group stays in ", run),
	)
	if strings.Contains(out, "Alice creates the group") {
		t.Errorf("run %d started the group over:\n%s", run, out)
	}
	epochs := agreedEpochs(out)
	if len(epochs) == 0 || epochs[0] != prev.epoch {
		t.Fatalf("run %d: agreement checks at epochs %v, want the first at %d", run, epochs, prev.epoch)
	}
	if !slices.IsSorted(epochs) || epochs[len(epochs)-1] <= prev.epoch {
		t.Errorf("run %d: agreement checks at epochs %v, want them to grow past %d", run, epochs, prev.epoch)
	}
}

// TestDemoContinues runs the demo four times on one -db directory: each
// later run loads the group where the previous one left it and moves it
// on, re-adding and removing Charlie in turn.
func TestDemoContinues(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state") // created by the demo
	out, end1 := demoRun(t, "-db", dir)
	inOrder(t, out,
		"State: one SQLite file per member in "+dir+"; run again with -db to continue the group.",
		storySteps[0], storySteps[6],
		"Run 1 ends; the group stays in "+dir)
	// The story of run 1: create (0), add (1), Bob's update (2),
	// Alice's update (3), remove Charlie (4).
	if end1 != (runEnd{2, 4, end1.auth}) {
		t.Fatalf("run 1 ended with %+v, want 2 members at epoch 4", end1)
	}
	for _, name := range []string{"Alice", "Bob", "Charlie"} {
		if fi, err := os.Stat(filepath.Join(dir, name+".db")); err != nil || fi.Size() == 0 {
			t.Errorf("%s's file: %v", name, err)
		}
	}

	// Run 2: Charlie was removed; Alice adds him back into his old file.
	out, end2 := demoRun(t, "-db", dir)
	checkResumed(t, out, 2, end1)
	inOrder(t, out,
		"Charlie finds his removed state in Charlie.db: epoch 3, as stored by run 1.",
		"Charlie          -      3  (removed)",
		`Bob     reads "Good morning! This is run 2 of secure-chat." from Alice.`,
		"== Step 4: Alice adds Charlie back ",
		"Charlie's file still holds his removed state (epoch 3).",
		"Charlie publishes a fresh key package",
		"Bob     processes Alice's commit: Charlie added; epoch 6.",
		"Charlie stages the Welcome into the same file: group \"secure-chat\", epoch 6, invited by Alice.",
		"Charlie joins at leaf 2; the new state replaces the removed one.",
		"Loading Charlie's file again gives the new membership: active, epoch 6.",
		`Bob     reads "Glad to be back!" from Charlie.`,
		"members (3): Alice, Bob, Charlie",
	)
	if end2.active != 3 || end2.epoch != end1.epoch+2 || end2.auth == end1.auth {
		t.Errorf("run 2 ended with %+v, want 3 members at epoch %d with a new authenticator", end2, end1.epoch+2)
	}

	// Run 3: Charlie loads his new membership from the same file, and
	// Alice removes him again.
	out, end3 := demoRun(t, "-db", dir)
	checkResumed(t, out, 3, end2)
	inOrder(t, out,
		fmt.Sprintf("Charlie loads the group from Charlie.db: leaf 2, epoch %d, authenticator %s, as stored by run 2.", end2.epoch, end2.auth),
		`Charlie reads "Good morning! This is run 3 of secure-chat." from Alice.`,
		`Alice   reads "Same here. Still on for 2pm?" from Charlie.`,
		fmt.Sprintf("Charlie processes Bob's commit: new keys for Bob's leaf and path; epoch %d.", end2.epoch+1),
		"== Step 4: Alice removes Charlie again ",
		"Charlie processes Alice's commit: it removes me (I was removed by Alice) and I become inactive.",
		"== Step 5: Charlie can no longer read the group ",
		`Bob     reads "Charlie is out again after run 3." from Alice.`,
		"Charlie (removed) cannot read it: "+mls.ErrInactive.Error(),
	)
	if end3.active != 2 || end3.epoch != end2.epoch+2 {
		t.Errorf("run 3 ended with %+v, want 2 members at epoch %d", end3, end2.epoch+2)
	}

	// Run 4: Charlie comes back a second time.
	out, end4 := demoRun(t, "-db", dir)
	checkResumed(t, out, 4, end3)
	inOrder(t, out,
		fmt.Sprintf("Charlie finds his removed state in Charlie.db: epoch %d, as stored by run 3.", end2.epoch+1),
		"== Step 4: Alice adds Charlie back ",
		"Charlie joins at leaf 2",
	)
	if end4.active != 3 || end4.epoch != end3.epoch+2 {
		t.Errorf("run 4 ended with %+v, want 3 members at epoch %d", end4, end3.epoch+2)
	}
	// The state directory holds the three members' files and nothing
	// was left half-written.
	files, err := filepath.Glob(filepath.Join(dir, "*.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	if fmt.Sprint(files) != "[Alice.db Bob.db Charlie.db]" {
		t.Errorf("state directory holds %v", files)
	}
}

// TestDemoContinuesMembers continues a group made with -members.
func TestDemoContinuesMembers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Epochs: create 0, add Bob and Charlie 1, two bulk adds of 2 and 1
	// (2, 3), Bob's update 4, Alice's update 5, Charlie's removal 6.
	_, end1 := demoRun(t, "-db", dir, "-members", "6", "-batch", "2")
	if end1 != (runEnd{5, 6, end1.auth}) {
		t.Fatalf("run 1 ended with %+v, want 5 members at epoch 6", end1)
	}
	// The same command line continues the group, with timings.
	out, end2 := demoRun(t, "-db", dir, "-members", "6")
	inOrder(t, out,
		"Run 2: 6 clients open their files",
		fmt.Sprintf("Alice   loads the group from Alice.db: leaf 0, epoch 6, authenticator %s, as stored by run 1.", end1.auth),
		"...and 3 more members load theirs, each as stored.",
		fmt.Sprintf("  %-12s %5s %6d  %s  (all the same)", "3 others", "", 6, end1.auth),
		"...and 3 more members read it too.",
		"== Step 4: Alice adds Charlie back ",
		"Charlie joins at leaf 2",
		"members (6): Alice, Bob, Charlie, member-4, member-5, member-6",
		"Timings with up to N=6 members",
		"\n  load group ",
	)
	if end2.active != 6 || end2.epoch != 8 {
		t.Errorf("run 2 ended with %+v, want 6 members at epoch 8", end2)
	}
	// Without -members, it goes on too.
	out, end3 := demoRun(t, "-db", dir)
	inOrder(t, out, "Run 3: 6 clients open their files", "== Step 4: Alice removes Charlie again ")
	if end3.active != 5 || end3.epoch != 10 || strings.Contains(out, "Timings") {
		t.Errorf("run 3 ended with %+v (want 5 members at epoch 10), timings printed: %v", end3, strings.Contains(out, "Timings"))
	}
}

// TestDemoDBUsageErrors: a command line that does not fit the stored group
// is refused, with exit status 2, before anything is printed or changed.
func TestDemoDBUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, end1 := demoRun(t, "-db", dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-members", "5"}, "-members 5: " + dir + " holds a group of 3 clients, and -members only applies when the group is created"},
		{[]string{"-suite", "2"}, "-suite MLS_128_DHKEMP256_AES128GCM_SHA256_P256: the group stored in " + dir + " uses MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"},
	} {
		status, stdout, stderr := runCmd(append([]string{"demo", "-db", dir}, tc.args...)...)
		if status != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("demo -db DIR %v: status %d, stderr %q (want 2 and %q), stdout:\n%s", tc.args, status, stderr, tc.want, stdout)
		}
	}
	status, stdout, stderr := runCmd("demo", "-db", "")
	if status != 2 || !strings.Contains(stderr, "-db: empty directory name") || stdout != "" {
		t.Errorf(`demo -db "": status %d, stderr %q, stdout %q`, status, stderr, stdout)
	}
	// The refused runs changed nothing: the next run is run 2, from
	// where run 1 ended. -suite with the stored suite is accepted.
	out, _ := demoRun(t, "-db", dir, "-suite", "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", "-members", "3")
	checkResumed(t, out, 2, end1)
	if !strings.Contains(out, "Timings with up to N=3 members") {
		t.Errorf("-members 3 on a group of 3 prints no timings:\n%s", out)
	}
}

// runDemoIn runs the demo on dir in-process and returns its output and
// error.
func runDemoIn(dir string) (string, error) {
	var out, errb bytes.Buffer
	d := newDemo(demoConfig{members: minDemoMembers, suite: mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, batch: 1, dir: dir, dirSet: true}, &out, &errb)
	err := d.run(context.Background())
	return out.String(), err
}

// copyDir copies the regular files of src into a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// editStore runs fn on the store in the file at path.
func editStore(t *testing.T, path string, fn func(storage.Tx) error) {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// TestDemoDamagedState: damaged files give a clear error naming the
// member and the file, with exit status 1, not a panic; and the error is
// the library's typed error.
func TestDemoDamagedState(t *testing.T) {
	t.Parallel()
	good := t.TempDir()
	demoRun(t, "-db", good)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		is     error
		want   []string
	}{
		{"not a database", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "Bob.db")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			copy(b, "this is not an SQLite file at all, just bytes.")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, sqlite.ErrCorrupt, []string{"Bob: opening ", "Bob.db", "not a valid database file"}},
		{"group record", func(t *testing.T, dir string) {
			editStore(t, filepath.Join(dir, "Bob.db"), func(tx storage.Tx) error {
				return tx.Put("groups", []byte(demoGroupID), []byte("garbage"))
			})
		}, mls.ErrCorruptState, []string{`Bob: loading group "secure-chat" from `, "Bob.db", "corrupt"}},
		{"demo record", func(t *testing.T, dir string) {
			editStore(t, filepath.Join(dir, "Alice.db"), func(tx storage.Tx) error {
				return tx.Put(demoBucket, demoRecordKey, []byte{demoRecordVersion, 5, 'A'})
			})
		}, wire.ErrTruncated, []string{"Alice: ", "Alice.db", "the demo's record is damaged or foreign", "demo record.name"}},
		{"no demo record", func(t *testing.T, dir string) {
			editStore(t, filepath.Join(dir, "Charlie.db"), func(tx storage.Tx) error {
				return tx.Delete(demoBucket, demoRecordKey)
			})
		}, errBadRecord, []string{"Charlie: ", "Charlie.db", "the file holds no record of the demo"}},
		{"empty file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "Bob.db"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, errBadRecord, []string{"Bob: ", "the file holds no record of the demo"}},
		{"missing member", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "Bob.db")); err != nil {
				t.Fatal(err)
			}
		}, errBadRecord, []string{"Charlie.db", "member number 2 of the story", "holds 2 members' files"}},
		{"stopped mid-step", func(t *testing.T, dir string) {
			// Bob's record says the last check saw another epoch,
			// as if the run had stopped between the library's save
			// and the demo's.
			path := filepath.Join(dir, "Bob.db")
			s, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := readRecord(context.Background(), s)
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			rec.Checkpoint.Epoch--
			b, err := rec.marshal()
			if err != nil {
				t.Fatal(err)
			}
			editStore(t, path, func(tx storage.Tx) error { return tx.Put(demoBucket, demoRecordKey, b) })
		}, nil, []string{"Bob: ", "Bob.db", "the group is at epoch 4, the last agreement check saw epoch 3", "remove "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, good)
			tc.damage(t, dir)
			status, stdout, stderr := runCmd("demo", "-db", dir)
			if status != 1 {
				t.Errorf("exit status %d, want 1; stdout:\n%s", status, stdout)
			}
			if !strings.HasPrefix(stderr, "mls demo: ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one error line: %q", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if strings.Contains(stdout, "OK:") {
				t.Errorf("the demo went on:\n%s", stdout)
			}
			if tc.is != nil {
				_, err := runDemoIn(dir)
				if !errors.Is(err, tc.is) {
					t.Errorf("run returned %v, want an error wrapping %v", err, tc.is)
				}
			}
		})
	}
}

// TestDemoDropsPending: a run that stopped after a commit was created but
// not delivered, or after a proposal was queued but not committed, leaves
// them in the stores; the next run drops them and goes on.
func TestDemoDropsPending(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, end1 := demoRun(t, "-db", dir)
	ctx := context.Background()
	load := func(name string) (*mls.Group, *sqlite.Store) {
		t.Helper()
		s, err := sqlite.Open(filepath.Join(dir, name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := readRecord(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := ciphersuite.Lookup(rec.Suite)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := cs.NewSigner(rec.SigningKey)
		if err != nil {
			t.Fatal(err)
		}
		g, err := clientFor(s, mls.Identity{Credential: credential.NewBasic([]byte("x")), Signer: signer}).LoadGroup(ctx, rec.GroupID)
		if err != nil {
			t.Fatal(err)
		}
		return g, s
	}
	alice, as := load("Alice")
	bob, bs := load("Bob")
	proposal, err := bob.ProposeSelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := alice.Process(ctx, proposal)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.StorePendingProposal(ctx, p.Proposal); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SelfUpdate(ctx); err != nil { // never delivered
		t.Fatal(err)
	}
	as.Close()
	bs.Close()

	out, _ := demoRun(t, "-db", dir)
	checkResumed(t, out, 2, end1)
	inOrder(t, out,
		"Alice   drops 1 pending proposal that the last run never committed.",
		"Bob     drops a commit that the last run created but never delivered.",
		"== Step 3: Bob rotates his keys (self-update) ",
		"Bob commits a self-update",
	)
}

func TestMemberRecord(t *testing.T) {
	rec := &memberRecord{
		Name: "Bob", Index: 1, Suite: mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		GroupID: []byte("g"), SigningKey: []byte{0xaa, 0xbb}, Runs: 2,
		Checkpoint: &checkpoint{Epoch: 4, Active: true, Auth: []byte{1, 2}},
	}
	want := []byte{
		1,                // version
		3, 'B', 'o', 'b', // name
		0, 0, 0, 1, // index
		0, 1, // cipher suite
		1, 'g', // group ID
		2, 0xaa, 0xbb, // signing key
		0, 0, 0, 2, // runs
		1,                      // checkpoint present
		0, 0, 0, 0, 0, 0, 0, 4, // epoch
		1,       // active
		2, 1, 2, // authenticator
	}
	b, err := rec.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("marshal = %x, want %x", b, want)
	}
	got, err := parseRecord(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("parse = %+v %+v, want %+v %+v", *got, *got.Checkpoint, *rec, *rec.Checkpoint)
	}
	noCP := append(bytes.Clone(want[:20]), 0)
	got, err = parseRecord(noCP)
	if err != nil || got.Checkpoint != nil || got.Name != "Bob" || got.Runs != 2 {
		t.Errorf("record without checkpoint: %+v, %v", got, err)
	}

	long := append([]byte{1, 65}, bytes.Repeat([]byte{'x'}, 65)...)
	for _, tc := range []struct {
		name  string
		in    []byte
		is    error
		field string
	}{
		{"empty", nil, wire.ErrTruncated, "version"},
		{"version", append([]byte{2}, want[1:]...), wire.ErrInvalidValue, "version"},
		{"empty name", []byte{1, 0}, wire.ErrInvalidValue, "name"},
		{"long name", long, wire.ErrTooLarge, "name"},
		{"truncated", want[:len(want)-1], wire.ErrTruncated, "authenticator"},
		{"trailing", append(bytes.Clone(want), 0), wire.ErrTrailingData, ""},
		{"optional", append(bytes.Clone(want[:20]), 2), wire.ErrInvalidOptional, "checkpoint"},
		{"active", append(append(bytes.Clone(want[:29]), 7), want[30:]...), wire.ErrInvalidValue, "active"},
	} {
		_, err := parseRecord(tc.in)
		var we *wire.Error
		if !errors.Is(err, errBadRecord) || !errors.Is(err, tc.is) || !errors.As(err, &we) || we.Field != tc.field {
			t.Errorf("%s: parseRecord = %v, want errBadRecord and %v at field %q", tc.name, err, tc.is, tc.field)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	rec := &memberRecord{Name: "Alice", Suite: mls.MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, GroupID: []byte(demoGroupID),
		SigningKey: bytes.Repeat([]byte{7}, 57), Runs: 1}
	b, err := rec.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	rec.Checkpoint = &checkpoint{Epoch: 9, Active: true, Auth: bytes.Repeat([]byte{3}, 64)}
	if b, err = rec.marshal(); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	rec.Checkpoint = &checkpoint{Epoch: 3}
	if b, err = rec.marshal(); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := parseRecord(in)
		if err != nil {
			if !errors.Is(err, errBadRecord) {
				t.Fatalf("error %v does not wrap errBadRecord", err)
			}
			return
		}
		// The encoding is canonical: what parses encodes back the same.
		out, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("parse then marshal: %x, want %x", out, in)
		}
	})
}
