// Package ciphersuite implements the cryptographic operations of the seven
// MLS cipher suites of RFC 9420, Section 17.1 (IANA "MLS Cipher Suites"),
// and the labeled helpers of Section 5: ExpandWithLabel, DeriveSecret and
// DeriveTreeSecret (Sections 8 and 9), SignWithLabel / VerifyWithLabel
// (Section 5.1.2), EncryptWithLabel / DecryptWithLabel (Section 5.1.3) and
// RefHash (Section 5.2).
//
// Every primitive comes from the standard library (crypto/hpke, crypto/ecdh,
// crypto/ecdsa, crypto/ed25519, crypto/hkdf, crypto/hmac, crypto/aes) or
// golang.org/x/crypto/chacha20poly1305; only X448 and Ed448 come from
// github.com/cloudflare/circl, which the standard library lacks.
//
// Signing goes through crypto.Signer, so keys held in an HSM or a KMS can be
// used as long as their Public method returns a key of the suite's type.
package ciphersuite
