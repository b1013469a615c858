package message

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mlskit/mls/internal/wire"
)

// codecCase is one value to round-trip and a constructor for the type it
// decodes as.
type codecCase struct {
	name  string
	v     Encodable
	fresh func() Decodable
}

func codecCases() []codecCase {
	var cs []codecCase
	add := func(name string, v Encodable, fresh func() Decodable) {
		cs = append(cs, codecCase{name, v, fresh})
	}
	exts := sampleExtensions()
	add("Extension", &exts[2], func() Decodable { return new(Extension) })
	for _, c := range []Credential{
		{Type: CredentialBasic, Identity: []byte("bob")},
		{Type: CredentialX509, Certificates: [][]byte{b(300, 1), {}, b(2, 3)}},
		{Type: CredentialX509, Certificates: [][]byte{}},
		{Type: 0xFFFF, Data: []byte("custom")},
		{Type: 0x0A0A, Data: []byte{}},
	} {
		c := c
		add(fmt.Sprintf("Credential/%d", c.Type), &c, func() Decodable { return new(Credential) })
	}
	caps := sampleCapabilities()
	add("Capabilities", &caps, func() Decodable { return new(Capabilities) })
	add("Lifetime", &Lifetime{NotBefore: 3, NotAfter: 1<<64 - 1}, func() Decodable { return new(Lifetime) })
	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		ln := sampleLeafNode(src)
		add(fmt.Sprintf("LeafNode/source=%d", src), &ln, func() Decodable { return new(LeafNode) })
	}
	add("ParentNode", &ParentNode{EncryptionKey: b(32, 1), ParentHash: b(32, 2), UnmergedLeaves: []uint32{1, 5, 1 << 31}},
		func() Decodable { return new(ParentNode) })
	tree := sampleRatchetTree()
	add("Node/leaf", tree[0], func() Decodable { return new(Node) })
	add("Node/parent", tree[1], func() Decodable { return new(Node) })
	add("RatchetTree", &tree, func() Decodable { return new(RatchetTree) })
	add("HPKECiphertext", &HPKECiphertext{KEMOutput: b(65, 4), Ciphertext: b(20000, 5)}, func() Decodable { return new(HPKECiphertext) })
	up := sampleUpdatePath()
	add("UpdatePathNode", &up.Nodes[0], func() Decodable { return new(UpdatePathNode) })
	add("UpdatePath", up, func() Decodable { return new(UpdatePath) })
	gc := sampleGroupContext()
	add("GroupContext", &gc, func() Decodable { return new(GroupContext) })
	for i, p := range samplePSKs() {
		p := p
		add(fmt.Sprintf("PreSharedKeyID/%d", i), &p, func() Decodable { return new(PreSharedKeyID) })
	}
	for i, p := range sampleProposals() {
		p := p
		add(fmt.Sprintf("Proposal/%d/type=%d", i, p.Type), &p, func() Decodable { return new(Proposal) })
	}
	ps := sampleProposals()
	add("AddProposal", ps[0].Add, func() Decodable { return new(AddProposal) })
	add("UpdateProposal", ps[1].Update, func() Decodable { return new(UpdateProposal) })
	add("RemoveProposal", ps[2].Remove, func() Decodable { return new(RemoveProposal) })
	add("PreSharedKeyProposal", ps[4].PSK, func() Decodable { return new(PreSharedKeyProposal) })
	add("ReInitProposal", ps[5].ReInit, func() Decodable { return new(ReInitProposal) })
	add("ExternalInitProposal", ps[6].ExternalInit, func() Decodable { return new(ExternalInitProposal) })
	add("GroupContextExtensionsProposal", ps[7].GroupContextExtensions, func() Decodable { return new(GroupContextExtensionsProposal) })
	add("ProposalOrRef/reference", &ProposalOrRef{Reference: b(32, 9)}, func() Decodable { return new(ProposalOrRef) })
	add("ProposalOrRef/proposal", &ProposalOrRef{Proposal: &ps[3]}, func() Decodable { return new(ProposalOrRef) })
	cm := sampleCommit()
	add("Commit", &cm, func() Decodable { return new(Commit) })
	add("Commit/empty", &Commit{Proposals: []ProposalOrRef{}}, func() Decodable { return new(Commit) })
	for _, s := range []Sender{
		{Type: SenderMember, LeafIndex: 77},
		{Type: SenderExternal, SenderIndex: 3},
		{Type: SenderNewMemberProposal},
		{Type: SenderNewMemberCommit},
	} {
		s := s
		add(fmt.Sprintf("Sender/%d", s.Type), &s, func() Decodable { return new(Sender) })
	}
	for _, ct := range []ContentType{ContentApplication, ContentProposal, ContentCommit} {
		fc := sampleFramedContent(ct, Sender{Type: SenderMember, LeafIndex: 1})
		add(fmt.Sprintf("FramedContent/%d", ct), &fc, func() Decodable { return new(FramedContent) })
		ac := &AuthenticatedContent{WireFormat: WireFormatPrivateMessage, Content: fc, Auth: sampleAuth(ct)}
		add(fmt.Sprintf("AuthenticatedContent/%d", ct), ac, func() Decodable { return new(AuthenticatedContent) })
	}
	for name, m := range sampleMessages() {
		switch m.WireFormat {
		case WireFormatPublicMessage:
			add("PublicMessage/"+name, m.PublicMessage, func() Decodable { return new(PublicMessage) })
		case WireFormatPrivateMessage:
			add("PrivateMessage", m.PrivateMessage, func() Decodable { return new(PrivateMessage) })
		case WireFormatWelcome:
			add("Welcome", m.Welcome, func() Decodable { return new(Welcome) })
		case WireFormatGroupInfo:
			add("GroupInfo", m.GroupInfo, func() Decodable { return new(GroupInfo) })
		case WireFormatKeyPackage:
			add("KeyPackage", m.KeyPackage, func() Decodable { return new(KeyPackage) })
		}
		add("MLSMessage/"+name, m, func() Decodable { return new(MLSMessage) })
	}
	add("SenderData", &SenderData{LeafIndex: 4, Generation: 1000, ReuseGuard: [4]byte{1, 2, 3, 4}}, func() Decodable { return new(SenderData) })
	add("EncryptedGroupSecrets", &sampleWelcome().Secrets[0], func() Decodable { return new(EncryptedGroupSecrets) })
	add("PathSecret", &PathSecret{PathSecret: b(32, 1)}, func() Decodable { return new(PathSecret) })
	add("GroupSecrets/path", &GroupSecrets{JoinerSecret: b(32, 1), PathSecret: b(32, 2), PSKs: samplePSKs()}, func() Decodable { return new(GroupSecrets) })
	add("GroupSecrets/empty_path", &GroupSecrets{JoinerSecret: b(32, 1), PathSecret: []byte{}, PSKs: []PreSharedKeyID{}}, func() Decodable { return new(GroupSecrets) })
	add("GroupSecrets/no_path", &GroupSecrets{JoinerSecret: b(32, 1), PSKs: []PreSharedKeyID{}}, func() Decodable { return new(GroupSecrets) })
	add("RequiredCapabilities", &RequiredCapabilities{Extensions: []ExtensionType{5, 0xFF00}, Proposals: []ProposalType{}, Credentials: []CredentialType{1}},
		func() Decodable { return new(RequiredCapabilities) })
	add("ExternalSenders", &ExternalSenders{{SignatureKey: b(32, 1), Credential: Credential{Type: CredentialBasic, Identity: []byte("ds")}}},
		func() Decodable { return new(ExternalSenders) })
	add("ExternalPub", &ExternalPub{ExternalPub: b(32, 7)}, func() Decodable { return new(ExternalPub) })
	add("ApplicationID", &ApplicationID{ApplicationID: []byte("device-1")}, func() Decodable { return new(ApplicationID) })
	return cs
}

