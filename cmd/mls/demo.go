package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/ds/dsclient"
	"github.com/mlskit/mls/storage/sqlite"
)

// The demo plays the key rotation story of the OpenMLS book
// (reference/key-rotation-example.txt and key-rotation-explained.txt) with
// the real library. Each member is an mls.Client over its own SQLite file,
// <dir>/<name>.db, which keeps its signature key, its group and its place in
// the group's log. Every key package, handshake, message and Welcome goes
// through a delivery service, mlsd (package ds; demo_ds.go), with
// package ds/dsclient: the one at -ds, or one the demo runs on a loopback
// port over <dir>/mlsd.sqlite. After each step every member shows its epoch
// and epoch authenticator (RFC 9420, Section 8.7), and the demo fails if two
// active members disagree. Run again on the same -db directory, the members
// load the group from their files and play the story on in the next
// epochs.

func init() {
	register(&command{name: "demo", summary: "run the key rotation story: a group forms, rotates its keys and removes a member", run: runDemo})
}

const (
	minMembers = 3    // Alice, Bob and Charlie
	maxMembers = 1000 // every member holds the whole tree: memory grows with N^2
	groupID    = "secure-chat"
)

// characters are the story's members, shown in full; the others of
// -members are summed up.
var characters = []string{"Alice", "Bob", "Charlie"}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	size := fs.Int("members", minMembers, fmt.Sprintf("grow the group to `N` members (%d to %d) and report the time of each operation", minMembers, maxMembers))
	suiteName := fs.String("suite", "1", "the cipher `SUITE`, by IANA name or number (for example MLS_128_DHKEMP256_AES128GCM_SHA256_P256 or 2)")
	batch := fs.Int("batch", 100, "add the extra members of -members in commits of at most `B` members")
	db := fs.String("db", "", "keep each member's state in the SQLite file `DIR`/<name>.db, and continue the group stored there by an earlier run\n(default: a temporary directory, removed at the end); -members and -suite, if given, must fit the stored group")
	url := fs.String("ds", "", "go through the mlsd delivery service at `URL` (default: one started in this process, over DIR/mlsd.sqlite)")
	if ok, status := parseFlags(fs, "demo [-ds URL] [-db DIR] [-members N] [-suite SUITE] [-batch B]", args, stdout, stderr); !ok {
		return status
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	suite, err := parseSuite(*suiteName)
	switch {
	case err != nil:
		err = usageError{fmt.Errorf("-suite: %w", err)}
	case *size < minMembers || *size > maxMembers:
		err = usageError{fmt.Errorf("-members %d: want %d to %d", *size, minMembers, maxMembers)}
	case *batch < 1:
		err = usageError{fmt.Errorf("-batch %d: want at least 1", *batch)}
	case set["db"] && *db == "":
		err = usageError{errors.New("-db: empty directory name")}
	}
	if err == nil {
		d := &demo{out: stdout, errw: stderr, dir: *db, url: *url, groupID: groupID, suite: suite, size: *size, batch: *batch, suiteSet: set["suite"], timed: set["members"]}
		if err = d.run(context.Background()); err == nil {
			return 0
		}
	}
	fmt.Fprintf(stderr, "mls demo: %v\n", err)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// usageError is a bad command line: exit status 2.
type usageError struct{ error }

// failure stops the story with an error, which run returns. As in Effective
// Go's "Recover" section, panicking with it keeps each step as plain as the
// book's listing (its .expect calls), while every failure still ends as an
// error, with exit status 1. Any other panic is a bug and goes on.
type failure struct{ error }

// check stops the story if err is not nil.
func check(err error, format string, args ...any) {
	if err != nil {
		panic(failure{fmt.Errorf(format+": %w", append(args, err)...)})
	}
}

func failf(format string, args ...any) { panic(failure{fmt.Errorf(format, args...)}) }

// demo is one run of the story.
type demo struct {
	out, errw           io.Writer // stderr gets the progress bar
	ctx                 context.Context
	dir                 string // the members' files
	url, groupID        string // the delivery service's; the group's
	http                *http.Client
	keep, resumed       bool // dir is -db's; the group comes from an earlier run
	suite               mls.CipherSuite
	size, batch         int
	suiteSet, timed     bool
	members             []*member // in story order
	alice, bob, charlie *member
	backup              string // a copy of Charlie's file from before his removal
	steps               int
	times               timings
	tick                func() // the progress bar, while one is shown
}

// member is one client: its SQLite file, its mls.Client and, once it is
// in, its group.
type member struct {
	name   string
	store  *sqlite.Store
	client *mls.Client
	group  *mls.Group
	ds     *dsclient.Client
}

func (m *member) active() bool { return m != nil && m.group != nil && m.group.IsActive() }
func (m *member) named() bool  { return slices.Contains(characters, m.name) }

// openMember opens (or creates) the SQLite file at path and the client
// over it. The nil signer makes the client generate a signature key on the
// first run and keep it in the file, so later runs sign with the same key.
func openMember(ctx context.Context, name, path string, suite mls.CipherSuite) *member {
	s, err := sqlite.Open(path)
	check(err, "%s: opening %s", name, path)
	c, err := mls.NewClient(ctx, s, credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{SignatureSuite: suite})
	if err != nil {
		s.Close()
		check(err, "%s: %s", name, path)
	}
	return &member{name: name, store: s, client: c}
}

func (d *demo) open(name string) *member {
	m := openMember(d.ctx, name, filepath.Join(d.dir, name+".db"), d.suite)
	d.members = append(d.members, m)
	d.connect(m)
	return m
}

// run plays the story from the start if the directory holds no member's
// file, and continues the stored group otherwise.
func (d *demo) run(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = f.error
		}
	}()
	d.ctx, d.keep = ctx, d.dir != ""
	if d.groupID == "" {
		d.groupID = groupID
	}
	if !d.keep {
		d.dir, err = os.MkdirTemp("", "mls-demo-")
		check(err, "state directory")
		defer os.RemoveAll(d.dir)
	}
	check(os.MkdirAll(d.dir, 0o700), "state directory")
	defer func() {
		for _, m := range d.members {
			if cerr := m.store.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	defer func() { os.RemoveAll(filepath.Dir(d.backup)) }()
	var service string
	if d.url == "" {
		e, err := startDS(ctx, filepath.Join(d.dir, "mlsd.sqlite"))
		check(err, "starting the delivery service")
		defer func() {
			if serr := e.stop(); serr != nil && err == nil {
				err = fmt.Errorf("stopping the delivery service: %w", serr)
			}
		}()
		d.url, service = e.url, fmt.Sprintf("mlsd at %s, in this process, over the SQLite file %s", e.url, e.path)
	} else {
		service = "mlsd at " + d.url
	}
	files, err := filepath.Glob(filepath.Join(d.dir, "*.db"))
	check(err, "state directory")
	if d.resumed = len(files) > 0; d.resumed {
		d.load(files)
		fmt.Fprintf(d.out, "State: one SQLite file per member in %s, left by an earlier run: the group continues.\n\n", d.dir)
	} else if d.keep {
		fmt.Fprintf(d.out, "State: one SQLite file per member in %s; run again with -db to continue the group.\n\n", d.dir)
	} else {
		fmt.Fprintf(d.out, "State: one SQLite file per member in %s (temporary, removed at the end).\n\n", d.dir)
	}
	fmt.Fprintf(d.out, "Delivery service: %s. Every key package, handshake, message and Welcome goes through it.\n\n", service)
	var v []view
	for _, s := range d.story() {
		d.header(s.title)
		s.play()
		v = d.agree()
	}
	fmt.Fprintf(d.out, "\nAll %d active members are in sync at epoch %d (authenticator %s).\n", len(v), v[0].epoch, short(v[0].auth))
	if d.keep {
		fmt.Fprintf(d.out, "The group stays in %s: run the demo again with -db to continue it.\n", d.dir)
	}
	if d.timed {
		d.times.print(d.out, d.size, d.suite)
	}
	return nil
}

// step is one step of the story; each ends with the members' agreement.
type step struct {
	title string
	play  func()
}

// story lists the steps of this run: the chapter's table of contents.
func (d *demo) story() []step {
	steps := []step{{"The members load the group from their files", d.loaded}}
	if !d.resumed {
		steps = []step{{"Alice creates the group", d.create}, {"Bob and Charlie publish key packages; Alice adds them", d.inviteBobAndCharlie}}
		if d.size > minMembers {
			steps = append(steps, step{fmt.Sprintf("The group grows to %d members", d.size), d.grow})
		}
	}
	steps = append(steps, step{"Members exchange application messages", d.chat},
		step{"Bob proposes an update; Alice commits it", d.bobUpdates}, step{"Alice rotates her keys (self-update)", d.aliceUpdates})
	if d.resumed && !d.charlie.active() {
		return append(steps, step{"Alice adds Charlie back", d.addCharlieBack})
	}
	return append(steps, step{"Alice removes Charlie", d.removeCharlie}, step{"Charlie can no longer read the group", d.shutOut})
}

// load opens the files of an earlier run and loads the group from each,
// before anything is printed.
func (d *demo) load(files []string) {
	if d.timed && d.size != len(files) {
		panic(failure{usageError{fmt.Errorf("-members %d: %s holds a group of %d clients, and -members only applies when the group is created; leave it out to continue the group, or use another -db directory", d.size, d.dir, len(files))}})
	}
	rank := func(path string) int { // the characters first, then the others by name
		if i := slices.Index(characters, strings.TrimSuffix(filepath.Base(path), ".db")); i >= 0 {
			return i
		}
		return len(characters)
	}
	slices.SortStableFunc(files, func(a, b string) int { return rank(a) - rank(b) })
	byName := map[string]*member{}
	for i, f := range files {
		m := openMember(d.ctx, strings.TrimSuffix(filepath.Base(f), ".db"), f, d.suite)
		d.members = append(d.members, m)
		if i == 0 {
			d.groupID = storedGroupID(d.ctx, m.client)
		}
		var err error
		m.group, err = timed(d, "load group", func() (*mls.Group, error) { return m.client.LoadGroup(d.ctx, []byte(d.groupID)) })
		check(err, "%s: loading group %q from %s", m.name, d.groupID, f)
		byName[m.name] = m
	}
	d.alice, d.bob, d.charlie = byName["Alice"], byName["Bob"], byName["Charlie"]
	if !d.alice.active() || !d.bob.active() || d.charlie == nil {
		failf("%s holds no active Alice and Bob, or no Charlie: not a group the demo made; use another -db directory", d.dir)
	}
	if stored := d.alice.group.CipherSuite(); d.suiteSet && d.suite != stored {
		panic(failure{usageError{fmt.Errorf("-suite %v: the group stored in %s uses %v; leave -suite out to continue it, or use another -db directory", d.suite, d.dir, stored)}})
	}
	d.suite, d.size = d.alice.group.CipherSuite(), len(d.members)
	for _, m := range d.members {
		d.connect(m)
	}
}

// --- The story -------------------------------------------------------------

func (d *demo) create() {
	d.alice = d.open("Alice")
	for try := 0; ; try++ {
		g, err := d.alice.client.CreateGroup(d.ctx, d.suite, mls.GroupConfig{GroupID: []byte(d.groupID)})
		check(err, "Alice: CreateGroup")
		err = d.alice.ds.CreateGroup(d.ctx, g, dsclient.CreateOptions{})
		if errors.Is(err, dsclient.ErrGroupExists) && try < 3 {
			// A shared delivery service knows the group from an earlier run.
			check(d.alice.client.DeleteGroup(d.ctx, g.GroupID()), "Alice: DeleteGroup")
			d.groupID = fmt.Sprintf("%s-%s", groupID, short(g.EpochAuthenticator()))
			continue
		}
		check(err, "Alice: registering the group")
		d.alice.group = g
		break
	}
	d.say("Alice creates group %q with cipher suite %v (0x%04x).", d.groupID, d.suite, uint16(d.suite))
	d.say("Alice registers it with the delivery service: its GroupInfo and ratchet tree at epoch 0.")
}

func (d *demo) inviteBobAndCharlie() {
	d.bob, d.charlie = d.open("Bob"), d.open("Charlie")
	d.invite("Alice commits Add(Bob) and Add(Charlie)", d.bob, d.charlie)
}

// invite has each of ms publish a key package, Alice add them in one
// commit, and each join from the Welcome (OpenMLS's StagedWelcome).
func (d *demo) invite(narration string, ms ...*member) {
	var kps []*mls.KeyPackage
	for _, m := range ms {
		kp, n := d.publish(m)
		d.say("%-7s publishes a key package (%d bytes, ref %s...).", m.name, n, short(kp.Ref()))
		kps = append(kps, d.fetch(m, kp))
	}
	d.say("Alice fetches them from the delivery service; each is handed out once.")
	d.add(kps, "add", narration)
	for _, m := range ms {
		sw := d.join(m)
		d.say("%-7s stages the Welcome: group %q, epoch %d, invited by %s, members %s.",
			m.name, sw.GroupID(), sw.Epoch(), sw.Sender().Credential.Identity(), memberList(sw.Members()))
		d.say("%-7s joins at leaf %d.", m.name, m.group.OwnLeafIndex())
	}
}

// grow adds the extra members of -members, at most -batch per commit. The
// progress bar counts the members that process each commit and those that
// join from its Welcome.
func (d *demo) grow() {
	extra := d.size - minMembers
	d.say("%d more clients publish key packages; Alice adds them in commits of up to %d,", extra, d.batch)
	d.say("and each joins from the Welcome while the members already in process the commit.")
	work := 0
	for in := minMembers; in < d.size; in += d.batch {
		work += in - 1 + min(d.batch, d.size-in)
	}
	bar := progressbar.NewOptions(work, progressbar.OptionSetWriter(d.errw), progressbar.OptionSetDescription("growing the group"),
		progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(d.errw) }))
	d.tick = func() { bar.Add(1) }
	defer func() { d.tick = nil }()
	for next := minMembers + 1; next <= d.size; next += d.batch {
		joiners := make([]*member, min(d.batch, d.size+1-next))
		kps := make([]*mls.KeyPackage, len(joiners))
		for i := range joiners {
			joiners[i] = d.open(fmt.Sprintf("member-%0*d", len(strconv.Itoa(d.size)), next+i))
			kp, _ := d.publish(joiners[i])
			kps[i] = d.fetch(joiners[i], kp)
		}
		d.add(kps, "bulk add", "")
		for _, m := range joiners {
			d.join(m)
			d.tick()
		}
	}
	commits := "1 commit"
	if n := (extra + d.batch - 1) / d.batch; n > 1 {
		commits = fmt.Sprintf("%d commits", n)
	}
	d.say("After %s, the group has %d members.", commits, len(d.alice.group.Members()))
}

