package ciphersuite_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"golang.org/x/crypto/chacha20poly1305"
)

// suiteInfo holds each suite's parameters as RFC 9420, Section 17.1 and the
// algorithm specifications define them, written out by hand.
type suiteInfo struct {
	name     string
	newHash  func() hash.Hash
	nh, nk   int
	sigPub   int // SignaturePublicKey bytes (Section 5.1.1)
	hpkePub  int // HPKE public key (= enc) bytes, RFC 9180 Npk / Nenc
	hpkePriv int // HPKE private key bytes, RFC 9180 Nsk
	ecdsa    bool
	hpkeEnc  int // HPKE enc bytes, Nenc, where it differs from Npk (the PQ KEMs)
}

// enc is Nenc: hpkeEnc, or Npk for the DHKEMs whose enc is a public key.
func (i suiteInfo) enc() int {
	if i.hpkeEnc != 0 {
		return i.hpkeEnc
	}
	return i.hpkePub
}

var suiteInfos = map[ciphersuite.ID]suiteInfo{
	0x0001: {"MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", sha256.New, 32, 16, 32, 32, 32, false, 0},
	0x0002: {"MLS_128_DHKEMP256_AES128GCM_SHA256_P256", sha256.New, 32, 16, 65, 65, 32, true, 0},
	0x0003: {"MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", sha256.New, 32, 32, 32, 32, 32, false, 0},
	0x0004: {"MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", sha512.New, 64, 32, 57, 56, 56, false, 0},
	0x0005: {"MLS_256_DHKEMP521_AES256GCM_SHA512_P521", sha512.New, 64, 32, 133, 133, 66, true, 0},
	0x0006: {"MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", sha512.New, 64, 32, 57, 56, 56, false, 0},
	0x0007: {"MLS_256_DHKEMP384_AES256GCM_SHA384_P384", sha512.New384, 48, 32, 97, 97, 48, true, 0},

	// draft-ietf-mls-pq-ciphersuites-06, Table 2, at this library's
	// private-use values. Key sizes: FIPS 203, Table 3 (ML-KEM-768
	// ek 1184, ct 1088; ML-KEM-1024 ek 1568, ct 1568); draft-ietf-hpke-pq
	// (hybrid keys are the ML-KEM part then the curve point; private keys
	// are seeds of 64 bytes for ML-KEM and 32 for the hybrids); FIPS 204,
	// Table 2 (ML-DSA-44/65/87 public keys 1312/1952/2592 bytes).
	0xF031: {"MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519", sha256.New, 32, 16, 32, 1216, 32, false, 1120},
	0xF032: {"MLS_128_MLKEM768X25519_AES256GCM_SHA384_Ed25519", sha512.New384, 48, 32, 32, 1216, 32, false, 1120},
	0xF033: {"MLS_128_MLKEM768P256_AES128GCM_SHA256_P256", sha256.New, 32, 16, 65, 1184 + 65, 32, true, 1088 + 65},
	0xF034: {"MLS_128_MLKEM768P256_AES256GCM_SHA384_P256", sha512.New384, 48, 32, 65, 1184 + 65, 32, true, 1088 + 65},
	0xF035: {"MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384", sha512.New384, 48, 32, 97, 1568 + 97, 32, true, 1568 + 97},
	0xF036: {"MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519", sha512.New384, 48, 32, 32, 1184, 64, false, 1088},
	0xF037: {"MLS_128_MLKEM768_AES256GCM_SHA384_P256", sha512.New384, 48, 32, 65, 1184, 64, true, 1088},
	0xF038: {"MLS_192_MLKEM1024_AES256GCM_SHA384_P384", sha512.New384, 48, 32, 97, 1568, 64, true, 1568},
	0xF039: {"MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44", sha512.New384, 48, 32, 1312, 1216, 32, false, 1120},
	0xF03A: {"MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65", sha512.New384, 48, 32, 1952, 1184, 64, false, 1088},
	0xF03B: {"MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87", sha512.New384, 48, 32, 2592, 1568, 64, false, 1568},
}

