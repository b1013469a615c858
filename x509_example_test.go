package mls_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"math/big"
	"net/url"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage/memory"
)

// exampleCA is a small certificate authority made with crypto/x509.
type exampleCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newExampleCA(name string, notBefore, notAfter time.Time) (*exampleCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &exampleCA{cert: cert, key: key}, err
}

// issue certifies pub for the identity uri, for MLS signatures.
func (ca *exampleCA) issue(pub crypto.PublicKey, uri string, serial int64, notBefore, notAfter time.Time, usage x509.KeyUsage) (credential.Credential, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return credential.Credential{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: u.Path},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: usage, URIs: []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return credential.Credential{}, err
	}
	return credential.NewX509([][]byte{der})
}

// Members authenticate each other with X.509 certificates from a common
// CA: every credential a group sees goes through credential.X509Validator,
// which takes the member's identity from the certificate's URI SAN.
func Example_x509Credentials() {
	ctx := context.Background()
	suite := mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256
	now := time.Now()
	ca, err := newExampleCA("Example Messaging CA", now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	validator := &credential.X509Validator{Roots: roots, Identity: credential.IdentityURI}

	newMember := func(uri string, serial int64) *mls.Client {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		cred, err := ca.issue(key.Public(), uri, serial, now.Add(-time.Hour), now.Add(time.Hour), x509.KeyUsageDigitalSignature)
		if err != nil {
			log.Fatal(err)
		}
		c, err := mls.NewClient(ctx, memory.New(), cred, key, validator, mls.ClientOptions{})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	alice, bob := newMember("mls://example.com/alice", 2), newMember("mls://example.com/bob", 3)

	kp, err := bob.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	group, err := alice.CreateGroup(ctx, suite, mls.GroupConfig{})
	if err != nil {
		log.Fatal(err)
	}
	res, err := group.AddMembers(ctx, kp) // alice's validator checks bob's certificate
	if err != nil {
		log.Fatal(err)
	}
	if err := group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	tree, err := group.ExportRatchetTree()
	if err != nil {
		log.Fatal(err)
	}
	staged, err := bob.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{RatchetTree: tree}) // and bob's, alice's
	if err != nil {
		log.Fatal(err)
	}
	bobGroup, err := staged.Join(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range bobGroup.Members() {
		id, err := validator.VerifiedIdentity(m.Credential, m.SignatureKey)
		fmt.Println(m.Index, id, err)
	}
	// Output:
	// 0 mls://example.com/alice <nil>
	// 1 mls://example.com/bob <nil>
}