func (d *demo) chat() {
	lines := []string{"Hi Bob and Charlie, welcome to secure-chat!", "Thanks Alice. Hi Charlie!", "Hello both. Meeting at 2pm?"}
	if d.resumed {
		lines = []string{"Good morning! The group survived the restart.", "Morning, Alice. Same group, loaded from my file.", "Same here. Still on for 2pm?"}
	}
	for i, m := range []*member{d.alice, d.bob, d.charlie} {
		if m.active() {
			d.broadcast(m, lines[i])
		}
	}
}

// bobUpdates is the book's "Proposal + Commit": Bob proposes fresh keys for
// his leaf (an Update proposal, RFC 9420, Section 12.1.2), every member
// queues it, and Alice commits it.
func (d *demo) bobUpdates() {
	d.say("Bob suspects his phone was compromised and proposes a new key for his leaf.")
	oldKey := d.leafKey(d.bob)
	proposal, err := timed(d, "update proposal", func() (*mls.Message, error) {
		return d.bob.ds.Propose(d.ctx, d.bob.group, (*mls.Group).ProposeSelfUpdate, nothingNew("Bob"))
	})
	check(err, "Bob: ProposeSelfUpdate")
	d.say("Bob sends an Update proposal (%d bytes).", size(proposal))
	d.deliver(d.bob, "update proposal", func(m *member, p *mls.Processed) {
		// Proposals wait in each member's queue until a commit covers
		// them (OpenMLS's store_pending_proposal): dsclient queues them.
		if p.Kind != mls.KindProposal || p.Proposal.Type() != mls.ProposalUpdate {
			failf("%s: Bob's proposal came out as a %v", m.name, p.Kind)
		}
		if m.named() {
			d.say("%-7s receives Bob's Update proposal and queues it (%d pending).", m.name, len(m.group.PendingProposals()))
		}
	})
	d.commit(d.alice, "update", "Alice commits the pending proposals", (*mls.Group).CommitPendingProposals)
	newKey := d.leafKey(d.bob)
	if bytes.Equal(oldKey, newKey) {
		failf("Bob's leaf encryption key did not change")
	}
	d.say("Bob's leaf encryption key changed: %s... -> %s...", short(oldKey), short(newKey))
}

