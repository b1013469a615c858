package ciphersuite

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	circlhpke "github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
	"golang.org/x/crypto/chacha20poly1305"
)

// ID is a cipher suite identifier from the IANA "MLS Cipher Suites"
// registry (RFC 9420, Section 17.1).
type ID uint16

// The cipher suites of RFC 9420, Section 17.1, with their IANA names.
const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        ID = 0x0001
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             ID = 0x0002
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 ID = 0x0003
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            ID = 0x0004
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             ID = 0x0005
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     ID = 0x0006
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             ID = 0x0007
)

// The post-quantum cipher suites of draft-ietf-mls-pq-ciphersuites-06,
// Section 3.1 (TBD1 to TBD11, in the draft's order). The draft leaves their
// values to IANA, so these are private-use values (RFC 9420, Section 17.1:
// 0xF000-0xFFFF) chosen by this library: 0xF031 + (n-1) for TBDn. They do
// not overlap ts-mls's private-use PQ suites (0xF007-0xF012) and will change
// to the IANA values once the draft is assigned them; until then only peers
// that use this same table interoperate.
const (
	MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519        ID = 0xF031 // TBD1
	MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519        ID = 0xF032 // TBD2
	MLS_128_MLKEM768P256_AES128GCM_SHA256_P256             ID = 0xF033 // TBD3
	MLS_128_MLKEM768P256_AES256GCM_SHA384_P256             ID = 0xF034 // TBD4
	MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384            ID = 0xF035 // TBD5
	MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519              ID = 0xF036 // TBD6
	MLS_128_MLKEM768_AES256GCM_SHA384_P256                 ID = 0xF037 // TBD7
	MLS_192_MLKEM1024_AES256GCM_SHA384_P384                ID = 0xF038 // TBD8
	MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44 ID = 0xF039 // TBD9
	MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65              ID = 0xF03A // TBD10
	MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87             ID = 0xF03B // TBD11
)

// ErrUnsupported is wrapped by the error for a cipher suite ID this package
// does not implement.
var ErrUnsupported = errors.New("unsupported cipher suite")

// UnsupportedError reports an unknown or unimplemented cipher suite ID.
type UnsupportedError struct{ ID ID }

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("mls: unsupported cipher suite 0x%04x", uint16(e.ID))
}

func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

// ErrDecrypt is returned when AEAD or HPKE decryption fails.
var ErrDecrypt = errors.New("mls: decryption failed")

// ErrInvalidSignature is returned when a signature does not verify.
var ErrInvalidSignature = errors.New("mls: invalid signature")

// ErrInvalidKey is wrapped by errors for malformed public or private keys.
var ErrInvalidKey = errors.New("mls: invalid key")

// ErrSigner is wrapped by the error of SignWithLabel when there is no
// signer or its Sign method fails (a key in an HSM that cannot be reached,
// say); the signer's error is wrapped too.
var ErrSigner = errors.New("mls: signer failed")

type aeadKind int

const (
	aesGCM aeadKind = iota
	chachaPoly
)

type sigKind int

const (
	sigEd25519 sigKind = iota
	sigEd448
	sigECDSA
	sigMLDSA
)

// Suite is one MLS cipher suite. Suites are immutable and safe for
// concurrent use; get one with Lookup.
type Suite struct {
	id      ID
	name    string
	newHash func() hash.Hash
	hash    crypto.Hash
	nh      int // KDF output size, Nh
	aead    aeadKind
	nk      int // AEAD key size, Nk
	nn      int // AEAD nonce size, Nn
	kem     kem
	sig     sigKind
	curve   elliptic.Curve // for ECDSA
	mldsa   sign.Scheme    // for ML-DSA
}

var suites = map[ID]*Suite{}

