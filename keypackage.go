package mls

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"time"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/storage"
)

// Identity is what a client signs with: a credential and the signing key
// bound to it. The signer can be any crypto.Signer whose public key fits
// the cipher suite (ed25519.PrivateKey, *ecdsa.PrivateKey, a KMS key, ...).
type Identity struct {
	Credential credential.Credential
	Signer     crypto.Signer
}

// LastResortExtension is the KeyPackage extension type that marks a key
// package of last resort (RFC 9420, Section 16.8; the code point OpenMLS
// uses, 0x000a). Such a key package may be used more than once, so its
// private keys are kept after use.
const LastResortExtension = 0x000a

// KeyPackageOptions configures NewKeyPackage.
type KeyPackageOptions struct {
	// Lifetime of the key package; zero means 90 days.
	Lifetime time.Duration
	// LastResort marks the key package as reusable (its private keys are
	// not deleted when it is used).
	LastResort bool
	// LastResortForm picks the marker of a last-resort key package:
	// OpenMLS's extension 0x000a (the zero value), the MLS extensions
	// draft's component, or both (extensions_safe.go says why).
	LastResortForm LastResortForm
	// Capabilities advertised by the leaf node.
	Capabilities Capabilities
	// Extensions of the key package and of its leaf node.
	Extensions     []Extension
	LeafExtensions []Extension
}

// KeyPackage is a signed, published description of a client that others
// use to add it to groups (RFC 9420, Section 10).
type KeyPackage struct {
	suite *ciphersuite.Suite
	kp    message.KeyPackage
	raw   []byte
	ref   []byte
}

