package state

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/tree"
)

// TestLayout checks the key layout: node keys carry the bit length of the
// node index, so that the nodes from 2^k on share the prefixes of lengths
// k+1 and up; the other keys are the group ID as opaque<V> followed by big
// endian integers.
func TestLayout(t *testing.T) {
	gid := []byte("group")
	const p = "0567726f7570" // opaque<V>: one-octet varint length, then the ID
	for _, c := range []struct {
		x    tree.NodeIndex
		want string
	}{
		{0, p + "00" + "00000000"},
		{1, p + "01" + "00000001"},
		{6, p + "03" + "00000006"},
		{7, p + "03" + "00000007"},
		{8, p + "04" + "00000008"},
	} {
		if got := fmt.Sprintf("%x", NodeKey(gid, c.x)); got != c.want {
			t.Errorf("NodeKey(%d) = %s, want %s", c.x, got, c.want)
		}
	}
	leaf := uint32(9)
	for _, c := range []struct{ name, got, want string }{
		{"GroupPrefix", fmt.Sprintf("%x", GroupPrefix(gid)), p},
		{"RatchetKey", fmt.Sprintf("%x", RatchetKey(gid, 3, nil)), p + "0000000000000003"},
		{"RatchetKey with leaf", fmt.Sprintf("%x", RatchetKey(gid, 3, &leaf)), p + "0000000000000003" + "00000009"},
		{"PastKey", fmt.Sprintf("%x", PastKey(gid, 3)), p + "0000000000000003"},
		{"UpdateKeyName", fmt.Sprintf("%x", UpdateKeyName(gid, []byte{0xaa, 0xbb})), p + "aabb"},
		// SHA-256 of the empty string.
		{"EpochID", fmt.Sprintf("%x", EpochID(nil)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	// A group ID of 64 octets or more takes a two-octet length (RFC 9420,
	// Section 2.1.2), so no group's prefix is a prefix of another's.
	long := bytes.Repeat([]byte{1}, 64)
	if got := GroupPrefix(long)[:2]; !bytes.Equal(got, []byte{0x40, 0x40}) {
		t.Errorf("GroupPrefix of 64 octets starts %x", got)
	}
}

// TestChecksum: the checksum is CRC-32C (Castagnoli), of "123456789"
// e3069283; any other value, and records shorter than a checksum, are
// rejected.
func TestChecksum(t *testing.T) {
	if got := fmt.Sprintf("%x", Seal([]byte("123456789"))[9:]); got != "e3069283" {
		t.Errorf("checksum = %s", got)
	}
	body, err := Unseal([]byte("123456789\xe3\x06\x92\x83"))
	if err != nil || string(body) != "123456789" {
		t.Errorf("Unseal = %q, %v", body, err)
	}
	if _, err := Unseal([]byte("123456789\xe3\x06\x92\x84")); !errors.Is(err, ErrChecksum) {
		t.Errorf("bad checksum: %v", err)
	}
	for n := range 4 {
		if _, err := Unseal(make([]byte, n)); !errors.Is(err, ErrChecksum) {
			t.Errorf("record of %d bytes: %v", n, err)
		}
	}
	// The empty body seals to the CRC of nothing, 0.
	if _, err := Unseal([]byte{0, 0, 0, 0}); err != nil {
		t.Errorf("empty body: %v", err)
	}
}

func sampleNode() *message.Node {
	return &message.Node{Parent: &message.ParentNode{EncryptionKey: []byte("ek"), ParentHash: []byte("ph"), UnmergedLeaves: []uint32{1}}}
}

func sampleProposals() []Proposal {
	return []Proposal{
		{Ref: []byte("ref"), Sender: message.Sender{Type: message.SenderMember, LeafIndex: 1}, Proposal: &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: 2}}},
		{Sender: message.Sender{Type: message.SenderMember, LeafIndex: 0}, Proposal: &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: 3}}},
	}
}

