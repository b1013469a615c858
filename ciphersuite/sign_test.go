package ciphersuite_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"io"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/mlskit/mls/ciphersuite"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// signContent encodes SignContent (RFC 9420, Section 5.1.2) independently.
func signContent(label string, content []byte) []byte {
	return cat(opaque([]byte("MLS 1.0 "+label)), opaque(content))
}

func newSigner(t testing.TB, s *ciphersuite.Suite, seed string) crypto.Signer {
	t.Helper()
	k, err := s.GenerateSignatureKey(detRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerify(t *testing.T) {
	content := []byte("leaf node to be signed")
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		k := newSigner(t, s, "sign")
		pub, err := s.SignaturePublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if len(pub) != info.sigPub {
			t.Fatalf("public key of %d bytes, want %d", len(pub), info.sigPub)
		}
		if info.ecdsa && pub[0] != 0x04 {
			t.Fatalf("ECDSA public key is not an uncompressed point: %x", pub[:1])
		}
		sig, err := s.SignWithLabel(k, "LeafNodeTBS", content)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyWithLabel(pub, "LeafNodeTBS", content, sig); err != nil {
			t.Fatalf("own signature: %v", err)
		}

		other := newSigner(t, s, "other")
		otherPub, _ := s.SignaturePublicKey(other)
		flipped := slices.Clone(content)
		flipped[3] ^= 0x10
		for name, f := range map[string]func() error{
			"other label":   func() error { return s.VerifyWithLabel(pub, "LeafNodeTBs", content, sig) },
			"empty label":   func() error { return s.VerifyWithLabel(pub, "", content, sig) },
			"flipped bit":   func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", flipped, sig) },
			"extra byte":    func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", append(slices.Clone(content), 0), sig) },
			"other key":     func() error { return s.VerifyWithLabel(otherPub, "LeafNodeTBS", content, sig) },
			"truncated sig": func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", content, sig[:len(sig)-1]) },
			"long sig":      func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", content, append(slices.Clone(sig), 0)) },
			"empty sig":     func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", content, nil) },
		} {
			if err := f(); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
				t.Errorf("%s: got %v, want ErrInvalidSignature", name, err)
			}
		}
		// One flipped bit anywhere in the signature.
		for i := range sig {
			bad := slices.Clone(sig)
			bad[i] ^= 1 << (i % 8)
			if err := s.VerifyWithLabel(pub, "LeafNodeTBS", content, bad); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
				t.Fatalf("signature with byte %d flipped: got %v", i, err)
			}
		}
	})
}

func TestEdDSAMatchesReference(t *testing.T) {
	content := []byte("content")
	label := strings.Repeat("x", 16380) // label + prefix needs a 4-byte header
	for _, id := range []ciphersuite.ID{1, 4} {
		s, _ := ciphersuite.Lookup(id)
		k := newSigner(t, s, "eddsa")
		for _, l := range []string{"GroupInfoTBS", label} {
			got, err := s.SignWithLabel(k, l, content)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			switch key := k.(type) {
			case ed25519.PrivateKey:
				want = ed25519.Sign(key, signContent(l, content))
			case ed448.PrivateKey:
				want = ed448.Sign(key, signContent(l, content), "")
			default:
				t.Fatalf("%v: signer is a %T", s, k)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%v, label of %d bytes: SignWithLabel differs from signing SignContent directly", s, len(l))
			}
		}
	}
}