// newKeyPackage creates a key package for suite, signs it with the
// client's key, and stores its private keys (init key and leaf encryption
// key) in the client's store under its reference, where StageWelcome finds
// them (Client.NewKeyPackage).
func newKeyPackage(ctx context.Context, c *Client, suite CipherSuite, opts KeyPackageOptions) (*KeyPackage, error) {
	s, err := lookupSuite(suite)
	if err != nil {
		return nil, err
	}
	id := c.identity()
	sigPub, err := s.SignaturePublicKey(id.Signer)
	if err != nil {
		return nil, fmt.Errorf("%w: the client's signature key does not fit suite %v: %w", ErrInvalidArgument, suite, err)
	}
	// RFC 9420, Section 5.3: an X.509 credential's end-entity certificate
	// must hold the leaf's signature key; fail here, not at every receiver.
	if err := id.Credential.CheckSignatureKey(sigPub); err != nil {
		return nil, fmt.Errorf("%w: the client's credential does not fit its signature key: %w", ErrInvalidArgument, err)
	}
	initPriv, initPub, err := s.GenerateKeyPair(c.rand())
	if err != nil {
		return nil, err
	}
	encPriv, encPub, err := s.GenerateKeyPair(c.rand())
	if err != nil {
		return nil, err
	}
	now := c.now()
	lifetime := opts.Lifetime
	if lifetime == 0 {
		lifetime = c.opts.Lifetime
	}
	if lifetime == 0 {
		lifetime = defaultLifetime
	}
	exts := toWireExtensions(opts.Extensions)
	kp := message.KeyPackage{
		Version:     message.MLS10,
		CipherSuite: suite,
		InitKey:     initPub,
		LeafNode: message.LeafNode{
			EncryptionKey: encPub,
			SignatureKey:  sigPub,
			Credential:    wireCred(id.Credential),
			Capabilities:  wireCapabilities(opts.Capabilities, suite, id.Credential.Type()),
			Source:        message.LeafNodeSourceKeyPackage,
			Lifetime: message.Lifetime{
				// Backdate by an hour to tolerate clock skew between clients.
				NotBefore: uint64(now.Add(-time.Hour).Unix()),
				NotAfter:  uint64(now.Add(lifetime).Unix()),
			},
			Extensions: toWireExtensions(opts.LeafExtensions),
		},
		Extensions: exts,
	}
	if opts.LastResort {
		if kp.Extensions, err = addLastResort(opts.LastResortForm, kp.Extensions, &kp.LeafNode.Capabilities); err != nil {
			return nil, err
		}
	}
	if err := c.greaseLeaf(&kp.LeafNode); err != nil {
		return nil, err
	}
	if kp.Extensions, err = c.greaseExtensions(kp.Extensions); err != nil {
		return nil, err
	}
	if err := kp.LeafNode.Sign(s, id.Signer, nil, 0); err != nil {
		return nil, classify(err)
	}
	if err := kp.Sign(s, id.Signer); err != nil {
		return nil, classify(err)
	}
	out, err := wrapKeyPackage(s, kp)
	if err != nil {
		return nil, err
	}
	rec := &state.KeyPackageRecord{InitPriv: initPriv, EncryptionPriv: encPriv, LastResort: opts.LastResort, KeyPackage: out.raw}
	err = update(ctx, c.store, func(tx storage.Tx) error {
		return state.PutKeyPackage(tx, out.ref, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("mls: storing key package: %w", err)
	}
	return out, nil
}

func wrapKeyPackage(s *ciphersuite.Suite, kp message.KeyPackage) (*KeyPackage, error) {
	raw, err := message.Marshal(&kp)
	if err != nil {
		return nil, err
	}
	return &KeyPackage{suite: s, kp: kp, raw: raw, ref: s.KeyPackageRef(raw)}, nil
}

// ParseKeyPackage decodes a key package (as the bare KeyPackage structure or
// wrapped in an MLSMessage) and verifies its signatures (RFC 9420,
// Section 10.1); it does not check the lifetime, which depends on the group.
func ParseKeyPackage(b []byte) (*KeyPackage, error) {
	var kp message.KeyPackage
	if m, err := message.UnmarshalMLSMessage(b); err == nil && m.WireFormat == message.WireFormatKeyPackage {
		kp = *m.KeyPackage
	} else if err := message.Unmarshal(b, &kp); err != nil {
		return nil, malformed(err)
	}
	s, err := lookupSuite(kp.CipherSuite)
	if err != nil {
		return nil, err
	}
	if err := group.VerifyKeyPackage(s, &kp); err != nil {
		return nil, err
	}
	k, err := wrapKeyPackage(s, kp)
	return k, classify(err)
}

// Ref returns the KeyPackageRef (RFC 9420, Section 5.2).
func (k *KeyPackage) Ref() []byte { return bytes.Clone(k.ref) }

// CipherSuite returns the key package's cipher suite.
func (k *KeyPackage) CipherSuite() CipherSuite { return k.kp.CipherSuite }

// Credential returns the credential of the key package's leaf node.
func (k *KeyPackage) Credential() credential.Credential {
	return credOf(k.kp.LeafNode.Credential)
}

// SignatureKey returns the leaf's signature public key.
func (k *KeyPackage) SignatureKey() []byte { return bytes.Clone(k.kp.LeafNode.SignatureKey) }

// InitKey returns the HPKE public key to which Welcome messages for this
// key package are encrypted (RFC 9420, Section 10).
func (k *KeyPackage) InitKey() []byte { return bytes.Clone(k.kp.InitKey) }

// EncryptionKey returns the leaf's HPKE public key.
func (k *KeyPackage) EncryptionKey() []byte { return bytes.Clone(k.kp.LeafNode.EncryptionKey) }

// Extensions returns the key package's own extensions (RFC 9420,
// Section 10), such as last_resort. The leaf node's extensions are
// LeafNode().Extensions().
func (k *KeyPackage) Extensions() []Extension { return fromWireExtensions(k.kp.Extensions) }

// LeafNode returns the key package's leaf node: credential, keys,
// capabilities, leaf extensions and lifetime.
func (k *KeyPackage) LeafNode() *LeafNode { return leafNodeOf(&k.kp.LeafNode) }

// Capabilities returns what the leaf node advertises (RFC 9420,
// Section 7.2), as listed in the key package.
func (k *KeyPackage) Capabilities() Capabilities { return k.LeafNode().Capabilities() }

// Lifetime returns the validity period of the key package's leaf node
// (RFC 9420, Section 7.2); see LeafNode.Lifetime.
func (k *KeyPackage) Lifetime() (notBefore, notAfter time.Time) {
	nb, na, _ := k.LeafNode().Lifetime()
	return nb, na
}

// IsLastResort reports whether the key package is marked last resort, in
// either form: OpenMLS's extension 0x000a or the MLS extensions draft's
// last_resort_key_package component (extensions_safe.go).
func (k *KeyPackage) IsLastResort() bool { return isLastResort(k.kp.Extensions) }

// MarshalBinary returns the bare KeyPackage structure (RFC 9420,
// Section 10). MarshalMessage returns it wrapped in an MLSMessage, the
// form in which key packages are usually published; ParseKeyPackage
// accepts both.
func (k *KeyPackage) MarshalBinary() ([]byte, error) { return clone(k.raw), nil }

func toWireExtensions(exts []Extension) []message.Extension {
	out := make([]message.Extension, 0, len(exts))
	for _, e := range exts {
		out = append(out, message.Extension{Type: message.ExtensionType(e.Type), Data: bytes.Clone(e.Data)})
	}
	return out
}

func fromWireExtensions(exts []message.Extension) []Extension {
	out := make([]Extension, 0, len(exts))
	for _, e := range exts {
		out = append(out, Extension{Type: uint16(e.Type), Data: bytes.Clone(e.Data)})
	}
	return out
}

// wireCapabilities fills a leaf's capabilities, with the defaults of
// RFC 9420, Section 7.2: the version and suite in use, basic credentials
// and the credential type actually used.
func wireCapabilities(c Capabilities, suite CipherSuite, used credential.Type) message.Capabilities {
	out := message.Capabilities{Versions: []message.ProtocolVersion{message.MLS10}}
	out.CipherSuites = appendUnique(out.CipherSuites, suite)
	for _, cs := range c.CipherSuites {
		out.CipherSuites = appendUnique(out.CipherSuites, cs)
	}
	out.Extensions = []message.ExtensionType{}
	for _, e := range c.Extensions {
		out.Extensions = appendUnique(out.Extensions, message.ExtensionType(e))
	}
	out.Proposals = []message.ProposalType{}
	for _, p := range c.Proposals {
		out.Proposals = appendUnique(out.Proposals, message.ProposalType(p))
	}
	out.Credentials = []message.CredentialType{message.CredentialBasic}
	if used != 0 {
		out.Credentials = appendUnique(out.Credentials, message.CredentialType(used))
	}
	for _, ct := range c.Credentials {
		out.Credentials = appendUnique(out.Credentials, message.CredentialType(ct))
	}
	return out
}

func appendUnique[T comparable](s []T, v T) []T {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// importKeyPackage is Client.ImportKeyPackage.
func importKeyPackage(ctx context.Context, store storage.Store, keyPackage, initPriv, encryptionPriv []byte, lastResort bool) (*KeyPackage, error) {
	k, err := ParseKeyPackage(keyPackage)
	if err != nil {
		return nil, err
	}
	s := k.suite
	if pub, err := s.HPKEPublicKey(initPriv); err != nil || !bytes.Equal(pub, k.kp.InitKey) {
		return nil, fmt.Errorf("%w: init private key does not match the key package", ErrInvalidArgument)
	}
	if pub, err := s.HPKEPublicKey(encryptionPriv); err != nil || !bytes.Equal(pub, k.kp.LeafNode.EncryptionKey) {
		return nil, fmt.Errorf("%w: encryption private key does not match the key package", ErrInvalidArgument)
	}
	rec := &state.KeyPackageRecord{InitPriv: clone(initPriv), EncryptionPriv: clone(encryptionPriv), LastResort: lastResort, KeyPackage: k.raw}
	if err := update(ctx, store, func(tx storage.Tx) error { return state.PutKeyPackage(tx, k.ref, rec) }); err != nil {
		return nil, err
	}
	return k, nil
}
