package ciphersuite_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"testing"

	circlhpke "github.com/cloudflare/circl/hpke"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/vectors"
)

// encryptContext encodes EncryptContext (RFC 9420, Section 5.1.3)
// independently.
func encryptContext(label string, context []byte) []byte {
	return cat(opaque([]byte("MLS 1.0 "+label)), opaque(context))
}

// pqHPKE is draft-ietf-mls-pq-ciphersuites-06, Section 3.1, Table 2: the
// HPKE KEM, KDF and AEAD identifiers of TBD1 to TBD11, which this library
// numbers 0xF031 to 0xF03B.
var pqHPKE = map[ciphersuite.ID][3]uint16{
	0xF031: {0x647a, 0x0001, 0x0001},
	0xF032: {0x647a, 0x0002, 0x0002},
	0xF033: {0x0050, 0x0001, 0x0001},
	0xF034: {0x0050, 0x0002, 0x0002},
	0xF035: {0x0051, 0x0002, 0x0002},
	0xF036: {0x0041, 0x0002, 0x0002},
	0xF037: {0x0041, 0x0002, 0x0002},
	0xF038: {0x0042, 0x0002, 0x0002},
	0xF039: {0x647a, 0x0002, 0x0003},
	0xF03A: {0x0041, 0x0002, 0x0002},
	0xF03B: {0x0042, 0x0002, 0x0002},
}

// refOpen opens an HPKE base-mode ciphertext with the standard library (or
// circl for X448), bypassing the package under test.
func refOpen(t *testing.T, id ciphersuite.ID, priv, enc, info, aad, ct []byte) ([]byte, error) {
	t.Helper()
	var circlAEAD circlhpke.AEAD
	var kem hpke.KEM
	var kdf hpke.KDF
	var aead hpke.AEAD
	switch id {
	case 1:
		kem, kdf, aead = hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES128GCM()
	case 2:
		kem, kdf, aead = hpke.DHKEM(ecdh.P256()), hpke.HKDFSHA256(), hpke.AES128GCM()
	case 3:
		kem, kdf, aead = hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.ChaCha20Poly1305()
	case 5:
		kem, kdf, aead = hpke.DHKEM(ecdh.P521()), hpke.HKDFSHA512(), hpke.AES256GCM()
	case 7:
		kem, kdf, aead = hpke.DHKEM(ecdh.P384()), hpke.HKDFSHA384(), hpke.AES256GCM()
	case 4:
		circlAEAD = circlhpke.AEAD_AES256GCM
	case 6:
		circlAEAD = circlhpke.AEAD_ChaCha20Poly1305
	default:
		ids, ok := pqHPKE[id]
		if !ok {
			t.Fatalf("no reference HPKE suite for %v", id)
		}
		var err error
		if kem, err = hpke.NewKEM(ids[0]); err != nil {
			t.Fatal(err)
		}
		if kdf, err = hpke.NewKDF(ids[1]); err != nil {
			t.Fatal(err)
		}
		if aead, err = hpke.NewAEAD(ids[2]); err != nil {
			t.Fatal(err)
		}
	}
	if kem != nil {
		sk, err := kem.NewPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		r, err := hpke.NewRecipient(enc, sk, kdf, aead, info)
		if err != nil {
			return nil, err
		}
		return r.Open(aad, ct)
	}
	suite := circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, circlAEAD)
	sk, err := circlhpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	r, err := suite.NewReceiver(sk, info)
	if err != nil {
		t.Fatal(err)
	}
	o, err := r.Setup(enc)
	if err != nil {
		return nil, err
	}
	return o.Open(ct, aad)
}

func newKeyPair(t testing.TB, s *ciphersuite.Suite, seed string) (priv, pub []byte) {
	t.Helper()
	priv, pub, err := s.GenerateKeyPair(detRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func TestKeyPairs(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		priv, pub := newKeyPair(t, s, "kp")
		if len(priv) != info.hpkePriv || len(pub) != info.hpkePub {
			t.Fatalf("key sizes %d/%d, want %d/%d", len(priv), len(pub), info.hpkePriv, info.hpkePub)
		}
		if got, err := s.HPKEPublicKey(priv); err != nil || !bytes.Equal(got, pub) {
			t.Fatalf("HPKEPublicKey: %x, %v", got, err)
		}
		priv2, pub2 := newKeyPair(t, s, "kp")
		if !bytes.Equal(priv, priv2) || !bytes.Equal(pub, pub2) {
			t.Error("same reader, different key pairs")
		}
		priv3, _ := newKeyPair(t, s, "kp2")
		if bytes.Equal(priv, priv3) {
			t.Error("different readers, same key pair")
		}
		ikm := bytes.Repeat([]byte{9}, info.nh)
		a, ap, err := s.DeriveKeyPair(ikm)
		if err != nil {
			t.Fatal(err)
		}
		b, bp, _ := s.DeriveKeyPair(ikm)
		if !bytes.Equal(a, b) || !bytes.Equal(ap, bp) {
			t.Error("DeriveKeyPair is not deterministic")
		}
		if _, _, err := s.GenerateKeyPair(bytes.NewReader(make([]byte, info.nh-1))); err == nil {
			t.Error("GenerateKeyPair with a short reader gave a key")
		}
	})
}