// aliceUpdates is the book's "Self Update": a commit with a fresh
// UpdatePath (RFC 9420, Section 12.4).
func (d *demo) aliceUpdates() {
	d.say("Alice rotates her keys at once: a commit with a fresh UpdatePath.")
	d.commit(d.alice, "self-update", "Alice commits a self-update", (*mls.Group).SelfUpdate)
}

// removeCharlie backs up Charlie's device, as a copy of his SQLite file
// after folding the write-ahead log into it, and has Alice remove him.
func (d *demo) removeCharlie() {
	check(d.charlie.store.Checkpoint(), "backing up Charlie")
	b, err := os.ReadFile(d.charlie.store.Path())
	check(err, "backing up Charlie")
	dir, err := os.MkdirTemp("", "mls-demo-backup-")
	check(err, "backing up Charlie")
	d.backup = filepath.Join(dir, "Charlie.db")
	check(os.WriteFile(d.backup, b, 0o600), "backing up Charlie")
	d.say("Charlie's device is backed up at epoch %d: a copy of his SQLite file.", d.charlie.group.Epoch())
	leaf := d.charlie.group.OwnLeafIndex()
	d.commit(d.alice, "remove", fmt.Sprintf("Alice commits Remove(Charlie, leaf %d)", leaf), func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		return g.RemoveMembers(ctx, leaf)
	})
	if d.charlie.active() {
		failf("after merging his removal, Charlie is still active")
	}
}

