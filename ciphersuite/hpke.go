package ciphersuite

import (
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha512"
	"fmt"
	"io"

	circlhpke "github.com/cloudflare/circl/hpke"
	circlkem "github.com/cloudflare/circl/kem"
)

type (
	kemPublicKey  = circlkem.PublicKey
	kemPrivateKey = circlkem.PrivateKey
)

// kem is the HPKE base mode of one suite (RFC 9180), behind one interface
// for the standard library's DHKEMs and circl's X448.
type kem interface {
	deriveKeyPair(ikm []byte) (priv, pub []byte, err error)
	publicKey(priv []byte) ([]byte, error)
	seal(pub, info, aad, plaintext []byte) (enc, ct []byte, err error)
	open(priv, enc, info, aad, ct []byte) ([]byte, error)
	exportS(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error)
	exportR(priv, enc, info []byte, exporterContext string, length int) ([]byte, error)
}

type stdKEM struct {
	kem  hpke.KEM
	kdf  hpke.KDF
	aead hpke.AEAD
}

func newStdKEM(k hpke.KEM, kdf hpke.KDF, aead hpke.AEAD) kem {
	return &stdKEM{kem: k, kdf: kdf, aead: aead}
}

func (k *stdKEM) deriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	sk, err := k.kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, nil, err
	}
	priv, err = sk.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return priv, sk.PublicKey().Bytes(), nil
}

func (k *stdKEM) publicKey(priv []byte) ([]byte, error) {
	sk, err := k.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key: %v", ErrInvalidKey, err)
	}
	return sk.PublicKey().Bytes(), nil
}

// sender sets up an HPKE base-mode sending context to pub.
func (k *stdKEM) sender(pub, info []byte) ([]byte, *hpke.Sender, error) {
	pk, err := k.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE public key: %v", ErrInvalidKey, err)
	}
	return hpke.NewSender(pk, k.kdf, k.aead, info)
}

// receiver sets up the matching receiving context; a bad enc is
// ErrDecrypt.
func (k *stdKEM) receiver(priv, enc, info []byte) (*hpke.Recipient, error) {
	sk, err := k.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key: %v", ErrInvalidKey, err)
	}
	r, err := hpke.NewRecipient(enc, sk, k.kdf, k.aead, info)
	if err != nil {
		return nil, ErrDecrypt
	}
	return r, nil
}

func (k *stdKEM) seal(pub, info, aad, plaintext []byte) (enc, ct []byte, err error) {
	enc, s, err := k.sender(pub, info)
	if err != nil {
		return nil, nil, err
	}
	ct, err = s.Seal(aad, plaintext)
	return enc, ct, err
}

func (k *stdKEM) open(priv, enc, info, aad, ct []byte) ([]byte, error) {
	r, err := k.receiver(priv, enc, info)
	if err != nil {
		return nil, err
	}
	pt, err := r.Open(aad, ct)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func (k *stdKEM) exportS(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	enc, s, err := k.sender(pub, info)
	if err != nil {
		return nil, nil, err
	}
	secret, err = s.Export(exporterContext, length)
	return enc, secret, err
}

func (k *stdKEM) exportR(priv, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	r, err := k.receiver(priv, enc, info)
	if err != nil {
		return nil, err
	}
	return r.Export(exporterContext, length)
}

// x448KEM is DHKEM(X448, HKDF-SHA512) from circl.
type x448KEM struct{ suite circlhpke.Suite }

func newX448KEM(aead circlhpke.AEAD) kem {
	return &x448KEM{suite: circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, aead)}
}

// deriveKeyPair implements DeriveKeyPair of RFC 9180, Section 7.1.3, for
// X448. circl's own DeriveKeyPair insists on a 56-byte seed, while MLS
// derives from Nh = 64 bytes, so the two labeled HKDF steps are done here
// (with crypto/hkdf) and circl only parses the resulting key.
func (k *x448KEM) deriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	suiteID := []byte{'K', 'E', 'M', 0x00, 0x21}
	labeledIKM := append(append(append([]byte("HPKE-v1"), suiteID...), "dkp_prk"...), ikm...)
	prk, err := hkdf.Extract(sha512.New, labeledIKM, nil)
	if err != nil {
		return nil, nil, err
	}
	// labeled_info = I2OSP(L, 2) || "HPKE-v1" || suite_id || "sk" || ""
	info := append(append(append([]byte{0, 56}, "HPKE-v1"...), suiteID...), "sk"...)
	sk, err := hkdf.Expand(sha512.New, prk, string(info), 56)
	if err != nil {
		return nil, nil, err
	}
	pub, err = k.publicKey(sk)
	return sk, pub, err
}

func (k *x448KEM) publicKey(priv []byte) ([]byte, error) {
	sk, err := k.parsePrivate(priv)
	if err != nil {
		return nil, err
	}
	return sk.Public().MarshalBinary()
}

// sender sets up an HPKE base-mode sending context to pub.
func (k *x448KEM) sender(pub, info []byte) (enc []byte, ctx circlhpke.Sealer, err error) {
	pk, err := k.parsePublic(pub)
	if err != nil {
		return nil, nil, err
	}
	s, err := k.suite.NewSender(pk, info)
	if err != nil {
		return nil, nil, err
	}
	return s.Setup(rand.Reader)
}

