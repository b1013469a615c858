package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
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
