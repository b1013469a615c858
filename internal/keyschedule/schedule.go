package keyschedule

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"

	"github.com/mlskit/mls/ciphersuite"
)

// InitSecret is init_secret_[n] (RFC 9420, Section 8): the secret an epoch
// hands to the next one, or a fresh random value when a group is created
// (Section 11), or the result of an external init (Section 8.3).
type InitSecret struct{ v secret }

// NewInitSecret wraps a copy of b, which must be KDF.Nh bytes.
func NewInitSecret(s *ciphersuite.Suite, b []byte) (*InitSecret, error) {
	v, err := newSecret(s, "init_secret", b)
	if err != nil {
		return nil, err
	}
	return &InitSecret{v}, nil
}

// GenerateInitSecret returns a fresh init secret of KDF.Nh bytes read from
// rnd, for a new group (RFC 9420, Section 11).
func GenerateInitSecret(s *ciphersuite.Suite, rnd io.Reader) (*InitSecret, error) {
	if s == nil {
		return nil, invalid("init_secret: nil cipher suite")
	}
	b := make([]byte, s.HashSize())
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, fmt.Errorf("keyschedule: generating init_secret: %w", err)
	}
	return &InitSecret{secret{s: s, b: b}}, nil
}

// Suite returns the secret's cipher suite.
func (x *InitSecret) Suite() *ciphersuite.Suite { return x.v.s }

// Bytes returns a copy of the secret.
func (x *InitSecret) Bytes() []byte { return x.v.bytes() }

// Equal reports whether x and y hold the same secret, in constant time.
func (x *InitSecret) Equal(y *InitSecret) bool { return x.v.equal(y.v) }

// Erase overwrites the secret; x must not be used afterwards.
func (x *InitSecret) Erase() { x.v.erase() }

func (x InitSecret) String() string             { return redacted("InitSecret") }
func (x InitSecret) GoString() string           { return x.String() }
func (x InitSecret) Format(f fmt.State, _ rune) { format(f, "InitSecret") }

// Joiner derives joiner_secret (RFC 9420, Section 8):
//
//	joiner_secret = ExpandWithLabel(KDF.Extract(init_secret, commit_secret),
//	                                "joiner", GroupContext_[n], KDF.Nh)
//
// commitSecret is the commit_secret of the new epoch, KDF.Nh bytes, or nil
// for the all-zero vector used by a Commit without a path (Section 12.4).
// groupContext is the encoded GroupContext of the new epoch.
func (x *InitSecret) Joiner(commitSecret, groupContext []byte) (*JoinerSecret, error) {
	s := x.v.s
	if commitSecret == nil {
		commitSecret = zeros(s.HashSize())
	} else if err := checkLen("commit_secret", commitSecret, s.HashSize()); err != nil {
		return nil, err
	}
	if len(groupContext) == 0 {
		return nil, invalid("joiner_secret: empty GroupContext")
	}
	prk := s.Extract(x.v.b, commitSecret)
	b := s.ExpandWithLabel(prk, "joiner", groupContext, s.HashSize())
	clear(prk)
	return &JoinerSecret{secret{s: s, b: b}}, nil
}

// JoinerSecret is joiner_secret (RFC 9420, Section 8), which a committer
// sends to new members in GroupSecrets (Section 12.4.3.1).
type JoinerSecret struct{ v secret }

// NewJoinerSecret wraps a copy of b (from a decrypted GroupSecrets), which
// must be KDF.Nh bytes.
func NewJoinerSecret(s *ciphersuite.Suite, b []byte) (*JoinerSecret, error) {
	v, err := newSecret(s, "joiner_secret", b)
	if err != nil {
		return nil, err
	}
	return &JoinerSecret{v}, nil
}

// Suite returns the secret's cipher suite.
func (x *JoinerSecret) Suite() *ciphersuite.Suite { return x.v.s }

// Bytes returns a copy of the secret, for GroupSecrets.
func (x *JoinerSecret) Bytes() []byte { return x.v.bytes() }

// Equal reports whether x and y hold the same secret, in constant time.
func (x *JoinerSecret) Equal(y *JoinerSecret) bool { return x.v.equal(y.v) }

// Erase overwrites the secret; x must not be used afterwards.
func (x *JoinerSecret) Erase() { x.v.erase() }

func (x JoinerSecret) String() string             { return redacted("JoinerSecret") }
func (x JoinerSecret) GoString() string           { return x.String() }
func (x JoinerSecret) Format(f fmt.State, _ rune) { format(f, "JoinerSecret") }

