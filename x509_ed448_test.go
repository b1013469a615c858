package mls_test

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/ed448"
)

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
