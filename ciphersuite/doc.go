// Package ciphersuite implements the cryptographic operations of the seven
// MLS cipher suites of RFC 9420, Section 17.1 (IANA "MLS Cipher Suites"),
// the eleven post-quantum suites of draft-ietf-mls-pq-ciphersuites-06, and
// the labeled helpers of Section 5: ExpandWithLabel, DeriveSecret and
// DeriveTreeSecret (Sections 8 and 9), SignWithLabel / VerifyWithLabel
// (Section 5.1.2), EncryptWithLabel / DecryptWithLabel (Section 5.1.3) and
// RefHash (Section 5.2).
//
// Every primitive comes from the standard library (crypto/hpke, crypto/ecdh,
// crypto/ecdsa, crypto/ed25519, crypto/hkdf, crypto/hmac, crypto/aes) or
// golang.org/x/crypto/chacha20poly1305; only X448, Ed448 and ML-DSA come
// from github.com/cloudflare/circl, which the standard library lacks.
//
// Signing goes through crypto.Signer, so keys held in an HSM or a KMS can be
// used as long as their Public method returns a key of the suite's type.
//
// # Post-quantum suites
//
// draft-ietf-mls-pq-ciphersuites-06 (Section 3.1) leaves the code points
// as TBD1 to TBD11. Until IANA assigns them, this package numbers them in
// the private-use range of RFC 9420, Section 17.1 (0xF000-0xFFFF), at
// 0xF030 + n for TBDn. The range avoids ts-mls's private-use PQ suites
// (0xF007-0xF012), but only peers using this same table interoperate, and
// the values will change to IANA's. All and PostQuantum list the two sets;
// ID.IsPostQuantum tells them apart. No official test vectors exist for
// them.
//
//	Code    Draft  Name                                                    KEM (HPKE id)            AEAD              Hash/KDF  Signature
//	0xF031  TBD1   MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519         X-Wing (0x647a)          AES-128-GCM       SHA-256   Ed25519
//	0xF032  TBD2   MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519         X-Wing (0x647a)          AES-256-GCM       SHA-384   Ed25519
//	0xF033  TBD3   MLS_128_MLKEM768P256_AES128GCM_SHA256_P256              MLKEM768-P256 (0x0050)   AES-128-GCM       SHA-256   ECDSA P-256
//	0xF034  TBD4   MLS_128_MLKEM768P256_AES256GCM_SHA384_P256              MLKEM768-P256 (0x0050)   AES-256-GCM       SHA-384   ECDSA P-256
//	0xF035  TBD5   MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384             MLKEM1024-P384 (0x0051)  AES-256-GCM       SHA-384   ECDSA P-384
//	0xF036  TBD6   MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519               ML-KEM-768 (0x0041)      AES-256-GCM       SHA-384   Ed25519
//	0xF037  TBD7   MLS_128_MLKEM768_AES256GCM_SHA384_P256                  ML-KEM-768 (0x0041)      AES-256-GCM       SHA-384   ECDSA P-256
//	0xF038  TBD8   MLS_192_MLKEM1024_AES256GCM_SHA384_P384                 ML-KEM-1024 (0x0042)     AES-256-GCM       SHA-384   ECDSA P-384
//	0xF039  TBD9   MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44  X-Wing (0x647a)          ChaCha20Poly1305  SHA-384   ML-DSA-44
//	0xF03A  TBD10  MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65               ML-KEM-768 (0x0041)      AES-256-GCM       SHA-384   ML-DSA-65
//	0xF03B  TBD11  MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87              ML-KEM-1024 (0x0042)     AES-256-GCM       SHA-384   ML-DSA-87
//
// Sources: the KEMs are crypto/hpke's (draft-ietf-hpke-pq; MLKEM768X25519
// is X-Wing), the AEADs crypto/hpke's and this package's usual ones, the
// HPKE KDF is HKDF with the suite's hash, Ed25519 and ECDSA come from the
// standard library, ML-DSA (FIPS 204, "pure", empty context string, as
// draft-ietf-tls-mldsa uses it) from circl's sign/mldsa. ML-DSA private keys
// are the 32-byte seed ξ (NewSigner also takes the expanded key). Sizes:
// ML-KEM-768 / X-Wing / MLKEM768-P256 / ML-KEM-1024 / MLKEM1024-P384
// public keys are 1,184 / 1,216 / 1,249 / 1,568 / 1,665 bytes; ML-DSA-44 /
// 65 / 87 public keys 1,312 / 1,952 / 2,592 bytes and signatures 2,420 /
// 3,309 / 4,627 bytes.
//
// OpenMLS's experimental MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519
// (0x004D, with X-Wing as HPKE KEM 0x004D; X-Wing draft 2 at first, draft 6
// in later releases) is not supported. Even where its X-Wing computes the
// same KEM as crypto/hpke's, HPKE puts the KEM identifier into the key
// schedule and into DeriveKeyPair, and neither crypto/hpke nor circl's HPKE
// runs X-Wing under an identifier other than 0x647a or accepts an outside
// KEM. Supporting it would mean writing HPKE here.
package ciphersuite
