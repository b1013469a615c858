package mls

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// TestReceivedContent: only ParseMessage gives a Message the bytes of its
// PublicMessage's content as received, and they are the encoding of the
// content it holds; a message built for sending has none, so its checks
// encode its content (RFC 9420, Sections 6.1, 6.2 and 8.2). Both give the
// same staged commit, and a flipped bit in the content or the membership
// tag on the wire is still ValSem008 with the group unchanged.
func TestReceivedContent(t *testing.T) {
	ctx := context.Background()
	vg := newVGroup(t, vSetup{n: 3})
	alice, bob := vg.m[0], vg.m[1]
	res, err := alice.g.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := res.Commit
	if sent.content != nil {
		t.Fatal("a message built for sending carries content as received")
	}
	raw, err := sent.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	pm := parsed.m.PublicMessage
	if !bytes.Equal(parsed.content, message.MustMarshal(&pm.Content)) {
		t.Fatal("the content as received is not the encoding of the parsed content")
	}
	for _, m := range []*Message{res.Welcome, res.GroupInfo} {
		if m == nil {
			continue
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if p, err := ParseMessage(b); err != nil || p.content != nil {
			t.Fatalf("a parsed %v has content %x (%v)", m.WireFormat(), p.content, err)
		}
	}

	var staged [2]*StagedCommit
	for i, m := range []*Message{parsed, sent} {
		p, err := bob.g.Process(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		staged[i] = p.Commit
	}
	a, b := staged[0].next, staged[1].next
	if !bytes.Equal(a.GCRaw, b.GCRaw) || !bytes.Equal(a.Interim, b.Interim) || !bytes.Equal(a.ConfTag, b.ConfTag) {
		t.Fatal("the parsed commit stages another epoch than the one built for sending")
	}

	leafKey := pm.Content.Commit.Path.LeafNode.EncryptionKey
	at := bytes.Index(raw, leafKey)
	if at < 0 {
		t.Fatal("leaf encryption key not found in the encoding")
	}
	for name, i := range map[string]int{"content": at + len(leafKey)/2, "membership tag": len(raw) - 1} {
		bad := bytes.Clone(raw)
		bad[i] ^= 0x08
		msg, err := ParseMessage(bad)
		if err != nil {
			t.Fatal(err)
		}
		before := stateOf(t, bob)
		_, err = bob.g.Process(ctx, msg)
		if after := stateOf(t, bob); after.String() != before.String() {
			t.Fatalf("%s flipped: the group changed", name)
		}
		if !errors.Is(err, rule("ValSem008")) {
			t.Fatalf("%s flipped: got %v, want ValSem008", name, err)
		}
	}
	if err := bob.g.MergeStagedCommit(ctx, staged[0]); err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	carol := vg.m[2]
	p, err := carol.g.Process(ctx, parsed)
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.g.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatal(err)
	}
	vg.agree(t)
}
