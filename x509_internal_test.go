package mls

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/storage/memory"
)

// TestX509ReceivedLeafKeyMismatch: a key package whose X.509 certificate
// holds another key than its leaf's signature key, correctly signed by that
// signature key (which the creating Client refuses to make, so it is forged
// here), is refused by the receiver's leaf validation (RFC 9420, Section
// 5.3) with ErrValidation and credential.ErrKeyMismatch, before the
// application's validator (AcceptAll) is asked.
func TestX509ReceivedLeafKeyMismatch(t *testing.T) {
	ctx := context.Background()
	suite := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	s, _ := ciphersuite.Lookup(suite)
	certKey, _, _ := ed25519.GenerateKey(rand.Reader)
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bob"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	_, caKey, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, certKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := credential.NewX509([][]byte{der})
	if err != nil {
		t.Fatal(err)
	}

	caps := Capabilities{Credentials: []credential.Type{credential.X509}}
	alice, err := NewClient(ctx, memory.New(), credential.NewBasic([]byte("alice")), nil, credential.AcceptAll, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, suite, GroupConfig{Capabilities: caps})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewClient(ctx, memory.New(), credential.NewBasic([]byte("bob")), signer, credential.AcceptAll, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, err := bob.NewKeyPackage(ctx, suite, KeyPackageOptions{Capabilities: caps})
	if err != nil {
		t.Fatal(err)
	}

	// forge replaces the credential and signs leaf and key package again
	// with bob's real signature key.
	forge := func(c credential.Credential) *KeyPackage {
		kp := good.kp
		kp.LeafNode.Credential = wireCred(c)
		if err := kp.LeafNode.Sign(s, signer, nil, 0); err != nil {
			t.Fatal(err)
		}
		if err := kp.Sign(s, signer); err != nil {
			t.Fatal(err)
		}
		raw, err := message.Marshal(&kp)
		if err != nil {
			t.Fatal(err)
		}
		out, err := ParseKeyPackage(raw)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	if _, err := g.AddMembers(ctx, forge(cert)); !errors.Is(err, ErrValidation) || !errors.Is(err, credential.ErrKeyMismatch) {
		t.Fatalf("certificate of another key: got %v, want ErrValidation and ErrKeyMismatch", err)
	}
	if g.Epoch() != 0 || len(g.Members()) != 1 {
		t.Fatal("the refused add changed the group")
	}
	// The forging alone is not what is refused: with a certificate of the
	// signature key itself the same key package is accepted.
	der2, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	matching, err := credential.NewX509([][]byte{der2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddMembers(ctx, forge(matching)); err != nil {
		t.Fatalf("matching certificate: %v", err)
	}
}