// TestDeriveKeyPairVectors checks DeriveKeyPair (RFC 9180, Section 7.1.3)
// against the external_secret -> external_pub pairs of the official
// key-schedule vectors (RFC 9420, Section 8.3), for every suite; X448 is
// derived by this package rather than by circl.
func TestDeriveKeyPairVectors(t *testing.T) {
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vectors.Read(dir, "key-schedule.json")
	if errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		CipherSuite ciphersuite.ID `json:"cipher_suite"`
		Epochs      []struct {
			ExternalSecret vectors.Hex `json:"external_secret"`
			ExternalPub    vectors.Hex `json:"external_pub"`
		} `json:"epochs"`
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	seen := map[ciphersuite.ID]int{}
	for _, v := range vs {
		s, err := ciphersuite.Lookup(v.CipherSuite)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range v.Epochs {
			_, pub, err := s.DeriveKeyPair(e.ExternalSecret)
			if err != nil {
				t.Fatalf("%v epoch %d: %v", s, i, err)
			}
			if !bytes.Equal(pub, e.ExternalPub) {
				t.Errorf("%v epoch %d: external_pub %x, want %x", s, i, pub, e.ExternalPub)
			}
			seen[v.CipherSuite]++
		}
	}
	for _, id := range ciphersuite.All() {
		if seen[id] == 0 {
			t.Errorf("no key-schedule vector for %v", id)
		}
	}
}

func TestEncryptWithLabel(t *testing.T) {
	pt := []byte("path secret")
	ctx := []byte("group context")
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		priv, pub := newKeyPair(t, s, "enc")
		kemOut, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", ctx, pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(kemOut) != info.enc() || len(ct) != len(pt)+16 {
			t.Fatalf("kem_output %d bytes, ciphertext %d bytes", len(kemOut), len(ct))
		}
		got, err := s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kemOut, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("DecryptWithLabel: %q, %v", got, err)
		}
		// The info is EncryptContext{label, context} and aad is empty.
		got, err = refOpen(t, s.ID(), priv, kemOut, encryptContext("UpdatePathNode", ctx), nil, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("reference HPKE open: %q, %v", got, err)
		}

		otherPriv, _ := newKeyPair(t, s, "other")
		for name, f := range map[string]func() ([]byte, error){
			"other label":   func() ([]byte, error) { return s.DecryptWithLabel(priv, "UpdatePathNodE", ctx, kemOut, ct) },
			"other context": func() ([]byte, error) { return s.DecryptWithLabel(priv, "UpdatePathNode", ctx[1:], kemOut, ct) },
			"other key":     func() ([]byte, error) { return s.DecryptWithLabel(otherPriv, "UpdatePathNode", ctx, kemOut, ct) },
			"short kem":     func() ([]byte, error) { return s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kemOut[1:], ct) },
			"long kem": func() ([]byte, error) {
				return s.DecryptWithLabel(priv, "UpdatePathNode", ctx, append(slices.Clone(kemOut), 0), ct)
			},
			"no kem":   func() ([]byte, error) { return s.DecryptWithLabel(priv, "UpdatePathNode", ctx, nil, ct) },
			"short ct": func() ([]byte, error) { return s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kemOut, ct[:len(ct)-1]) },
			"no ct":    func() ([]byte, error) { return s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kemOut, nil) },
		} {
			if _, err := f(); !errors.Is(err, ciphersuite.ErrDecrypt) {
				t.Errorf("%s: got %v, want ErrDecrypt", name, err)
			}
		}
		for i := range ct {
			bad := slices.Clone(ct)
			bad[i] ^= 1 << (i % 8)
			if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kemOut, bad); !errors.Is(err, ciphersuite.ErrDecrypt) {
				t.Fatalf("ciphertext byte %d flipped: got %v", i, err)
			}
		}
		for _, i := range []int{0, len(kemOut) / 2, len(kemOut) - 1} {
			bad := slices.Clone(kemOut)
			bad[i] ^= 0x04
			if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", ctx, bad, ct); !errors.Is(err, ciphersuite.ErrDecrypt) {
				t.Errorf("kem_output byte %d flipped: got %v", i, err)
			}
		}
	})
}