func init() {
	add := func(s *Suite) { suites[s.id] = s }
	add(&Suite{id: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, name: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
		newHash: sha256.New, hash: crypto.SHA256, nh: 32, aead: aesGCM, nk: 16, nn: 12,
		kem: newStdKEM(hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES128GCM()), sig: sigEd25519})
	add(&Suite{id: MLS_128_DHKEMP256_AES128GCM_SHA256_P256, name: "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
		newHash: sha256.New, hash: crypto.SHA256, nh: 32, aead: aesGCM, nk: 16, nn: 12,
		kem: newStdKEM(hpke.DHKEM(ecdh.P256()), hpke.HKDFSHA256(), hpke.AES128GCM()), sig: sigECDSA, curve: elliptic.P256()})
	add(&Suite{id: MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519, name: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
		newHash: sha256.New, hash: crypto.SHA256, nh: 32, aead: chachaPoly, nk: 32, nn: 12,
		kem: newStdKEM(hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.ChaCha20Poly1305()), sig: sigEd25519})
	add(&Suite{id: MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448, name: "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
		newHash: sha512.New, hash: crypto.SHA512, nh: 64, aead: aesGCM, nk: 32, nn: 12,
		kem: newX448KEM(circlhpke.AEAD_AES256GCM), sig: sigEd448})
	add(&Suite{id: MLS_256_DHKEMP521_AES256GCM_SHA512_P521, name: "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
		newHash: sha512.New, hash: crypto.SHA512, nh: 64, aead: aesGCM, nk: 32, nn: 12,
		kem: newStdKEM(hpke.DHKEM(ecdh.P521()), hpke.HKDFSHA512(), hpke.AES256GCM()), sig: sigECDSA, curve: elliptic.P521()})
	add(&Suite{id: MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448, name: "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
		newHash: sha512.New, hash: crypto.SHA512, nh: 64, aead: chachaPoly, nk: 32, nn: 12,
		kem: newX448KEM(circlhpke.AEAD_ChaCha20Poly1305), sig: sigEd448})
	add(&Suite{id: MLS_256_DHKEMP384_AES256GCM_SHA384_P384, name: "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
		newHash: sha512.New384, hash: crypto.SHA384, nh: 48, aead: aesGCM, nk: 32, nn: 12,
		kem: newStdKEM(hpke.DHKEM(ecdh.P384()), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigECDSA, curve: elliptic.P384()})

	// draft-ietf-mls-pq-ciphersuites-06, Section 3.1, Table 2. The KEMs
	// are those of draft-ietf-hpke-pq as crypto/hpke implements them
	// (MLKEM768X25519 is KEM 0x647a, X-Wing); the HPKE KDF and the MLS
	// hash follow the suite's hash.
	sha256Suite := func(s *Suite) *Suite { s.newHash, s.hash, s.nh = sha256.New, crypto.SHA256, 32; return s }
	sha384Suite := func(s *Suite) *Suite { s.newHash, s.hash, s.nh = sha512.New384, crypto.SHA384, 48; return s }
	add(sha256Suite(&Suite{id: MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519, name: "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519",
		aead: aesGCM, nk: 16, nn: 12, kem: newStdKEM(hpke.MLKEM768X25519(), hpke.HKDFSHA256(), hpke.AES128GCM()), sig: sigEd25519}))
	add(sha384Suite(&Suite{id: MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519, name: "MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519",
		aead: aesGCM, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM768X25519(), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigEd25519}))
	add(sha256Suite(&Suite{id: MLS_128_MLKEM768P256_AES128GCM_SHA256_P256, name: "MLS_128_MLKEM768P256_AES128GCM_SHA256_P256",
		aead: aesGCM, nk: 16, nn: 12, kem: newStdKEM(hpke.MLKEM768P256(), hpke.HKDFSHA256(), hpke.AES128GCM()), sig: sigECDSA, curve: elliptic.P256()}))
	add(sha384Suite(&Suite{id: MLS_128_MLKEM768P256_AES256GCM_SHA384_P256, name: "MLS_128_MLKEM768P256_AES256GCM_SHA384_P256",
		aead: aesGCM, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM768P256(), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigECDSA, curve: elliptic.P256()}))
	add(sha384Suite(&Suite{id: MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384, name: "MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384",
		aead: aesGCM, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM1024P384(), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigECDSA, curve: elliptic.P384()}))
	add(sha384Suite(&Suite{id: MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519, name: "MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519",
		aead: aesGCM, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM768(), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigEd25519}))
	add(sha384Suite(&Suite{id: MLS_128_MLKEM768_AES256GCM_SHA384_P256, name: "MLS_128_MLKEM768_AES256GCM_SHA384_P256",
		aead: aesGCM, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM768(), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigECDSA, curve: elliptic.P256()}))
	add(sha384Suite(&Suite{id: MLS_192_MLKEM1024_AES256GCM_SHA384_P384, name: "MLS_192_MLKEM1024_AES256GCM_SHA384_P384",
		aead: aesGCM, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM1024(), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigECDSA, curve: elliptic.P384()}))
	add(sha384Suite(&Suite{id: MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44, name: "MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44",
		aead: chachaPoly, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM768X25519(), hpke.HKDFSHA384(), hpke.ChaCha20Poly1305()), sig: sigMLDSA, mldsa: mldsa44.Scheme()}))
	add(sha384Suite(&Suite{id: MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65, name: "MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65",
		aead: aesGCM, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM768(), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigMLDSA, mldsa: mldsa65.Scheme()}))
	add(sha384Suite(&Suite{id: MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87, name: "MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87",
		aead: aesGCM, nk: 32, nn: 12, kem: newStdKEM(hpke.MLKEM1024(), hpke.HKDFSHA384(), hpke.AES256GCM()), sig: sigMLDSA, mldsa: mldsa87.Scheme()}))
}