// forEachSuite runs f as a subtest for every supported suite.
func forEachSuite(t *testing.T, f func(t *testing.T, s *ciphersuite.Suite, info suiteInfo)) {
	t.Helper()
	for _, id := range append(ciphersuite.All(), ciphersuite.PostQuantum()...) {
		s, err := ciphersuite.Lookup(id)
		if err != nil {
			t.Fatalf("Lookup(%v): %v", id, err)
		}
		t.Run(s.String(), func(t *testing.T) { f(t, s, suiteInfos[id]) })
	}
}

// detRand returns a deterministic byte stream for tests.
func detRand(label string) io.Reader {
	var seed [32]byte
	copy(seed[:], label)
	return rand.NewChaCha8(seed)
}

// vlen is an independent encoding of a variable-length vector header
// (RFC 9420, Section 2.1.2), written for the tests.
func vlen(n int) []byte {
	switch {
	case n <= 63:
		return []byte{byte(n)}
	case n <= 16383:
		return []byte{0x40 | byte(n>>8), byte(n)}
	default:
		return []byte{0x80 | byte(n>>24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
}

func opaque(b []byte) []byte { return append(vlen(len(b)), b...) }

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func TestSuiteParameters(t *testing.T) {
	if got, want := ciphersuite.All(), []ciphersuite.ID{1, 2, 3, 4, 5, 6, 7}; !slices.Equal(got, want) {
		t.Fatalf("All() = %v, want %v", got, want)
	}
	if ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 != 1 || ciphersuite.MLS_256_DHKEMP384_AES256GCM_SHA384_P384 != 7 {
		t.Fatal("IANA constants have the wrong values")
	}
	// The private-use table of the ciphersuite package doc: TBDn of
	// draft-ietf-mls-pq-ciphersuites-06 is 0xF030+n.
	pq := ciphersuite.PostQuantum()
	if len(pq) != 11 {
		t.Fatalf("PostQuantum() has %d suites, want the draft's 11", len(pq))
	}
	for i, id := range pq {
		if want := ciphersuite.ID(0xF031 + i); id != want || !id.IsPostQuantum() {
			t.Errorf("PostQuantum()[%d] = %#04x (IsPostQuantum %v), want %#04x", i, uint16(id), id.IsPostQuantum(), uint16(want))
		}
	}
	for _, id := range []ciphersuite.ID{1, 7, 0xF030, 0xF03C, 0xF007, 0x004D} {
		if id.IsPostQuantum() {
			t.Errorf("%#04x.IsPostQuantum() = true", uint16(id))
		}
	}
	if _, err := ciphersuite.Lookup(0x004D); !errors.Is(err, ciphersuite.ErrUnsupported) {
		t.Errorf("Lookup(0x004D) (OpenMLS's X-Wing suite): got %v, want ErrUnsupported", err)
	}
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		if s.String() != info.name || s.ID().String() != info.name {
			t.Errorf("name %q / %q, want %q", s.String(), s.ID().String(), info.name)
		}
		if s.HashSize() != info.nh || s.AEADKeySize() != info.nk || s.AEADNonceSize() != 12 {
			t.Errorf("Nh/Nk/Nn = %d/%d/%d, want %d/%d/12", s.HashSize(), s.AEADKeySize(), s.AEADNonceSize(), info.nh, info.nk)
		}
		if again, _ := ciphersuite.Lookup(s.ID()); again != s {
			t.Error("Lookup returns a different suite on the second call")
		}
	})
}

func TestLookupUnsupported(t *testing.T) {
	for _, id := range []ciphersuite.ID{0x0000, 0x0008, 0x0a0a, 0xf000, 0xffff} {
		s, err := ciphersuite.Lookup(id)
		if s != nil {
			t.Errorf("Lookup(%#04x) returned a suite", uint16(id))
		}
		if !errors.Is(err, ciphersuite.ErrUnsupported) {
			t.Errorf("Lookup(%#04x): %v does not wrap ErrUnsupported", uint16(id), err)
		}
		var ue *ciphersuite.UnsupportedError
		if !errors.As(err, &ue) || ue.ID != id {
			t.Errorf("Lookup(%#04x): %v is not an *UnsupportedError for the ID", uint16(id), err)
		}
		if err != nil && !strings.Contains(err.Error(), id.String()) {
			t.Errorf("message %q does not name %s", err, id.String())
		}
	}
	if got := ciphersuite.ID(0x0a0a).String(); got != "0x0a0a" {
		t.Errorf("String of an unknown ID: %q", got)
	}
}

func TestHashAndMAC(t *testing.T) {
	data := []byte("the quick brown fox")
	key := []byte("mac key")
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		h := info.newHash()
		h.Write(data)
		if got := s.Hash(data); !bytes.Equal(got, h.Sum(nil)) {
			t.Errorf("Hash: %x", got)
		}
		if s.NewHash().Size() != info.nh {
			t.Errorf("NewHash size %d", s.NewHash().Size())
		}
		m := hmac.New(info.newHash, key)
		m.Write(data)
		want := m.Sum(nil)
		if got := s.MAC(key, data); !bytes.Equal(got, want) {
			t.Errorf("MAC: %x, want %x", got, want)
		}
		if !s.VerifyMAC(key, data, want) {
			t.Error("VerifyMAC rejects a good tag")
		}
		bad := slices.Clone(want)
		bad[len(bad)-1] ^= 1
		if s.VerifyMAC(key, data, bad) || s.VerifyMAC(key, data, want[:len(want)-1]) || s.VerifyMAC(key, data, nil) {
			t.Error("VerifyMAC accepts a bad tag")
		}
	})
}

