package ciphersuite_test

import (
	"errors"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
)

// Example signs and verifies with a label (RFC 9420, Section 5.1.2),
// encrypts to an HPKE key with a label (Section 5.1.3), and shows the error
// for an unknown suite.
func Example() {
	suite, err := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%v: Nh=%d Nk=%d Nn=%d\n", suite, suite.HashSize(), suite.AEADKeySize(), suite.AEADNonceSize())

	signer, err := suite.GenerateSignatureKey(nil) // crypto/rand
	if err != nil {
		panic(err)
	}
	pub, _ := suite.SignaturePublicKey(signer)
	sig, err := suite.SignWithLabel(signer, "LeafNodeTBS", []byte("leaf node"))
	if err != nil {
		panic(err)
	}
	fmt.Println("valid:", suite.VerifyWithLabel(pub, "LeafNodeTBS", []byte("leaf node"), sig) == nil)
	err = suite.VerifyWithLabel(pub, "LeafNodeTBS", []byte("leaf nodes"), sig)
	fmt.Println("altered content:", errors.Is(err, ciphersuite.ErrInvalidSignature))

	priv, hpkePub, err := suite.GenerateKeyPair(nil)
	if err != nil {
		panic(err)
	}
	kemOutput, ct, err := suite.EncryptWithLabel(hpkePub, "Welcome", []byte("context"), []byte("group secrets"))
	if err != nil {
		panic(err)
	}
	pt, err := suite.DecryptWithLabel(priv, "Welcome", []byte("context"), kemOutput, ct)
	fmt.Printf("decrypted: %q %v\n", pt, err)
	_, err = suite.DecryptWithLabel(priv, "Welcome", []byte("other context"), kemOutput, ct)
	fmt.Println("wrong context:", errors.Is(err, ciphersuite.ErrDecrypt))

	_, err = ciphersuite.Lookup(0x0a0a) // a GREASE value
	fmt.Println(err, errors.Is(err, ciphersuite.ErrUnsupported))
	// Output:
	// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519: Nh=32 Nk=16 Nn=12
	// valid: true
	// altered content: true
	// decrypted: "group secrets" <nil>
	// wrong context: true
	// mls: unsupported cipher suite 0x0a0a true
}
