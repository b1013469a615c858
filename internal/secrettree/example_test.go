package secrettree_test

import (
	"bytes"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/secrettree"
)

func Example() {
	s, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	encryptionSecret := bytes.Repeat([]byte{7}, s.HashSize()) // from the key schedule

	alice, _ := secrettree.New(s, encryptionSecret, 4, secrettree.Config{})
	bob, _ := secrettree.New(s, encryptionSecret, 4, secrettree.Config{})

	// Alice (leaf 0) sends her first application message.
	kn, _ := alice.Next(0, secrettree.Application)
	ct, _ := s.Seal(kn.Key, kn.Nonce, nil, []byte("hello"))

	// Bob looks the key up, decrypts, and only then consumes it.
	rk, _ := bob.Get(0, secrettree.Application, kn.Generation)
	pt, err := s.Open(rk.Key, rk.Nonce, nil, ct)
	if err == nil {
		_ = bob.Consume(0, secrettree.Application, kn.Generation)
	}
	fmt.Printf("%s\n", pt)
	fmt.Println(rk)

	// The same generation cannot be used twice.
	_, err = bob.Get(0, secrettree.Application, kn.Generation)
	fmt.Println(err)
	// Output:
	// hello
	// secrettree.KeyNonce{Generation: 0, Key: REDACTED, Nonce: REDACTED}
	// secrettree: Get leaf 0 application ratchet generation 0: generation already used or outside the out-of-order window
}