// shutOut shows that neither Charlie's device nor his backup from before
// the removal reads what the group sends next.
func (d *demo) shutOut() {
	msg := d.broadcast(d.alice, "Charlie is gone. The new keys are ours only.")
	_, err := d.charlie.ds.Sync(d.ctx, d.charlie.group, nil)
	d.refused(err, "Charlie asks the delivery service for the new messages")
	d.say("Charlie gets a copy of the ciphertext all the same, as anyone on the network could.")
	_, err = d.charlie.group.Process(d.ctx, msg)
	d.refused(err, "Charlie (removed) cannot read it")
	old := openMember(d.ctx, "Charlie", d.backup, d.suite)
	defer old.store.Close()
	old.group, err = old.client.LoadGroup(d.ctx, []byte(d.groupID))
	check(err, "restoring Charlie's backup")
	d.say("Charlie restores his backup: a member again, at epoch %d, with that epoch's keys.", old.group.Epoch())
	_, err = old.group.Process(d.ctx, msg)
	d.refused(err, "The backup fails to decrypt the new message")
}

// addCharlieBack has Charlie, whose file holds his removed state, join
// again into the same file.
func (d *demo) addCharlieBack() {
	d.say("Charlie's file still holds his removed state (epoch %d); the new one replaces it.", d.charlie.group.Epoch())
	d.invite("Alice commits Add(Charlie)", d.charlie)
}