// kdfLabel encodes KDFLabel (RFC 9420, Section 8) independently.
func kdfLabel(length int, label string, context []byte) []byte {
	return cat([]byte{byte(length >> 8), byte(length)}, opaque([]byte("MLS 1.0 "+label)), opaque(context))
}

func TestExpandWithLabel(t *testing.T) {
	secret := bytes.Repeat([]byte{0x0b}, 32)
	long := strings.Repeat("L", 20000) // the label needs a 4-byte header
	cases := []struct {
		label   string
		context []byte
		length  int
	}{
		{"test", []byte("context"), 16},
		{"", nil, 32},
		{"welcome", bytes.Repeat([]byte{1}, 100), 64},
		{long, bytes.Repeat([]byte{2}, 17000), 12},
	}
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		for _, c := range cases {
			want, err := hkdf.Expand(info.newHash, secret, string(kdfLabel(c.length, c.label, c.context)), c.length)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.ExpandWithLabel(secret, c.label, c.context, c.length); !bytes.Equal(got, want) {
				t.Errorf("ExpandWithLabel(label of %d bytes, context of %d bytes, %d): got %x, want %x", len(c.label), len(c.context), c.length, got, want)
			}
		}
		// DeriveSecret(Secret, Label) = ExpandWithLabel(Secret, Label, "", Nh).
		want, _ := hkdf.Expand(info.newHash, secret, string(kdfLabel(info.nh, "epoch", nil)), info.nh)
		if got := s.DeriveSecret(secret, "epoch"); !bytes.Equal(got, want) {
			t.Errorf("DeriveSecret: got %x, want %x", got, want)
		}
		// DeriveTreeSecret: the generation is a big-endian uint32 context.
		want, _ = hkdf.Expand(info.newHash, secret, string(kdfLabel(info.nk, "key", []byte{0x01, 0x02, 0x03, 0x04})), info.nk)
		if got := s.DeriveTreeSecret(secret, "key", 0x01020304, info.nk); !bytes.Equal(got, want) {
			t.Errorf("DeriveTreeSecret: got %x, want %x", got, want)
		}
		// Extract is HKDF-Extract(salt, ikm).
		wantPRK, _ := hkdf.Extract(info.newHash, []byte("ikm"), []byte("salt"))
		if got := s.Extract([]byte("salt"), []byte("ikm")); !bytes.Equal(got, wantPRK) {
			t.Errorf("Extract: got %x, want %x", got, wantPRK)
		}
	})
}

