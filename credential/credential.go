package credential

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/credwire"
	"github.com/mlskit/mls/internal/message"
)

// Type is a credential type from the IANA "MLS Credential Types" registry.
type Type uint16

const (
	// Basic is a bare identity (RFC 9420, Section 5.3).
	Basic Type = Type(message.CredentialBasic)
	// X509 is a chain of DER certificates, leaf first (RFC 9420, Section 5.3).
	X509 Type = Type(message.CredentialX509)
)

func (t Type) String() string {
	switch t {
	case Basic:
		return "basic"
	case X509:
		return "x509"
	}
	return fmt.Sprintf("0x%04x", uint16(t))
}

// Credential is an immutable MLS credential.
type Credential struct {
	c message.Credential
}

// NewBasic returns a basic credential for identity (copied).
func NewBasic(identity []byte) Credential {
	return Credential{c: message.Credential{Type: message.CredentialBasic, Identity: bytes.Clone(identity)}}
}

// ErrInvalid is wrapped by errors for malformed credentials.
var ErrInvalid = errors.New("mls: invalid credential")

// NewX509 returns an X.509 credential for a certificate chain in DER, leaf
// first. Each certificate must parse; trust decisions are the Validator's.
func NewX509(chain [][]byte) (Credential, error) {
	if len(chain) == 0 {
		return Credential{}, fmt.Errorf("%w: empty certificate chain", ErrInvalid)
	}
	certs := make([][]byte, len(chain))
	for i, der := range chain {
		if _, err := x509.ParseCertificate(der); err != nil {
			return Credential{}, fmt.Errorf("%w: certificate %d: %v", ErrInvalid, i, err)
		}
		certs[i] = bytes.Clone(der)
	}
	return Credential{c: message.Credential{Type: message.CredentialX509, Certificates: certs}}, nil
}

func init() {
	// The mls package converts through internal/credwire, so that no
	// exported identifier of this package mentions an internal type.
	credwire.FromWire = func(c message.Credential) any { return Credential{c: c} }
	credwire.ToWire = func(c any) message.Credential { return c.(Credential).c }
}

// MarshalBinary encodes the credential as the Credential structure of
// RFC 9420, Section 5.3.
func (c Credential) MarshalBinary() ([]byte, error) {
	b, err := message.Marshal(&c.c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return b, nil
}

// UnmarshalBinary decodes a Credential structure (RFC 9420, Section 5.3),
// rejecting trailing bytes. Credential types other than basic and X.509
// keep their body opaque. On error c is unchanged.
func (c *Credential) UnmarshalBinary(b []byte) error {
	if c == nil {
		return fmt.Errorf("%w: nil credential", ErrInvalid)
	}
	var w message.Credential
	if err := message.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c.c = w
	return nil
}

// Type returns the credential type.
func (c Credential) Type() Type { return Type(c.c.Type) }

// Identity returns the identity of a basic credential, or the DER subject
// of an X.509 credential's leaf certificate.
func (c Credential) Identity() []byte {
	switch c.c.Type {
	case message.CredentialBasic:
		return bytes.Clone(c.c.Identity)
	case message.CredentialX509:
		if len(c.c.Certificates) > 0 {
			if cert, err := x509.ParseCertificate(c.c.Certificates[0]); err == nil {
				return bytes.Clone(cert.RawSubject)
			}
		}
	}
	return nil
}

// Certificates returns a copy of the certificate chain of an X.509
// credential, leaf first.
func (c Credential) Certificates() [][]byte {
	out := make([][]byte, len(c.c.Certificates))
	for i, der := range c.c.Certificates {
		out[i] = bytes.Clone(der)
	}
	return out
}

// Equal reports whether two credentials are identical.
func (c Credential) Equal(o Credential) bool {
	if c.c.Type != o.c.Type || !bytes.Equal(c.c.Identity, o.c.Identity) || !bytes.Equal(c.c.Data, o.c.Data) ||
		len(c.c.Certificates) != len(o.c.Certificates) {
		return false
	}
	for i := range c.c.Certificates {
		if !bytes.Equal(c.c.Certificates[i], o.c.Certificates[i]) {
			return false
		}
	}
	return true
}

// String describes the credential for logs.
func (c Credential) String() string {
	switch c.c.Type {
	case message.CredentialBasic:
		return fmt.Sprintf("basic(%q)", c.c.Identity)
	case message.CredentialX509:
		return fmt.Sprintf("x509(%d certificates)", len(c.c.Certificates))
	}
	return fmt.Sprintf("credential(type %s)", c.Type())
}

// Validator is the application's Authentication Service (RFC 9420,
// Section 5.3.1): it decides whether a credential, bound to the given
// signature public key, is acceptable. It is called for every new credential
// the group sees (joins, adds, updates, commits).
type Validator interface {
	Validate(c Credential, signatureKey []byte) error
}

// ValidatorFunc adapts a function to Validator.
type ValidatorFunc func(c Credential, signatureKey []byte) error

// Validate calls f. A nil ValidatorFunc rejects every credential with
// ErrInvalid rather than panic.
func (f ValidatorFunc) Validate(c Credential, signatureKey []byte) error {
	if f == nil {
		return fmt.Errorf("%w: nil ValidatorFunc", ErrInvalid)
	}
	return f(c, signatureKey)
}

// AcceptAll is a Validator that accepts every credential. Use it only in
// tests and demos: real applications must authenticate identities.
var AcceptAll Validator = ValidatorFunc(func(Credential, []byte) error { return nil })

// ErrKeyMismatch is returned when an X.509 credential's end-entity
// certificate does not hold the leaf's signature key.
var ErrKeyMismatch = errors.New("mls: credential does not match the signature key")

// CheckSignatureKey checks the binding RFC 9420, Section 5.3 requires of
// X.509 credentials: the public key of the end-entity certificate
// (certificates[0]) is identical to the leaf's signature key, in its
// SignaturePublicKey encoding (raw Ed25519 bytes, uncompressed ECDSA
// point). A certificate whose key crypto/x509 does not implement (Ed448,
// ML-DSA) gives ErrUnsupportedCertificate; another key, ErrKeyMismatch.
// Basic credentials bind nothing and always pass; trust in the chain
// itself is the Validator's decision (X509Validator).
func (c Credential) CheckSignatureKey(signatureKey []byte) error {
	if c.c.Type != message.CredentialX509 {
		return nil
	}
	if len(c.c.Certificates) == 0 {
		return fmt.Errorf("%w: empty certificate chain", ErrInvalid)
	}
	cert, err := x509.ParseCertificate(c.c.Certificates[0])
	if err != nil {
		return fmt.Errorf("%w: end-entity certificate: %v", ErrInvalid, err)
	}
	return checkLeafKey(cert, signatureKey)
}