// loaded shows what each member loaded. A commit or proposals left pending
// by a run that stopped in the middle of a step are dropped: the demo posts
// each handshake as soon as it is made, and merges its commit as soon as
// the delivery service takes it, so what is still pending in a file was
// (short of a crash in that instant) never posted, and no one saw it.
func (d *demo) loaded() {
	d.say("%d clients open their files and load group %q (cipher suite %v).", len(d.members), d.groupID, d.suite)
	for _, m := range d.members {
		g, file := m.group, filepath.Base(m.store.Path())
		if m.named() && g.IsActive() {
			d.say("%-7s loads the group from %s: leaf %d, epoch %d, authenticator %s.", m.name, file, g.OwnLeafIndex(), g.Epoch(), short(g.EpochAuthenticator()))
		} else if m.named() {
			d.say("%-7s finds his removed state in %s: epoch %d.", m.name, file, g.Epoch())
		}
		if g.IsActive() && (g.PendingCommit() != nil || len(g.PendingProposals()) > 0) {
			check(g.ClearPendingCommit(d.ctx), "%s: ClearPendingCommit", m.name)
			for _, q := range g.PendingProposals() {
				check(g.RemovePendingProposal(d.ctx, q.Ref()), "%s: RemovePendingProposal", m.name)
			}
			d.say("%-7s drops the commit or proposals that the last run left undelivered.", m.name)
		}
	}
	if n := len(d.members) - len(characters); n > 0 {
		d.say("...and %d more members load theirs.", n)
	}
	d.register()
}
