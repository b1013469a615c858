package credential

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"github.com/mlskit/mls/internal/message"
)

// Errors of X.509 credential validation (RFC 9420, Section 5.3: the
// Authentication Service decides; these say why it refused). Each is
// wrapped with details and can be tested with errors.Is.
var (
	// ErrCertificateExpired: a certificate of the chain is not valid at
	// the validator's time (expired or not yet valid).
	ErrCertificateExpired = errors.New("mls: certificate expired or not yet valid")
	// ErrUnknownAuthority: the chain does not lead to one of the trusted
	// roots.
	ErrUnknownAuthority = errors.New("mls: certificate signed by an unknown authority")
	// ErrKeyUsage: the end-entity certificate's key usage does not allow
	// digital signatures, or its extended key usage is not an accepted one.
	ErrKeyUsage = errors.New("mls: certificate key usage does not allow MLS signatures")
	// ErrUnsupportedCertificate: crypto/x509 cannot parse the key or
	// check the signature of a certificate (Ed448, ML-DSA, ...), so it can
	// neither be bound to a signature key nor verified.
	ErrUnsupportedCertificate = errors.New("mls: unsupported certificate algorithm")
	// ErrNoIdentity: the end-entity certificate lacks the identity the
	// validator takes (a SAN of the configured kind, or a subject).
	ErrNoIdentity = errors.New("mls: certificate has no identity of the configured kind")
)

// IdentitySource says where X509Validator takes a member's identity from
// in the end-entity certificate.
type IdentitySource int

const (
	// IdentitySubject is the subject distinguished name, in the string
	// form of pkix.Name.String (RFC 2253 style).
	IdentitySubject IdentitySource = iota
	// IdentityURI is the first URI subjectAltName (RFC 5280, Section
	// 4.2.1.6), e.g. "im:alice@example.com".
	IdentityURI
	// IdentityDNS is the first dNSName subjectAltName.
	IdentityDNS
	// IdentityEmail is the first rfc822Name subjectAltName.
	IdentityEmail
)

func (s IdentitySource) String() string {
	switch s {
	case IdentitySubject:
		return "subject"
	case IdentityURI:
		return "URI SAN"
	case IdentityDNS:
		return "DNS SAN"
	case IdentityEmail:
		return "email SAN"
	}
	return fmt.Sprintf("IdentitySource(%d)", int(s))
}

// X509Validator is a Validator for X.509 credentials (RFC 9420, Section
// 5.3) built on crypto/x509. For a credential it checks, in order:
//
//  1. the credential is of type x509, has at most MaxChainLength
//     certificates, and every certificate parses, with a
//     key and a signature algorithm crypto/x509 implements
//     (ErrUnsupportedCertificate otherwise: Ed448 and ML-DSA
//     certificates);
//  2. the end-entity certificate (the first) holds the leaf's signature
//     key (ErrKeyMismatch; CheckSignatureKey);
//  3. every certificate of the chain is valid at Now (ErrCertificateExpired);
//  4. the end-entity certificate allows digitalSignature if it has a key
//     usage extension (RFC 5280, Section 4.2.1.3), and one of KeyUsages if
//     it has an extended key usage (ErrKeyUsage);
//  5. the chain, with the rest of the credential's certificates as
//     intermediates, verifies to one of Roots (ErrUnknownAuthority);
//  6. the identity of Identity exists (ErrNoIdentity), and Accept, if set,
//     accepts it.
//
// The zero value trusts no root and rejects everything. An X509Validator
// must not be changed while in use.
type X509Validator struct {
	// Roots are the trusted root certificates.
	Roots *x509.CertPool
	// Now is the time at which the certificates must be valid, normally the
	// time the message is processed; nil means time.Now.
	Now func() time.Time
	// KeyUsages are the extended key usages accepted in a certificate that
	// has the extension; nil means any (x509.ExtKeyUsageAny).
	KeyUsages []x509.ExtKeyUsage
	// Identity selects where the member's identity comes from.
	Identity IdentitySource
	// Accept, if set, is the application's decision on a verified
	// identity and chain (e.g. "is this user allowed in this group").
	Accept func(identity string, chain []*x509.Certificate) error
}

var _ Validator = (*X509Validator)(nil)

// Validate implements Validator.
func (v *X509Validator) Validate(c Credential, signatureKey []byte) error {
	_, err := v.verify(c, signatureKey)
	return err
}

// VerifiedIdentity runs the checks of Validate and returns the identity
// of the credential's end-entity certificate.
func (v *X509Validator) VerifiedIdentity(c Credential, signatureKey []byte) (string, error) {
	return v.verify(c, signatureKey)
}