// Lookup returns the suite for id, or an *UnsupportedError.
func Lookup(id ID) (*Suite, error) {
	if s, ok := suites[id]; ok {
		return s, nil
	}
	return nil, &UnsupportedError{ID: id}
}

// All returns the suite IDs of RFC 9420, Section 17.1, in ascending order.
// The post-quantum suites are listed by PostQuantum.
func All() []ID {
	return []ID{1, 2, 3, 4, 5, 6, 7}
}

// PostQuantum returns the IDs of the suites of
// draft-ietf-mls-pq-ciphersuites-06 (TBD1 to TBD11), at the private-use
// values of this package, in ascending order.
func PostQuantum() []ID {
	return []ID{
		MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519,
		MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519,
		MLS_128_MLKEM768P256_AES128GCM_SHA256_P256,
		MLS_128_MLKEM768P256_AES256GCM_SHA384_P256,
		MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384,
		MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519,
		MLS_128_MLKEM768_AES256GCM_SHA384_P256,
		MLS_192_MLKEM1024_AES256GCM_SHA384_P384,
		MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44,
		MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65,
		MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87,
	}
}

// IsPostQuantum reports whether id is one of the suites of PostQuantum.
func (id ID) IsPostQuantum() bool {
	return id >= MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 && id <= MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87
}

// String returns the IANA name of the suite, or its hex value if unknown.
func (id ID) String() string {
	if s, ok := suites[id]; ok {
		return s.name
	}
	return fmt.Sprintf("0x%04x", uint16(id))
}

// ID returns the suite's IANA identifier.
func (s *Suite) ID() ID { return s.id }

// String returns the IANA name.
func (s *Suite) String() string { return s.name }

// HashSize returns Nh, the output size of the suite's hash and KDF.
func (s *Suite) HashSize() int { return s.nh }

// AEADKeySize returns Nk.
func (s *Suite) AEADKeySize() int { return s.nk }

// AEADNonceSize returns Nn.
func (s *Suite) AEADNonceSize() int { return s.nn }

// Hash returns the suite hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(nil)
}

// NewHash returns a fresh hash.Hash of the suite's hash function.
func (s *Suite) NewHash() hash.Hash { return s.newHash() }

// MAC computes HMAC with the suite hash (RFC 9420, Section 5.1: "MAC").
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// VerifyMAC checks a MAC in constant time.
func (s *Suite) VerifyMAC(key, data, tag []byte) bool {
	return hmac.Equal(s.MAC(key, data), tag)
}

// Extract is HKDF-Extract with the suite hash.
func (s *Suite) Extract(salt, ikm []byte) []byte {
	prk, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		panic("ciphersuite: HKDF-Extract: " + err.Error()) // cannot fail for HMAC hashes
	}
	return prk
}

// Expand is HKDF-Expand with the suite hash. length must be at most
// 255*Nh, which every MLS use satisfies; larger values are a programming
// error and panic.
func (s *Suite) Expand(prk, info []byte, length int) []byte {
	out, err := hkdf.Expand(s.newHash, prk, string(info), length)
	if err != nil {
		panic("ciphersuite: HKDF-Expand: " + err.Error())
	}
	return out
}

