package ciphersuite

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/ed448"
)

// mldsaSeedSize is the size of the ML-DSA key generation seed ξ
// (FIPS 204, Algorithm 1), the same for the three parameter sets.
const mldsaSeedSize = 32

// signContent encodes SignContent (RFC 9420, Section 5.1.2):
//
//	struct { opaque label<V>; opaque content<V>; } SignContent;
func signContent(label string, content []byte) []byte {
	b := make([]byte, 0, 4+len(labelPrefix)+len(label)+4+len(content))
	b = appendLabel(b, label)
	return appendOpaque(b, content)
}

// SignWithLabel implements RFC 9420, Section 5.1.2:
// Signature.Sign(SignatureKey, SignContent{label, content}).
// ECDSA signatures are DER encoded; EdDSA signatures are as in RFC 8032;
// ML-DSA signatures are FIPS 204 signatures over the whole SignContent with
// an empty context string, the "pure" ML-DSA of draft-ietf-tls-mldsa that
// draft-ietf-mls-pq-ciphersuites-06, Section 2 refers to.
func (s *Suite) SignWithLabel(signer crypto.Signer, label string, content []byte) ([]byte, error) {
	return s.sign(signer, signContent(label, content))
}

func (s *Suite) sign(signer crypto.Signer, msg []byte) ([]byte, error) {
	if signer == nil {
		return nil, fmt.Errorf("%w: no signer", ErrSigner)
	}
	if err := s.checkSignerType(signer.Public()); err != nil {
		return nil, err
	}
	var sig []byte
	var err error
	if s.sig == sigECDSA {
		sig, err = signer.Sign(rand.Reader, s.Hash(msg), s.hash)
	} else {
		sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSigner, err)
	}
	return sig, nil
}

// VerifyWithLabel implements RFC 9420, Section 5.1.2. pub is a
// SignaturePublicKey in the suite's format (Section 5.1.1).
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	return s.verify(pub, signContent(label, content), signature)
}

func (s *Suite) verify(pub, msg, sig []byte) error {
	switch s.sig {
	case sigEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrInvalidKey, len(pub))
		}
		if !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
			return ErrInvalidSignature
		}
	case sigEd448:
		if len(pub) != ed448.PublicKeySize {
			return fmt.Errorf("%w: Ed448 public key of %d bytes", ErrInvalidKey, len(pub))
		}
		if !ed448.Verify(ed448.PublicKey(pub), msg, sig, "") {
			return ErrInvalidSignature
		}
	case sigECDSA:
		pk, err := ecdsa.ParseUncompressedPublicKey(s.curve, pub)
		if err != nil {
			return fmt.Errorf("%w: ECDSA public key: %v", ErrInvalidKey, err)
		}
		if !ecdsa.VerifyASN1(pk, s.Hash(msg), sig) {
			return ErrInvalidSignature
		}
	case sigMLDSA:
		if len(pub) != s.mldsa.PublicKeySize() {
			return fmt.Errorf("%w: %s public key of %d bytes, want %d", ErrInvalidKey, s.mldsa.Name(), len(pub), s.mldsa.PublicKeySize())
		}
		pk, err := s.mldsa.UnmarshalBinaryPublicKey(pub)
		if err != nil {
			return fmt.Errorf("%w: %s public key: %v", ErrInvalidKey, s.mldsa.Name(), err)
		}
		// Empty context string (FIPS 204, Algorithm 3 with ctx = "").
		if len(sig) != s.mldsa.SignatureSize() || !s.mldsa.Verify(pk, msg, sig, nil) {
			return ErrInvalidSignature
		}
	}
	return nil
}

// checkSignerType rejects a signer whose key does not belong to the suite.
func (s *Suite) checkSignerType(pub crypto.PublicKey) error {
	_, err := s.publicKeyBytes(pub)
	return err
}

// SignaturePublicKey returns the SignaturePublicKey encoding (RFC 9420,
// Section 5.1.1) of signer's public key: RFC 8032 bytes for EdDSA, the
// uncompressed point for ECDSA, the FIPS 204 pkEncode bytes for ML-DSA.
func (s *Suite) SignaturePublicKey(signer crypto.Signer) ([]byte, error) {
	return s.publicKeyBytes(signer.Public())
}

func (s *Suite) publicKeyBytes(pub crypto.PublicKey) ([]byte, error) {
	switch s.sig {
	case sigEd25519:
		if k, ok := pub.(ed25519.PublicKey); ok {
			return append([]byte(nil), k...), nil
		}
	case sigEd448:
		if k, ok := pub.(ed448.PublicKey); ok {
			return append([]byte(nil), k...), nil
		}
	case sigECDSA:
		if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve == s.curve {
			return k.Bytes()
		}
	case sigMLDSA:
		if k, ok := pub.(sign.PublicKey); ok && k.Scheme() == s.mldsa {
			return k.MarshalBinary()
		}
	}
	return nil, fmt.Errorf("%w: a %T signing key does not fit %v", ErrInvalidKey, pub, s.id)
}

