package message

import (
	"bytes"

	"github.com/mlskit/mls/ciphersuite"
)

// Sample values for the round-trip tests. Every slice is non-nil (a
// decoded empty vector is a non-nil empty slice), so a decoded copy can be
// compared with reflect.DeepEqual.

func b(n int, fill byte) []byte { return bytes.Repeat([]byte{fill}, n) }

func sampleCapabilities() Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{MLS10},
		CipherSuites: []ciphersuite.ID{1, 3, 0x0A0A},
		Extensions:   []ExtensionType{0xFF00, 0x1A1A},
		Proposals:    []ProposalType{},
		Credentials:  []CredentialType{CredentialBasic, CredentialX509, 0x2A2A},
	}
}

func sampleExtensions() []Extension {
	return []Extension{
		{Type: ExtensionApplicationID, Data: []byte("app")},
		{Type: 0x3A3A, Data: []byte{}},
		{Type: 0xFF01, Data: b(70, 7)}, // a two-byte length header
	}
}

func sampleLeafNode(src LeafNodeSource) LeafNode {
	ln := LeafNode{
		EncryptionKey: b(32, 1),
		SignatureKey:  b(32, 2),
		Credential:    Credential{Type: CredentialBasic, Identity: []byte("alice")},
		Capabilities:  sampleCapabilities(),
		Source:        src,
		Extensions:    sampleExtensions(),
		Signature:     b(64, 3),
	}
	switch src {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime = Lifetime{NotBefore: 1, NotAfter: 1<<63 + 5}
	case LeafNodeSourceCommit:
		ln.ParentHash = b(32, 4)
	}
	return ln
}

func sampleKeyPackage() KeyPackage {
	return KeyPackage{
		Version:     MLS10,
		CipherSuite: ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		InitKey:     b(32, 5),
		LeafNode:    sampleLeafNode(LeafNodeSourceKeyPackage),
		Extensions:  []Extension{{Type: 0x4A4A, Data: b(3, 9)}},
		Signature:   b(64, 6),
	}
}

func sampleGroupContext() GroupContext {
	return GroupContext{
		Version:                 MLS10,
		CipherSuite:             ciphersuite.MLS_256_DHKEMP384_AES256GCM_SHA384_P384,
		GroupID:                 []byte("group"),
		Epoch:                   0x0102030405060708,
		TreeHash:                b(48, 0xAA),
		ConfirmedTranscriptHash: b(48, 0xBB),
		Extensions:              []Extension{{Type: ExtensionExternalSenders, Data: []byte{0}}},
	}
}

func samplePSKs() []PreSharedKeyID {
	return []PreSharedKeyID{
		{Type: PSKExternal, PSKID: []byte("psk"), Nonce: b(32, 0xC1)},
		{Type: PSKResumption, Usage: ResumptionBranch, PSKGroupID: []byte("old"), PSKEpoch: 9, Nonce: b(32, 0xC2)},
	}
}

func sampleProposals() []Proposal {
	kp := sampleKeyPackage()
	return []Proposal{
		{Type: ProposalAdd, Add: &AddProposal{KeyPackage: kp}},
		{Type: ProposalUpdate, Update: &UpdateProposal{LeafNode: sampleLeafNode(LeafNodeSourceUpdate)}},
		{Type: ProposalRemove, Remove: &RemoveProposal{Removed: 0xDEADBEEF}},
		{Type: ProposalPSK, PSK: &PreSharedKeyProposal{PSK: samplePSKs()[0]}},
		{Type: ProposalPSK, PSK: &PreSharedKeyProposal{PSK: samplePSKs()[1]}},
		{Type: ProposalReInit, ReInit: &ReInitProposal{GroupID: []byte("new"), Version: MLS10, CipherSuite: 2, Extensions: []Extension{}}},
		{Type: ProposalExternalInit, ExternalInit: &ExternalInitProposal{KEMOutput: b(65, 0x04)}},
		{Type: ProposalGroupContextExtensions, GroupContextExtensions: &GroupContextExtensionsProposal{Extensions: sampleExtensions()}},
		{Type: 0xF00D, Data: []byte("custom proposal body")},
		{Type: 0x5A5A, Data: []byte{}}, // GREASE: kept like any unknown type
	}
}

func sampleUpdatePath() *UpdatePath {
	return &UpdatePath{
		LeafNode: sampleLeafNode(LeafNodeSourceCommit),
		Nodes: []UpdatePathNode{
			{EncryptionKey: b(32, 0x11), EncryptedPathSecret: []HPKECiphertext{{KEMOutput: b(32, 0x12), Ciphertext: b(48, 0x13)}}},
			{EncryptionKey: b(32, 0x14), EncryptedPathSecret: []HPKECiphertext{}},
		},
	}
}