// Intermediate mixes in the PSK secret (RFC 9420, Section 8):
// KDF.Extract(joiner_secret, psk_secret). A nil psk stands for the all-zero
// psk_secret of a Commit without PreSharedKey proposals (Section 8.4).
func (x *JoinerSecret) Intermediate(psk *PSKSecret) (*IntermediateSecret, error) {
	s := x.v.s
	ikm := zeros(s.HashSize())
	if psk != nil {
		if err := x.v.sameSuite("psk_secret", psk.v); err != nil {
			return nil, err
		}
		ikm = psk.v.b
	}
	return &IntermediateSecret{secret{s: s, b: s.Extract(x.v.b, ikm)}}, nil
}

// IntermediateSecret is KDF.Extract(joiner_secret, psk_secret), the value
// from which RFC 9420, Section 8 derives both welcome_secret and
// epoch_secret (the RFC leaves it unnamed; OpenMLS calls it the
// intermediate secret).
type IntermediateSecret struct{ v secret }

// Suite returns the secret's cipher suite.
func (x *IntermediateSecret) Suite() *ciphersuite.Suite { return x.v.s }

// Erase overwrites the secret; x must not be used afterwards.
func (x *IntermediateSecret) Erase() { x.v.erase() }

func (x IntermediateSecret) String() string             { return redacted("IntermediateSecret") }
func (x IntermediateSecret) GoString() string           { return x.String() }
func (x IntermediateSecret) Format(f fmt.State, _ rune) { format(f, "IntermediateSecret") }

// Welcome derives welcome_secret = DeriveSecret(., "welcome") (RFC 9420,
// Section 8).
func (x *IntermediateSecret) Welcome() *WelcomeSecret {
	return &WelcomeSecret{secret{s: x.v.s, b: x.v.s.DeriveSecret(x.v.b, "welcome")}}
}

// Epoch derives epoch_secret = ExpandWithLabel(., "epoch", GroupContext_[n],
// KDF.Nh) and from it every secret of the epoch (RFC 9420, Section 8,
// Table 4, and the next init_secret). epoch_secret itself is deleted
// before Epoch returns (Section 9.2). groupContext is the encoded
// GroupContext of the new epoch.
func (x *IntermediateSecret) Epoch(groupContext []byte) (*EpochSecrets, error) {
	if len(groupContext) == 0 {
		return nil, invalid("epoch_secret: empty GroupContext")
	}
	s := x.v.s
	epoch := s.ExpandWithLabel(x.v.b, "epoch", groupContext, s.HashSize())
	defer clear(epoch)
	d := func(label string) []byte { return s.DeriveSecret(epoch, label) }
	return &EpochSecrets{
		s:             s,
		senderData:    d("sender data"),
		encryption:    d("encryption"),
		exporter:      d("exporter"),
		external:      d("external"),
		confirmation:  d("confirm"),
		membership:    d("membership"),
		resumption:    d("resumption"),
		authenticator: d("authentication"),
		init:          d("init"),
		appExport:     d("application_export"),
	}, nil
}

// WelcomeSecret is welcome_secret (RFC 9420, Section 8), which protects the
// GroupInfo of a Welcome (Section 12.4.3.1).
type WelcomeSecret struct{ v secret }

// NewWelcomeSecret wraps a copy of b (from WelcomeSecret.Bytes), which must
// be KDF.Nh bytes. A committer keeps its pending commit's welcome_secret so
// that it can seal the Welcome's GroupInfo again after a restart.
func NewWelcomeSecret(s *ciphersuite.Suite, b []byte) (*WelcomeSecret, error) {
	v, err := newSecret(s, "welcome_secret", b)
	if err != nil {
		return nil, err
	}
	return &WelcomeSecret{v}, nil
}

// Suite returns the secret's cipher suite.
func (x *WelcomeSecret) Suite() *ciphersuite.Suite { return x.v.s }

// Bytes returns a copy of the secret.
func (x *WelcomeSecret) Bytes() []byte { return x.v.bytes() }

// Equal reports whether x and y hold the same secret, in constant time.
func (x *WelcomeSecret) Equal(y *WelcomeSecret) bool { return x.v.equal(y.v) }

// Erase overwrites the secret; x must not be used afterwards.
func (x *WelcomeSecret) Erase() { x.v.erase() }

func (x WelcomeSecret) String() string             { return redacted("WelcomeSecret") }
func (x WelcomeSecret) GoString() string           { return x.String() }
func (x WelcomeSecret) Format(f fmt.State, _ rune) { format(f, "WelcomeSecret") }

// KeyNonce derives the welcome key and nonce (RFC 9420, Section 12.4.3.1):
//
//	welcome_nonce = ExpandWithLabel(welcome_secret, "nonce", "", AEAD.Nn)
//	welcome_key = ExpandWithLabel(welcome_secret, "key", "", AEAD.Nk)
func (x *WelcomeSecret) KeyNonce() (key, nonce []byte) {
	s := x.v.s
	return s.ExpandWithLabel(x.v.b, "key", nil, s.AEADKeySize()), s.ExpandWithLabel(x.v.b, "nonce", nil, s.AEADNonceSize())
}

