package mls_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage/memory"
)

// x509Fixture is a CA, a validator trusting it at a fixed time, and a
// helper to make clients with certificates from it.
type x509Fixture struct {
	ca     *exampleCA
	now    time.Time
	serial int64
}

func newX509Fixture(t *testing.T) *x509Fixture {
	t.Helper()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ca, err := newExampleCA("Test CA", now.Add(-48*time.Hour), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &x509Fixture{ca: ca, now: now, serial: 1}
}

func (f *x509Fixture) validator() *credential.X509Validator {
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.cert)
	return &credential.X509Validator{Roots: roots, Now: func() time.Time { return f.now }, Identity: credential.IdentityURI}
}

func p256Signer(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// cred issues a certificate for pub valid for an hour around now.
func (f *x509Fixture) cred(t *testing.T, pub crypto.PublicKey, name string, usage x509.KeyUsage) credential.Credential {
	t.Helper()
	f.serial++
	c, err := f.ca.issue(pub, "mls://example.com/"+name, f.serial, f.now.Add(-time.Hour), f.now.Add(time.Hour), usage)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// client is a Client with its own store and the fixture's validator and
// clock.
func (f *x509Fixture) client(t *testing.T, cred credential.Credential, signer crypto.Signer, v credential.Validator) *mls.Client {
	t.Helper()
	c, err := mls.NewClient(context.Background(), memory.New(), cred, signer, v, mls.ClientOptions{Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestX509CreationChecksKey: a client whose certificate holds another key
// than its signer gets no key package and no group (RFC 9420, Section 5.3),
// with ErrInvalidArgument and credential.ErrKeyMismatch.
func TestX509CreationChecksKey(t *testing.T) {
	ctx := context.Background()
	f := newX509Fixture(t)
	suite := mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256
	signer, other := p256Signer(t), p256Signer(t)
	c := f.client(t, f.cred(t, other.Public(), "mallory", x509.KeyUsageDigitalSignature), signer, f.validator())
	if _, err := c.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{}); !errors.Is(err, mls.ErrInvalidArgument) || !errors.Is(err, credential.ErrKeyMismatch) {
		t.Errorf("NewKeyPackage: got %v, want ErrInvalidArgument and ErrKeyMismatch", err)
	}
	if _, err := c.CreateGroup(ctx, suite, mls.GroupConfig{}); !errors.Is(err, mls.ErrInvalidArgument) || !errors.Is(err, credential.ErrKeyMismatch) {
		t.Errorf("CreateGroup: got %v, want ErrInvalidArgument and ErrKeyMismatch", err)
	}
	kps, err := c.KeyPackages(ctx)
	if err != nil || len(kps) != 0 {
		t.Errorf("%d key packages stored after the refusals (%v)", len(kps), err)
	}
	// The same client with the certificate's own key works.
	good := f.client(t, f.cred(t, signer.Public(), "alice", x509.KeyUsageDigitalSignature), signer, f.validator())
	if _, err := good.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{}); err != nil {
		t.Errorf("matching certificate: %v", err)
	}
	if _, err := good.CreateGroup(ctx, suite, mls.GroupConfig{}); err != nil {
		t.Errorf("matching certificate: %v", err)
	}
}

// TestX509Ed448KeyPackage: an Ed448 certificate cannot be bound to an
// Ed448 signer with crypto/x509, so key package creation says so.
func TestX509Ed448KeyPackage(t *testing.T) {
	ctx := context.Background()
	_, key, err := ed448.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := ed448CertDER(t, key)
	cred, err := credential.NewX509([][]byte{der})
	if err != nil {
		t.Fatal(err)
	}
	c, err := mls.NewClient(ctx, memory.New(), cred, key, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, suite := range []mls.CipherSuite{mls.MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, mls.MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448} {
		if _, err := c.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{}); !errors.Is(err, credential.ErrUnsupportedCertificate) {
			t.Errorf("%v: NewKeyPackage: got %v, want ErrUnsupportedCertificate", suite, err)
		}
		if _, err := c.CreateGroup(ctx, suite, mls.GroupConfig{}); !errors.Is(err, credential.ErrUnsupportedCertificate) {
			t.Errorf("%v: CreateGroup: got %v, want ErrUnsupportedCertificate", suite, err)
		}
	}
}

// TestX509GroupRejects: a member's validator refuses, with the typed error,
// a key package whose certificate is expired at the validator's time, from
// an unknown root, or without digitalSignature; the group does not change.
func TestX509GroupRejects(t *testing.T) {
	ctx := context.Background()
	suite := mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256
	f := newX509Fixture(t)
	aliceKey := p256Signer(t)
	alice := f.client(t, f.cred(t, aliceKey.Public(), "alice", x509.KeyUsageDigitalSignature), aliceKey, f.validator())
	g, err := alice.CreateGroup(ctx, suite, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}

	stranger := newX509Fixture(t) // another CA
	cases := []struct {
		name  string
		issue func(pub crypto.PublicKey) credential.Credential
		want  error
	}{
		{"unknown root", func(pub crypto.PublicKey) credential.Credential {
			return stranger.cred(t, pub, "bob", x509.KeyUsageDigitalSignature)
		}, credential.ErrUnknownAuthority},
		{"expired", func(pub crypto.PublicKey) credential.Credential {
			f.serial++
			c, err := f.ca.issue(pub, "mls://example.com/bob", f.serial, f.now.Add(-2*time.Hour), f.now.Add(-time.Minute), x509.KeyUsageDigitalSignature)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, credential.ErrCertificateExpired},
		{"key usage", func(pub crypto.PublicKey) credential.Credential {
			return f.cred(t, pub, "bob", x509.KeyUsageKeyAgreement)
		}, credential.ErrKeyUsage},
	}
	for _, tc := range cases {
		bobKey := p256Signer(t)
		// Bob's own client accepts anything, so he can make the key
		// package; alice's validator is the one that refuses it.
		bob := f.client(t, tc.issue(bobKey.Public()), bobKey, credential.AcceptAll)
		kp, err := bob.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
		if err != nil {
			t.Fatalf("%s: NewKeyPackage: %v", tc.name, err)
		}
		epoch := g.Epoch()
		if _, err := g.AddMembers(ctx, kp); !errors.Is(err, tc.want) {
			t.Errorf("%s: AddMembers: got %v, want %v", tc.name, err, tc.want)
		}
		if g.Epoch() != epoch || len(g.Members()) != 1 || g.PendingCommit() != nil {
			t.Errorf("%s: the refused add changed the group", tc.name)
		}
	}

	// A good certificate is accepted, and the Welcome's sender is checked
	// by the joiner's validator too.
	bobKey := p256Signer(t)
	bob := f.client(t, f.cred(t, bobKey.Public(), "bob", x509.KeyUsageDigitalSignature), bobKey, f.validator())
	kp, err := bob.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.AddMembers(ctx, kp)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	tree, err := g.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	// A joiner whose clock is past alice's certificate refuses the group.
	late := f.validator()
	late.Now = func() time.Time { return f.now.Add(2 * time.Hour) }
	bobLate, err := mls.NewClient(ctx, bob.Store(), bob.Credential(), bobKey, late, mls.ClientOptions{Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bobLate.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{RatchetTree: tree}); !errors.Is(err, credential.ErrCertificateExpired) {
		t.Errorf("joining with a later clock: got %v, want ErrCertificateExpired", err)
	}
	sw, err := bob.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{RatchetTree: tree})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Join(ctx); err != nil {
		t.Fatal(err)
	}
}

// ed448CertDER builds a self-signed Ed448 certificate (RFC 8410: id-Ed448
// is 1.3.101.113, without parameters) by hand with encoding/asn1, since
// crypto/x509 cannot create one.
func ed448CertDER(t *testing.T, key ed448.PrivateKey) []byte {
	t.Helper()
	alg := pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 101, 113}}
	name, err := asn1.Marshal(pkix.Name{CommonName: "ed448"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	type validity struct{ NotBefore, NotAfter time.Time }
	type spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	pub := key.Public().(ed448.PublicKey)
	now := time.Now().UTC().Truncate(time.Second)
	tbs, err := asn1.Marshal(struct {
		Version   int `asn1:"explicit,tag:0"`
		Serial    *big.Int
		Signature pkix.AlgorithmIdentifier
		Issuer    asn1.RawValue
		Validity  validity
		Subject   asn1.RawValue
		SPKI      spki
	}{2, big.NewInt(448), alg, asn1.RawValue{FullBytes: name}, validity{now.Add(-time.Hour), now.Add(time.Hour)},
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