// TestECDSASignaturesAreDER checks that ECDSA signatures are DER-encoded
// Ecdsa-Sig-Value structures (RFC 9420, Section 5.1.2 defers to the
// algorithm's usual encoding: SEQUENCE { INTEGER r, INTEGER s }) over the
// suite hash of SignContent, that raw r||s is refused, and that a DER
// signature from the standard library verifies.
func TestECDSASignaturesAreDER(t *testing.T) {
	content := []byte("GroupInfo")
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		if !info.ecdsa {
			t.Skip("not an ECDSA suite")
		}
		k := newSigner(t, s, "ecdsa")
		key, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			t.Fatalf("signer is a %T", k)
		}
		pub, _ := s.SignaturePublicKey(k)
		ek, err := key.PublicKey.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		if wantPub := ek.Bytes(); !bytes.Equal(pub, wantPub) {
			t.Fatalf("SignaturePublicKey %x, want %x", pub, wantPub)
		}
		sig, err := s.SignWithLabel(k, "GroupInfoTBS", content)
		if err != nil {
			t.Fatal(err)
		}
		in := cryptobyte.String(sig)
		var seq cryptobyte.String
		r, sv := new(big.Int), new(big.Int)
		if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
			!seq.ReadASN1Integer(r) || !seq.ReadASN1Integer(sv) || !seq.Empty() {
			t.Fatalf("signature is not a DER SEQUENCE of two INTEGERs: %x", sig)
		}
		h := info.newHash()
		h.Write(signContent("GroupInfoTBS", content))
		digest := h.Sum(nil)
		if !ecdsa.Verify(&key.PublicKey, digest, r, sv) {
			t.Fatal("r, s do not verify over the hash of SignContent")
		}

		// Raw r||s (IEEE P1363) is not the MLS encoding.
		size := (key.Curve.Params().BitSize + 7) / 8
		raw := append(r.FillBytes(make([]byte, size)), sv.FillBytes(make([]byte, size))...)
		if err := s.VerifyWithLabel(pub, "GroupInfoTBS", content, raw); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
			t.Errorf("raw r||s: got %v, want ErrInvalidSignature", err)
		}
		// A DER signature from the standard library verifies.
		std, err := ecdsa.SignASN1(detRand("std"), key, digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyWithLabel(pub, "GroupInfoTBS", content, std); err != nil {
			t.Errorf("standard library DER signature: %v", err)
		}
	})
}

// TestSignerOfWrongSuite checks that every suite refuses keys of the other
// signature algorithms.
func TestSignerOfWrongSuite(t *testing.T) {
	keys := map[string]crypto.Signer{}
	for _, id := range []ciphersuite.ID{1, 2, 4, 5, 7} {
		s, _ := ciphersuite.Lookup(id)
		keys[s.String()] = newSigner(t, s, "wrong")
	}
	algOf := func(name string) string { return name[strings.LastIndex(name, "_")+1:] }
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		for owner, k := range keys {
			fits := algOf(owner) == algOf(info.name)
			_, signErr := s.SignWithLabel(k, "label", []byte("content"))
			_, pubErr := s.SignaturePublicKey(k)
			_, marshalErr := s.MarshalSigner(k)
			for what, err := range map[string]error{"SignWithLabel": signErr, "SignaturePublicKey": pubErr, "MarshalSigner": marshalErr} {
				switch {
				case fits && err != nil:
					t.Errorf("%s with a key of %s: %v", what, owner, err)
				case !fits && !errors.Is(err, ciphersuite.ErrInvalidKey):
					t.Errorf("%s with a key of %s: got %v, want ErrInvalidKey", what, owner, err)
				}
			}
		}
	})
}

// opaqueSigner stands for a key held in an HSM: only Public and Sign.
type opaqueSigner struct{ inner crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.inner.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.inner.Sign(r, d, opts)
}

func TestExternalSigner(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		hsm := opaqueSigner{newSigner(t, s, "hsm")}
		pub, err := s.SignaturePublicKey(hsm)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.SignWithLabel(hsm, "KeyPackageTBS", []byte("kp"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyWithLabel(pub, "KeyPackageTBS", []byte("kp"), sig); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MarshalSigner(hsm); !errors.Is(err, ciphersuite.ErrInvalidKey) {
			t.Errorf("MarshalSigner of an HSM key: got %v, want ErrInvalidKey", err)
		}
	})
}

