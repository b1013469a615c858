package mls

import (
	"time"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
)

// CipherSuite identifies an MLS cipher suite (RFC 9420, Section 17.1).
type CipherSuite = ciphersuite.ID

// The cipher suites of RFC 9420, with their IANA names.
const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        = ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             = ciphersuite.MLS_128_DHKEMP256_AES128GCM_SHA256_P256
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 = ciphersuite.MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            = ciphersuite.MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             = ciphersuite.MLS_256_DHKEMP521_AES256GCM_SHA512_P521
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     = ciphersuite.MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             = ciphersuite.MLS_256_DHKEMP384_AES256GCM_SHA384_P384
)

// WireFormatPolicy says which framing a member uses for its own handshake
// messages (proposals and commits) and accepts for incoming ones.
// Application messages are always PrivateMessages (RFC 9420, Section 6.2).
type WireFormatPolicy struct {
	// OutgoingPrivate: send handshake messages as PrivateMessage (true) or
	// PublicMessage (false, the default, so that a delivery service can see
	// commits).
	OutgoingPrivate bool
	// Incoming accepts PublicMessage, PrivateMessage or both. The zero
	// value accepts both.
	Incoming IncomingPolicy
}

// IncomingPolicy restricts the framing of incoming handshake messages.
type IncomingPolicy uint8

const (
	AcceptAny IncomingPolicy = iota
	AcceptPublicOnly
	AcceptPrivateOnly
)

// SenderRatchetConfig bounds the sender ratchets of the secret tree
// (RFC 9420, Section 9.2 and 14).
type SenderRatchetConfig struct {
	// OutOfOrderTolerance is how many earlier generations stay decryptable
	// after a later one arrived. Zero means the default, 5.
	OutOfOrderTolerance uint32
	// MaxForwardDistance is how far ahead of the last seen generation a
	// message may be. Zero means the default, 1000.
	MaxForwardDistance uint32
}

// Capabilities lists what a client supports (RFC 9420, Section 7.2). Empty
// fields take defaults: the group's version and suite, no extra extensions
// or proposals, and basic credentials.
type Capabilities struct {
	CipherSuites []CipherSuite
	Extensions   []uint16
	Proposals    []uint16
	Credentials  []credential.Type
}

// Extension is an MLS extension: a type from the IANA "MLS Extension Types"
// registry and its encoded data. Unknown types are carried unchanged.
type Extension struct {
	Type uint16
	Data []byte
}

// ExternalSender is an entry of the external_senders group context
// extension (RFC 9420, Section 12.1.8.1): a party outside the group allowed
// to send proposals.
type ExternalSender struct {
	SignatureKey []byte
	Credential   credential.Credential
}

// JoinConfig holds the per-member settings of a group, chosen by each
// member when it creates or joins (OpenMLS's MlsGroupJoinConfig).
type JoinConfig struct {
	WireFormatPolicy WireFormatPolicy
	// PaddingSize pads PrivateMessage content to a multiple of this many
	// bytes (RFC 9420, Section 6.3.1). Zero means no padding.
	PaddingSize int
	// MaxPastEpochs is how many earlier epochs' secrets are kept to decrypt
	// late application messages. Zero keeps none.
	MaxPastEpochs int
	// SenderRatchet bounds out-of-order delivery.
	SenderRatchet SenderRatchetConfig
	// UseRatchetTreeExtension puts the ratchet tree into Welcome messages
	// and exported GroupInfo (RFC 9420, Section 12.4.3.3), so joiners need
	// no separate copy.
	UseRatchetTreeExtension bool
	// SkipLifetimeCheck disables the key package / leaf node lifetime check
	// (RFC 9420, Section 7.3, step 4). It exists for replaying recorded
	// traffic, such as the official test vectors, whose lifetimes have
	// expired; never set it for live traffic.
	SkipLifetimeCheck bool

	// ResumptionPSKRetention is how many epochs before the current one
	// keep their resumption PSK (RFC 9420, Section 8.6) for commits that
	// inject it. A commit naming an older epoch of this group is rejected
	// (ValidationError rule "ResumptionPSKRetention"). Zero means the
	// default, 8; a negative value keeps none (only the current epoch's).
	ResumptionPSKRetention int

	// client supplies the validator, clock, randomness and limits; the
	// Client sets it on every path that creates, joins or loads a group.
	client *Client
}

// GroupConfig configures a new group (OpenMLS's MlsGroupCreateConfig): the
// creator's JoinConfig plus the settings all members agree on.
type GroupConfig struct {
	JoinConfig
	// GroupID is the group's identifier; nil means 16 random bytes.
	GroupID []byte
	// RequiredCapabilities go into the required_capabilities group context
	// extension (RFC 9420, Section 11.1) when non-empty.
	RequiredExtensions  []uint16
	RequiredProposals   []uint16
	RequiredCredentials []credential.Type
	// ExternalSenders go into the external_senders extension.
	ExternalSenders []ExternalSender
	// GroupContextExtensions are further group context extensions.
	GroupContextExtensions []Extension
	// Capabilities and LeafExtensions describe the creator's leaf.
	Capabilities   Capabilities
	LeafExtensions []Extension
	// Lifetime of the creator's leaf node; zero means 90 days.
	Lifetime time.Duration
}

// defaults applied to zero values.
const (
	defaultOutOfOrderTolerance = 5
	defaultMaxForwardDistance  = 1000
	defaultLifetime            = 90 * 24 * time.Hour
)

func (c *JoinConfig) now() time.Time { return c.client.now() }

// maxTreeLeaves is the leaf limit on received ratchet trees: the Client's
// (ClientOptions.MaxTreeLeaves), or DefaultMaxTreeLeaves without one.
func (c *JoinConfig) maxTreeLeaves() uint32 {
	if c.client == nil {
		return DefaultMaxTreeLeaves
	}
	return c.client.maxTreeLeaves()
}