// labelPrefix is prepended to every label (RFC 9420, Sections 5.1.2, 5.1.3, 8).
const labelPrefix = "MLS 1.0 "

// appendLength appends the minimal variable-length integer encoding of a
// vector length n < 2^30 (RFC 9420, Section 2.1.2).
func appendLength(b []byte, n int) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, byte(n>>8)|0x40, byte(n))
	default:
		return append(b, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendOpaque appends opaque<V> with a variable-length header (Section 2.1.2).
func appendOpaque(b, v []byte) []byte {
	return append(appendLength(b, len(v)), v...)
}

// appendLabel appends opaque label<V> = "MLS 1.0 " + label.
func appendLabel(b []byte, label string) []byte {
	b = appendLength(b, len(labelPrefix)+len(label))
	b = append(b, labelPrefix...)
	return append(b, label...)
}

// ExpandWithLabel implements RFC 9420, Section 8:
//
//	struct { uint16 length; opaque label<V>; opaque context<V>; } KDFLabel;
//	ExpandWithLabel(Secret, Label, Context, Length) =
//	    KDF.Expand(Secret, KDFLabel, Length)
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	info := make([]byte, 0, 2+4+len(labelPrefix)+len(label)+4+len(context))
	info = append(info, byte(length>>8), byte(length))
	info = appendLabel(info, label)
	info = appendOpaque(info, context)
	return s.Expand(secret, info, length)
}

// DeriveSecret implements RFC 9420, Section 8:
// DeriveSecret(Secret, Label) = ExpandWithLabel(Secret, Label, "", KDF.Nh).
func (s *Suite) DeriveSecret(secret []byte, label string) []byte {
	return s.ExpandWithLabel(secret, label, nil, s.nh)
}

// DeriveTreeSecret implements RFC 9420, Section 9:
// DeriveTreeSecret(Secret, Label, Generation, Length) =
// ExpandWithLabel(Secret, Label, Generation, Length), Generation as uint32.
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) []byte {
	g := [4]byte{byte(generation >> 24), byte(generation >> 16), byte(generation >> 8), byte(generation)}
	return s.ExpandWithLabel(secret, label, g[:], length)
}

// RefHash implements RFC 9420, Section 5.2:
//
//	struct { opaque label<V>; opaque value<V>; } RefHashInput;
//	MakeKeyPackageRef(value) = RefHash("MLS 1.0 KeyPackage Reference", value)
//
// The label is used as given (no prefix is added).
func (s *Suite) RefHash(label string, value []byte) []byte {
	in := make([]byte, 0, 4+len(label)+4+len(value))
	in = appendOpaque(in, []byte(label))
	in = appendOpaque(in, value)
	return s.Hash(in)
}

// KeyPackageRef returns MakeKeyPackageRef of an encoded KeyPackage
// (RFC 9420, Section 5.2).
func (s *Suite) KeyPackageRef(keyPackage []byte) []byte {
	return s.RefHash("MLS 1.0 KeyPackage Reference", keyPackage)
}

// ProposalRef returns MakeProposalRef of an encoded AuthenticatedContent
// (RFC 9420, Section 5.2).
func (s *Suite) ProposalRef(authenticatedContent []byte) []byte {
	return s.RefHash("MLS 1.0 Proposal Reference", authenticatedContent)
}

// NewAEAD returns the suite's AEAD keyed with key (Nk bytes).
func (s *Suite) NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != s.nk {
		return nil, fmt.Errorf("%w: AEAD key of %d bytes, want %d", ErrInvalidKey, len(key), s.nk)
	}
	if s.aead == chachaPoly {
		return chacha20poly1305.New(key)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// aeadFor returns the suite AEAD keyed with key, checking the nonce size.
func (s *Suite) aeadFor(key, nonce []byte) (cipher.AEAD, error) {
	if len(nonce) != s.nn {
		return nil, fmt.Errorf("%w: nonce of %d bytes, want %d", ErrInvalidKey, len(nonce), s.nn)
	}
	return s.NewAEAD(key)
}

// Seal encrypts and authenticates plaintext with the suite AEAD.
func (s *Suite) Seal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.aeadFor(key, nonce)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

// Open decrypts and authenticates ciphertext with the suite AEAD. Any
// failure is ErrDecrypt.
func (s *Suite) Open(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	a, err := s.aeadFor(key, nonce)
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