// GenerateSignatureKey creates a signing key for the suite. For Ed25519,
// Ed448 and ML-DSA the key is derived from a seed read from rnd (crypto/rand.Reader if
// nil), so a deterministic reader gives a deterministic key. For the ECDSA
// suites crypto/ecdsa ignores rnd since Go 1.26 and always uses the system's
// secure source (tests can fix it with testing/cryptotest.SetGlobalRandom).
func (s *Suite) GenerateSignatureKey(rnd io.Reader) (crypto.Signer, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	switch s.sig {
	case sigEd25519:
		seed := make([]byte, ed25519.SeedSize)
		if _, err := io.ReadFull(rnd, seed); err != nil {
			return nil, err
		}
		return ed25519.NewKeyFromSeed(seed), nil
	case sigEd448:
		seed := make([]byte, ed448.SeedSize)
		if _, err := io.ReadFull(rnd, seed); err != nil {
			return nil, err
		}
		return ed448.NewKeyFromSeed(seed), nil
	case sigMLDSA:
		seed := make([]byte, mldsaSeedSize)
		if _, err := io.ReadFull(rnd, seed); err != nil {
			return nil, err
		}
		return s.mldsaFromSeed(seed), nil
	default:
		return ecdsa.GenerateKey(s.curve, rnd)
	}
}

// mldsaFromSeed runs ML-DSA.KeyGen_internal on a 32-byte seed ξ (FIPS 204,
// Algorithm 6). circl's private keys implement crypto.Signer, signing with
// an empty context.
func (s *Suite) mldsaFromSeed(seed []byte) crypto.Signer {
	_, sk := s.mldsa.DeriveKey(seed)
	return sk
}

// NewSigner parses a private signing key in the format of the MLS test
// vectors: the RFC 8032 seed for EdDSA, the big-endian scalar for ECDSA.
// For ML-DSA it takes the 32-byte seed ξ (the "seed" private key format of
// RFC 9881, Section 6) or the expanded skEncode bytes of FIPS 204.
func (s *Suite) NewSigner(priv []byte) (crypto.Signer, error) {
	switch s.sig {
	case sigEd25519:
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: Ed25519 private key of %d bytes", ErrInvalidKey, len(priv))
		}
		return ed25519.NewKeyFromSeed(priv), nil
	case sigEd448:
		if len(priv) != ed448.SeedSize {
			return nil, fmt.Errorf("%w: Ed448 private key of %d bytes", ErrInvalidKey, len(priv))
		}
		return ed448.NewKeyFromSeed(priv), nil
	case sigMLDSA:
		switch len(priv) {
		case mldsaSeedSize:
			return s.mldsaFromSeed(priv), nil
		case s.mldsa.PrivateKeySize():
			sk, err := s.mldsa.UnmarshalBinaryPrivateKey(priv)
			if err != nil {
				return nil, fmt.Errorf("%w: %s private key: %v", ErrInvalidKey, s.mldsa.Name(), err)
			}
			return sk, nil
		}
		return nil, fmt.Errorf("%w: %s private key of %d bytes, want %d (seed) or %d", ErrInvalidKey, s.mldsa.Name(), len(priv), mldsaSeedSize, s.mldsa.PrivateKeySize())
	default:
		// Some encoders drop leading zero bytes of the scalar (a P-521
		// key in the official vectors has 65 of 66 bytes); restore them.
		if n := (s.curve.Params().BitSize + 7) / 8; len(priv) < n && len(priv) > 0 {
			priv = append(make([]byte, n-len(priv)), priv...)
		}
		k, err := ecdsa.ParseRawPrivateKey(s.curve, priv)
		if err != nil {
			return nil, fmt.Errorf("%w: ECDSA private key: %v", ErrInvalidKey, err)
		}
		return k, nil
	}
}

// MarshalSigner returns the private key of a signer created by this package
// in the format NewSigner reads (for ML-DSA the 32-byte seed when the key
// retains it, else the expanded key). Signers of other types (HSM, KMS) cannot be
// exported and give an error.
func (s *Suite) MarshalSigner(signer crypto.Signer) ([]byte, error) {
	switch k := signer.(type) {
	case ed25519.PrivateKey:
		if s.sig == sigEd25519 {
			return append([]byte(nil), k.Seed()...), nil
		}
	case ed448.PrivateKey:
		if s.sig == sigEd448 {
			return append([]byte(nil), k.Seed()...), nil
		}
	case *ecdsa.PrivateKey:
		if s.sig == sigECDSA && k.Curve == s.curve {
			return k.Bytes()
		}
	case sign.PrivateKey:
		if s.sig == sigMLDSA && k.Scheme() == s.mldsa {
			if sk, ok := k.(interface{ Seed() []byte }); ok {
				if seed := sk.Seed(); len(seed) == mldsaSeedSize {
					return append([]byte(nil), seed...), nil
				}
			}
			return k.MarshalBinary()
		}
	}
	return nil, fmt.Errorf("%w: cannot export a %T signing key for %v", ErrInvalidKey, signer, s.id)
}
