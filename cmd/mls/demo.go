package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// The demo runs the key rotation story of the OpenMLS documentation
// (reference/key-rotation-example.txt and key-rotation-explained.txt) with
// the real library: every member is a separate client with its own store,
// and every message crosses the "wire" as bytes. Each step ends with every
// member's epoch and epoch authenticator (RFC 9420, Section 8.7); the demo
// fails if two active members disagree.
//
// Each member's store is an SQLite file, <dir>/<name>.db, in a temporary
// directory or in the one -db names. The library keeps the group state
// there; the demo keeps, in its own bucket of the same file, what the
// library does not store: the member's name, the group ID, the private
// signing key (crypto.Signer values belong to the application) and the
// epoch and authenticator of the last agreement check. When -db names a
// directory that already holds members' files, the demo loads the group
// from them (mls.LoadGroup) and continues it: see resume.

func init() {
	register(&command{name: "demo", summary: "run the key rotation story: a group forms, rotates its keys and removes a member", run: runDemo})
}

// Limits of -members. Every member is a full client that holds the whole
// ratchet tree and checks every new member's key package, so time and
// memory grow with the square of the group size: about 2 GB at 1000.
const (
	minDemoMembers = 3 // Alice, Bob and Charlie
	maxDemoMembers = 1000
)

// demoGroupID is the group's ID, as in the OpenMLS example.
const demoGroupID = "secure-chat"

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	members := fs.Int("members", minDemoMembers, fmt.Sprintf("grow the group to `N` members (%d to %d) and report the time of each operation", minDemoMembers, maxDemoMembers))
	suiteName := fs.String("suite", "1", "the cipher `SUITE`, by IANA name or number (for example MLS_128_DHKEMP256_AES128GCM_SHA256_P256 or 2)")
	batch := fs.Int("batch", 100, "add the extra members of -members in commits of at most `B` members")
	db := fs.String("db", "", "keep each member's state in the SQLite file `DIR`/<name>.db, and continue the group stored there by an earlier run\n(default: a temporary directory, removed at the end). A continued group keeps its members\nand cipher suite: -members and -suite, if given, must match them")
	if ok, status := parseFlags(fs, "demo [-db DIR] [-members N] [-suite SUITE] [-batch B]", args, stdout, stderr); !ok {
		return status
	}
	suite, err := parseSuite(*suiteName)
	if err != nil {
		fmt.Fprintf(stderr, "mls demo: -suite: %v\n", err)
		return 2
	}
	if *members < minDemoMembers || *members > maxDemoMembers {
		fmt.Fprintf(stderr, "mls demo: -members %d: want %d to %d\n", *members, minDemoMembers, maxDemoMembers)
		return 2
	}
	if *batch < 1 {
		fmt.Fprintf(stderr, "mls demo: -batch %d: want at least 1\n", *batch)
		return 2
	}
	cfg := demoConfig{members: *members, suite: suite, batch: *batch, dir: *db}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "members":
			cfg.timings = true
		case "suite":
			cfg.suiteSet = true
		case "db":
			cfg.dirSet = true
		}
	})
	if cfg.dirSet && cfg.dir == "" {
		fmt.Fprintln(stderr, "mls demo: -db: empty directory name")
		return 2
	}
	d := newDemo(cfg, stdout, stderr)
	if err := d.run(context.Background()); err != nil {
		fmt.Fprintf(stderr, "mls demo: %v\n", err)
		var ue *demoUsageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// demoUsageError is a command line that does not fit the stored group (a
// continued run with another -members or -suite); the exit status is 2.
type demoUsageError struct{ msg string }

func (e *demoUsageError) Error() string { return e.msg }

// parseSuite accepts an IANA cipher suite name (any case) or its number
// (decimal or 0x hex).
func parseSuite(s string) (mls.CipherSuite, error) {
	for _, id := range ciphersuite.All() {
		if strings.EqualFold(s, id.String()) {
			return id, nil
		}
	}
	n, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return 0, fmt.Errorf("unknown cipher suite %q; known: %s", s, suiteList())
	}
	id := mls.CipherSuite(n)
	if _, err := ciphersuite.Lookup(id); err != nil {
		return 0, fmt.Errorf("unsupported cipher suite %d; known: %s", n, suiteList())
	}
	return id, nil
}

func suiteList() string {
	var names []string
	for _, id := range ciphersuite.All() {
		names = append(names, fmt.Sprintf("%d=%s", uint16(id), id))
	}
	return strings.Join(names, ", ")
}

// demoConfig is the parsed command line.
type demoConfig struct {
	members int
	suite   mls.CipherSuite
	batch   int
	timings bool // print the timing table; -members was given

	// dir holds the members' SQLite files; "" means a temporary
	// directory, removed when the run ends.
	dir string
	// suiteSet: -suite was given, so a continued group must use it.
	suiteSet bool
	// dirSet: -db was given.
	dirSet bool
}

// demo is one run of the story.
type demo struct {
	cfg     demoConfig
	out     io.Writer
	errw    io.Writer // progress bar
	ctx     context.Context
	members []*demoMember // every client, in the order they appeared
	alice   *demoMember
	bob     *demoMember
	charlie *demoMember
	times   opTimes
	steps   int

	dir    string // where the members' files are
	runNo  uint32 // 1 for the run that creates the group, then 2, 3, ...
	stores []*backupStore

	// tick, if set, is called each time a member has processed a commit
	// (for the progress bar).
	tick func()

	// tamper, if set, may alter the views before they are compared (tests
	// use it to check that a disagreement is caught).
	tamper func(step int, views []memberView)
}

func newDemo(cfg demoConfig, stdout, stderr io.Writer) *demo {
	return &demo{cfg: cfg, out: stdout, errw: stderr}
}

// demoMember is one client: an identity, its own store and, once it is
// in, its view of the group.
type demoMember struct {
	name  string
	id    mls.Identity
	store *backupStore
	group *mls.Group
	rec   *memberRecord // the demo's record in the member's store
	named bool          // one of the story's characters, printed in full
}

// newStore opens (or creates) the store of the member called name: the
// SQLite file <dir>/<name>.db. It is the only place that opens one; run
// closes them all.
func (d *demo) newStore(name string) (*backupStore, error) {
	s, err := sqlite.Open(d.memberPath(name))
	if err != nil {
		return nil, err
	}
	b := newBackupStore(s)
	d.stores = append(d.stores, b)
	return b, nil
}

func (d *demo) memberPath(name string) string { return filepath.Join(d.dir, name+".db") }

// closeStores closes every store run opened and returns the first error.
func (d *demo) closeStores() error {
	var first error
	for _, s := range d.stores {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	d.stores = nil
	return first
}

func (d *demo) newMember(name string, named bool) (*demoMember, error) {
	s, err := ciphersuite.Lookup(d.cfg.suite)
	if err != nil {
		return nil, err
	}
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		return nil, fmt.Errorf("%s: signature key: %w", name, err)
	}
	store, err := d.newStore(name)
	if err != nil {
		return nil, fmt.Errorf("%s: store: %w", name, err)
	}
	m := &demoMember{name: name, id: mls.Identity{Credential: credential.NewBasic([]byte(name)), Signer: signer}, store: store, named: named}
	if err := d.saveRecord(m, len(d.members)); err != nil {
		return nil, err
	}
	d.members = append(d.members, m)
	return m, nil
}