func TestRefHash(t *testing.T) {
	value := []byte("a key package")
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		ref := func(label string) []byte {
			h := info.newHash()
			h.Write(cat(opaque([]byte(label)), opaque(value)))
			return h.Sum(nil)
		}
		if got, want := s.RefHash("some label", value), ref("some label"); !bytes.Equal(got, want) {
			t.Errorf("RefHash: got %x, want %x", got, want)
		}
		if got, want := s.KeyPackageRef(value), ref("MLS 1.0 KeyPackage Reference"); !bytes.Equal(got, want) {
			t.Errorf("KeyPackageRef: got %x, want %x", got, want)
		}
		if got, want := s.ProposalRef(value), ref("MLS 1.0 Proposal Reference"); !bytes.Equal(got, want) {
			t.Errorf("ProposalRef: got %x, want %x", got, want)
		}
	})
}

// refAEAD builds the suite's AEAD directly from the standard library and
// x/crypto, to cross-check Seal.
func refAEAD(t *testing.T, name string, key []byte) cipher.AEAD {
	if strings.Contains(name, "CHACHA20POLY1305") {
		a, err := chacha20poly1305.New(key)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAEAD(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, info suiteInfo) {
		key := bytes.Repeat([]byte{0x42}, info.nk)
		nonce := bytes.Repeat([]byte{0x24}, 12)
		aad := []byte("aad")
		pt := []byte("attack at dawn")
		ct, err := s.Seal(key, nonce, aad, pt)
		if err != nil {
			t.Fatal(err)
		}
		if want := refAEAD(t, info.name, key).Seal(nil, nonce, pt, aad); !bytes.Equal(ct, want) {
			t.Fatalf("Seal: got %x, want %x", ct, want)
		}
		got, err := s.Open(key, nonce, aad, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open: %q, %v", got, err)
		}

		for i := range ct {
			bad := slices.Clone(ct)
			bad[i] ^= 1 << (i % 8)
			if _, err := s.Open(key, nonce, aad, bad); !errors.Is(err, ciphersuite.ErrDecrypt) {
				t.Fatalf("ciphertext with byte %d flipped: %v", i, err)
			}
		}
		otherNonce := slices.Clone(nonce)
		otherNonce[0] ^= 1
		otherKey := slices.Clone(key)
		otherKey[0] ^= 1
		for name, f := range map[string]func() ([]byte, error){
			"other aad":   func() ([]byte, error) { return s.Open(key, nonce, []byte("aaD"), ct) },
			"no aad":      func() ([]byte, error) { return s.Open(key, nonce, nil, ct) },
			"other nonce": func() ([]byte, error) { return s.Open(key, otherNonce, aad, ct) },
			"other key":   func() ([]byte, error) { return s.Open(otherKey, nonce, aad, ct) },
			"truncated":   func() ([]byte, error) { return s.Open(key, nonce, aad, ct[:len(ct)-1]) },
			"tag only":    func() ([]byte, error) { return s.Open(key, nonce, aad, ct[len(ct)-16:]) },
			"too short":   func() ([]byte, error) { return s.Open(key, nonce, aad, ct[:15]) },
			"empty":       func() ([]byte, error) { return s.Open(key, nonce, aad, nil) },
		} {
			if _, err := f(); !errors.Is(err, ciphersuite.ErrDecrypt) {
				t.Errorf("%s: got %v, want ErrDecrypt", name, err)
			}
		}

		for _, n := range []int{0, info.nk - 1, info.nk + 1, 64} {
			k := make([]byte, n)
			if _, err := s.Seal(k, nonce, aad, pt); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("Seal with a %d-byte key: %v", n, err)
			}
			if _, err := s.Open(k, nonce, aad, ct); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("Open with a %d-byte key: %v", n, err)
			}
		}
		for _, n := range []int{0, 8, 11, 13, 24} {
			nn := make([]byte, n)
			if _, err := s.Seal(key, nn, aad, pt); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("Seal with a %d-byte nonce: %v", n, err)
			}
			if _, err := s.Open(key, nn, aad, ct); !errors.Is(err, ciphersuite.ErrInvalidKey) {
				t.Errorf("Open with a %d-byte nonce: %v", n, err)
			}
		}
	})
}