func TestGenerateSignatureKeyDeterministic(t *testing.T) {
	seed := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i + 1)
		}
		return b
	}
	s1, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	k1, err := s1.GenerateSignatureKey(bytes.NewReader(seed(32)))
	if err != nil {
		t.Fatal(err)
	}
	if want := ed25519.NewKeyFromSeed(seed(32)); !want.Equal(k1) {
		t.Error("Ed25519 key is not the one RFC 8032 derives from the seed read")
	}
	k1b, _ := s1.GenerateSignatureKey(bytes.NewReader(seed(32)))
	if !k1b.(ed25519.PrivateKey).Equal(k1) {
		t.Error("Ed25519: same reader, different keys")
	}
	k1c, _ := s1.GenerateSignatureKey(detRand("another seed"))
	if k1c.(ed25519.PrivateKey).Equal(k1) {
		t.Error("Ed25519: different readers, same key")
	}

	s4, _ := ciphersuite.Lookup(ciphersuite.MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448)
	k4, err := s4.GenerateSignatureKey(bytes.NewReader(seed(57)))
	if err != nil {
		t.Fatal(err)
	}
	if want := ed448.NewKeyFromSeed(seed(57)); !want.Equal(k4) {
		t.Error("Ed448 key is not the one RFC 8032 derives from the seed read")
	}
	k4b, _ := s4.GenerateSignatureKey(bytes.NewReader(seed(57)))
	if !k4b.(ed448.PrivateKey).Equal(k4) {
		t.Error("Ed448: same reader, different keys")
	}

	// A reader that runs dry is an error, not a weak key. (crypto/ecdsa
	// ignores the reader since Go 1.26, so only EdDSA reads it.)
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		if info.ecdsa {
			t.Skip("crypto/ecdsa ignores the reader")
		}
		if _, err := s.GenerateSignatureKey(bytes.NewReader(make([]byte, 8))); err == nil {
			t.Error("a short reader gave a key")
		}
	})
}

func TestNewSigner(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		k := newSigner(t, s, "marshal")
		priv, err := s.MarshalSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		back, err := s.NewSigner(priv)
		if err != nil {
			t.Fatal(err)
		}
		p1, _ := s.SignaturePublicKey(k)
		p2, _ := s.SignaturePublicKey(back)
		if !bytes.Equal(p1, p2) {
			t.Fatal("NewSigner(MarshalSigner(k)) has another public key")
		}
		sig, err := s.SignWithLabel(back, "l", []byte("c"))
		if err != nil || s.VerifyWithLabel(p1, "l", []byte("c"), sig) != nil {
			t.Fatalf("re-imported signer: %v", err)
		}

		bad := [][]byte{nil, append(slices.Clone(priv), 0), make([]byte, 1)}
		if info.ecdsa {
			// The zero scalar and one at least the group order.
			bad = append(bad, make([]byte, len(priv)), bytes.Repeat([]byte{0xff}, len(priv)))

			// A scalar whose leading zero byte an encoder dropped (one
			// P-521 key in the official vectors is 65 of 66 bytes) is the
			// same key.
			full := append([]byte{0}, priv[1:]...)
			a, errA := s.NewSigner(full)
			b, errB := s.NewSigner(full[1:])
			if errA != nil || errB != nil {
				t.Fatalf("scalar with a leading zero: %v; without it: %v", errA, errB)
			}
			pa, _ := s.SignaturePublicKey(a)
			pb, _ := s.SignaturePublicKey(b)
			if !bytes.Equal(pa, pb) {
				t.Error("dropping a leading zero byte changed the key")
			}
		} else {
			bad = append(bad, priv[:len(priv)-1])
		}
		for _, b := range bad {
			if _, err := s.NewSigner(b); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("NewSigner(%d bytes %x...): got %v, want ErrInvalidKey", len(b), b[:min(len(b), 4)], err)
			}
		}
	})
}

func TestVerifyBadPublicKey(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		k := newSigner(t, s, "badpub")
		pub, _ := s.SignaturePublicKey(k)
		sig, _ := s.SignWithLabel(k, "l", []byte("c"))
		bad := [][]byte{nil, pub[:len(pub)-1], append(slices.Clone(pub), 0)}
		if info.ecdsa {
			notOnCurve := slices.Clone(pub)
			notOnCurve[len(notOnCurve)-1] ^= 1
			compressed := append([]byte{0x02 | pub[len(pub)-1]&1}, pub[1:1+(len(pub)-1)/2]...)
			bad = append(bad, notOnCurve, compressed)
		}
		for _, b := range bad {
			if err := s.VerifyWithLabel(b, "l", []byte("c"), sig); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("public key of %d bytes: got %v, want ErrInvalidKey", len(b), err)
			}
		}
	})
}