func (m *demoMember) active() bool { return m.group != nil && m.group.IsActive() }

// run runs the story: from the start if the state directory holds no
// member's file, as a continuation of the stored group otherwise. It
// closes the stores, and removes the directory if it is a temporary one.
func (d *demo) run(ctx context.Context) (err error) {
	d.ctx = ctx
	d.dir = d.cfg.dir
	if d.dir == "" {
		if d.dir, err = os.MkdirTemp("", "mls-demo-"); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		defer os.RemoveAll(d.dir)
	} else if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	defer func() {
		if cerr := d.closeStores(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the stores: %w", cerr)
		}
	}()
	files, err := d.memberFiles()
	if err != nil {
		return err
	}
	var stored []*storedMember
	if len(files) > 0 {
		if stored, err = d.openStored(files); err != nil {
			return err
		}
	}
	var steps []func() error
	if len(stored) > 0 {
		fmt.Fprintf(d.out, "State: one SQLite file per member in %s, left by an earlier run: the group continues.\n\n", d.dir)
		steps = []func() error{func() error { return d.resume(stored) }, d.stepChatAgain, d.stepBobSelfUpdate, d.stepCharlie}
	} else {
		if d.cfg.dir == "" {
			fmt.Fprintf(d.out, "State: one SQLite file per member in %s (temporary, removed at the end).\n\n", d.dir)
		} else {
			fmt.Fprintf(d.out, "State: one SQLite file per member in %s; run again with -db to continue the group.\n\n", d.dir)
		}
		d.runNo = 1
		steps = []func() error{d.stepCreate, d.stepInvite}
		if d.cfg.members > minDemoMembers {
			steps = append(steps, d.stepGrow)
		}
		steps = append(steps, d.stepChat, d.stepBobUpdate, d.stepAliceUpdate, d.stepRemoveCharlie)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return d.summary()
}

// header starts a step.
func (d *demo) header(title string) {
	d.steps++
	if d.steps > 1 {
		fmt.Fprintln(d.out)
	}
	line := fmt.Sprintf("== Step %d: %s ", d.steps, title)
	if n := 78 - len(line); n > 0 {
		line += strings.Repeat("=", n)
	}
	fmt.Fprintln(d.out, line)
}

// say prints one line of narration.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "  "+format+"\n", args...)
}

// send puts a message on the wire and takes it off again, as the delivery
// service would: every message the demo delivers went through its bytes.
func send(m *mls.Message) (*mls.Message, int, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, 0, err
	}
	out, err := mls.ParseMessage(b)
	if err != nil {
		return nil, 0, err
	}
	return out, len(b), nil
}

// short is the first 4 bytes of an authenticator in hex: enough for a
// reader to compare members by eye.
func short(b []byte) string {
	if len(b) > 4 {
		b = b[:4]
	}
	return hex.EncodeToString(b)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func memberName(m mls.Member) string { return string(m.Credential.Identity()) }

// memberList names the members, eliding the middle of a long list.
func memberList(ms []mls.Member) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = memberName(m)
	}
	if len(names) > 8 {
		names = append(names[:5:5], "...", names[len(names)-1])
	}
	return strings.Join(names, ", ")
}

// extraName names the members beyond the story's three.
func (d *demo) extraName(i int) string {
	return fmt.Sprintf("member-%0*d", len(strconv.Itoa(d.cfg.members)), i)
}

// --- The story -------------------------------------------------------------

func (d *demo) stepCreate() error {
	d.header("Alice creates the group")
	var err error
	if d.alice, err = d.newMember("Alice", true); err != nil {
		return err
	}
	cfg := mls.GroupConfig{GroupID: []byte(demoGroupID)}
	if d.alice.group, err = clientFor(d.alice.store, d.alice.id).CreateGroup(d.ctx, d.cfg.suite, cfg); err != nil {
		return fmt.Errorf("creating the group (Alice): %w", err)
	}
	d.say("Alice creates group %q with cipher suite %v (0x%04x).", demoGroupID, d.cfg.suite, uint16(d.cfg.suite))
	return d.showState()
}

func (d *demo) stepInvite() error {
	d.header("Bob and Charlie publish key packages; Alice adds them")
	var kps []*mls.KeyPackage
	for _, name := range []string{"Bob", "Charlie"} {
		m, err := d.newMember(name, true)
		if err != nil {
			return err
		}
		kp, n, err := d.publish(m)
		if err != nil {
			return err
		}
		d.say("%-7s publishes a key package (%d bytes, ref %s...).", name, n, short(kp.Ref()))
		kps = append(kps, kp)
	}
	d.bob, d.charlie = d.members[1], d.members[2]
	welcome, err := d.addMembers(kps, "add", "Alice commits Add(Bob) and Add(Charlie)")
	if err != nil {
		return err
	}
	tree, err := d.alice.group.ExportRatchetTree()
	if err != nil {
		return err
	}
	d.say("Alice hands out the ratchet tree (%d bytes) with the Welcome.", len(tree))
	for _, m := range []*demoMember{d.bob, d.charlie} {
		sw, err := d.join(m, welcome, tree)
		if err != nil {
			return err
		}
		d.say("%-7s stages the Welcome: group %q, epoch %d, invited by %s, members %s.",
			m.name, sw.GroupID(), sw.Epoch(), memberName(sw.Sender()), memberList(sw.Members()))
		d.say("%-7s joins at leaf %d.", m.name, m.group.OwnLeafIndex())
	}
	return d.showState()
}

// stepGrow adds the extra members of -members in batches, with a
// progress bar on stderr that counts the joins and the members already in
// processing each batch's commit.
func (d *demo) stepGrow() error {
	extra := d.cfg.members - minDemoMembers
	d.header(fmt.Sprintf("The group grows to %d members", d.cfg.members))
	d.say("%d more clients publish key packages; Alice adds them in commits of up to %d,", extra, d.cfg.batch)
	d.say("and each joins from the Welcome while the members already in process the commit.")
	work := 0
	for in := minDemoMembers; in < d.cfg.members; in += d.cfg.batch {
		work += in - 1 + min(d.cfg.batch, d.cfg.members-in) // receivers of the commit, then joiners
	}
	joined := 0
	bar := newProgress(d.errw, "growing the group", fmt.Sprintf("%d/%d joined", joined, extra), work)
	d.tick = func() { bar.add(1) }
	defer func() {
		d.tick = nil
		bar.finish()
	}()
	next := minDemoMembers + 1
	for next <= d.cfg.members {
		var kps []*mls.KeyPackage
		var joiners []*demoMember
		for ; next <= d.cfg.members && len(kps) < d.cfg.batch; next++ {
			m, err := d.newMember(d.extraName(next), false)
			if err != nil {
				return err
			}
			kp, _, err := d.publish(m)
			if err != nil {
				return err
			}
			kps = append(kps, kp)
			joiners = append(joiners, m)
		}
		welcome, err := d.addMembers(kps, "bulk add", "")
		if err != nil {
			return err
		}
		tree, err := d.alice.group.ExportRatchetTree()
		if err != nil {
			return err
		}
		for _, m := range joiners {
			if _, err := d.join(m, welcome, tree); err != nil {
				return err
			}
			joined++
			bar.note = fmt.Sprintf("%d/%d joined", joined, extra)
			bar.add(1)
		}
	}
	bar.finish()
	commits := (extra + d.cfg.batch - 1) / d.cfg.batch
	d.say("After %d %s, the group has %d members.", commits, plural(commits, "commit", "commits"), len(d.alice.group.Members()))
	return d.showState()
}