// deref returns the value a pointer points to, for comparison.
func deref(v any) any { return reflect.ValueOf(v).Elem().Interface() }

// TestRoundTrip encodes every sample, decodes it as its type, compares the
// decoded value field by field with the original and re-encodes it.
func TestRoundTrip(t *testing.T) {
	for _, c := range codecCases() {
		t.Run(c.name, func(t *testing.T) {
			enc := MustMarshal(c.v)
			got := c.fresh()
			if err := Unmarshal(enc, got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := c.v
			if rt, ok := want.(RatchetTree); ok {
				want = &rt
			}
			if !reflect.DeepEqual(deref(got), deref(want)) {
				t.Fatalf("decoded value differs:\n got %+v\nwant %+v", deref(got), deref(want))
			}
			if again := MustMarshal(got.(Encodable)); !bytes.Equal(again, enc) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, enc)
			}
		})
	}
}

// TestPrefixesRejected checks that every strict prefix of every sample
// encoding fails as truncated, and one trailing byte as trailing data.
func TestPrefixesRejected(t *testing.T) {
	for _, c := range codecCases() {
		t.Run(c.name, func(t *testing.T) {
			enc := MustMarshal(c.v)
			for i := 0; i < len(enc); i++ {
				err := Unmarshal(enc[:i], c.fresh())
				if !errors.Is(err, wire.ErrTruncated) {
					t.Fatalf("prefix of %d/%d bytes: got %v, want ErrTruncated", i, len(enc), err)
				}
				var we *wire.Error
				if !errors.As(err, &we) {
					t.Fatalf("prefix of %d bytes: %T is not a *wire.Error", i, err)
				}
			}
			err := Unmarshal(append(enc[:len(enc):len(enc)], 0), c.fresh())
			if !errors.Is(err, wire.ErrTrailingData) {
				t.Fatalf("one trailing byte: got %v, want ErrTrailingData", err)
			}
		})
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	v, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestKnownEncodings compares encodings with byte strings written by hand
// from the RFC 9420 struct definitions, and decodes them back.
func TestKnownEncodings(t *testing.T) {
	tests := []struct {
		name  string
		v     Encodable
		hex   string
		fresh func() Decodable
	}{
		{"Sender member", &Sender{Type: SenderMember, LeafIndex: 5}, "01 00000005", func() Decodable { return new(Sender) }},
		{"Sender external", &Sender{Type: SenderExternal, SenderIndex: 2}, "02 00000002", func() Decodable { return new(Sender) }},
		{"Sender new_member_commit", &Sender{Type: SenderNewMemberCommit}, "04", func() Decodable { return new(Sender) }},
		{"Extension", &Extension{Type: ExtensionApplicationID, Data: []byte("app")}, "0001 03 617070", func() Decodable { return new(Extension) }},
		{"Credential basic", &Credential{Type: CredentialBasic, Identity: []byte("alice")}, "0001 05 616c696365", func() Decodable { return new(Credential) }},
		{"Credential x509", &Credential{Type: CredentialX509, Certificates: [][]byte{{0xab}, {0xcd, 0xef}}}, "0002 05 01ab 02cdef", func() Decodable { return new(Credential) }},
		{"Credential GREASE", &Credential{Type: 0x1A1A, Data: []byte("xy")}, "1a1a 02 7879", func() Decodable { return new(Credential) }},
		{"PSK external", &PreSharedKeyID{Type: PSKExternal, PSKID: []byte("k"), Nonce: []byte{0, 1}}, "01 01 6b 02 0001", func() Decodable { return new(PreSharedKeyID) }},
		{"PSK resumption", &PreSharedKeyID{Type: PSKResumption, Usage: ResumptionApplication, PSKGroupID: []byte("g"), PSKEpoch: 3, Nonce: []byte{}},
			"02 01 01 67 0000000000000003 00", func() Decodable { return new(PreSharedKeyID) }},
		{"Lifetime", &Lifetime{NotBefore: 1, NotAfter: 2}, "0000000000000001 0000000000000002", func() Decodable { return new(Lifetime) }},
		{"ParentNode", &ParentNode{EncryptionKey: []byte{0xaa}, ParentHash: []byte{}, UnmergedLeaves: []uint32{1, 2}},
			"01aa 00 08 00000001 00000002", func() Decodable { return new(ParentNode) }},
		{"RatchetTree", &RatchetTree{{Parent: &ParentNode{EncryptionKey: []byte{0xaa}, ParentHash: []byte{}, UnmergedLeaves: []uint32{}}}, nil},
			"07 01 02 01aa 00 00 00", func() Decodable { return new(RatchetTree) }},
		{"Commit empty", &Commit{Proposals: []ProposalOrRef{}}, "00 00", func() Decodable { return new(Commit) }},
		{"Commit reference", &Commit{Proposals: []ProposalOrRef{{Reference: []byte{0xff}}}}, "03 02 01ff 00", func() Decodable { return new(Commit) }},
		{"Proposal remove", &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: 9}}, "0003 00000009", func() Decodable { return new(Proposal) }},
		{"Proposal custom", &Proposal{Type: 0xFF00, Data: []byte{1, 2}}, "ff00 02 0102", func() Decodable { return new(Proposal) }},
		{"GroupSecrets path", &GroupSecrets{JoinerSecret: []byte{1}, PathSecret: []byte{2, 3}, PSKs: []PreSharedKeyID{}},
			"01 01 01 02 0203 00", func() Decodable { return new(GroupSecrets) }},
		{"GroupSecrets no path", &GroupSecrets{JoinerSecret: []byte{1}, PSKs: []PreSharedKeyID{}}, "01 01 00 00", func() Decodable { return new(GroupSecrets) }},
		{"SenderData", &SenderData{LeafIndex: 1, Generation: 2, ReuseGuard: [4]byte{0xde, 0xad, 0xbe, 0xef}}, "00000001 00000002 deadbeef",
			func() Decodable { return new(SenderData) }},
		{"MLSMessage private", NewPrivateMessage(&PrivateMessage{GroupID: []byte("g"), Epoch: 1, ContentType: ContentCommit,
			AuthenticatedData: []byte{}, EncryptedSenderData: []byte{5}, Ciphertext: []byte{}}),
			"0001 0002 0167 0000000000000001 03 00 0105 00", func() Decodable { return new(MLSMessage) }},
		{"PublicMessage application by member", &PublicMessage{
			Content: FramedContent{GroupID: []byte{}, Epoch: 2, Sender: Sender{Type: SenderMember, LeafIndex: 1},
				AuthenticatedData: []byte{}, ContentType: ContentApplication, ApplicationData: []byte{7}},
			Auth: FramedContentAuthData{Signature: []byte{8}}, MembershipTag: []byte{9}},
			"00 0000000000000002 01 00000001 00 01 0107 0108 0109", func() Decodable { return new(PublicMessage) }},
		{"PublicMessage commit by new member", &PublicMessage{
			Content: FramedContent{GroupID: []byte{}, Epoch: 2, Sender: Sender{Type: SenderNewMemberCommit},
				AuthenticatedData: []byte{}, ContentType: ContentCommit, Commit: &Commit{Proposals: []ProposalOrRef{}}},
			Auth: FramedContentAuthData{Signature: []byte{8}, ConfirmationTag: []byte{}}},
			"00 0000000000000002 04 00 03 00 00 0108 00", func() Decodable { return new(PublicMessage) }},
		{"LeafNode update", &LeafNode{
			EncryptionKey: []byte{1},
			SignatureKey:  []byte{2},
			Credential:    Credential{Type: CredentialBasic, Identity: []byte{}},
			Source:        LeafNodeSourceUpdate,
			Extensions:    []Extension{},
			Signature:     []byte{},
		},
			"0101 0102 0001 00 00 00 00 00 00 02 00 00", func() Decodable { return new(LeafNode) }},
		{"Welcome", &Welcome{CipherSuite: 3, Secrets: []EncryptedGroupSecrets{{NewMember: []byte{1}, EncryptedGroupSecrets: HPKECiphertext{KEMOutput: []byte{2}, Ciphertext: []byte{}}}},
			EncryptedGroupInfo: []byte{4}}, "0003 05 0101 0102 00 0104", func() Decodable { return new(Welcome) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.hex)
			got, err := Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding:\n got %x\nwant %x", got, want)
			}
			v := tt.fresh()
			if err := Unmarshal(want, v); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if again := MustMarshal(v.(Encodable)); !bytes.Equal(again, want) {
				t.Fatalf("decode then encode: got %x, want %x", again, want)
			}
		})
	}
}
