package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
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

var (
	finalRe = regexp.MustCompile(`\nAll (\d+) active members are in sync at epoch (\d+) \(authenticator ([0-9a-f]{8})\)\.\n`)
	agreeRe = regexp.MustCompile(`\n  OK: (?:all \d+ active members agree on|Alice is the only member, at) epoch (\d+)`)
)

// agreedEpochs returns the epoch of each agreement check in s, in order.
func agreedEpochs(s string) []uint64 {
	var out []uint64
	for _, m := range agreeRe.FindAllStringSubmatch(s, -1) {
		e, _ := strconv.ParseUint(m[1], 10, 64)
		out = append(out, e)
	}
	return out
}

// runEnd is how a run of the demo ended.
type runEnd struct {
	active int
	epoch  uint64
	auth   string
}

// demoRun runs the demo with args, wants exit status 0 and nothing on
// stderr but a progress bar, and returns the output and its final line.
func demoRun(t *testing.T, args ...string) (string, runEnd) {
	t.Helper()
	status, stdout, stderr := runCmd(append([]string{"demo"}, args...)...)
	if status != 0 {
		t.Fatalf("demo %v exited %d; stderr:\n%s\nstdout:\n%s", args, status, stderr, stdout)
	}
	if stderr != "" && !strings.HasPrefix(stderr, "\rgrowing the group ") {
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

func TestDemo(t *testing.T) {
	t.Parallel()
	stdout, end := demoRun(t)
	inOrder(t, stdout, storySteps...)
	// The state lives in a temporary directory, gone after the run.
	m := regexp.MustCompile(`^State: one SQLite file per member in (.+) \(temporary, removed at the end\)\.\n`).FindStringSubmatch(stdout)
	if m == nil {
		t.Errorf("output does not start with the state directory:\n%s", stdout)
	} else if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary state directory %s is still there after the run (stat: %v)", m[1], err)
	}
	if strings.Contains(stdout, "-db") {
		t.Errorf("a run without -db tells how to continue it:\n%s", stdout)
	}
	inOrder(t, stdout,
		`Alice creates group "secure-chat" with cipher suite MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (0x0001).`,
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
		"Charlie processes Alice's commit: it removes me (I was removed by Alice) and I become inactive.",
		"Charlie          -      3  (removed)",
		"members (2): Alice, Bob",
		`Bob     reads "Charlie is gone. The new keys are ours only." from Alice.`,
		"Charlie (removed) cannot read it: "+mls.ErrInactive.Error(),
		"Charlie restores his backup: a member again, at epoch 3",
		"The backup fails to decrypt the new message: mls: ValSem003 (RFC 9420, Section 6): message epoch 4, group epoch 3: mls: message from a future epoch",
	)
	// One agreement check per step, at the epochs of the story: create
	// (0), add Bob and Charlie (1), chat, Bob's update (2), Alice's update
	// (3), remove Charlie (4), Charlie shut out.
	if got, want := agreedEpochs(stdout), []uint64{0, 1, 1, 2, 3, 4, 4}; !slices.Equal(got, want) {
		t.Errorf("agreement checks at epochs %v, want %v", got, want)
	}
	if end.active != 2 || end.epoch != 4 {
		t.Errorf("run ended with %+v, want 2 members at epoch 4", end)
	}
	if strings.Contains(stdout, "Timings") {
		t.Errorf("timings printed without -members")
	}
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
	// Counts by hand: 19 key packages and joins (Bob, Charlie, 17
	// others); the bulk adds of 8, 8 and 1 are processed by the 2, 10
	// and 18 members already in; the later commits by the 19 others.
	for op, n := range map[string]int{"key package": 19, "join (stage Welcome + join)": 19, "bulk add commit": 3,
		"process bulk add commit": 30, "update proposal": 1, "process update proposal": 19, "update commit": 1,
		"process update commit": 19, "self-update commit": 1, "process self-update commit": 19,
		"seal application message": 4, "process application message": 3*19 + 18, "remove commit": 1, "process remove commit": 19} {
		if !strings.Contains(stdout, fmt.Sprintf("\n  %-34s %6d ", op, n)) {
			t.Errorf("timing table lacks %q with count %d:\n%s", op, n, stdout)
		}
	}
	if !strings.HasPrefix(stderr, "\rgrowing the group ") || !strings.Contains(stderr, "100%") || !strings.HasSuffix(stderr, "]\n") {
		t.Errorf("stderr does not end with a full progress bar:\n%q", stderr)
	}
}

func TestDemoSuites(t *testing.T) {
	t.Parallel()
	for i, id := range ciphersuite.All() {
		arg := id.String()
		if i%2 == 1 {
			arg = fmt.Sprint(uint16(id))
		}
		t.Run(arg, func(t *testing.T) {
			t.Parallel()
			out, _ := demoRun(t, "-suite", arg)
			inOrder(t, out, fmt.Sprintf("with cipher suite %s (0x%04x)", id, uint16(id)), "All 2 active members are in sync")
		})
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
		{[]string{"-db", ""}, "-db: empty directory name"},
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
	alice := view{name: "Alice", epoch: 4, auth: a}
	for _, tc := range []struct {
		name  string
		views []view
		want  string // the error, "" if they agree
	}{
		{"none", nil, ""},
		{"one", []view{alice}, ""},
		{"agree", []view{alice, {"Bob", 1, 4, bytes.Clone(a)}, {"Charlie", 2, 4, bytes.Clone(a)}}, ""},
		{"epoch", []view{alice, {"Bob", 1, 4, a}, {"Charlie", 2, 3, a}}, "members disagree: Alice is at epoch 4, Charlie at epoch 3"},
		{"authenticator", []view{alice, {"Bob", 1, 4, b}, {"Charlie", 2, 4, a}},
			"members disagree: Alice and Bob are both at epoch 4 but their epoch authenticators differ (01020304 vs 01020304)"},
		{"missing authenticator", []view{alice, {"Bob", 1, 4, nil}},
			"members disagree: Alice and Bob are both at epoch 4 but their epoch authenticators differ (01020304 vs )"},
	} {
		err := checkAgreement(tc.views)
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("%s: checkAgreement = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// --- State in SQLite files, and continued runs ------------------------------

// checkResumed checks the start of a continued run: the members load the
// epoch and authenticator the previous run ended with, the group does not
// start over, and the epochs only grow from there.
func checkResumed(t *testing.T, out string, prev runEnd) {
	t.Helper()
	inOrder(t, out,
		"left by an earlier run: the group continues.",
		"== Step 1: The members load the group from their files ",
		fmt.Sprintf("Alice   loads the group from Alice.db: leaf 0, epoch %d, authenticator %s.", prev.epoch, prev.auth),
		fmt.Sprintf("Bob     loads the group from Bob.db: leaf 1, epoch %d, authenticator %s.", prev.epoch, prev.auth),
		fmt.Sprintf("  OK: all %d active members agree on epoch %d and authenticator %s.", prev.active, prev.epoch, prev.auth),
		"== Step 2: Members exchange application messages ",
		`Bob     reads "Good morning! The group survived the restart." from Alice.`,
		"== Step 3: Bob proposes an update; Alice commits it ",
		fmt.Sprintf("Bob     processes Alice's commit: my update applied; epoch %d.", prev.epoch+1),
		"== Step 4: Alice rotates her keys (self-update) ",
		"The group stays in ",
	)
	if strings.Contains(out, "Alice creates the group") {
		t.Errorf("the continued run started the group over:\n%s", out)
	}
	epochs := agreedEpochs(out)
	if len(epochs) == 0 || epochs[0] != prev.epoch {
		t.Fatalf("agreement checks at epochs %v, want the first at %d", epochs, prev.epoch)
	}
	if !slices.IsSorted(epochs) || epochs[len(epochs)-1] <= prev.epoch {
		t.Errorf("agreement checks at epochs %v, want them to grow past %d", epochs, prev.epoch)
	}
}

// TestDemoContinues runs the demo four times on one -db directory: each
// later run loads the group where the previous one left it and moves it
// on, adding Charlie back and removing him in turn.
func TestDemoContinues(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state") // created by the demo
	out, end1 := demoRun(t, "-db", dir)
	inOrder(t, out,
		"State: one SQLite file per member in "+dir+"; run again with -db to continue the group.",
		storySteps[0], storySteps[6],
		"The group stays in "+dir+": run the demo again with -db to continue it.")
	if end1.active != 2 || end1.epoch != 4 {
		t.Fatalf("run 1 ended with %+v, want 2 members at epoch 4", end1)
	}

	// Run 2: Charlie was removed; Alice adds him back into his old file.
	// Bob's update and Alice's make epochs 5 and 6, Charlie's add 7.
	out, end2 := demoRun(t, "-db", dir)
	checkResumed(t, out, end1)
	inOrder(t, out,
		"Charlie finds his removed state in Charlie.db: epoch 3.",
		"Charlie          -      3  (removed)",
		"== Step 5: Alice adds Charlie back ",
		"Charlie's file still holds his removed state (epoch 3)",
		"Charlie publishes a key package",
		"Bob     processes Alice's commit: Charlie added; epoch 7.",
		`Charlie stages the Welcome: group "secure-chat", epoch 7, invited by Alice, members Alice, Bob, Charlie.`,
		"Charlie joins at leaf 2.",
		"members (3): Alice, Bob, Charlie",
	)
	if end2.active != 3 || end2.epoch != 7 {
		t.Errorf("run 2 ended with %+v, want 3 members at epoch 7", end2)
	}

	// Run 3: Charlie loads his new membership from the same file, and
	// Alice removes him again.
	out, end3 := demoRun(t, "-db", dir)
	checkResumed(t, out, end2)
	inOrder(t, out,
		fmt.Sprintf("Charlie loads the group from Charlie.db: leaf 2, epoch 7, authenticator %s.", end2.auth),
		`Charlie reads "Good morning! The group survived the restart." from Alice.`,
		`Alice   reads "Same here. Still on for 2pm?" from Charlie.`,
		"Charlie processes Alice's commit: Bob's update applied; epoch 8.",
		"== Step 5: Alice removes Charlie ",
		"Charlie's device is backed up at epoch 9",
		"Charlie processes Alice's commit: it removes me (I was removed by Alice) and I become inactive.",
		"== Step 6: Charlie can no longer read the group ",
		"Charlie (removed) cannot read it: "+mls.ErrInactive.Error(),
		"The backup fails to decrypt the new message: ",
	)
	if end3.active != 2 || end3.epoch != 10 {
		t.Errorf("run 3 ended with %+v, want 2 members at epoch 10", end3)
	}

	// Run 3b: the delivery service's database is lost (a copy of the
	// directory without it); Alice registers the group again, and the
	// story goes on.
	lost := copyDir(t, dir)
	for _, f := range []string{"mlsd.sqlite", "mlsd.sqlite-wal", "mlsd.sqlite-shm"} {
		os.Remove(filepath.Join(lost, f))
	}
	out, endLost := demoRun(t, "-db", lost)
	checkResumed(t, out, end3)
	inOrder(t, out, fmt.Sprintf("The delivery service does not know the group: Alice registers it at epoch %d.", end3.epoch),
		"== Step 5: Alice adds Charlie back ", "Charlie joins at leaf 2")
	if endLost.active != 3 || endLost.epoch != 13 {
		t.Errorf("run 3b ended with %+v, want 3 members at epoch 13", endLost)
	}

	// Run 4: Charlie comes back a second time.
	out, end4 := demoRun(t, "-db", dir)
	checkResumed(t, out, end3)
	inOrder(t, out, "Charlie finds his removed state in Charlie.db: epoch 9.", "== Step 5: Alice adds Charlie back ", "Charlie joins at leaf 2")
	if end4.active != 3 || end4.epoch != 13 {
		t.Errorf("run 4 ended with %+v, want 3 members at epoch 13", end4)
	}
	// The state directory holds the three members' files and the
	// delivery service's database.
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	if fmt.Sprint(files) != "[Alice.db Bob.db Charlie.db mlsd.sqlite]" {
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
	if end1.active != 5 || end1.epoch != 6 {
		t.Fatalf("run 1 ended with %+v, want 5 members at epoch 6", end1)
	}
	// The same command line continues the group, with timings.
	out, end2 := demoRun(t, "-db", dir, "-members", "6")
	inOrder(t, out,
		"6 clients open their files",
		fmt.Sprintf("Alice   loads the group from Alice.db: leaf 0, epoch 6, authenticator %s.", end1.auth),
		"...and 3 more members load theirs.",
		fmt.Sprintf("  %-12s %5s %6d  %s  (all the same)", "3 others", "", 6, end1.auth),
		"...and 3 more members read it too.",
		"== Step 5: Alice adds Charlie back ",
		"Charlie joins at leaf 2",
		"members (6): Alice, Bob, Charlie, member-4, member-5, member-6",
		"Timings with up to N=6 members",
		fmt.Sprintf("\n  %-34s %6d ", "load group", 6),
	)
	if end2.active != 6 || end2.epoch != 9 {
		t.Errorf("run 2 ended with %+v, want 6 members at epoch 9", end2)
	}
	// Without -members, it goes on too.
	out, end3 := demoRun(t, "-db", dir)
	inOrder(t, out, "6 clients open their files", "== Step 5: Alice removes Charlie ")
	if end3.active != 5 || end3.epoch != 12 || strings.Contains(out, "Timings") {
		t.Errorf("run 3 ended with %+v (want 5 members at epoch 12), timings printed: %v", end3, strings.Contains(out, "Timings"))
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
	// The refused runs changed nothing: the next run starts where run 1
	// ended. -suite with the stored suite is accepted.
	out, _ := demoRun(t, "-db", dir, "-suite", "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", "-members", "3")
	checkResumed(t, out, end1)
	if !strings.Contains(out, "Timings with up to N=3 members") {
		t.Errorf("-members 3 on a group of 3 prints no timings:\n%s", out)
	}
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
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
	return dst
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
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

// runDemoIn runs the demo on dir in-process and returns its error.
func runDemoIn(dir string) error {
	var out, errb bytes.Buffer
	d := &demo{out: &out, errw: &errb, dir: dir, suite: mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, size: minMembers, batch: 1}
	return d.run(context.Background())
}

// failedRun runs the demo on dir, wants exit status 1 with one error line
// holding each of wants, and returns stdout.
func failedRun(t *testing.T, dir string, wants ...string) string {
	t.Helper()
	status, stdout, stderr := runCmd("demo", "-db", dir)
	if status != 1 {
		t.Errorf("exit status %d, want 1; stdout:\n%s", status, stdout)
	}
	if !strings.HasPrefix(stderr, "mls demo: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr is not one error line: %q", stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q lacks %q", stderr, w)
		}
	}
	return stdout
}

// TestDemoDamagedState: damaged files give a clear error naming the member
// and the file, with exit status 1, not a panic; and the error is the
// library's typed error.
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
		}, sqlite.ErrCorrupt, []string{"Bob: opening ", "Bob.db"}},
		{"group record", func(t *testing.T, dir string) {
			editStore(t, filepath.Join(dir, "Bob.db"), func(tx storage.Tx) error {
				return tx.Put("groups", []byte(groupID), []byte("garbage"))
			})
		}, mls.ErrCorruptState, []string{`Bob: loading group "secure-chat" from `, "Bob.db"}},
		{"signature key", func(t *testing.T, dir string) {
			editStore(t, filepath.Join(dir, "Alice.db"), func(tx storage.Tx) error {
				return tx.Put("client", []byte("signer"), []byte("garbage"))
			})
		}, mls.ErrCorruptState, []string{"Alice: ", "Alice.db", "signature key"}},
		{"empty file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "Bob.db"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, mls.ErrNotFound, []string{`Bob: loading group "secure-chat" from `, "Bob.db"}},
		{"missing member", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "Bob.db")); err != nil {
				t.Fatal(err)
			}
		}, nil, []string{"holds no active Alice and Bob, or no Charlie: not a group the demo made"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, good)
			tc.damage(t, dir)
			if stdout := failedRun(t, dir, tc.want...); stdout != "" {
				t.Errorf("the demo printed before failing:\n%s", stdout)
			}
			if err := runDemoIn(dir); tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("run returned %v, want an error wrapping %v", err, tc.is)
			}
		})
	}
}