func (d *demo) stepChat() error {
	d.header("Members exchange application messages")
	lines := []struct {
		from *demoMember
		text string
	}{
		{d.alice, "Hi Bob and Charlie, welcome to secure-chat!"},
		{d.bob, "Thanks Alice. Hi Charlie!"},
		{d.charlie, "Hello both. Meeting at 2pm?"},
	}
	for _, l := range lines {
		if _, err := d.broadcast(l.from, l.text); err != nil {
			return err
		}
	}
	return d.showState()
}

// stepBobUpdate is the first scenario of the OpenMLS example ("Proposal +
// Commit"): Bob proposes fresh keys for his leaf (an Update proposal, RFC
// 9420, Section 12.1.2), every member queues it, and Alice commits it.
func (d *demo) stepBobUpdate() error {
	d.header("Bob proposes an update; Alice commits it")
	d.say("Bob suspects his phone was compromised and proposes a new key for his leaf.")
	oldKey, err := d.leafKey(d.bob)
	if err != nil {
		return err
	}
	start := time.Now()
	proposal, err := d.bob.group.ProposeSelfUpdate(d.ctx)
	if err != nil {
		return fmt.Errorf("%s: ProposeSelfUpdate: %w", d.bob.name, err)
	}
	d.times.add("update proposal", time.Since(start))
	msg, n, err := send(proposal)
	if err != nil {
		return err
	}
	d.say("Bob sends an Update proposal (%d bytes).", n)
	for _, m := range d.members {
		if m == d.bob || !m.active() {
			continue
		}
		start := time.Now()
		p, err := m.group.Process(d.ctx, msg)
		if err != nil {
			return fmt.Errorf("%s: processing Bob's proposal: %w", m.name, err)
		}
		d.times.add("process update proposal", time.Since(start))
		if p.Kind != mls.KindProposal || p.Proposal.Type() != mls.ProposalUpdate || string(p.Credential.Identity()) != d.bob.name {
			return fmt.Errorf("%s: Bob's proposal came out as a %v from %s", m.name, p.Kind, p.Credential.Identity())
		}
		// Proposals wait in each member's queue until a commit covers
		// them (OpenMLS's store_pending_proposal).
		if err := m.group.StorePendingProposal(d.ctx, p.Proposal); err != nil {
			return fmt.Errorf("%s: StorePendingProposal: %w", m.name, err)
		}
		if m.named {
			d.say("%-7s receives Bob's Update proposal and queues it (%d pending).", m.name, len(m.group.PendingProposals()))
		}
	}
	if err := d.commit(d.alice, "update", "Alice commits the pending proposals", func() (*mls.CommitResult, error) {
		return d.alice.group.CommitPendingProposals(d.ctx)
	}); err != nil {
		return err
	}
	if err := d.checkBobKeyChanged(oldKey, "update"); err != nil {
		return err
	}
	return d.showState()
}

func (d *demo) stepAliceUpdate() error {
	d.header("Alice rotates her keys (self-update)")
	d.say("Alice rotates her keys at once: a commit with a fresh UpdatePath.")
	if err := d.commit(d.alice, "self-update", "Alice commits a self-update", func() (*mls.CommitResult, error) {
		return d.alice.group.SelfUpdate(d.ctx)
	}); err != nil {
		return err
	}
	return d.showState()
}

func (d *demo) stepRemoveCharlie() error {
	d.header("Alice removes Charlie")
	backup, err := d.charlie.store.copy(d.ctx)
	if err != nil {
		return fmt.Errorf("backing up Charlie's store: %w", err)
	}
	backupEpoch := d.charlie.group.Epoch()
	d.say("Charlie's device is backed up at epoch %d: a copy of his whole store.", backupEpoch)
	removal, err := d.removeCharlie()
	if err != nil {
		return err
	}
	if err := d.showState(); err != nil {
		return err
	}

	d.header("Charlie can no longer read the group")
	msg, err := d.shutOut("Charlie is gone. The new keys are ours only.")
	if err != nil {
		return err
	}
	old, err := clientFor(backup, d.charlie.id).LoadGroup(d.ctx, []byte(demoGroupID))
	if err != nil {
		return fmt.Errorf("restoring Charlie's backup: %w", err)
	}
	d.say("Charlie restores his backup: a member again, at epoch %d, with that epoch's keys.", old.Epoch())
	if _, err := old.Process(d.ctx, msg); err == nil {
		return errors.New("SECURITY: Charlie's pre-removal copy decrypted a message of the next epoch")
	} else {
		d.say("The backup fails to decrypt the new message: %v", err)
	}
	p, err := old.Process(d.ctx, removal)
	if err != nil {
		return fmt.Errorf("the backup of Charlie, processing the removal commit: %w", err)
	}
	if p.Kind != mls.KindCommit || !p.Commit.SelfRemoved() {
		return errors.New("the removal commit does not remove Charlie's backup")
	}
	if err := old.MergeStagedCommit(d.ctx, p.Commit); err != nil {
		return fmt.Errorf("the backup of Charlie, merging the removal commit: %w", err)
	}
	d.say("The backup catches up on Alice's commit: it removes Charlie, and its path")
	d.say("secrets are encrypted to the remaining members only. Active: %v.", old.IsActive())
	if _, err := old.Process(d.ctx, msg); err == nil {
		return errors.New("SECURITY: Charlie's caught-up backup decrypted a message after his removal")
	} else {
		d.say("Reading again: %v", err)
	}
	return d.showState()
}

// removeCharlie has Alice commit Charlie's removal, delivers it, and
// returns the commit as sent.
func (d *demo) removeCharlie() (*mls.Message, error) {
	leaf := d.charlie.group.OwnLeafIndex()
	var removal *mls.Message
	err := d.commit(d.alice, "remove", fmt.Sprintf("Alice commits Remove(Charlie, leaf %d)", leaf), func() (*mls.CommitResult, error) {
		res, err := d.alice.group.RemoveMembers(d.ctx, leaf)
		if err == nil {
			removal = res.Commit
		}
		return res, err
	})
	if err != nil {
		return nil, err
	}
	if d.charlie.group.IsActive() {
		return nil, errors.New("after merging his removal, Charlie is still active")
	}
	return removal, nil
}

// shutOut has Alice send text to the group after Charlie's removal and
// checks that Charlie cannot read it. It returns the message as sent.
func (d *demo) shutOut(text string) (*mls.Message, error) {
	msg, err := d.broadcast(d.alice, text)
	if err != nil {
		return nil, err
	}
	if _, err := d.charlie.group.Process(d.ctx, msg); err == nil {
		return nil, errors.New("after his removal, Charlie read a message")
	} else {
		d.say("Charlie (removed) cannot read it: %v", err)
	}
	return msg, nil
}