// receiver sets up the matching receiving context; a bad enc is
// ErrDecrypt.
func (k *x448KEM) receiver(priv, enc, info []byte) (circlhpke.Opener, error) {
	sk, err := k.parsePrivate(priv)
	if err != nil {
		return nil, err
	}
	if len(enc) != circlhpke.KEM_X448_HKDF_SHA512.Scheme().CiphertextSize() {
		return nil, ErrDecrypt
	}
	r, err := k.suite.NewReceiver(sk, info)
	if err != nil {
		return nil, err
	}
	o, err := r.Setup(enc)
	if err != nil {
		return nil, ErrDecrypt
	}
	return o, nil
}

func (k *x448KEM) seal(pub, info, aad, plaintext []byte) (enc, ct []byte, err error) {
	enc, ctx, err := k.sender(pub, info)
	if err != nil {
		return nil, nil, err
	}
	ct, err = ctx.Seal(plaintext, aad)
	return enc, ct, err
}

func (k *x448KEM) open(priv, enc, info, aad, ct []byte) ([]byte, error) {
	o, err := k.receiver(priv, enc, info)
	if err != nil {
		return nil, err
	}
	pt, err := o.Open(ct, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func (k *x448KEM) exportS(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	enc, ctx, err := k.sender(pub, info)
	if err != nil {
		return nil, nil, err
	}
	return enc, ctx.Export([]byte(exporterContext), uint(length)), nil
}

func (k *x448KEM) exportR(priv, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	o, err := k.receiver(priv, enc, info)
	if err != nil {
		return nil, err
	}
	return o.Export([]byte(exporterContext), uint(length)), nil
}

func (k *x448KEM) parsePublic(pub []byte) (kemPublicKey, error) {
	scheme := circlhpke.KEM_X448_HKDF_SHA512.Scheme()
	if len(pub) != scheme.PublicKeySize() {
		return nil, fmt.Errorf("%w: X448 public key of %d bytes", ErrInvalidKey, len(pub))
	}
	pk, err := scheme.UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: X448 public key: %v", ErrInvalidKey, err)
	}
	return pk, nil
}

func (k *x448KEM) parsePrivate(priv []byte) (kemPrivateKey, error) {
	scheme := circlhpke.KEM_X448_HKDF_SHA512.Scheme()
	if len(priv) != scheme.PrivateKeySize() {
		return nil, fmt.Errorf("%w: X448 private key of %d bytes", ErrInvalidKey, len(priv))
	}
	sk, err := scheme.UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: X448 private key: %v", ErrInvalidKey, err)
	}
	return sk, nil
}

// HPKEExportSender sets up an HPKE base-mode sender context to pub and
// exports a secret from it; RFC 9420, Section 8.3 uses it for the external
// init secret.
func (s *Suite) HPKEExportSender(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	return s.kem.exportS(pub, info, exporterContext, length)
}

// HPKEExportReceiver is the receiving side of HPKEExportSender.
func (s *Suite) HPKEExportReceiver(priv, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	return s.kem.exportR(priv, enc, info, exporterContext, length)
}

// DeriveKeyPair derives an HPKE key pair from ikm (RFC 9180, Section 7.1.3;
// used by RFC 9420, Section 7.4 for node keys). priv is in the
// SerializePrivateKey format, pub in SerializePublicKey.
func (s *Suite) DeriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	return s.kem.deriveKeyPair(ikm)
}

// GenerateKeyPair creates an HPKE key pair from Nh bytes read from rnd
// (crypto/rand.Reader if nil), through DeriveKeyPair.
func (s *Suite) GenerateKeyPair(rnd io.Reader) (priv, pub []byte, err error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	ikm := make([]byte, s.nh)
	if _, err := io.ReadFull(rnd, ikm); err != nil {
		return nil, nil, err
	}
	return s.kem.deriveKeyPair(ikm)
}

// HPKEPublicKey returns the public key of an HPKE private key.
func (s *Suite) HPKEPublicKey(priv []byte) ([]byte, error) { return s.kem.publicKey(priv) }

// encryptContext encodes EncryptContext (RFC 9420, Section 5.1.3):
//
//	struct { opaque label<V>; opaque context<V>; } EncryptContext;
func encryptContext(label string, context []byte) []byte {
	b := make([]byte, 0, 4+len(labelPrefix)+len(label)+4+len(context))
	b = appendLabel(b, label)
	return appendOpaque(b, context)
}

// EncryptWithLabel implements RFC 9420, Section 5.1.3: HPKE SealBase to pub
// with info = EncryptContext{label, context} and empty aad.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	return s.kem.seal(pub, encryptContext(label, context), nil, plaintext)
}

// DecryptWithLabel implements RFC 9420, Section 5.1.3. Any failure to
// decrypt is ErrDecrypt.
func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	return s.kem.open(priv, kemOutput, encryptContext(label, context), nil, ciphertext)
}

// HPKESeal is HPKE SealBase with explicit info and aad (used for external
// init, RFC 9420, Section 8.3, through Export, and by tests).
func (s *Suite) HPKESeal(pub, info, aad, plaintext []byte) (enc, ct []byte, err error) {
	return s.kem.seal(pub, info, aad, plaintext)
}

// HPKEOpen is HPKE OpenBase with explicit info and aad.
func (s *Suite) HPKEOpen(priv, enc, info, aad, ct []byte) ([]byte, error) {
	return s.kem.open(priv, enc, info, aad, ct)
}