func (v *X509Validator) verify(c Credential, signatureKey []byte) (string, error) {
	if v == nil {
		return "", fmt.Errorf("%w: nil X509Validator", ErrInvalid)
	}
	if c.c.Type != message.CredentialX509 {
		return "", fmt.Errorf("%w: a %s credential, the X.509 validator takes x509", ErrInvalid, c.Type())
	}
	certs, err := parseChain(c.c.Certificates)
	if err != nil {
		return "", err
	}
	leaf := certs[0]
	if err := checkLeafKey(leaf, signatureKey); err != nil {
		return "", err
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	for i, cert := range certs {
		if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			return "", fmt.Errorf("%w: certificate %d (%s) is valid from %s to %s, not at %s", ErrCertificateExpired, i, cert.Subject,
				cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return "", fmt.Errorf("%w: key usage 0x%x lacks digitalSignature", ErrKeyUsage, int(leaf.KeyUsage))
	}
	if v.Roots == nil {
		return "", fmt.Errorf("%w: the validator trusts no root", ErrUnknownAuthority)
	}
	inter := x509.NewCertPool()
	for _, cert := range certs[1:] {
		inter.AddCert(cert)
	}
	usages := v.KeyUsages
	if usages == nil {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: v.Roots, Intermediates: inter, CurrentTime: now, KeyUsages: usages})
	if err != nil {
		return "", verifyError(err)
	}
	id, err := identityOf(leaf, v.Identity)
	if err != nil {
		return "", err
	}
	if v.Accept != nil {
		if err := v.Accept(id, chains[0]); err != nil {
			return "", err
		}
	}
	return id, nil
}

// verifyError maps a crypto/x509 verification error to this package's
// sentinels, keeping the original text.
func verifyError(err error) error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.Expired:
			return fmt.Errorf("%w: %v", ErrCertificateExpired, err)
		case x509.IncompatibleUsage:
			return fmt.Errorf("%w: %v", ErrKeyUsage, err)
		}
	}
	var ins x509.InsecureAlgorithmError
	if errors.As(err, &ins) || errors.Is(err, x509.ErrUnsupportedAlgorithm) {
		return fmt.Errorf("%w: %v", ErrUnsupportedCertificate, err)
	}
	var unk x509.UnknownAuthorityError
	if errors.As(err, &unk) {
		return fmt.Errorf("%w: %v", ErrUnknownAuthority, err)
	}
	// Name constraints, path length, too many intermediates: the chain
	// does not lead to a trusted root under the root's rules.
	return fmt.Errorf("%w: %v", ErrUnknownAuthority, err)
}

// Object identifiers of public key algorithms crypto/x509 does not
// implement, to name them in errors.
var unsupportedKeyOIDs = []struct {
	oid  asn1.ObjectIdentifier
	name string
}{
	{asn1.ObjectIdentifier{1, 3, 101, 111}, "X448"},                       // RFC 8410
	{asn1.ObjectIdentifier{1, 3, 101, 113}, "Ed448"},                      // RFC 8410
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17}, "ML-DSA-44"}, // RFC 9881
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}, "ML-DSA-65"}, // RFC 9881
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19}, "ML-DSA-87"}, // RFC 9881
}

// keyAlgorithmName names the public key algorithm of a certificate whose
// key crypto/x509 left unparsed.
func keyAlgorithmName(cert *x509.Certificate) string {
	var spki struct {
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.RawValue `asn1:"optional"`
		}
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil || len(rest) != 0 {
		return "an unparsable public key"
	}
	for _, k := range unsupportedKeyOIDs {
		if spki.Algorithm.Algorithm.Equal(k.oid) {
			return k.name
		}
	}
	return "public key algorithm " + spki.Algorithm.Algorithm.String()
}

// MaxChainLength caps the certificates of a credential the X509Validator
// parses, so that a hostile credential costs a bounded amount of work.
const MaxChainLength = 16

// parseChain parses the credential's certificates, rejecting those whose
// key crypto/x509 cannot use.
func parseChain(ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) == 0 {
		return nil, fmt.Errorf("%w: empty certificate chain", ErrInvalid)
	}
	if len(ders) > MaxChainLength {
		return nil, fmt.Errorf("%w: a chain of %d certificates, at most %d", ErrInvalid, len(ders), MaxChainLength)
	}
	certs := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrInvalid, i, err)
		}
		if cert.PublicKey == nil || cert.PublicKeyAlgorithm == x509.UnknownPublicKeyAlgorithm {
			return nil, fmt.Errorf("%w: certificate %d has %s key, which crypto/x509 does not implement", ErrUnsupportedCertificate, i, keyAlgorithmName(cert))
		}
		certs[i] = cert
	}
	return certs, nil
}

// checkLeafKey checks that the end-entity certificate holds signatureKey
// in its SignaturePublicKey encoding (RFC 9420, Section 5.1.1).
func checkLeafKey(cert *x509.Certificate, signatureKey []byte) error {
	var pub []byte
	switch k := cert.PublicKey.(type) {
	case ed25519.PublicKey:
		pub = k
	case *ecdsa.PublicKey:
		var err error
		if pub, err = k.Bytes(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	case nil:
		return fmt.Errorf("%w: end-entity certificate has %s key, which crypto/x509 does not implement", ErrUnsupportedCertificate, keyAlgorithmName(cert))
	default:
		// RSA and other keys no MLS suite signs with.
		return fmt.Errorf("%w: a %T certificate key is no MLS signature key", ErrKeyMismatch, cert.PublicKey)
	}
	if !bytes.Equal(pub, signatureKey) {
		return fmt.Errorf("%w: the end-entity certificate holds another key", ErrKeyMismatch)
	}
	return nil
}

// identityOf returns the identity of source in cert.
func identityOf(cert *x509.Certificate, source IdentitySource) (string, error) {
	switch source {
	case IdentitySubject:
		if len(cert.Subject.Names) > 0 || len(cert.Subject.ExtraNames) > 0 {
			return cert.Subject.String(), nil
		}
	case IdentityURI:
		if len(cert.URIs) > 0 {
			return cert.URIs[0].String(), nil
		}
	case IdentityDNS:
		if len(cert.DNSNames) > 0 {
			return cert.DNSNames[0], nil
		}
	case IdentityEmail:
		if len(cert.EmailAddresses) > 0 {
			return cert.EmailAddresses[0], nil
		}
	default:
		return "", fmt.Errorf("%w: unknown %v", ErrInvalid, source)
	}
	return "", fmt.Errorf("%w: no %v", ErrNoIdentity, source)
}