func (d *demo) summary() error {
	views := d.views()
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "All %d active members are in sync at epoch %d (authenticator %s).\n", len(views), views[0].Epoch, short(views[0].Auth))
	if d.cfg.dir != "" {
		fmt.Fprintf(d.out, "Run %d ends; the group stays in %s: run the demo again with -db to continue it.\n", d.runNo, d.dir)
	}
	if d.cfg.timings {
		d.times.print(d.out, d.cfg.members, d.cfg.suite)
	}
	return nil
}

// --- Continuing a stored group ---------------------------------------------

// memberFiles returns the members' files in the state directory (the
// regular files named *.db), sorted.
func (d *demo) memberFiles() ([]string, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".db") && len(e.Name()) > len(".db") {
			files = append(files, filepath.Join(d.dir, e.Name()))
		}
	}
	slices.Sort(files)
	return files, nil
}

// storedMember is a member's store and record, opened to continue the
// group.
type storedMember struct {
	name  string
	store *backupStore
	rec   *memberRecord
}

// openStored opens the members' files of an earlier run and reads the
// demo's records, before anything is printed: a command line that does
// not fit the stored group is a *demoUsageError. It sets the suite, the
// group size and the run number, and returns the members in story order.
func (d *demo) openStored(files []string) ([]*storedMember, error) {
	if d.cfg.timings && d.cfg.members != len(files) {
		return nil, &demoUsageError{fmt.Sprintf("-members %d: %s holds a group of %d clients, and -members only applies when the group is created; leave it out to continue the group, or use another -db directory",
			d.cfg.members, d.dir, len(files))}
	}
	var all []*storedMember
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".db")
		store, err := d.newStore(name)
		if err != nil {
			return nil, fmt.Errorf("%s: opening %s: %w", name, path, err)
		}
		rec, err := readRecord(d.ctx, store)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, path, err)
		}
		if rec.Name != name {
			return nil, fmt.Errorf("%s: %w: the file belongs to %q", path, errBadRecord, rec.Name)
		}
		if rec.Runs == math.MaxUint32 {
			return nil, fmt.Errorf("%s: %w: run number %d", path, errBadRecord, rec.Runs)
		}
		all = append(all, &storedMember{name, store, rec})
	}
	slices.SortFunc(all, func(a, b *storedMember) int { return cmp.Compare(a.rec.Index, b.rec.Index) })
	first := all[0].rec
	for i, st := range all {
		switch {
		case int64(st.rec.Index) != int64(i):
			return nil, fmt.Errorf("%s: %w: it is member number %d of the story, but %s holds %d members' files: one is missing or extra", d.memberPath(st.name), errBadRecord, st.rec.Index, d.dir, len(all))
		case st.rec.Suite != first.Suite || !bytes.Equal(st.rec.GroupID, first.GroupID):
			return nil, fmt.Errorf("%s: %w: group %q with cipher suite %v, but %s has group %q with %v",
				d.memberPath(st.name), errBadRecord, st.rec.GroupID, st.rec.Suite, first.Name, first.GroupID, first.Suite)
		}
	}
	if _, err := ciphersuite.Lookup(first.Suite); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", d.memberPath(first.Name), errBadRecord, err)
	}
	if d.cfg.suiteSet && d.cfg.suite != first.Suite {
		return nil, &demoUsageError{fmt.Sprintf("-suite %v: the group stored in %s uses %v; leave -suite out to continue it, or use another -db directory", d.cfg.suite, d.dir, first.Suite)}
	}
	d.cfg.suite, d.cfg.members = first.Suite, len(all)
	for _, st := range all {
		d.runNo = max(d.runNo, st.rec.Runs+1)
	}
	return all, nil
}

// resume is the first step of a continued run. Each member loads the
// group from its store with mls.LoadGroup, with the signing key of the
// demo's record; the loaded epoch and epoch authenticator must be those
// of the last agreement check, which the previous run stored after the
// library had stored the group. A commit or proposals left pending by a
// run that stopped in the middle of a step are dropped: the demo's
// delivery service keeps no messages, so no one else will ever see them.
func (d *demo) resume(all []*storedMember) error {
	d.header("The members load the group from their files")
	s, err := ciphersuite.Lookup(d.cfg.suite)
	if err != nil {
		return err
	}
	d.say("Run %d: %d clients open their files and load group %q (cipher suite %v).", d.runNo, len(all), all[0].rec.GroupID, d.cfg.suite)
	loadedOthers := 0
	for _, st := range all {
		signer, err := s.NewSigner(st.rec.SigningKey)
		if err != nil {
			return fmt.Errorf("%s: %w: signing key: %w", d.memberPath(st.name), errBadRecord, err)
		}
		m := &demoMember{
			name:  st.name,
			id:    mls.Identity{Credential: credential.NewBasic([]byte(st.name)), Signer: signer},
			store: st.store,
			rec:   st.rec,
			named: st.rec.Index < minDemoMembers,
		}
		start := time.Now()
		m.group, err = clientFor(m.store, m.id).LoadGroup(d.ctx, st.rec.GroupID)
		if err != nil {
			return fmt.Errorf("%s: loading group %q from %s: %w", m.name, st.rec.GroupID, d.memberPath(m.name), err)
		}
		d.times.add("load group", time.Since(start))
		if err := d.checkResumed(m); err != nil {
			return err
		}
		d.members = append(d.members, m)
		if !m.named {
			loadedOthers++
			continue
		}
		if !m.group.IsActive() {
			d.say("%-7s finds his removed state in %s: epoch %d, as stored by run %d.", m.name, filepath.Base(d.memberPath(m.name)), m.group.Epoch(), m.rec.Runs)
			continue
		}
		d.say("%-7s loads the group from %s: leaf %d, epoch %d, authenticator %s, as stored by run %d.",
			m.name, filepath.Base(d.memberPath(m.name)), m.group.OwnLeafIndex(), m.group.Epoch(), short(m.group.EpochAuthenticator()), m.rec.Runs)
	}
	if loadedOthers > 0 {
		d.say("...and %d more members load theirs, each as stored.", loadedOthers)
	}
	for _, m := range d.members {
		switch m.name {
		case "Alice":
			d.alice = m
		case "Bob":
			d.bob = m
		case "Charlie":
			d.charlie = m
		}
	}
	for _, m := range []*demoMember{d.alice, d.bob} {
		if m == nil || !m.active() {
			return fmt.Errorf("%s holds no active Alice and Bob: this is not a group the demo made; use another -db directory", d.dir)
		}
	}
	if d.charlie == nil {
		return fmt.Errorf("%s holds no Charlie: this is not a group the demo made; use another -db directory", d.dir)
	}
	return d.showState()
}