func sampleGroupRecord() *GroupRecord {
	return &GroupRecord{
		Header: Header{Epoch: 7, GroupContext: []byte("gc"), TreeHash: []byte("th"), Leaves: 4,
			Past: []PastRef{{5, []byte("id5")}, {6, []byte("id6")}}},
		Config: Config{OutgoingPrivate: true, Incoming: 2, PaddingSize: 16, MaxPastEpochs: 2,
			OutOfOrderTolerance: 5, MaxForwardDistance: 1000, RatchetTreeExtension: true, SkipLifetimeCheck: true,
			ResumptionPSKRetention: -1},
		Active:          true,
		OwnLeaf:         1,
		Private:         PrivateRecord{LeafKey: []byte("leaf"), Nodes: []NodeKeyRecord{{3, []byte("k3")}}},
		EpochSecrets:    []byte("keys"),
		SecretTree:      SecretTreeParams{Leaves: 4, Config: secrettree.Config{OutOfOrderTolerance: 5, MaxForwardDistance: 1000}},
		ConfirmationTag: []byte("tag"),
		Proposals:       sampleProposals(),
		ResumptionPSKs:  map[string][]byte{"b": []byte("psk-b"), "a": []byte("psk-a")},
		Pending: &PendingRecord{
			GroupContext: []byte("gc8"), Private: PrivateRecord{LeafKey: []byte("leaf8")},
			EpochSecrets: []byte("keys8"), SecretTree: []byte("st8"), ConfirmationTag: []byte("tag8"),
			Changes:   tree.Changes{NumLeaves: 4, Limit: 7, Nodes: []tree.NodeChange{{X: 3, Node: sampleNode()}, {X: 5}}},
			Proposals: sampleProposals()[:1], Added: []uint32{3}, Removed: []uint32{2}, Updated: []uint32{0, 1},
			ExternalLeaf: 0, NeedsPath: true, SelfRemoved: false,
			Sender:          message.Sender{Type: message.SenderMember, LeafIndex: 1},
			NewSignatureKey: []byte("sig"),
			Messages:        [3][]byte{[]byte("commit"), []byte("welcome"), []byte("gi")},
			WelcomeSecret:   []byte("ws"),
			TreeElided:      true,
		},
	}
}

func samplePastRecord() *PastRecord {
	return &PastRecord{Epoch: 6, GroupContext: []byte("gc6"), SenderDataSecret: []byte("sds"),
		SecretTree: SecretTreeParams{Leaves: 4, Config: secrettree.Config{OutOfOrderTolerance: 5, MaxForwardDistance: 1000}},
		Members: []PastMember{
			{0, []byte("sk0"), message.Credential{Type: message.CredentialBasic, Identity: []byte("alice")}},
			{3, []byte("sk3"), message.Credential{Type: message.CredentialBasic, Identity: []byte("dave")}},
		}}
}

// record is what the encoding tests need of each record type.
type record interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// sealedRecords are the record types that end in a checksum, each with a
// sample and a new empty value to decode into.
var sealedRecords = []struct {
	name   string
	sample func() record
	empty  func() record
}{
	{"GroupRecord", func() record { return sampleGroupRecord() }, func() record { return &GroupRecord{} }},
	{"PastRecord", func() record { return samplePastRecord() }, func() record { return &PastRecord{} }},
	{"SignerRecord", func() record { return &SignerRecord{Suite: 1, PrivateKey: []byte("priv")} }, func() record { return &SignerRecord{} }},
}

// TestRecordRoundTrip: each record decodes to what was encoded and encodes
// again to the same bytes.
func TestRecordRoundTrip(t *testing.T) {
	for _, r := range sealedRecords {
		b, err := r.sample().Marshal()
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		got := r.empty()
		if err := got.Unmarshal(b); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if !reflect.DeepEqual(got, r.sample()) {
			t.Errorf("%s: decoded %+v, want %+v", r.name, got, r.sample())
		}
		b2, err := got.Marshal()
		if err != nil || !bytes.Equal(b, b2) {
			t.Errorf("%s: encoded again to other bytes (%v)", r.name, err)
		}
	}
	kp := &KeyPackageRecord{InitPriv: []byte("i"), EncryptionPriv: []byte("e"), LastResort: true, KeyPackage: []byte("kp")}
	var got KeyPackageRecord
	if err := got.Unmarshal(kp.Marshal()); err != nil || !reflect.DeepEqual(&got, kp) {
		t.Errorf("KeyPackageRecord: %+v, %v", got, err)
	}
}