// TestDemoDisagreement puts into one directory the files of members that
// do not share a state: Bob's file from an earlier run, or from another
// continuation of the same group (a fork). The demo reports the
// disagreement when the members load and stops with exit status 1.
func TestDemoDisagreement(t *testing.T) {
	t.Parallel()
	run1 := t.TempDir()
	demoRun(t, "-db", run1) // epoch 4
	a, b := copyDir(t, run1), copyDir(t, run1)
	_, endA := demoRun(t, "-db", a) // epoch 7
	_, endB := demoRun(t, "-db", b) // epoch 7, other keys
	if endA.epoch != endB.epoch || endA.auth == endB.auth {
		t.Fatalf("two continuations of one group ended with %+v and %+v, want one epoch and two authenticators", endA, endB)
	}
	for _, tc := range []struct {
		name, bob, want string
	}{
		{"stale", run1, "members disagree: Alice is at epoch 7, Bob at epoch 4"},
		{"fork", b, fmt.Sprintf("members disagree: Alice and Bob are both at epoch 7 but their epoch authenticators differ (%s vs %s)", endA.auth, endB.auth)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, a)
			copyFile(t, filepath.Join(tc.bob, "Bob.db"), filepath.Join(dir, "Bob.db"))
			out := failedRun(t, dir, tc.want)
			inOrder(t, out, "== Step 1: The members load the group from their files ", "  FAIL: "+tc.want+"\n")
			if strings.Contains(out, "OK:") || strings.Contains(out, "== Step 2") {
				t.Errorf("the demo went on after the disagreement:\n%s", out)
			}
		})
	}
}

