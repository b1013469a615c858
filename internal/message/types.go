package message

import (
	"github.com/mlskit/mls/ciphersuite"
)

// This file declares the wire structures of RFC 9420 as Go types. Codecs
// (Encode / Decode methods and Marshal / Unmarshal functions) live beside
// them in the other files of this package.
//
// Conventions:
//   - opaque<V> fields are []byte; a decoded empty vector is a non-nil
//     empty slice.
//   - Values whose type this implementation does not know (extensions,
//     credentials, proposals of unknown types) keep their bytes so that
//     re-encoding reproduces the input exactly.

// ProtocolVersion (RFC 9420, Section 6).
type ProtocolVersion uint16

// MLS10 is mls10, the only version RFC 9420 defines.
const MLS10 ProtocolVersion = 1

// ContentType (RFC 9420, Section 6).
type ContentType uint8

const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

// SenderType (RFC 9420, Section 6).
type SenderType uint8

const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// WireFormat (RFC 9420, Section 6 and 17.2).
type WireFormat uint16

const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// ExtensionType (RFC 9420, Section 13.3 and 17.3).
type ExtensionType uint16

const (
	ExtensionApplicationID        ExtensionType = 1
	ExtensionRatchetTree          ExtensionType = 2
	ExtensionRequiredCapabilities ExtensionType = 3
	ExtensionExternalPub          ExtensionType = 4
	ExtensionExternalSenders      ExtensionType = 5
)

// ProposalType (RFC 9420, Section 12.1 and 17.4).
type ProposalType uint16

const (
	ProposalAdd                    ProposalType = 1
	ProposalUpdate                 ProposalType = 2
	ProposalRemove                 ProposalType = 3
	ProposalPSK                    ProposalType = 4
	ProposalReInit                 ProposalType = 5
	ProposalExternalInit           ProposalType = 6
	ProposalGroupContextExtensions ProposalType = 7
)

// CredentialType (RFC 9420, Section 5.3 and 17.5).
type CredentialType uint16

const (
	CredentialBasic CredentialType = 1
	CredentialX509  CredentialType = 2
)

// LeafNodeSource (RFC 9420, Section 7.2).
type LeafNodeSource uint8

const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// NodeType (RFC 9420, Section 7.8).
type NodeType uint8

const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// PSKType (RFC 9420, Section 8.4).
type PSKType uint8

const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionPSKUsage (RFC 9420, Section 8.4).
type ResumptionPSKUsage uint8

const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReInit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// ProposalOrRefType (RFC 9420, Section 12.4).
type ProposalOrRefType uint8

const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// Extension (RFC 9420, Section 7.2). The data is kept as bytes; typed
// views of the RFC's extensions are parsed on demand.
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Credential (RFC 9420, Section 5.3). For basic credentials Identity is
// set; for X.509, Certificates (leaf first). Other types keep their
// opaque<V> body in Data (the encoding mls-rs and OpenMLS use for custom
// credentials).
type Credential struct {
	Type         CredentialType
	Identity     []byte
	Certificates [][]byte
	Data         []byte
}

// Capabilities (RFC 9420, Section 7.2).
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []ciphersuite.ID
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

// Lifetime (RFC 9420, Section 7.2): seconds since the Unix epoch.
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// LeafNode (RFC 9420, Section 7.2). Lifetime is set only for source
// key_package, ParentHash only for source commit.
type LeafNode struct {
	EncryptionKey []byte
	SignatureKey  []byte
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime
	ParentHash    []byte
	Extensions    []Extension
	Signature     []byte
}

// KeyPackage (RFC 9420, Section 10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite ciphersuite.ID
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  []Extension
	Signature   []byte
}

// ParentNode (RFC 9420, Section 7.1).
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []uint32
}

// Node (RFC 9420, Section 7.8 / 12.4.3.3): exactly one of Leaf and Parent
// is set.
type Node struct {
	Leaf   *LeafNode
	Parent *ParentNode
}

// RatchetTree is the ratchet_tree extension (RFC 9420, Section 12.4.3.3):
// optional<Node> ratchet_tree<V>; a nil entry is a blank node.
type RatchetTree []*Node

// HPKECiphertext (RFC 9420, Section 5.1.3).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

// UpdatePathNode (RFC 9420, Section 7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

// UpdatePath (RFC 9420, Section 7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

// GroupContext (RFC 9420, Section 8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             ciphersuite.ID
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              []Extension
}

// PreSharedKeyID (RFC 9420, Section 8.4). PSKID is set for external PSKs;
// Usage, PSKGroupID and PSKEpoch for resumption PSKs.
type PreSharedKeyID struct {
	Type       PSKType
	PSKID      []byte
	Usage      ResumptionPSKUsage
	PSKGroupID []byte
	PSKEpoch   uint64
	Nonce      []byte
}