// checkResumed checks that m's loaded group is where the last agreement
// check left it, and drops what a run that stopped in the middle of a
// step left pending.
func (d *demo) checkResumed(m *demoMember) error {
	g, cp := m.group, m.rec.Checkpoint
	path := d.memberPath(m.name)
	if cp == nil {
		return fmt.Errorf("%s: %s holds a group but no agreement check: the run that created it stopped early; remove %s to start over", m.name, path, d.dir)
	}
	var what string
	switch {
	case g.IsActive() != cp.Active:
		what = fmt.Sprintf("the group says active=%v, the last agreement check active=%v", g.IsActive(), cp.Active)
	case g.Epoch() != cp.Epoch:
		what = fmt.Sprintf("the group is at epoch %d, the last agreement check saw epoch %d", g.Epoch(), cp.Epoch)
	case cp.Active && !bytes.Equal(g.EpochAuthenticator(), cp.Auth):
		what = fmt.Sprintf("at epoch %d the group's authenticator is %s, the last agreement check saw %s", cp.Epoch, short(g.EpochAuthenticator()), short(cp.Auth))
	}
	if what != "" {
		return fmt.Errorf("%s: %s: %s. A run stopped in the middle of a step, and the demo keeps no messages to catch up with; remove %s to start over",
			m.name, path, what, d.dir)
	}
	if !g.IsActive() {
		return nil
	}
	if g.PendingCommit() != nil {
		if err := g.ClearPendingCommit(d.ctx); err != nil {
			return fmt.Errorf("%s: ClearPendingCommit: %w", m.name, err)
		}
		d.say("%-7s drops a commit that the last run created but never delivered.", m.name)
	}
	if n := len(g.PendingProposals()); n > 0 {
		for _, q := range g.PendingProposals() {
			if err := g.RemovePendingProposal(d.ctx, q.Ref()); err != nil {
				return fmt.Errorf("%s: RemovePendingProposal: %w", m.name, err)
			}
		}
		d.say("%-7s drops %d pending %s that the last run never committed.", m.name, n, plural(n, "proposal", "proposals"))
	}
	return nil
}

// stepChatAgain is the chat of a continued run.
func (d *demo) stepChatAgain() error {
	d.header("Members exchange application messages")
	if err := d.chat(d.alice, fmt.Sprintf("Good morning! This is run %d of secure-chat.", d.runNo)); err != nil {
		return err
	}
	if err := d.chat(d.bob, "Morning, Alice. Our keys survived the restart."); err != nil {
		return err
	}
	if d.charlie.active() {
		if err := d.chat(d.charlie, "Same here. Still on for 2pm?"); err != nil {
			return err
		}
	}
	return d.showState()
}

func (d *demo) chat(from *demoMember, text string) error {
	_, err := d.broadcast(from, text)
	return err
}

// stepBobSelfUpdate has Bob commit fresh keys for his leaf and path
// himself (RFC 9420, Section 12.4), where the first run had Alice commit
// his Update proposal.
func (d *demo) stepBobSelfUpdate() error {
	d.header("Bob rotates his keys (self-update)")
	oldKey, err := d.leafKey(d.bob)
	if err != nil {
		return err
	}
	if err := d.commit(d.bob, "self-update", "Bob commits a self-update", func() (*mls.CommitResult, error) {
		return d.bob.group.SelfUpdate(d.ctx)
	}); err != nil {
		return err
	}
	if err := d.checkBobKeyChanged(oldKey, "self-update"); err != nil {
		return err
	}
	return d.showState()
}

// checkBobKeyChanged reports Bob's new leaf encryption key after an
// update, and fails if it is still oldKey.
func (d *demo) checkBobKeyChanged(oldKey []byte, what string) error {
	newKey, err := d.leafKey(d.bob)
	if err != nil {
		return err
	}
	if bytes.Equal(oldKey, newKey) {
		return fmt.Errorf("the %s did not change Bob's leaf encryption key", what)
	}
	d.say("Bob's leaf encryption key changed: %s... -> %s...", short(oldKey), short(newKey))
	return nil
}

// stepCharlie alternates from run to run: Alice adds Charlie back if he
// was removed, and removes him again if he is in.
func (d *demo) stepCharlie() error {
	if d.charlie.active() {
		return d.stepRemoveCharlieAgain()
	}
	return d.stepAddCharlieBack()
}

// stepAddCharlieBack has Charlie, whose file holds his removed state,
// join again from a Welcome into the same file: the library stores the
// new group under the same group ID and replaces the inactive state.
func (d *demo) stepAddCharlieBack() error {
	d.header("Alice adds Charlie back")
	c := d.charlie
	d.say("Charlie's file still holds his removed state (epoch %d).", c.group.Epoch())
	kp, n, err := d.publish(c)
	if err != nil {
		return err
	}
	d.say("Charlie publishes a fresh key package (%d bytes, ref %s...).", n, short(kp.Ref()))
	welcome, err := d.addMembers([]*mls.KeyPackage{kp}, "add", "Alice commits Add(Charlie)")
	if err != nil {
		return err
	}
	tree, err := d.alice.group.ExportRatchetTree()
	if err != nil {
		return err
	}
	sw, err := d.join(c, welcome, tree)
	if err != nil {
		return err
	}
	d.say("Charlie stages the Welcome into the same file: group %q, epoch %d, invited by %s.", sw.GroupID(), sw.Epoch(), memberName(sw.Sender()))
	d.say("Charlie joins at leaf %d; the new state replaces the removed one.", c.group.OwnLeafIndex())
	again, err := clientFor(c.store, c.id).LoadGroup(d.ctx, sw.GroupID())
	if err != nil {
		return fmt.Errorf("%s: loading the group again after joining: %w", c.name, err)
	}
	if !again.IsActive() || again.Epoch() != c.group.Epoch() || !bytes.Equal(again.EpochAuthenticator(), c.group.EpochAuthenticator()) {
		return fmt.Errorf("%s: his file holds epoch %d (active %v), not the group he joined at epoch %d", c.name, again.Epoch(), again.IsActive(), c.group.Epoch())
	}
	d.say("Loading Charlie's file again gives the new membership: active, epoch %d.", again.Epoch())
	if err := d.chat(c, "Glad to be back!"); err != nil {
		return err
	}
	return d.showState()
}

// stepRemoveCharlieAgain removes Charlie, as the first run did, without
// the backup.
func (d *demo) stepRemoveCharlieAgain() error {
	d.header("Alice removes Charlie again")
	if _, err := d.removeCharlie(); err != nil {
		return err
	}
	if err := d.showState(); err != nil {
		return err
	}
	d.header("Charlie can no longer read the group")
	if _, err := d.shutOut(fmt.Sprintf("Charlie is out again after run %d.", d.runNo)); err != nil {
		return err
	}
	return d.showState()
}

// --- The demo's own records --------------------------------------------------

// The demo keeps one record per member in its own bucket of the member's
// store, next to the library's buckets: what the library does not store
// and the demo needs to continue the group. The private signing key is
// kept as it is, unencrypted, as the rest of the file's secrets are; a
// real application would keep it in the platform's key store.
const (
	demoBucket        = "mls-demo"
	demoRecordVersion = 1

	maxRecordName = 64  // member names
	maxRecordGID  = 255 // group IDs
	maxRecordKey  = 256 // private signing keys (66 bytes for P-521)
	maxRecordAuth = 64  // epoch authenticators (Nh, at most SHA-512)
)

var demoRecordKey = []byte("member")

