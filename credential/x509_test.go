package credential_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/mlskit/mls/credential"
)

// t0 is the time at which the test certificates are valid.
var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testCert is a certificate and its private key.
type testCert struct {
	cert *x509.Certificate
	der  []byte
	key  crypto.Signer
}

// certOpts are what a test varies in an issued certificate.
type certOpts struct {
	cn                  string
	ca                  bool
	notBefore, notAfter time.Time
	keyUsage            x509.KeyUsage
	extKeyUsage         []x509.ExtKeyUsage
	uris                []string
	dns, emails         []string
}

var serial int64

// issue makes a certificate for pub signed by parent (self-signed if
// parent is nil), with crypto/x509.
func issue(t *testing.T, parent *testCert, key crypto.Signer, o certOpts) *testCert {
	t.Helper()
	if o.notBefore.IsZero() {
		o.notBefore = t0.Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = t0.Add(365 * 24 * time.Hour)
	}
	if o.keyUsage == 0 {
		o.keyUsage = x509.KeyUsageDigitalSignature
		if o.ca {
			o.keyUsage = x509.KeyUsageCertSign
		}
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: o.cn},
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		KeyUsage:              o.keyUsage,
		ExtKeyUsage:           o.extKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  o.ca,
		DNSNames:              o.dns,
		EmailAddresses:        o.emails,
	}
	for _, u := range o.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: cert, der: der, key: key}
}

