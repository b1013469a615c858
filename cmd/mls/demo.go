package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

// The demo runs the key rotation story of the OpenMLS documentation
// (reference/key-rotation-example.txt and key-rotation-explained.txt) with
// the real library: every member is a separate client with its own store,
// and every message crosses the "wire" as bytes. Each step ends with every
// member's epoch and epoch authenticator (RFC 9420, Section 8.7); the demo
// fails if two active members disagree.

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
	if ok, status := parseFlags(fs, "demo [-members N] [-suite SUITE] [-batch B]", args, stdout, stderr); !ok {
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
	timings := false
	fs.Visit(func(f *flag.Flag) { timings = timings || f.Name == "members" })
	d := newDemo(demoConfig{members: *members, suite: suite, batch: *batch, timings: timings}, stdout, stderr)
	if err := d.run(context.Background()); err != nil {
		fmt.Fprintf(stderr, "mls demo: %v\n", err)
		return 1
	}
	return 0
}

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
	timings bool // print the timing table
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
	named bool // one of the story's characters, printed in full
}

// newStore creates the store of the member called name. It is the only
// place that does, so that another backend (say, a database file per
// member) plugs in here.
func (d *demo) newStore(name string) (*backupStore, error) {
	return newBackupStore(memory.New()), nil
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
	d.members = append(d.members, m)
	return m, nil
}

func (m *demoMember) active() bool { return m.group != nil && m.group.IsActive() }

func (d *demo) run(ctx context.Context) error {
	d.ctx = ctx
	steps := []func() error{d.stepCreate, d.stepInvite}
	if d.cfg.members > minDemoMembers {
		steps = append(steps, d.stepGrow)
	}
	steps = append(steps, d.stepChat, d.stepBobUpdate, d.stepAliceUpdate, d.stepRemoveCharlie)
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
	cfg := mls.GroupConfig{CipherSuite: d.cfg.suite, GroupID: []byte(demoGroupID)}
	if d.alice.group, err = mls.CreateGroup(d.ctx, d.alice.store, d.alice.id, cfg); err != nil {
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
	newKey, err := d.leafKey(d.bob)
	if err != nil {
		return err
	}
	if bytes.Equal(oldKey, newKey) {
		return errors.New("the update did not change Bob's leaf encryption key")
	}
	d.say("Bob's leaf encryption key changed: %s... -> %s...", short(oldKey), short(newKey))
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
	leaf := d.charlie.group.OwnLeafIndex()
	var removal *mls.Message
	err = d.commit(d.alice, "remove", fmt.Sprintf("Alice commits Remove(Charlie, leaf %d)", leaf), func() (*mls.CommitResult, error) {
		res, err := d.alice.group.RemoveMembers(d.ctx, leaf)
		if err == nil {
			removal = res.Commit
		}
		return res, err
	})
	if err != nil {
		return err
	}
	if d.charlie.group.IsActive() {
		return errors.New("after merging his removal, Charlie is still active")
	}
	if err := d.showState(); err != nil {
		return err
	}

	d.header("Charlie can no longer read the group")
	msg, err := d.broadcast(d.alice, "Charlie is gone. The new keys are ours only.")
	if err != nil {
		return err
	}
	if _, err := d.charlie.group.Process(d.ctx, msg); err == nil {
		return errors.New("after his removal, Charlie read a message")
	} else {
		d.say("Charlie (removed) cannot read it: %v", err)
	}
	old, err := mls.LoadGroup(d.ctx, backup, []byte(demoGroupID), d.charlie.id.Signer)
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

func (d *demo) summary() error {
	views := d.views()
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "All %d active members are in sync at epoch %d (authenticator %s).\n", len(views), views[0].Epoch, short(views[0].Auth))
	if d.cfg.timings {
		d.times.print(d.out, d.cfg.members, d.cfg.suite)
	}
	return nil
}

// --- Operations --------------------------------------------------------------

// publish creates a key package for m and returns it as others get it:
// parsed (and verified) from the published bytes.
func (d *demo) publish(m *demoMember) (*mls.KeyPackage, int, error) {
	kp, err := mls.NewKeyPackage(d.ctx, m.store, d.cfg.suite, m.id, mls.KeyPackageOptions{})
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
	sw, err := mls.StageWelcome(d.ctx, m.store, welcome, mls.JoinConfig{}, mls.WelcomeOptions{RatchetTree: tree})
	if err != nil {
		return nil, fmt.Errorf("%s: StageWelcome: %w", m.name, err)
	}
	if m.group, err = sw.Join(d.ctx, m.id.Signer); err != nil {
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
