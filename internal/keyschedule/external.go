package keyschedule

import (
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
)

// externalInitContext is the HPKE exporter context of RFC 9420, Section 8.3.
const externalInitContext = "MLS 1.0 external init secret"

// ExternalKeyPair is an epoch's external HPKE key pair (RFC 9420,
// Section 8), whose public key a GroupInfo publishes so that non-members
// can join with an external Commit.
type ExternalKeyPair struct {
	s    *ciphersuite.Suite
	priv []byte
	pub  []byte
}

// NewExternalKeyPair derives external_priv, external_pub =
// KEM.DeriveKeyPair(external_secret); externalSecret must be KDF.Nh bytes.
func NewExternalKeyPair(s *ciphersuite.Suite, externalSecret []byte) (*ExternalKeyPair, error) {
	v, err := newSecret(s, "external_secret", externalSecret)
	if err != nil {
		return nil, err
	}
	defer v.erase()
	priv, pub, err := s.DeriveKeyPair(v.b)
	if err != nil {
		return nil, fmt.Errorf("keyschedule: deriving the external key pair: %w", err)
	}
	return &ExternalKeyPair{s: s, priv: priv, pub: pub}, nil
}

// PublicKey returns a copy of external_pub, for the external_pub GroupInfo
// extension (Section 12.4.3.2).
func (k *ExternalKeyPair) PublicKey() []byte { return clone(k.pub) }

// Erase overwrites the private key; k must not be used afterwards.
func (k *ExternalKeyPair) Erase() {
	clear(k.priv)
	k.priv = nil
}

func (k ExternalKeyPair) String() string {
	return fmt.Sprintf("keyschedule.ExternalKeyPair{PublicKey: %x, PrivateKey: REDACTED}", k.pub)
}
func (k ExternalKeyPair) GoString() string           { return k.String() }
func (k ExternalKeyPair) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// InitSecret is the members' side of an external init (RFC 9420,
// Section 8.3): from the kem_output of an ExternalInit proposal,
//
//	context = SetupBaseR(kem_output, external_priv, "")
//	init_secret = context.export("MLS 1.0 external init secret", KDF.Nh)
//
// A kem_output that does not decapsulate wraps ciphersuite.ErrDecrypt or
// ciphersuite.ErrInvalidKey.
func (k *ExternalKeyPair) InitSecret(kemOutput []byte) (*InitSecret, error) {
	if k.priv == nil {
		return nil, fmt.Errorf("%w: external private key", ErrDeleted)
	}
	b, err := k.s.HPKEExportReceiver(k.priv, kemOutput, nil, externalInitContext, k.s.HashSize())
	if err != nil {
		return nil, fmt.Errorf("keyschedule: external init: %w", err)
	}
	return &InitSecret{secret{s: k.s, b: b}}, nil
}

// ExternalInit is the joiner's side of an external init (RFC 9420,
// Section 8.3): it sets up an HPKE sender context to the group's
// external_pub and exports the init secret,
//
//	kem_output, context = SetupBaseS(external_pub, "")
//	init_secret = context.export("MLS 1.0 external init secret", KDF.Nh)
//
// kemOutput goes into the ExternalInit proposal.
func ExternalInit(s *ciphersuite.Suite, externalPub []byte) (kemOutput []byte, init *InitSecret, err error) {
	if s == nil {
		return nil, nil, invalid("external init: nil cipher suite")
	}
	enc, b, err := s.HPKEExportSender(externalPub, nil, externalInitContext, s.HashSize())
	if err != nil {
		return nil, nil, fmt.Errorf("keyschedule: external init: %w", err)
	}
	return enc, &InitSecret{secret{s: s, b: b}}, nil
}