// SealGroupInfo encrypts an encoded GroupInfo into encrypted_group_info
// with the welcome key and nonce and empty additional data (RFC 9420,
// Section 12.4.3.1).
func (x *WelcomeSecret) SealGroupInfo(groupInfo []byte) ([]byte, error) {
	return x.AppendSealedGroupInfo(nil, groupInfo)
}

// AppendSealedGroupInfo is SealGroupInfo appending encrypted_group_info to
// dst, which it grows at most once: a caller can leave room in front of it
// for the EncryptContext it is the context of (RFC 9420, Section
// 12.4.3.1), and a GroupInfo with the ratchet tree is not copied again.
func (x *WelcomeSecret) AppendSealedGroupInfo(dst, groupInfo []byte) ([]byte, error) {
	key, nonce := x.KeyNonce()
	defer clear(key)
	return x.v.s.AppendSeal(dst, key, nonce, nil, groupInfo)
}

// OpenGroupInfo decrypts encrypted_group_info; a failure wraps
// ciphersuite.ErrDecrypt.
func (x *WelcomeSecret) OpenGroupInfo(encryptedGroupInfo []byte) ([]byte, error) {
	key, nonce := x.KeyNonce()
	defer clear(key)
	pt, err := x.v.s.Open(key, nonce, nil, encryptedGroupInfo)
	if err != nil {
		return nil, fmt.Errorf("keyschedule: encrypted_group_info: %w", err)
	}
	return pt, nil
}

// EpochSecrets holds the secrets derived from one epoch_secret (RFC 9420,
// Section 8, Table 4) and the init_secret for the next epoch.
type EpochSecrets struct {
	s             *ciphersuite.Suite
	senderData    []byte
	encryption    []byte // nil once deleted
	exporter      []byte
	external      []byte
	confirmation  []byte
	membership    []byte
	resumption    []byte
	authenticator []byte
	init          []byte
	// appExport is application_export_secret, the root of the safe
	// exporter tree of draft-ietf-mls-extensions (Section "Exported
	// Secrets"): DeriveSecret(epoch_secret, "application_export"). Nil
	// for epoch secrets stored before it existed.
	appExport []byte
}

func (e EpochSecrets) String() string             { return redacted("EpochSecrets") }
func (e EpochSecrets) GoString() string           { return e.String() }
func (e EpochSecrets) Format(f fmt.State, _ rune) { format(f, "EpochSecrets") }

// Suite returns the epoch's cipher suite.
func (e *EpochSecrets) Suite() *ciphersuite.Suite { return e.s }

// SenderDataSecret returns a copy of sender_data_secret, which protects the
// SenderData of PrivateMessages (Section 6.3.2).
func (e *EpochSecrets) SenderDataSecret() []byte { return clone(e.senderData) }

// EncryptionSecret returns a copy of encryption_secret, the root of the
// secret tree (Section 9), or ErrDeleted after DeleteEncryptionSecret.
func (e *EpochSecrets) EncryptionSecret() ([]byte, error) {
	if e.encryption == nil {
		return nil, fmt.Errorf("%w: encryption_secret", ErrDeleted)
	}
	return clone(e.encryption), nil
}

// DeleteEncryptionSecret deletes encryption_secret once the secret tree has
// been built from it (RFC 9420, Section 9.2).
func (e *EpochSecrets) DeleteEncryptionSecret() {
	clear(e.encryption)
	e.encryption = nil
}

// ExporterSecret returns a copy of exporter_secret (Section 8.5).
func (e *EpochSecrets) ExporterSecret() []byte { return clone(e.exporter) }

// ExternalSecret returns a copy of external_secret (Section 8).
func (e *EpochSecrets) ExternalSecret() []byte { return clone(e.external) }

// ConfirmationKey returns a copy of confirmation_key (Section 8).
func (e *EpochSecrets) ConfirmationKey() []byte { return clone(e.confirmation) }

// MembershipKey returns a copy of membership_key (Section 8), which keys
// the membership tag of PublicMessages (Section 6.2).
func (e *EpochSecrets) MembershipKey() []byte { return clone(e.membership) }

// ResumptionPSK returns a copy of resumption_psk (Section 8.6).
func (e *EpochSecrets) ResumptionPSK() []byte { return clone(e.resumption) }

// EpochAuthenticator returns a copy of epoch_authenticator (Section 8.7).
func (e *EpochSecrets) EpochAuthenticator() []byte { return clone(e.authenticator) }

// InitSecret returns init_secret_[n] for the next epoch (Section 8).
func (e *EpochSecrets) InitSecret() *InitSecret {
	return &InitSecret{secret{s: e.s, b: clone(e.init)}}
}