// errBadRecord is wrapped by the errors for a damaged or foreign record of
// the demo.
var errBadRecord = errors.New("the demo's record is damaged or foreign")

// memberRecord is the demo's record of one member.
type memberRecord struct {
	Name       string
	Index      uint32 // the member's place in the story: 0 Alice, 1 Bob, 2 Charlie, ...
	Suite      mls.CipherSuite
	GroupID    []byte
	SigningKey []byte // ciphersuite.(*Suite).MarshalSigner
	Runs       uint32 // the run that wrote the record
	Checkpoint *checkpoint
}

// checkpoint is the member's state at the last agreement check.
type checkpoint struct {
	Epoch  uint64
	Active bool
	Auth   []byte // epoch authenticator; empty if not active
}

// marshal encodes the record with the TLS presentation language of RFC
// 9420, Section 2.1.
func (r *memberRecord) marshal() ([]byte, error) {
	e := wire.NewEncoder(nil)
	e.U8(demoRecordVersion)
	e.Opaque([]byte(r.Name))
	e.U32(r.Index)
	e.U16(uint16(r.Suite))
	e.Opaque(r.GroupID)
	e.Opaque(r.SigningKey)
	e.U32(r.Runs)
	e.Optional(r.Checkpoint != nil)
	if cp := r.Checkpoint; cp != nil {
		e.U64(cp.Epoch)
		e.Bool(cp.Active)
		e.Opaque(cp.Auth)
	}
	return e.Bytes()
}

// parseRecord decodes a record; errors wrap errBadRecord and a
// *wire.Error that names the field.
func parseRecord(b []byte) (*memberRecord, error) {
	d := wire.NewDecoder(b)
	d.Struct("demo record")
	d.SetLimit(maxRecordKey)
	if v := d.U8("version"); d.Err() == nil && v != demoRecordVersion {
		d.Failf("version", "version %d, want %d", v, demoRecordVersion)
	}
	r := &memberRecord{}
	r.Name = string(d.OpaqueMax("name", maxRecordName))
	if d.Err() == nil && r.Name == "" {
		d.Failf("name", "empty")
	}
	r.Index = d.U32("index")
	r.Suite = mls.CipherSuite(d.U16("cipher_suite"))
	r.GroupID = d.OpaqueMax("group_id", maxRecordGID)
	r.SigningKey = d.OpaqueMax("signing_key", maxRecordKey)
	r.Runs = d.U32("runs")
	if d.Optional("checkpoint") {
		cp := &checkpoint{}
		cp.Epoch = d.U64("epoch")
		cp.Active = d.Bool("active")
		cp.Auth = d.OpaqueMax("authenticator", maxRecordAuth)
		r.Checkpoint = cp
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadRecord, err)
	}
	return r, nil
}

// readRecord reads the demo's record from a member's store.
func readRecord(ctx context.Context, store storage.Store) (*memberRecord, error) {
	var b []byte
	err := store.View(ctx, func(tx storage.Tx) error {
		var err error
		b, err = tx.Get(demoBucket, demoRecordKey)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: the file holds no record of the demo", errBadRecord)
	}
	if err != nil {
		return nil, err
	}
	return parseRecord(b)
}

func writeRecord(ctx context.Context, store storage.Store, r *memberRecord) error {
	b, err := r.marshal()
	if err != nil {
		return err
	}
	return store.Update(ctx, func(tx storage.Tx) error { return tx.Put(demoBucket, demoRecordKey, b) })
}

// saveRecord writes the record of a new member, the index-th.
func (d *demo) saveRecord(m *demoMember, index int) error {
	s, err := ciphersuite.Lookup(d.cfg.suite)
	if err != nil {
		return err
	}
	key, err := s.MarshalSigner(m.id.Signer)
	if err != nil {
		return fmt.Errorf("%s: signing key: %w", m.name, err)
	}
	m.rec = &memberRecord{Name: m.name, Index: uint32(index), Suite: d.cfg.suite, GroupID: []byte(demoGroupID), SigningKey: key, Runs: d.runNo}
	if err := writeRecord(d.ctx, m.store, m.rec); err != nil {
		return fmt.Errorf("%s: saving the demo's record: %w", m.name, err)
	}
	return nil
}

// checkpoint records every member's epoch and authenticator after an
// agreement check, for the next run to compare with what it loads.
func (d *demo) checkpoint() error {
	for _, m := range d.members {
		if m.group == nil {
			continue
		}
		cp := &checkpoint{Epoch: m.group.Epoch(), Active: m.group.IsActive()}
		if cp.Active {
			cp.Auth = m.group.EpochAuthenticator()
		}
		m.rec.Runs, m.rec.Checkpoint = d.runNo, cp
		if err := writeRecord(d.ctx, m.store, m.rec); err != nil {
			return fmt.Errorf("%s: saving the agreement check: %w", m.name, err)
		}
	}
	return nil
}

// --- Operations --------------------------------------------------------------

// publish creates a key package for m and returns it as others get it:
// parsed (and verified) from the published bytes.
func (d *demo) publish(m *demoMember) (*mls.KeyPackage, int, error) {
	kp, err := clientFor(m.store, m.id).NewKeyPackage(d.ctx, d.cfg.suite, mls.KeyPackageOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("%s: NewKeyPackage: %w", m.name, err)
	}
	b, err := kp.MarshalBinary()
	if err != nil {
		return nil, 0, err
	}
	got, err := mls.ParseKeyPackage(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%s's published key package: %w", m.name, err)
	}
	return got, len(b), nil
}

// addMembers has Alice commit Add proposals for kps and returns the
// Welcome. op names the commit in timings; narration, if not empty, is
// printed with the message sizes.
func (d *demo) addMembers(kps []*mls.KeyPackage, op, narration string) (*mls.Message, error) {
	var welcome *mls.Message
	var welcomeSize int
	err := d.commit(d.alice, op, narration, func() (*mls.CommitResult, error) {
		res, err := d.alice.group.AddMembers(d.ctx, kps...)
		if err != nil {
			return nil, err
		}
		if res.Welcome == nil {
			return nil, errors.New("AddMembers returned no Welcome")
		}
		welcome, welcomeSize, err = send(res.Welcome)
		return res, err
	})
	if err == nil && narration != "" {
		d.say("Alice sends the Welcome (%d bytes) to the new members.", welcomeSize)
	}
	return welcome, err
}

// join has m stage the Welcome and join.
func (d *demo) join(m *demoMember, welcome *mls.Message, tree []byte) (*mls.StagedWelcome, error) {
	start := time.Now()
	sw, err := clientFor(m.store, m.id).StageWelcome(d.ctx, welcome, mls.WelcomeOptions{RatchetTree: tree})
	if err != nil {
		return nil, fmt.Errorf("%s: StageWelcome: %w", m.name, err)
	}
	if m.group, err = sw.Join(d.ctx); err != nil {
		return nil, fmt.Errorf("%s: Join: %w", m.name, err)
	}
	d.times.add("join (stage Welcome + join)", time.Since(start))
	return sw, nil
}

// commit runs a commit by the committer (timed as op), merges it once
// "the delivery service accepted it", and delivers it to every other
// member, who processes (timed) and merges it.
func (d *demo) commit(by *demoMember, op, narration string, f func() (*mls.CommitResult, error)) error {
	start := time.Now()
	res, err := f()
	if err != nil {
		return fmt.Errorf("%s: %s commit: %w", by.name, op, err)
	}
	d.times.add(op+" commit", time.Since(start))
	msg, n, err := send(res.Commit)
	if err != nil {
		return err
	}
	if narration != "" {
		d.say("%s: commit of %d bytes.", narration, n)
	}
	if err := by.group.MergePendingCommit(d.ctx); err != nil {
		return fmt.Errorf("%s: MergePendingCommit: %w", by.name, err)
	}
	if narration != "" {
		d.say("The delivery service accepts the commit; %s merges it: epoch %d.", by.name, by.group.Epoch())
	}
	for _, m := range d.members {
		if m == by || !m.active() {
			continue
		}
		start := time.Now()
		p, err := m.group.Process(d.ctx, msg)
		if err != nil {
			return fmt.Errorf("%s: processing %s's %s commit: %w", m.name, by.name, op, err)
		}
		d.times.add("process "+op+" commit", time.Since(start))
		if d.tick != nil {
			d.tick()
		}
		if p.Kind != mls.KindCommit {
			return fmt.Errorf("%s: %s's commit came out as a %v", m.name, by.name, p.Kind)
		}
		if m.named && narration != "" {
			d.say("%-7s processes %s", m.name, describeCommit(m, p))
		}
		if err := m.group.MergeStagedCommit(d.ctx, p.Commit); err != nil {
			return fmt.Errorf("%s: merging %s's commit: %w", m.name, by.name, err)
		}
	}
	return nil
}

// describeCommit says what a received commit does, from the receiver's
// point of view (OpenMLS's "Interpreting remove operations").
func describeCommit(m *demoMember, p *mls.Processed) string {
	sc := p.Commit
	from := string(p.Credential.Identity())
	var parts []string
	for _, q := range sc.AddProposals() {
		c, _ := q.AddedCredential()
		parts = append(parts, fmt.Sprintf("%s added", c.Identity()))
	}
	for _, q := range sc.UpdateProposals() {
		c, _ := q.UpdatedCredential()
		who := string(c.Identity()) + "'s"
		if q.Sender().Type == mls.SenderMember && q.Sender().Index == m.group.OwnLeafIndex() {
			who = "my"
		}
		parts = append(parts, who+" update applied")
	}
	name := func(leaf uint32) string {
		if mem, ok := m.group.Member(leaf); ok {
			return memberName(mem)
		}
		return fmt.Sprintf("leaf %d", leaf)
	}
	remover := from
	for _, q := range sc.RemoveProposals() {
		op, err := mls.NewRemoveOperation(q, m.group)
		if err != nil {
			parts = append(parts, err.Error())
			continue
		}
		switch op.Kind {
		case mls.TheyLeft:
			parts = append(parts, name(op.Removed)+" left")
		case mls.TheyWereRemovedBy:
			parts = append(parts, fmt.Sprintf("%s removed by %s", name(op.Removed), name(op.By.Index)))
		case mls.WeWereRemovedBy:
			remover = name(op.By.Index)
		default:
			parts = append(parts, name(op.Removed)+" removed")
		}
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("new keys for %s's leaf and path", from))
	}
	if sc.SelfRemoved() {
		return fmt.Sprintf("%s's commit: it removes me (I was removed by %s) and I become inactive.", from, remover)
	}
	return fmt.Sprintf("%s's commit: %s; epoch %d.", from, strings.Join(parts, ", "), sc.Epoch())
}

