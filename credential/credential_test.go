package credential_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/mlskit/mls/credential"
)

func TestBasic(t *testing.T) {
	id := []byte("alice@example.com")
	c := credential.NewBasic(id)
	id[0] = 'X' // the constructor must have copied its input
	if got := c.Identity(); string(got) != "alice@example.com" {
		t.Fatalf("Identity() = %q", got)
	}
	if c.Type() != credential.Basic || c.Type().String() != "basic" {
		t.Fatalf("Type() = %v", c.Type())
	}
	got := c.Identity()
	got[0] = 'Y' // nor may the accessor expose internal state
	if string(c.Identity()) != "alice@example.com" {
		t.Fatal("Identity() returned internal state")
	}
	if !c.Equal(credential.NewBasic([]byte("alice@example.com"))) || c.Equal(credential.NewBasic([]byte("bob"))) {
		t.Fatal("Equal gives wrong answers")
	}
	if c.String() != `basic("alice@example.com")` {
		t.Fatalf("String() = %s", c)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back credential.Credential
	if err := back.UnmarshalBinary(b); err != nil || !back.Equal(c) {
		t.Fatalf("UnmarshalBinary(MarshalBinary()) = %v, %v", back, err)
	}
}

// TestCredentialEncoding checks MarshalBinary against the Credential
// structure of RFC 9420, Section 5.3, written out by hand, and that
// UnmarshalBinary rejects every truncation and trailing bytes.
func TestCredentialEncoding(t *testing.T) {
	basic := credential.NewBasic([]byte("ab"))
	// credential_type = basic (0x0001), identity<V> = 2 bytes "ab".
	want := []byte{0x00, 0x01, 0x02, 'a', 'b'}
	got, err := basic.MarshalBinary()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary = %x, %v; want %x", got, err, want)
	}
	der := selfSigned(t, "x")
	x, err := credential.NewX509([][]byte{der})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []credential.Credential{basic, x} {
		b, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back credential.Credential
		if err := back.UnmarshalBinary(b); err != nil || !back.Equal(c) || back.Type() != c.Type() {
			t.Fatalf("%v: round trip gave %v, %v", c, back, err)
		}
		for n := range len(b) {
			var bad credential.Credential
			if err := bad.UnmarshalBinary(b[:n]); !errors.Is(err, credential.ErrInvalid) {
				t.Fatalf("%v: prefix of %d bytes: err = %v", c, n, err)
			}
		}
		if err := back.UnmarshalBinary(append(b, 0)); !errors.Is(err, credential.ErrInvalid) {
			t.Fatalf("%v: trailing byte: err = %v", c, err)
		}
		if !back.Equal(c) {
			t.Fatal("a failed UnmarshalBinary changed the credential")
		}
	}
	var nilCred *credential.Credential
	if err := nilCred.UnmarshalBinary(want); !errors.Is(err, credential.ErrInvalid) {
		t.Fatalf("nil receiver: err = %v", err)
	}
}

func selfSigned(t *testing.T, cn string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestX509(t *testing.T) {
	leaf, root := selfSigned(t, "leaf"), selfSigned(t, "root")
	c, err := credential.NewX509([][]byte{leaf, root})
	if err != nil {
		t.Fatal(err)
	}
	if c.Type() != credential.X509 {
		t.Fatalf("Type() = %v", c.Type())
	}
	certs := c.Certificates()
	if len(certs) != 2 || !bytes.Equal(certs[0], leaf) || !bytes.Equal(certs[1], root) {
		t.Fatal("Certificates() does not return the chain in order")
	}
	cert, _ := x509.ParseCertificate(leaf)
	if !bytes.Equal(c.Identity(), cert.RawSubject) {
		t.Fatal("Identity() of an X.509 credential is not the leaf subject")
	}
	if c.String() != "x509(2 certificates)" {
		t.Fatalf("String() = %s", c)
	}
}

func TestX509Rejects(t *testing.T) {
	if _, err := credential.NewX509(nil); !errors.Is(err, credential.ErrInvalid) {
		t.Fatalf("empty chain: %v", err)
	}
	if _, err := credential.NewX509([][]byte{{0x30, 0x03, 0x01, 0x01, 0xff}}); !errors.Is(err, credential.ErrInvalid) {
		t.Fatalf("garbage certificate: %v", err)
	}
}

func TestValidatorFunc(t *testing.T) {
	deny := errors.New("unknown identity")
	v := credential.ValidatorFunc(func(c credential.Credential, _ []byte) error {
		if string(c.Identity()) != "alice" {
			return deny
		}
		return nil
	})
	if err := v.Validate(credential.NewBasic([]byte("alice")), nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(credential.NewBasic([]byte("mallory")), nil); !errors.Is(err, deny) {
		t.Fatalf("got %v", err)
	}
	if err := credential.AcceptAll.Validate(credential.NewBasic(nil), nil); err != nil {
		t.Fatal(err)
	}
}

func Example() {
	alice := credential.NewBasic([]byte("alice"))
	fmt.Println(alice.Type(), string(alice.Identity()))
	// Output: basic alice
}

func TestCheckSignatureKey(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "member"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := credential.NewX509([][]byte{der})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignatureKey(pub); err != nil {
		t.Fatalf("matching key rejected: %v", err)
	}
	other := bytes.Clone(pub)
	other[len(other)-1] ^= 1
	if err := c.CheckSignatureKey(other); !errors.Is(err, credential.ErrKeyMismatch) {
		t.Fatalf("other key: got %v", err)
	}
	if err := credential.NewBasic([]byte("x")).CheckSignatureKey(other); err != nil {
		t.Fatalf("basic credential: %v", err)
	}
}

// TestNilValidatorFunc: a nil ValidatorFunc fails closed, without a panic.
func TestNilValidatorFunc(t *testing.T) {
	var v credential.Validator = credential.ValidatorFunc(nil)
	if err := v.Validate(credential.NewBasic([]byte("a")), nil); !errors.Is(err, credential.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}