// Export implements MLS-Exporter (RFC 9420, Section 8.5):
//
//	MLS-Exporter(Label, Context, Length) =
//	    ExpandWithLabel(DeriveSecret(exporter_secret, Label),
//	                    "exported", Hash(Context), Length)
//
// length must be at most 255*KDF.Nh, the HKDF-Expand limit.
func (e *EpochSecrets) Export(label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 255*e.s.HashSize() {
		return nil, invalid("exporter length %d outside 0..%d", length, 255*e.s.HashSize())
	}
	inner := e.s.DeriveSecret(e.exporter, label)
	defer clear(inner)
	return e.s.ExpandWithLabel(inner, "exported", e.s.Hash(context), length), nil
}

// ExternalKeyPair derives the epoch's external HPKE key pair (RFC 9420,
// Section 8): external_priv, external_pub = KEM.DeriveKeyPair(external_secret).
func (e *EpochSecrets) ExternalKeyPair() (*ExternalKeyPair, error) {
	return NewExternalKeyPair(e.s, e.external)
}

// ConfirmationTag computes MAC(confirmation_key, confirmed_transcript_hash)
// (RFC 9420, Section 6.1).
func (e *EpochSecrets) ConfirmationTag(confirmedTranscriptHash []byte) []byte {
	return e.s.MAC(e.confirmation, confirmedTranscriptHash)
}

// VerifyConfirmationTag reports, in constant time, whether tag is the
// confirmation tag of confirmedTranscriptHash.
func (e *EpochSecrets) VerifyConfirmationTag(confirmedTranscriptHash, tag []byte) bool {
	return hmac.Equal(e.ConfirmationTag(confirmedTranscriptHash), tag)
}

// MembershipTag computes MAC(membership_key, AuthenticatedContentTBM) for a
// PublicMessage sent by a member (RFC 9420, Section 6.2).
func (e *EpochSecrets) MembershipTag(authenticatedContentTBM []byte) []byte {
	return e.s.MAC(e.membership, authenticatedContentTBM)
}

// VerifyMembershipTag reports, in constant time, whether tag is the
// membership tag of authenticatedContentTBM.
func (e *EpochSecrets) VerifyMembershipTag(authenticatedContentTBM, tag []byte) bool {
	return hmac.Equal(e.MembershipTag(authenticatedContentTBM), tag)
}

// Equal reports whether e and o hold the same secrets, in constant time.
func (e *EpochSecrets) Equal(o *EpochSecrets) bool {
	if e.s != o.s || (e.encryption == nil) != (o.encryption == nil) {
		return false
	}
	a, b := e.fields(), o.fields()
	v := 1
	for i := range a {
		v &= subtleEq(*a[i], *b[i])
	}
	return v == 1
}

// fields lists the secrets in encoding order.
func (e *EpochSecrets) fields() []*[]byte {
	return []*[]byte{&e.senderData, &e.encryption, &e.exporter, &e.external, &e.confirmation, &e.membership, &e.resumption, &e.authenticator, &e.init, &e.appExport}
}

// ErrNoApplicationExport reports epoch secrets without an
// application_export_secret (stored in the version 1 encoding).
var ErrNoApplicationExport = errors.New("keyschedule: epoch secrets without application_export_secret (stored by an earlier version)")

// SafeExportSecret returns the safe exporter's secret for a component
// (draft-ietf-mls-extensions, Section "Exported Secrets"): the
// tree_node_secret of leaf componentID of the Exporter Tree, a tree shaped
// like the secret tree of RFC 9420, Section 9 with 2^16 leaves whose root
// is application_export_secret. Each step down is
//
//	tree_node_[left(x)]_secret  = ExpandWithLabel(tree_node_[x]_secret, "tree", "left", KDF.Nh)
//	tree_node_[right(x)]_secret = ExpandWithLabel(tree_node_[x]_secret, "tree", "right", KDF.Nh)
//
// so leaf L is reached from the root by the 16 bits of L, most
// significant first (0 = left). Nodes are derived on demand and not kept.
func (e *EpochSecrets) SafeExportSecret(componentID uint16) ([]byte, error) {
	if e.appExport == nil {
		return nil, ErrNoApplicationExport
	}
	s := e.s
	cur := clone(e.appExport)
	for bit := 15; bit >= 0; bit-- {
		dir := "left"
		if componentID>>uint(bit)&1 == 1 {
			dir = "right"
		}
		next := s.ExpandWithLabel(cur, "tree", []byte(dir), s.HashSize())
		clear(cur)
		cur = next
	}
	return cur, nil
}

// Erase overwrites every secret; e must not be used afterwards.
func (e *EpochSecrets) Erase() {
	for _, f := range e.fields() {
		clear(*f)
		*f = nil
	}
}
