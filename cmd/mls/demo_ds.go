package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/dsclient"
	dssqlite "github.com/mlskit/mls/ds/store/sqlite"
)

// The demo's delivery service: every key package, handshake, message and
// Welcome goes through an mlsd (package ds), over Connect RPC on loopback.
// Without -ds the demo runs one in the process, on a SQLite database of its
// own.

// embeddedDS is an mlsd serving on a loopback port.
type embeddedDS struct {
	url, path string // where it serves; its database
	stop      func() error
}

// startDS starts an mlsd on 127.0.0.1 with its SQLite database at path. The
// demo is its only client: no rate limit, no logs.
func startDS(ctx context.Context, path string) (*embeddedDS, error) {
	st, err := dssqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("delivery service: %w", err)
	}
	u, stop, err := ds.Listen(ctx, "127.0.0.1:0", st, ds.Options{Logger: slog.New(slog.DiscardHandler), RatePerSecond: -1})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("delivery service: %w", err)
	}
	return &embeddedDS{url: u, path: path, stop: func() error { return errors.Join(stop(), st.Close()) }}, nil
}

// connect authenticates m with the delivery service.
func (d *demo) connect(m *member) {
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	if d.http == nil { // one connection pool for all the members
		d.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	}
	c, err := dsclient.Dial(ctx, d.url, m.client, dsclient.Options{Suite: d.suite, HTTPClient: d.http})
	check(err, "%s: connecting to the delivery service at %s", m.name, d.url)
	m.ds = c
}

// register gives the group to a delivery service that does not know it (a
// new one, or one whose database was lost): Alice registers the current
// epoch, and the members read its log from the start.
func (d *demo) register() {
	_, err := d.alice.ds.GroupInfo(d.ctx, d.alice.group.GroupID())
	if !errors.Is(err, dsclient.ErrUnknownGroup) {
		check(err, "Alice: asking the delivery service for the group")
		return
	}
	check(d.alice.ds.CreateGroup(d.ctx, d.alice.group, dsclient.CreateOptions{}), "Alice: registering the group")
	for _, m := range d.members {
		if m != d.alice && m.active() {
			check(m.ds.ResetCursor(d.ctx, m.group), "%s: resetting the cursor", m.name)
		}
	}
	d.say("The delivery service does not know the group: Alice registers it at epoch %d.", d.alice.group.Epoch())
}

// publish has m publish a key package, and returns it with its size.
func (d *demo) publish(m *member) (*mls.KeyPackage, int) {
	kps, err := timed(d, "key package", func() ([]*mls.KeyPackage, error) { return m.ds.PublishKeyPackages(d.ctx, 1, false) })
	check(err, "%s: publishing a key package", m.name)
	b, err := kps[0].MarshalMessage()
	check(err, "%s: encoding a key package", m.name)
	return kps[0], len(b)
}

// fetch has Alice take m's key package from the delivery service. A shared
// service may still hold key packages that earlier runs of the demo
// published under the same name, with their private keys gone: Alice takes
// those out of the way until she gets the one m just published.
func (d *demo) fetch(m *member, want *mls.KeyPackage) *mls.KeyPackage {
	for range 64 {
		kp, err := d.alice.ds.FetchKeyPackage(d.ctx, []byte(m.name))
		check(err, "Alice: fetching %s's key package", m.name)
		if bytes.Equal(kp.Ref(), want.Ref()) {
			return kp
		}
	}
	failf("Alice: the delivery service holds more than 64 stale key packages of %s", m.name)
	return nil
}

// join has m take its Welcome from its mailbox and join the group.
func (d *demo) join(m *member) *mls.StagedWelcome {
	js, err := timed(d, "join (stage Welcome + join)", func() ([]dsclient.Joined, error) { return m.ds.Join(d.ctx, mls.JoinConfig{}) })
	check(err, "%s: joining", m.name)
	for _, j := range js {
		if j.Err == nil && string(j.Group.GroupID()) == d.groupID {
			m.group = j.Group
			return j.Staged
		}
	}
	failf("%s: no usable Welcome to group %q in the mailbox (%d others)", m.name, d.groupID, len(js))
	return nil
}