// TestDemoDropsPending: a run that stopped after a commit was created but
// not delivered, or after a proposal was queued but not committed, leaves
// them in the files; the next run drops them and goes on.
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
		c, err := mls.NewClient(ctx, s, credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g, err := c.LoadGroup(ctx, []byte(groupID))
		if err != nil {
			t.Fatal(err)
		}
		return g, s
	}
	alice, as := load("Alice")
	bob, bs := load("Bob")
	proposal, _, err := bob.ProposeSelfUpdate(ctx)
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
	checkResumed(t, out, end1)
	inOrder(t, out,
		"Alice   drops the commit or proposals that the last run left undelivered.",
		"Bob     drops the commit or proposals that the last run left undelivered.",
		"Alice   receives Bob's Update proposal and queues it (1 pending).",
	)
}

// TestDemoDS plays the story twice through one running mlsd (-ds). The
// service keeps the first run's group, so the second run registers its
// own under another name; both end in agreement. Without -ds the demo runs
// its own mlsd.
func TestDemoDS(t *testing.T) {
	t.Parallel()
	url := startMLSD(t)
	out1, end1 := demoRun(t, "-ds", url)
	inOrder(t, out1,
		"Delivery service: mlsd at "+url+". Every key package, handshake, message and Welcome goes through it.",
		`Alice creates group "secure-chat" with cipher suite`,
		"Alice registers it with the delivery service",
		"Alice fetches them from the delivery service; each is handed out once.",
		"The delivery service puts the Welcome (",
		"The delivery service accepts the commit (log entry ",
		"Charlie processes Alice's commit: it removes me (I was removed by Alice) and I become inactive.",
		"Charlie asks the delivery service for the new messages: dsclient: FetchMessages: permission_denied NOT_MEMBER",
		"Charlie (removed) cannot read it: "+mls.ErrInactive.Error(),
	)
	out2, end2 := demoRun(t, "-ds", url)
	m := regexp.MustCompile(`Alice creates group "(secure-chat-[0-9a-f]{8})" with cipher suite`).FindStringSubmatch(out2)
	if m == nil {
		t.Errorf("the second run on the same service did not register a group of another name:\n%s", out2)
	}
	for _, end := range []runEnd{end1, end2} {
		if end.active != 2 || end.epoch != 4 {
			t.Errorf("run ended with %+v, want 2 members at epoch 4", end)
		}
	}
	// With -db, a later run continues its group (registered under the
	// suffixed name) on the same service.
	dir := t.TempDir()
	_, endA := demoRun(t, "-ds", url, "-db", dir)
	outB, endB := demoRun(t, "-ds", url, "-db", dir)
	checkResumed(t, outB, endA)
	if endB.epoch != endA.epoch+3 || strings.Contains(outB, "does not know the group") {
		t.Errorf("continued run ended at %+v after %+v, or re-registered the group:\n%s", endB, endA, outB)
	}
	// Embedded: the demo's own mlsd on a loopback port.
	out3, _ := demoRun(t)
	if !regexp.MustCompile(`\nDelivery service: mlsd at http://127\.0\.0\.1:\d+, in this process, over the SQLite file .+/mlsd\.sqlite\. `).MatchString(out3) {
		t.Errorf("the embedded run does not name its delivery service:\n%s", out3)
	}
}