// Proposal (RFC 9420, Section 12.1). Exactly the field matching Type is
// set; a proposal of a type not defined by RFC 9420 keeps its opaque<V>
// body in Data.
type Proposal struct {
	Type                   ProposalType
	Add                    *AddProposal
	Update                 *UpdateProposal
	Remove                 *RemoveProposal
	PSK                    *PreSharedKeyProposal
	ReInit                 *ReInitProposal
	ExternalInit           *ExternalInitProposal
	GroupContextExtensions *GroupContextExtensionsProposal
	Data                   []byte
}

// AddProposal (RFC 9420, Section 12.1.1).
type AddProposal struct{ KeyPackage KeyPackage }

// UpdateProposal (RFC 9420, Section 12.1.2).
type UpdateProposal struct{ LeafNode LeafNode }

// RemoveProposal (RFC 9420, Section 12.1.3).
type RemoveProposal struct{ Removed uint32 }

// PreSharedKeyProposal (RFC 9420, Section 12.1.4).
type PreSharedKeyProposal struct{ PSK PreSharedKeyID }

// ReInitProposal (RFC 9420, Section 12.1.5).
type ReInitProposal struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite ciphersuite.ID
	Extensions  []Extension
}

// ExternalInitProposal (RFC 9420, Section 12.1.6).
type ExternalInitProposal struct{ KEMOutput []byte }

// GroupContextExtensionsProposal (RFC 9420, Section 12.1.7).
type GroupContextExtensionsProposal struct{ Extensions []Extension }

// ProposalOrRef (RFC 9420, Section 12.4): Proposal or Reference is set.
type ProposalOrRef struct {
	Proposal  *Proposal
	Reference []byte
}

// Commit (RFC 9420, Section 12.4).
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

// Sender (RFC 9420, Section 6). LeafIndex is the member's leaf for
// SenderMember; SenderIndex the index into external_senders for
// SenderExternal.
type Sender struct {
	Type        SenderType
	LeafIndex   uint32
	SenderIndex uint32
}

// FramedContent (RFC 9420, Section 6). Exactly the field matching
// ContentType is set.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

// FramedContentAuthData (RFC 9420, Section 6.1). ConfirmationTag is
// present exactly for commits.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte
}

// AuthenticatedContent (RFC 9420, Section 6.1).
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData

	// encoded is wire_format || FramedContent as encoded for the
	// signature, when known (SetEncodedContent); nil otherwise.
	encoded []byte
	// confirmed is the confirmed transcript hash of this commit after
	// the interim transcript hash interim under suite, when known
	// (SetConfirmedTranscriptHash); nil otherwise.
	confirmed, interim []byte
	suite              *ciphersuite.Suite
}

// SetEncodedContent records b, the encoding of the wire format and the
// content (the start of ConfirmedTranscriptHashInput, RFC 9420, Section
// 8.2), so that a commit of O(N) bytes is not encoded again for the
// transcript hash. b must encode the current WireFormat and Content, and
// neither b nor they may be modified afterwards.
func (ac *AuthenticatedContent) SetEncodedContent(b []byte) { ac.encoded = b }

// EncodedContent returns what SetEncodedContent recorded, or nil.
func (ac *AuthenticatedContent) EncodedContent() []byte { return ac.encoded }

// PublicMessage (RFC 9420, Section 6.2). MembershipTag is present exactly
// when the sender is a member.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte
}

// PrivateMessage (RFC 9420, Section 6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

// SenderData (RFC 9420, Section 6.3.2).
type SenderData struct {
	LeafIndex  uint32
	Generation uint32
	ReuseGuard [4]byte
}

// EncryptedGroupSecrets (RFC 9420, Section 12.4.3.1).
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

// Welcome (RFC 9420, Section 12.4.3.1).
type Welcome struct {
	CipherSuite        ciphersuite.ID
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// GroupSecrets (RFC 9420, Section 12.4.3.1). PathSecret is nil when absent.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   []byte
	PSKs         []PreSharedKeyID
}

// GroupInfo (RFC 9420, Section 12.4.3).
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      []Extension
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte
}

// MLSMessage (RFC 9420, Section 6). Exactly the field matching WireFormat
// is set.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

// RequiredCapabilities is the required_capabilities extension (RFC 9420,
// Section 11.1).
type RequiredCapabilities struct {
	Extensions  []ExtensionType
	Proposals   []ProposalType
	Credentials []CredentialType
}

// ExternalSender is one entry of the external_senders extension (RFC 9420,
// Section 12.1.8.1).
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// PathSecret (RFC 9420, Section 12.4.3.1): the optional path secret in
// GroupSecrets.
type PathSecret struct {
	PathSecret []byte
}

// ExternalSenders is the external_senders extension (RFC 9420, Section
// 12.1.8.1).
type ExternalSenders []ExternalSender

// ExternalPub is the external_pub extension (RFC 9420, Section 12.4.3.2).
type ExternalPub struct {
	ExternalPub []byte // HPKEPublicKey
}

// ApplicationID is the application_id extension (RFC 9420, Section 5.3.3).
type ApplicationID struct {
	ApplicationID []byte
}
