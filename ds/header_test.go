package ds

import (
	"bytes"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage/memory"
)

func TestPrivateHeader(t *testing.T) {
	// version 1, wire format 2, group_id "abc", epoch 7, content type 3.
	b := []byte{0, 1, 0, 2, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 7, 3, 0}
	gid, epoch, ct, ok := privateHeader(b)
	if !ok || !bytes.Equal(gid, []byte("abc")) || epoch != 7 || ct != 3 {
		t.Fatalf("got %q %d %d %v", gid, epoch, ct, ok)
	}
	// A two-byte length: 0x40 0x03.
	b2 := append([]byte{0, 1, 0, 2, 0x40, 3, 'a', 'b', 'c'}, b[8:]...)
	if gid, epoch, ct, ok := privateHeader(b2); !ok || string(gid) != "abc" || epoch != 7 || ct != 3 {
		t.Fatalf("two-byte length: %q %d %d %v", gid, epoch, ct, ok)
	}
	for _, bad := range [][]byte{
		nil,
		{0, 1, 0, 1, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 7, 3}, // a PublicMessage
		b[:15],                         // epoch cut short
		{0, 1, 0, 2, 0xc0, 0, 0, 0, 0}, // 8-byte varint: invalid in MLS
		{0, 1, 0, 2, 0x7f},             // length beyond the input
	} {
		if _, _, _, ok := privateHeader(bad); ok {
			t.Errorf("privateHeader(%x) ok", bad)
		}
	}
	if st, ok := publicSenderType([]byte{0, 1, 0, 1, 1, 'g', 0, 0, 0, 0, 0, 0, 0, 1, 4}); !ok || st != senderNewMemberCommit {
		t.Errorf("publicSenderType: %d %v", st, ok)
	}
	if _, ok := publicSenderType(b); ok {
		t.Error("publicSenderType of a PrivateMessage ok")
	}
}

func FuzzHeaders(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 7, 3, 0})
	f.Add([]byte{0, 1, 0, 1, 0x80, 0, 0, 1, 'g'})
	f.Fuzz(func(t *testing.T, b []byte) {
		gid, _, _, ok := privateHeader(b)
		if ok && len(gid) > len(b) {
			t.Fatal("group ID longer than the input")
		}
		publicSenderType(b)
		if gc, tbs, _, sig, ok := groupInfoParts(b); ok && (len(gc) > len(tbs) || len(tbs)+len(sig) > len(b)) {
			t.Fatal("groupInfoParts: parts longer than the input")
		}
	})
}

func TestGroupInfoParts(t *testing.T) {
	ctx := t.Context()
	c, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte("a")), nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.CreateGroup(ctx, mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	gi, _ := g.ExportGroupInfo(false)
	raw, _ := gi.MarshalBinary()
	tree, _ := g.ExportRatchetTree()
	pg, err := mls.NewPublicGroup(ctx, memory.New(), credential.AcceptAll, gi, mls.PublicGroupOptions{RatchetTree: tree})
	if err != nil {
		t.Fatal(err)
	}
	gc, tbs, signer, sig, ok := groupInfoParts(raw)
	if !ok || signer != 0 || !bytes.Equal(gc, pg.GroupContext()) || !bytes.HasPrefix(tbs, gc) {
		t.Fatalf("parts: ok %v signer %d, GroupContext equal %v", ok, signer, bytes.Equal(gc, pg.GroupContext()))
	}
	s, _ := ciphersuite.Lookup(pg.CipherSuite())
	if err := s.VerifyWithLabel(pg.Members()[0].SignatureKey, "GroupInfoTBS", tbs, sig); err != nil {
		t.Fatalf("the GroupInfo's signature over the parsed TBS: %v", err)
	}
	handled, err := groupInfoMatches(pg, gi, raw, tree)
	if !handled || err != nil {
		t.Fatalf("groupInfoMatches of the group's own GroupInfo: %v %v", handled, err)
	}
	for _, bad := range [][]byte{raw[:len(raw)-1], append(bytes.Clone(raw), 0), raw[:20]} {
		if _, _, _, _, ok := groupInfoParts(bad); ok {
			t.Errorf("groupInfoParts of %d bytes (of %d) ok", len(bad), len(raw))
		}
	}
}