func sampleCommit() Commit {
	c := Commit{Path: sampleUpdatePath()}
	for _, p := range sampleProposals() {
		p := p
		c.Proposals = append(c.Proposals, ProposalOrRef{Proposal: &p})
	}
	c.Proposals = append(c.Proposals, ProposalOrRef{Reference: b(32, 0x20)})
	return c
}

func sampleFramedContent(ct ContentType, sender Sender) FramedContent {
	c := FramedContent{
		GroupID:           []byte("group"),
		Epoch:             7,
		Sender:            sender,
		AuthenticatedData: []byte{},
		ContentType:       ct,
	}
	switch ct {
	case ContentApplication:
		c.ApplicationData = []byte("hello")
	case ContentProposal:
		p := sampleProposals()[2]
		c.Proposal = &p
	case ContentCommit:
		cm := sampleCommit()
		c.Commit = &cm
	}
	return c
}

func sampleAuth(ct ContentType) FramedContentAuthData {
	a := FramedContentAuthData{Signature: b(64, 0x30)}
	if ct == ContentCommit {
		a.ConfirmationTag = b(32, 0x31)
	}
	return a
}

func samplePublicMessage(ct ContentType, sender Sender) *PublicMessage {
	m := &PublicMessage{Content: sampleFramedContent(ct, sender), Auth: sampleAuth(ct)}
	if sender.Type == SenderMember {
		m.MembershipTag = b(32, 0x32)
	}
	return m
}

func samplePrivateMessage() *PrivateMessage {
	return &PrivateMessage{
		GroupID: []byte("group"), Epoch: 1 << 40, ContentType: ContentApplication,
		AuthenticatedData: []byte("aad"), EncryptedSenderData: b(28, 0x40), Ciphertext: b(300, 0x41),
	}
}

func sampleWelcome() *Welcome {
	return &Welcome{
		CipherSuite: 1,
		Secrets: []EncryptedGroupSecrets{
			{NewMember: b(32, 0x50), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: b(32, 0x51), Ciphertext: b(100, 0x52)}},
			{NewMember: b(32, 0x53), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: b(32, 0x54), Ciphertext: b(100, 0x55)}},
		},
		EncryptedGroupInfo: b(500, 0x56),
	}
}

func sampleGroupInfo() *GroupInfo {
	return &GroupInfo{
		GroupContext:    sampleGroupContext(),
		Extensions:      []Extension{{Type: ExtensionExternalPub, Data: append([]byte{32}, b(32, 0x60)...)}},
		ConfirmationTag: b(48, 0x61),
		Signer:          3,
		Signature:       b(96, 0x62),
	}
}

func sampleRatchetTree() RatchetTree {
	l0 := sampleLeafNode(LeafNodeSourceKeyPackage)
	l1 := sampleLeafNode(LeafNodeSourceCommit)
	return RatchetTree{
		{Leaf: &l0},
		{Parent: &ParentNode{EncryptionKey: b(32, 0x70), ParentHash: []byte{}, UnmergedLeaves: []uint32{2}}},
		nil,
		nil,
		{Leaf: &l1},
	}
}

// sampleMessages returns one MLSMessage of every wire format and framing
// variant.
func sampleMessages() map[string]*MLSMessage {
	kp := sampleKeyPackage()
	return map[string]*MLSMessage{
		"public/application/member":       NewPublicMessage(samplePublicMessage(ContentApplication, Sender{Type: SenderMember, LeafIndex: 5})),
		"public/proposal/external":        NewPublicMessage(samplePublicMessage(ContentProposal, Sender{Type: SenderExternal, SenderIndex: 2})),
		"public/proposal/new_member":      NewPublicMessage(samplePublicMessage(ContentProposal, Sender{Type: SenderNewMemberProposal})),
		"public/commit/member":            NewPublicMessage(samplePublicMessage(ContentCommit, Sender{Type: SenderMember, LeafIndex: 1})),
		"public/commit/new_member_commit": NewPublicMessage(samplePublicMessage(ContentCommit, Sender{Type: SenderNewMemberCommit})),
		"private":                         NewPrivateMessage(samplePrivateMessage()),
		"welcome":                         NewWelcomeMessage(sampleWelcome()),
		"group_info":                      NewGroupInfoMessage(sampleGroupInfo()),
		"key_package":                     NewKeyPackageMessage(&kp),
	}
}