// broadcast seals text, delivers it to every other active member and
// checks what each reads. It returns the message as sent.
func (d *demo) broadcast(from *demoMember, text string) (*mls.Message, error) {
	start := time.Now()
	sealed, err := from.group.Seal(d.ctx, []byte(text), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: Seal: %w", from.name, err)
	}
	d.times.add("seal application message", time.Since(start))
	msg, n, err := send(sealed)
	if err != nil {
		return nil, err
	}
	d.say("%s sends %q (PrivateMessage, %d bytes, epoch %d).", from.name, text, n, msg.Epoch())
	others := 0
	for _, m := range d.members {
		if m == from || !m.active() {
			continue
		}
		start := time.Now()
		p, err := m.group.Process(d.ctx, msg)
		if err != nil {
			return nil, fmt.Errorf("%s: reading %s's message: %w", m.name, from.name, err)
		}
		d.times.add("open application message", time.Since(start))
		if p.Kind != mls.KindApplication || string(p.ApplicationData) != text || string(p.Credential.Identity()) != from.name {
			return nil, fmt.Errorf("%s: read %q (%v) from %s, want %q from %s", m.name, p.ApplicationData, p.Kind, p.Credential.Identity(), text, from.name)
		}
		if m.named {
			d.say("    %-7s reads %q from %s.", m.name, p.ApplicationData, p.Credential.Identity())
		} else {
			others++
		}
	}
	if others > 0 {
		d.say("    ...and %d more members read it too.", others)
	}
	return sealed, nil
}

// leafKey returns m's leaf encryption key as the group sees it.
func (d *demo) leafKey(m *demoMember) ([]byte, error) {
	mem, ok := d.alice.group.Member(m.group.OwnLeafIndex())
	if !ok {
		return nil, fmt.Errorf("%s has no leaf", m.name)
	}
	return mem.EncryptionKey, nil
}

// --- Agreement -----------------------------------------------------------

// memberView is what one active member believes about the group.
type memberView struct {
	Name  string
	Epoch uint64
	Auth  []byte // epoch authenticator, RFC 9420, Section 8.7
}

// disagreementError reports two members whose views of the group differ.
type disagreementError struct {
	A, B memberView
}

func (e *disagreementError) Error() string {
	if e.A.Epoch != e.B.Epoch {
		return fmt.Sprintf("members disagree: %s is at epoch %d, %s at epoch %d", e.A.Name, e.A.Epoch, e.B.Name, e.B.Epoch)
	}
	return fmt.Sprintf("members disagree: %s and %s are both at epoch %d but their epoch authenticators differ (%s vs %s)",
		e.A.Name, e.B.Name, e.A.Epoch, short(e.A.Auth), short(e.B.Auth))
}

// checkAgreement returns a *disagreementError for the first member whose
// epoch or epoch authenticator differs from the first member's, or nil.
// Equal authenticators mean equal epoch secrets, hence the same group
// state (RFC 9420, Section 8.7).
func checkAgreement(views []memberView) error {
	for _, v := range views[min(1, len(views)):] {
		if v.Epoch != views[0].Epoch || !bytes.Equal(v.Auth, views[0].Auth) {
			return &disagreementError{A: views[0], B: v}
		}
	}
	return nil
}

// views returns the view of every active member.
func (d *demo) views() []memberView {
	var out []memberView
	for _, m := range d.members {
		if m.active() {
			out = append(out, memberView{Name: m.name, Epoch: m.group.Epoch(), Auth: m.group.EpochAuthenticator()})
		}
	}
	return out
}