func p256Key(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ed25519Key(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pki is a root, an intermediate and an Ed25519 end-entity certificate
// for alice, valid at t0.
type pki struct {
	root, inter, leaf *testCert
	roots             *x509.CertPool
}

func newPKI(t *testing.T, leaf certOpts) *pki {
	t.Helper()
	p := &pki{}
	p.root = issue(t, nil, p256Key(t), certOpts{cn: "Test Root", ca: true})
	p.inter = issue(t, p.root, p256Key(t), certOpts{cn: "Test Intermediate", ca: true})
	if leaf.cn == "" {
		leaf.cn = "alice"
	}
	p.leaf = issue(t, p.inter, ed25519Key(t), leaf)
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root.cert)
	return p
}

// cred is the leaf's X.509 credential with the intermediate.
func (p *pki) cred(t *testing.T) credential.Credential {
	t.Helper()
	c, err := credential.NewX509([][]byte{p.leaf.der, p.inter.der})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *pki) sigKey() []byte { return p.leaf.key.Public().(ed25519.PublicKey) }

func (p *pki) validator() *credential.X509Validator {
	return &credential.X509Validator{Roots: p.roots, Now: func() time.Time { return t0 }}
}

func TestX509ValidatorAccepts(t *testing.T) {
	p := newPKI(t, certOpts{
		uris:   []string{"mls://example.com/alice", "mls://example.com/other"},
		dns:    []string{"alice.example.com"},
		emails: []string{"alice@example.com"},
	})
	c := p.cred(t)
	for source, want := range map[credential.IdentitySource]string{
		credential.IdentitySubject: "CN=alice",
		credential.IdentityURI:     "mls://example.com/alice",
		credential.IdentityDNS:     "alice.example.com",
		credential.IdentityEmail:   "alice@example.com",
	} {
		v := p.validator()
		v.Identity = source
		if err := v.Validate(c, p.sigKey()); err != nil {
			t.Fatalf("%v: Validate: %v", source, err)
		}
		got, err := v.VerifiedIdentity(c, p.sigKey())
		if err != nil || got != want {
			t.Errorf("%v: identity %q, %v; want %q", source, got, err, want)
		}
	}

	// Accept sees the identity and the verified chain, root last, and
	// its refusal is the validator's.
	v := p.validator()
	v.Identity = credential.IdentityEmail
	refused := errors.New("not in this group")
	var seen string
	v.Accept = func(id string, chain []*x509.Certificate) error {
		seen = id
		if len(chain) != 3 || !chain[2].Equal(p.root.cert) {
			t.Errorf("Accept got a chain of %d certificates", len(chain))
		}
		return refused
	}
	if err := v.Validate(c, p.sigKey()); !errors.Is(err, refused) || seen != "alice@example.com" {
		t.Errorf("Accept: got %v after seeing %q", err, seen)
	}
}

func TestX509ValidatorKeyMismatch(t *testing.T) {
	p := newPKI(t, certOpts{})
	other := ed25519Key(t).Public().(ed25519.PublicKey)
	if err := p.validator().Validate(p.cred(t), other); !errors.Is(err, credential.ErrKeyMismatch) {
		t.Fatalf("another signature key: got %v, want ErrKeyMismatch", err)
	}
	if err := p.cred(t).CheckSignatureKey(other); !errors.Is(err, credential.ErrKeyMismatch) {
		t.Fatalf("CheckSignatureKey: got %v, want ErrKeyMismatch", err)
	}
	// A P-256 leaf is compared in its uncompressed point encoding.
	k := p256Key(t)
	leaf := issue(t, p.inter, k, certOpts{cn: "bob"})
	c, err := credential.NewX509([][]byte{leaf.der, p.inter.der})
	if err != nil {
		t.Fatal(err)
	}
	point, err := k.Public().(*ecdsa.PublicKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.validator().Validate(c, point); err != nil {
		t.Fatalf("P-256 leaf with its own key: %v", err)
	}
	if err := p.validator().Validate(c, point[:len(point)-1]); !errors.Is(err, credential.ErrKeyMismatch) {
		t.Fatalf("P-256 leaf with a truncated key: got %v, want ErrKeyMismatch", err)
	}
}

func TestX509ValidatorExpired(t *testing.T) {
	p := newPKI(t, certOpts{notBefore: t0.Add(-time.Hour), notAfter: t0.Add(time.Hour)})
	for name, at := range map[string]time.Time{
		"after notAfter":   t0.Add(2 * time.Hour),
		"before notBefore": t0.Add(-2 * time.Hour),
	} {
		v := p.validator()
		v.Now = func() time.Time { return at }
		if err := v.Validate(p.cred(t), p.sigKey()); !errors.Is(err, credential.ErrCertificateExpired) {
			t.Errorf("%s: got %v, want ErrCertificateExpired", name, err)
		}
	}
	// An expired intermediate, with a leaf still valid.
	q := newPKI(t, certOpts{})
	q.inter = issue(t, q.root, p256Key(t), certOpts{cn: "Old Intermediate", ca: true, notAfter: t0.Add(-time.Minute)})
	q.leaf = issue(t, q.inter, q.leaf.key, certOpts{cn: "alice"})
	if err := q.validator().Validate(q.cred(t), q.sigKey()); !errors.Is(err, credential.ErrCertificateExpired) {
		t.Errorf("expired intermediate: got %v, want ErrCertificateExpired", err)
	}
	// The clock is the validator's: the same credential is good at t0.
	if err := p.validator().Validate(p.cred(t), p.sigKey()); err != nil {
		t.Errorf("at t0: %v", err)
	}
}

func TestX509ValidatorUnknownRoot(t *testing.T) {
	p := newPKI(t, certOpts{})
	stranger := newPKI(t, certOpts{})
	v := stranger.validator() // trusts another root
	if err := v.Validate(p.cred(t), p.sigKey()); !errors.Is(err, credential.ErrUnknownAuthority) {
		t.Errorf("another root: got %v, want ErrUnknownAuthority", err)
	}
	// Without the intermediate the chain does not reach the root.
	alone, err := credential.NewX509([][]byte{p.leaf.der})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.validator().Validate(alone, p.sigKey()); !errors.Is(err, credential.ErrUnknownAuthority) {
		t.Errorf("missing intermediate: got %v, want ErrUnknownAuthority", err)
	}
	// A self-signed leaf.
	self := issue(t, nil, p.leaf.key, certOpts{cn: "alice"})
	selfCred, err := credential.NewX509([][]byte{self.der})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.validator().Validate(selfCred, p.sigKey()); !errors.Is(err, credential.ErrUnknownAuthority) {
		t.Errorf("self-signed: got %v, want ErrUnknownAuthority", err)
	}
	// The zero validator trusts nothing.
	var zero credential.X509Validator
	if err := zero.Validate(p.cred(t), p.sigKey()); !errors.Is(err, credential.ErrUnknownAuthority) {
		t.Errorf("zero validator: got %v, want ErrUnknownAuthority", err)
	}
}

func TestX509ValidatorKeyUsage(t *testing.T) {
	// keyEncipherment without digitalSignature.
	p := newPKI(t, certOpts{keyUsage: x509.KeyUsageKeyEncipherment})
	if err := p.validator().Validate(p.cred(t), p.sigKey()); !errors.Is(err, credential.ErrKeyUsage) {
		t.Errorf("keyEncipherment only: got %v, want ErrKeyUsage", err)
	}
	// An extended key usage the validator does not accept.
	q := newPKI(t, certOpts{extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	v := q.validator()
	v.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if err := v.Validate(q.cred(t), q.sigKey()); !errors.Is(err, credential.ErrKeyUsage) {
		t.Errorf("serverAuth for a clientAuth validator: got %v, want ErrKeyUsage", err)
	}
	v.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if err := v.Validate(q.cred(t), q.sigKey()); err != nil {
		t.Errorf("serverAuth for a serverAuth validator: %v", err)
	}
	// digitalSignature with other bits is fine.
	r := newPKI(t, certOpts{keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement})
	if err := r.validator().Validate(r.cred(t), r.sigKey()); err != nil {
		t.Errorf("digitalSignature|keyAgreement: %v", err)
	}
}

func TestX509ValidatorNoIdentity(t *testing.T) {
	p := newPKI(t, certOpts{dns: []string{"alice.example.com"}})
	for _, source := range []credential.IdentitySource{credential.IdentityURI, credential.IdentityEmail} {
		v := p.validator()
		v.Identity = source
		if err := v.Validate(p.cred(t), p.sigKey()); !errors.Is(err, credential.ErrNoIdentity) {
			t.Errorf("%v: got %v, want ErrNoIdentity", source, err)
		}
	}
	v := p.validator()
	v.Identity = credential.IdentitySource(99)
	if err := v.Validate(p.cred(t), p.sigKey()); !errors.Is(err, credential.ErrInvalid) {
		t.Errorf("unknown identity source: got %v, want ErrInvalid", err)
	}
}

func TestX509ValidatorRejectsBasic(t *testing.T) {
	v := newPKI(t, certOpts{}).validator()
	if err := v.Validate(credential.NewBasic([]byte("alice")), make([]byte, 32)); !errors.Is(err, credential.ErrInvalid) {
		t.Errorf("basic credential: got %v, want ErrInvalid", err)
	}
	// A chain longer than MaxChainLength is refused before any parsing.
	p := newPKI(t, certOpts{})
	long := [][]byte{p.leaf.der}
	for len(long) <= credential.MaxChainLength {
		long = append(long, p.inter.der)
	}
	c, err := credential.NewX509(long)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.validator().Validate(c, p.sigKey()); !errors.Is(err, credential.ErrInvalid) {
		t.Errorf("chain of %d certificates: got %v, want ErrInvalid", len(long), err)
	}
	var nilV *credential.X509Validator
	if err := nilV.Validate(credential.NewBasic([]byte("alice")), nil); !errors.Is(err, credential.ErrInvalid) {
		t.Errorf("nil validator: got %v, want ErrInvalid", err)
	}
}

// ed448Cert builds a self-signed Ed448 certificate (RFC 8410: id-Ed448 is
// 1.3.101.113, with no parameters), which crypto/x509 can neither create
// nor use, by hand with encoding/asn1 and circl's Ed448.
func ed448Cert(t *testing.T, key ed448.PrivateKey) []byte {
	t.Helper()
	alg := pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 101, 113}}
	name, err := asn1.Marshal(pkix.Name{CommonName: "ed448 alice"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	type validity struct{ NotBefore, NotAfter time.Time }
	type spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	pub := key.Public().(ed448.PublicKey)
	tbs, err := asn1.Marshal(struct {
		Version   int `asn1:"explicit,tag:0"`
		Serial    *big.Int
		Signature pkix.AlgorithmIdentifier
		Issuer    asn1.RawValue
		Validity  validity
		Subject   asn1.RawValue
		SPKI      spki
	}{2, big.NewInt(448), alg, asn1.RawValue{FullBytes: name}, validity{t0.Add(-time.Hour), t0.Add(time.Hour)},
		asn1.RawValue{FullBytes: name}, spki{alg, asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)}}})
	if err != nil {
		t.Fatal(err)
	}
	sig := ed448.Sign(key, tbs, "")
	der, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, alg, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestX509Ed448Unsupported: crypto/x509 parses an Ed448 certificate
// without its key, so the credential can be held, but binding it to a
// signature key or verifying it is ErrUnsupportedCertificate, never an
// accept or a panic.
func TestX509Ed448Unsupported(t *testing.T) {
	_, key, err := ed448.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := ed448Cert(t, key)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("crypto/x509 rejects the hand-made Ed448 certificate: %v", err)
	}
	if cert.PublicKey != nil || cert.PublicKeyAlgorithm != x509.UnknownPublicKeyAlgorithm {
		t.Fatalf("crypto/x509 now parses Ed448 keys (%T): the validator can support them", cert.PublicKey)
	}
	c, err := credential.NewX509([][]byte{der})
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed448.PublicKey)
	if err := c.CheckSignatureKey(pub); !errors.Is(err, credential.ErrUnsupportedCertificate) || !strings.Contains(err.Error(), "Ed448") {
		t.Errorf("CheckSignatureKey: got %v, want ErrUnsupportedCertificate naming Ed448", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	v := &credential.X509Validator{Roots: roots, Now: func() time.Time { return t0 }}
	if err := v.Validate(c, pub); !errors.Is(err, credential.ErrUnsupportedCertificate) || !strings.Contains(err.Error(), "Ed448") {
		t.Errorf("Validate: got %v, want ErrUnsupportedCertificate naming Ed448", err)
	}
	// An Ed448 certificate anywhere in the chain is just as unsupported.
	p := newPKI(t, certOpts{})
	mixed, err := credential.NewX509([][]byte{p.leaf.der, der})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.validator().Validate(mixed, p.sigKey()); !errors.Is(err, credential.ErrUnsupportedCertificate) {
		t.Errorf("Ed448 intermediate: got %v, want ErrUnsupportedCertificate", err)
	}
}