// deliver has every other active member read the group's log, in which it
// must find exactly one new entry, and calls f with what each made of it.
func (d *demo) deliver(from *member, what string, f func(*member, *mls.Processed)) {
	for _, m := range d.members {
		if m == from || !m.active() {
			continue
		}
		n := 0
		handle := func(ev dsclient.Event) error {
			if n++; ev.Err != nil {
				return ev.Err
			}
			f(m, ev.Processed)
			return nil
		}
		_, err := timed(d, "process "+what, func() (int, error) {
			n, err := m.ds.Sync(d.ctx, m.group, handle)
			if errors.Is(err, dsclient.ErrRemoved) && !m.active() {
				// The commit that removed m, which the service lets a
				// removed member read: Sync says so once it is merged.
				err = nil
			}
			return n, err
		})
		check(err, "%s: reading %s's %s", m.name, from.name, what)
		if n != 1 {
			failf("%s: found %d new entries in the log, want %s's %s", m.name, n, from.name, what)
		}
		if d.tick != nil {
			d.tick()
		}
	}
}

// nothingNew is the handler of a member that has read everything already.
func nothingNew(name string) dsclient.Handler {
	return func(ev dsclient.Event) error {
		return fmt.Errorf("%s: unexpected entry %d (%v) from %s in the log", name, ev.Seq, ev.Kind, ev.Sender)
	}
}

// storedGroupID returns the ID of the demo's group in c's store: the
// story's name, or the name with a suffix that an earlier run took on a
// shared delivery service.
func storedGroupID(ctx context.Context, c *mls.Client) string {
	ids, _ := c.Groups(ctx)
	for _, id := range ids {
		if strings.HasPrefix(string(id), groupID) {
			return string(id)
		}
	}
	return groupID
}

// --- Operations --------------------------------------------------------------

// size is the size of a message on the wire.
func size(m *mls.Message) int {
	b, err := m.MarshalBinary()
	check(err, "encoding a message")
	return len(b)
}

// add has Alice commit Add proposals for kps; the delivery service puts the
// Welcome, with the ratchet tree, in the new members' mailboxes.
func (d *demo) add(kps []*mls.KeyPackage, op, narration string) {
	res := d.commit(d.alice, op, narration, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) { return g.AddMembers(ctx, kps...) })
	tree, err := d.alice.group.ExportRatchetTree()
	check(err, "Alice: ExportRatchetTree")
	if narration != "" {
		d.say("The delivery service puts the Welcome (%d bytes) and the ratchet tree (%d bytes) in the new members' mailboxes.", size(res.Welcome), len(tree))
	}
}

// commit has by create a commit and post it to the delivery service, which
// orders it (one commit per epoch); by merges it once accepted, and every
// other member reads it from the log, processes and merges it. A
// narration, if given, tells the story of it.
func (d *demo) commit(by *member, op, narration string, create dsclient.CommitFunc) *mls.CommitResult {
	posted, err := timed(d, op+" commit", func() (*dsclient.Posted, error) {
		return by.ds.Commit(d.ctx, by.group, create, nothingNew(by.name))
	})
	check(err, "%s: %s commit", by.name, op)
	if narration != "" {
		d.say("%s: commit of %d bytes.", narration, posted.Size)
		d.say("The delivery service accepts the commit (log entry %d); %s merges it: epoch %d.", posted.Seq, by.name, by.group.Epoch())
	}
	d.deliver(by, op+" commit", func(m *member, p *mls.Processed) {
		if p.Kind != mls.KindCommit {
			failf("%s: %s's commit came out as a %v", m.name, by.name, p.Kind)
		}
		if m.named() && narration != "" {
			d.say("%-7s processes %s", m.name, describeCommit(m, p))
		}
		// dsclient merges the commit once this returns.
	})
	return posted.Result
}

// broadcast sends text from a member to the group and checks that every
// other active member reads it. It returns the message as sent.
func (d *demo) broadcast(from *member, text string) *mls.Message {
	msg, err := timed(d, "seal application message", func() (*mls.Message, error) {
		return from.ds.Send(d.ctx, from.group, []byte(text), nothingNew(from.name))
	})
	check(err, "%s: Seal", from.name)
	d.say("%s sends %q (PrivateMessage, %d bytes, epoch %d).", from.name, text, size(msg), msg.Epoch())
	others := 0
	d.deliver(from, "application message", func(m *member, p *mls.Processed) {
		if p.Kind != mls.KindApplication || string(p.ApplicationData) != text || string(p.Credential.Identity()) != from.name {
			failf("%s: read %q (%v) from %s, want %q from %s", m.name, p.ApplicationData, p.Kind, p.Credential.Identity(), text, from.name)
		}
		if m.named() {
			d.say("    %-7s reads %q from %s.", m.name, p.ApplicationData, p.Credential.Identity())
		} else {
			others++
		}
	})
	if others > 0 {
		d.say("    ...and %d more members read it too.", others)
	}
	return msg
}

// leafKey returns m's leaf encryption key as Alice's group sees it.
func (d *demo) leafKey(m *member) []byte {
	mem, _ := d.alice.group.Member(m.group.OwnLeafIndex())
	return mem.EncryptionKey
}