// showState prints every member's epoch and authenticator and fails if
// two active members disagree.
func (d *demo) showState() error {
	views := d.views()
	if d.tamper != nil {
		d.tamper(d.steps, views)
	}
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "  %-12s %5s %6s  %s\n", "member", "leaf", "epoch", "authenticator")
	byName := map[string]memberView{}
	for _, v := range views {
		byName[v.Name] = v
	}
	row := func(name, leaf string, v memberView, note string) {
		fmt.Fprintf(d.out, "  %-12s %5s %6d  %s%s\n", name, leaf, v.Epoch, short(v.Auth), note)
	}
	var rest []memberView
	for _, m := range d.members {
		switch {
		case m.group == nil:
		case !m.group.IsActive():
			fmt.Fprintf(d.out, "  %-12s %5s %6d  %s\n", m.name, "-", m.group.Epoch(), "(removed)")
		case m.named:
			row(m.name, strconv.Itoa(int(m.group.OwnLeafIndex())), byName[m.name], "")
		default:
			rest = append(rest, byName[m.name])
		}
	}
	if len(rest) > 0 {
		ref := views[0]
		var odd []memberView
		for _, v := range rest {
			if v.Epoch != ref.Epoch || !bytes.Equal(v.Auth, ref.Auth) {
				odd = append(odd, v)
			}
		}
		label := fmt.Sprintf("%d others", len(rest))
		if len(rest) == 1 {
			label = rest[0].Name
		}
		if len(odd) == 0 {
			row(label, "", rest[0], "  (all the same)")
		}
		for _, v := range odd[:min(len(odd), 5)] {
			row(v.Name, "", v, "  (differs)")
		}
	}
	fmt.Fprintf(d.out, "  members (%d): %s\n", len(d.alice.group.Members()), memberList(d.alice.group.Members()))
	if err := checkAgreement(views); err != nil {
		fmt.Fprintf(d.out, "  FAIL: %v\n", err)
		return err
	}
	if err := d.checkpoint(); err != nil {
		return err
	}
	if len(views) == 1 {
		fmt.Fprintf(d.out, "  OK: %s is the only member, at epoch %d.\n", views[0].Name, views[0].Epoch)
		return nil
	}
	fmt.Fprintf(d.out, "  OK: all %d active members agree on epoch %d and authenticator %s.\n", len(views), views[0].Epoch, short(views[0].Auth))
	return nil
}

// --- Timings -------------------------------------------------------------

// opTimes collects the duration of each kind of operation.
type opTimes struct {
	order []string
	stats map[string]*opStat
}

type opStat struct {
	n          int
	total, max time.Duration
}

func (t *opTimes) add(op string, dur time.Duration) {
	if t.stats == nil {
		t.stats = map[string]*opStat{}
	}
	s, ok := t.stats[op]
	if !ok {
		s = &opStat{}
		t.stats[op] = s
		t.order = append(t.order, op)
	}
	s.n++
	s.total += dur
	s.max = max(s.max, dur)
}

func (t *opTimes) print(w io.Writer, n int, suite mls.CipherSuite) {
	fmt.Fprintf(w, "\nTimings with up to N=%d members, suite %v (wall clock, one run):\n", n, suite)
	fmt.Fprintf(w, "  %-34s %6s %12s %12s\n", "operation", "count", "mean", "max")
	for _, op := range t.order {
		s := t.stats[op]
		fmt.Fprintf(w, "  %-34s %6d %12v %12v\n", op, s.n, roundDur(s.total/time.Duration(s.n)), roundDur(s.max))
	}
	fmt.Fprintln(w, "  add and join times grow with the group; the story's later steps run at full size.")
}

// roundDur keeps three significant digits.
func roundDur(d time.Duration) time.Duration {
	for r := time.Duration(1); r < time.Hour; r *= 10 {
		if d < 1000*r {
			return d.Round(r)
		}
	}
	return d
}

// --- Progress bar ----------------------------------------------------------

// progress draws a progress bar on w, redrawing only when it changes.
type progress struct {
	w            io.Writer
	label        string
	note         string // shown after the bar; the default is count/total
	total, count int
	shown        int // last drawn width, -1 before the first draw
	finished     bool
}

const progressWidth = 30

// newProgress draws an empty bar; note is as for progress.note.
func newProgress(w io.Writer, label, note string, total int) *progress {
	p := &progress{w: w, label: label, note: note, total: total, shown: -1}
	p.draw()
	return p
}

func (p *progress) add(n int) {
	p.count = min(p.count+n, p.total)
	p.draw()
}

func (p *progress) draw() {
	filled := progressWidth
	if p.total > 0 {
		filled = p.count * progressWidth / p.total
	}
	if filled == p.shown && p.count != p.total {
		return
	}
	p.shown = filled
	note := p.note
	if note == "" {
		note = fmt.Sprintf("%d/%d", p.count, p.total)
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %s", p.label, strings.Repeat("#", filled), strings.Repeat(".", progressWidth-filled), note)
}

// finish ends the bar's line; calling it again does nothing.
func (p *progress) finish() {
	if !p.finished {
		p.finished = true
		fmt.Fprintln(p.w)
	}
}

// --- Backups -------------------------------------------------------------

// backupStore wraps a member's store and remembers which buckets were
// written, so that the demo can copy the whole store (a device backup)
// without knowing the library's storage layout.
type backupStore struct {
	storage.Store
	mu      sync.Mutex
	buckets map[string]bool
}

func newBackupStore(s storage.Store) *backupStore {
	return &backupStore{Store: s, buckets: map[string]bool{}}
}

// Update runs fn with a transaction that notes the buckets it writes.
func (s *backupStore) Update(ctx context.Context, fn func(storage.Tx) error) error {
	return s.Store.Update(ctx, func(tx storage.Tx) error { return fn(&noteTx{Tx: tx, s: s}) })
}

func (s *backupStore) note(bucket string) {
	s.mu.Lock()
	s.buckets[bucket] = true
	s.mu.Unlock()
}

type noteTx struct {
	storage.Tx
	s *backupStore
}

func (t *noteTx) Put(bucket string, key, value []byte) error {
	t.s.note(bucket)
	return t.Tx.Put(bucket, key, value)
}

// copy returns an in-memory copy of everything the store holds, read in
// one consistent snapshot.
func (s *backupStore) copy(ctx context.Context) (storage.Store, error) {
	s.mu.Lock()
	buckets := make([]string, 0, len(s.buckets))
	for b := range s.buckets {
		buckets = append(buckets, b)
	}
	s.mu.Unlock()
	slices.Sort(buckets)
	type kv struct {
		bucket     string
		key, value []byte
	}
	var all []kv
	err := s.View(ctx, func(tx storage.Tx) error {
		for _, b := range buckets {
			if err := tx.Scan(b, nil, func(k, v []byte) error {
				all = append(all, kv{b, k, v})
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	dst := memory.New()
	err = dst.Update(ctx, func(tx storage.Tx) error {
		for _, e := range all {
			if err := tx.Put(e.bucket, e.key, e.value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

// clientFor is the client of a demo member over its store.
func clientFor(store storage.Store, id mls.Identity) *mls.Client {
	c, err := mls.NewClient(context.Background(), store, id.Credential, id.Signer, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		panic(err)
	}
	return c
}