// TestRecordBytes pins the encoding of the small records, written out by
// hand from their definitions, so that stored records keep loading.
func TestRecordBytes(t *testing.T) {
	kp := &KeyPackageRecord{InitPriv: []byte{0xaa}, EncryptionPriv: []byte{0xbb, 0xcc}, LastResort: true, KeyPackage: []byte{0xdd}}
	if got, want := hex.EncodeToString(kp.Marshal()), "01"+"01aa"+"02bbcc"+"01"+"01dd"; got != want {
		t.Errorf("KeyPackageRecord = %s, want %s", got, want)
	}
	sr, err := (&SignerRecord{Suite: 3, PrivateKey: []byte{0xee}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(sr[:len(sr)-4]), "01"+"0003"+"01ee"; got != want {
		t.Errorf("SignerRecord = %s, want %s", got, want)
	}
	past := &PastRecord{Epoch: 2, GroupContext: []byte{1}, SenderDataSecret: []byte{2}, SecretTree: SecretTreeParams{Leaves: 2, Config: secrettree.Config{OutOfOrderTolerance: 5, MaxForwardDistance: 1000}}}
	pb, err := past.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(pb[:len(pb)-4]), "02"+"0000000000000002"+"0101"+"0102"+"00000002"+"00000005"+"000003e8"+"00"; got != want {
		t.Errorf("PastRecord = %s, want %s", got, want)
	}
	// The group record starts with version 4 and the header.
	g := &GroupRecord{Header: Header{Epoch: 1, GroupContext: []byte{9}, TreeHash: []byte{8}, Leaves: 1}}
	gb, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(gb[:1+8+2+2+4+1]), "04"+"0000000000000001"+"0109"+"0108"+"00000001"+"00"; got != want {
		t.Errorf("GroupRecord header = %s, want %s", got, want)
	}
}

// v3Pending is sampleGroupRecord with a pending commit that a version 3
// record can hold: a whole Welcome (no welcome_secret), no elided tree.
func v3Pending() *GroupRecord {
	r := sampleGroupRecord()
	p := r.Pending
	p.WelcomeSecret, p.TreeElided = nil, false
	return r
}

// TestGroupRecordV3: version 2 and 3 group records (without the
// resumption PSK retention, and with the pending commit of version 3) are
// still read; versions 0, 1 and 5 are refused.
func TestGroupRecordV3(t *testing.T) {
	want := v3Pending()
	b, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Clone(b[:len(b)-4])
	// Version 3 is version 4 without the empty welcome_secret and the
	// false tree_elided at the end.
	if !bytes.HasSuffix(body, []byte{0, 0}) {
		t.Fatal("version 4 record does not end in an empty welcome_secret and tree_elided = false")
	}
	v3 := append([]byte{GroupRecordV3}, body[1:len(body)-2]...)
	var got GroupRecord
	if err := got.Unmarshal(Seal(bytes.Clone(v3))); err != nil {
		t.Fatalf("version 3: %v", err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("version 3 decoded %+v, want %+v", got, want)
	}
	// Version 2 also lacks the retention, the int32 after the config's
	// last bool: find it by encoding the record with a distinctive value.
	marked := v3Pending()
	marked.Config.ResumptionPSKRetention = 0x7a7b7c7d
	mb, _ := marked.Marshal()
	at := bytes.Index(mb, []byte{0x7a, 0x7b, 0x7c, 0x7d})
	if at < 0 || !bytes.Equal(v3[at:at+4], []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Fatal("cannot find the retention field")
	}
	v2 := append(append([]byte{GroupRecordV2}, v3[1:at]...), v3[at+4:]...)
	want.Config.ResumptionPSKRetention = 0
	if err := got.Unmarshal(Seal(v2)); err != nil {
		t.Fatalf("version 2: %v", err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("version 2 decoded %+v, want %+v", got, want)
	}
	for _, v := range []byte{0, 1, 5} {
		bad := bytes.Clone(body)
		bad[0] = v
		if err := got.Unmarshal(Seal(bad)); err == nil || !bytes.Contains([]byte(err.Error()), []byte(fmt.Sprintf("version %d", v))) {
			t.Errorf("version %d: %v", v, err)
		}
	}
}

// TestPendingWelcomeSecret: in a version 4 record a welcome_secret goes
// with a Welcome and its GroupInfo, and an elided tree with a GroupInfo.
func TestPendingWelcomeSecret(t *testing.T) {
	for name, f := range map[string]func(p *PendingRecord){
		"welcome_secret without Welcome":   func(p *PendingRecord) { p.Messages[1] = nil },
		"welcome_secret without GroupInfo": func(p *PendingRecord) { p.Messages[2], p.TreeElided = nil, false },
		"tree elided without GroupInfo":    func(p *PendingRecord) { p.Messages[2], p.WelcomeSecret = nil, nil },
	} {
		r := sampleGroupRecord()
		f(r.Pending)
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := (&GroupRecord{}).Unmarshal(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRecordPrefixes: every prefix of a record's contents is rejected,
// behind a valid checksum or without one, as are trailing bytes.
func TestRecordPrefixes(t *testing.T) {
	for _, r := range sealedRecords {
		b, err := r.sample().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		body := b[:len(b)-4]
		for n := range len(b) {
			if err := r.empty().Unmarshal(b[:n]); err == nil {
				t.Errorf("%s: prefix of %d of %d bytes accepted", r.name, n, len(b))
			}
		}
		for n := range len(body) {
			if err := r.empty().Unmarshal(Seal(bytes.Clone(body[:n]))); err == nil {
				t.Errorf("%s: contents cut to %d of %d bytes accepted behind a valid checksum", r.name, n, len(body))
			}
		}
		if err := r.empty().Unmarshal(Seal(append(bytes.Clone(body), 0))); err == nil {
			t.Errorf("%s: a trailing byte accepted", r.name)
		}
		flipped := bytes.Clone(b)
		flipped[len(flipped)/2] ^= 1
		if err := r.empty().Unmarshal(flipped); !errors.Is(err, ErrChecksum) {
			t.Errorf("%s: a flipped bit: %v, want ErrChecksum", r.name, err)
		}
	}
	kp := (&KeyPackageRecord{InitPriv: []byte("i"), EncryptionPriv: []byte("e"), KeyPackage: []byte("kp")}).Marshal()
	for n := range len(kp) {
		var r KeyPackageRecord
		if r.Unmarshal(kp[:n]) == nil {
			t.Errorf("KeyPackageRecord: prefix of %d bytes accepted", n)
		}
	}
	var r KeyPackageRecord
	if r.Unmarshal(append(bytes.Clone(kp), 0)) == nil {
		t.Error("KeyPackageRecord: a trailing byte accepted")
	}
	kp[0] = 2
	if r.Unmarshal(kp) == nil {
		t.Error("KeyPackageRecord: version 2 accepted")
	}
}

// TestRecordBadLengths: a length prefix that claims more than the record
// holds is rejected without a panic or a large allocation, and records
// whose contents break the rules (duplicate PSKs, members out of order)
// are rejected.
func TestRecordBadLengths(t *testing.T) {
	for _, r := range sealedRecords {
		b, _ := r.sample().Marshal()
		body := b[:len(b)-4]
		for i := range len(body) {
			for _, v := range []byte{0x3f, 0x7f, 0xff} {
				bad := bytes.Clone(body)
				bad[i] = v
				_ = r.empty().Unmarshal(Seal(bad)) // must not panic
			}
		}
	}
	// Duplicate resumption PSK keys.
	g := sampleGroupRecord()
	b, _ := g.Marshal()
	ab := bytes.Index(b, []byte("psk-b"))
	bad := bytes.Clone(b[:len(b)-4])
	copy(bad[ab-3:], []byte{1, 'a', 5}) // key "b" becomes "a"
	if err := (&GroupRecord{}).Unmarshal(Seal(bad)); err == nil || !bytes.Contains([]byte(err.Error()), []byte("duplicate")) {
		t.Errorf("duplicate resumption PSK: %v", err)
	}
	// Past-epoch members out of order, or beyond the tree.
	for _, m := range [][]PastMember{
		{{3, nil, message.Credential{Type: message.CredentialBasic}}, {0, nil, message.Credential{Type: message.CredentialBasic}}},
		{{4, nil, message.Credential{Type: message.CredentialBasic}}},
		{{1, nil, message.Credential{Type: message.CredentialBasic}}, {1, nil, message.Credential{Type: message.CredentialBasic}}},
	} {
		p := samplePastRecord()
		p.Members = m
		pb, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := (&PastRecord{}).Unmarshal(pb); err == nil {
			t.Errorf("past members %v accepted", m)
		}
	}
}