func TestHPKESealOpen(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		priv, pub := newKeyPair(t, s, "seal")
		info1, aad := []byte("info"), []byte("aad")
		enc, ct, err := s.HPKESeal(pub, info1, aad, []byte("msg"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.HPKEOpen(priv, enc, info1, aad, ct); err != nil || string(got) != "msg" {
			t.Fatalf("HPKEOpen: %q, %v", got, err)
		}
		if got, err := refOpen(t, s.ID(), priv, enc, info1, aad, ct); err != nil || string(got) != "msg" {
			t.Fatalf("reference open: %q, %v", got, err)
		}
		if _, err := s.HPKEOpen(priv, enc, info1, []byte("aaD"), ct); !errors.Is(err, ciphersuite.ErrDecrypt) {
			t.Errorf("other aad: got %v, want ErrDecrypt", err)
		}
		if _, err := s.HPKEOpen(priv, enc, []byte("infO"), aad, ct); !errors.Is(err, ciphersuite.ErrDecrypt) {
			t.Errorf("other info: got %v, want ErrDecrypt", err)
		}
	})
}

func TestHPKEExport(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		priv, pub := newKeyPair(t, s, "export")
		for _, n := range []int{1, 32, info.nh, 255} {
			enc, secret, err := s.HPKEExportSender(pub, []byte("info"), "MLS 1.0 external init secret", n)
			if err != nil {
				t.Fatal(err)
			}
			if len(secret) != n || len(enc) != info.enc() {
				t.Fatalf("secret %d bytes (want %d), enc %d bytes", len(secret), n, len(enc))
			}
			got, err := s.HPKEExportReceiver(priv, enc, []byte("info"), "MLS 1.0 external init secret", n)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("length %d: receiver exported %x, sender %x", n, got, secret)
			}
			other, err := s.HPKEExportReceiver(priv, enc, []byte("info"), "another context", n)
			if err != nil || bytes.Equal(other, secret) && n >= 16 {
				t.Errorf("length %d: another exporter context gave the same secret (%v)", n, err)
			}
			other, err = s.HPKEExportReceiver(priv, enc, []byte("inf0"), "MLS 1.0 external init secret", n)
			if err != nil || bytes.Equal(other, secret) && n >= 16 {
				t.Errorf("length %d: another info gave the same secret (%v)", n, err)
			}
		}
		// Two senders to the same key use fresh ephemeral keys.
		enc1, s1, _ := s.HPKEExportSender(pub, nil, "x", 32)
		enc2, s2, _ := s.HPKEExportSender(pub, nil, "x", 32)
		if bytes.Equal(enc1, enc2) || bytes.Equal(s1, s2) {
			t.Error("two exports repeated the ephemeral key")
		}
		if _, err := s.HPKEExportReceiver(priv, enc1[1:], nil, "x", 32); !errors.Is(err, ciphersuite.ErrDecrypt) {
			t.Errorf("truncated enc: got %v, want ErrDecrypt", err)
		}
	})
}

func TestHPKEBadKeys(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		priv, pub := newKeyPair(t, s, "bad")
		enc, ct, err := s.EncryptWithLabel(pub, "l", nil, []byte("p"))
		if err != nil {
			t.Fatal(err)
		}
		for _, bp := range [][]byte{nil, pub[:1], pub[:len(pub)-1], append(slices.Clone(pub), 0)} {
			if _, _, err := s.EncryptWithLabel(bp, "l", nil, []byte("p")); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("EncryptWithLabel to a %d-byte key: got %v, want ErrInvalidKey", len(bp), err)
			}
			if _, _, err := s.HPKESeal(bp, nil, nil, []byte("p")); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("HPKESeal to a %d-byte key: got %v, want ErrInvalidKey", len(bp), err)
			}
			if _, _, err := s.HPKEExportSender(bp, nil, "x", 32); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("HPKEExportSender to a %d-byte key: got %v, want ErrInvalidKey", len(bp), err)
			}
		}
		for _, bk := range [][]byte{nil, priv[:1], priv[:len(priv)-1], append(slices.Clone(priv), 0)} {
			if _, err := s.DecryptWithLabel(bk, "l", nil, enc, ct); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("DecryptWithLabel with a %d-byte key: got %v, want ErrInvalidKey", len(bk), err)
			}
			if _, err := s.HPKEPublicKey(bk); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("HPKEPublicKey of a %d-byte key: got %v, want ErrInvalidKey", len(bk), err)
			}
			if _, err := s.HPKEExportReceiver(bk, enc, nil, "x", 32); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("HPKEExportReceiver with a %d-byte key: got %v, want ErrInvalidKey", len(bk), err)
			}
		}
	})
}
