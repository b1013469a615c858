package ciphersuite_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	circlhpke "github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem/xwing"
	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
	"github.com/mlskit/mls/ciphersuite"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pqKEMVectors are the first DeriveKeyPair vector of each KEM in the test
// vectors of draft-ietf-hpke-pq, as the Go distribution ships them in
// src/crypto/hpke/testdata/hpke-pq.json: ikmR, skRm, and (the public keys
// being 1,184 to 1,665 bytes) the length and SHA-256 of pkRm, computed from
// that file outside this code.
var pqKEMVectors = []struct {
	kem     string
	suite   ciphersuite.ID // a suite with this KEM
	ikm, sk string
	pkLen   int
	pkHash  string
}{
	{"ML-KEM-768 (0x0041)", ciphersuite.MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519,
		"16835630bb0fbe89f7a5605bd673559f4a665773fd52aec4ea0cd4e7509e112ee5f9bbc75753ec5e86665343136139d2e8676ccd973ccf3114732dbae7445cf0",
		"3530176644619eb968895c1a251e8568e063278a7d9f4314b7d0ad973be2fd0b9560e77a2ca3f07958d782cab43cbae46e16bbc90277545d333e11ddcf18df61",
		1184, "b058724fd859b4dc182a1dbe76de12093c13c394a07729bf4004c7806f97ae52"},
	{"ML-KEM-1024 (0x0042)", ciphersuite.MLS_192_MLKEM1024_AES256GCM_SHA384_P384,
		"7544cdff18a3f8789f512337a27b6c68efd145a30ed3dc630f5dcc5ec6932929bce1c023147c48c954fdc213a7c9c0dd8895b8d28ec5c5e44d0b30abf9d8ca47",
		"f279454d08150d5bd81252001d02e1099f12fb7e9be6da2fe427bbaa2d79b0ab67306c0153c052610c4fdba3fad3435aeb1b65817d442c5c18ce07ea42440005",
		1568, "045b09f696f517d228b93d275cd20b872ea30d72da15ba15fd17a7b386847d42"},
	{"MLKEM768-P256 (0x0050)", ciphersuite.MLS_128_MLKEM768P256_AES128GCM_SHA256_P256,
		"eeae80edb6af9026dcbd638fcef2f4a19e03ef68ed699e507780f2c7d167ca53",
		"dfa3a04d54a0ec2f7edec57185e3df94063855fc7af64f25b815417a2c6eb0e4",
		1249, "df5a72888ef5948abfc5ede46c7fc5063208b6f065ff53f317c34044cc5b468f"},
	{"MLKEM1024-P384 (0x0051)", ciphersuite.MLS_192_MLKEM1024P384_AES256GCM_SHA384_P384,
		"0ac1e0b6b264f0de171b33b9fea8b6695c06f46bd5f838fa29cbcae1c6ce1119",
		"f1f10a30f20972ad29572652176e80ee17d2bd8a259e2b194eb05b8171a7f791",
		1665, "b87fb8b7fe25f4b92469bbe8f6093dda950a7a22c524ada72e927e5fa9211886"},
	{"X-Wing, MLKEM768-X25519 (0x647a)", ciphersuite.MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519,
		"0379761fa4f6869592b0d1f9a71eb92b122dc030a7a8858132109f6b1a4bbde4",
		"b3f98b03126a431ccecc62ae0f68e102c2d8e1cc7b21ba85d821d8e31761e0f8",
		1216, "120b60e0ae3c00c1c9def1c61aeb12de710bfa49646ae6f99a7e564b25ace493"},
}

// TestPQKEMVectors checks DeriveKeyPair (RFC 9180, Section 7.1.3, as
// draft-ietf-hpke-pq defines it for ML-KEM and the hybrids; RFC 9420,
// Section 7.4 derives node keys with it) of the PQ suites against the
// published vectors, then, where the Go distribution's vector file is
// present, against every vector of it whose HPKE suite is one of the MLS
// suites': key pair, first encryption and exports.
func TestPQKEMVectors(t *testing.T) {
	for _, v := range pqKEMVectors {
		t.Run(v.kem, func(t *testing.T) {
			s, err := ciphersuite.Lookup(v.suite)
			if err != nil {
				t.Fatal(err)
			}
			priv, pub, err := s.DeriveKeyPair(unhex(t, v.ikm))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(priv, unhex(t, v.sk)) {
				t.Errorf("skRm = %x, want %s", priv, v.sk)
			}
			if h := sha256.Sum256(pub); len(pub) != v.pkLen || hex.EncodeToString(h[:]) != v.pkHash {
				t.Errorf("pkRm: %d bytes with SHA-256 %x, want %d bytes with %s", len(pub), h, v.pkLen, v.pkHash)
			}
			if again, err := s.HPKEPublicKey(unhex(t, v.sk)); err != nil || !bytes.Equal(again, pub) {
				t.Errorf("HPKEPublicKey(skRm): %v", err)
			}
		})
	}

	path, reason := hpkePQVectorFile()
	if path == "" {
		t.Skipf("the full vector file is not checked: %s", reason)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("the full vector file is not checked: %v", err)
	}
	var vectors []struct {
		KEM         uint16 `json:"kem_id"`
		KDF         uint16 `json:"kdf_id"`
		AEAD        uint16 `json:"aead_id"`
		Mode        int    `json:"mode"`
		Info        string `json:"info"`
		IKMR        string `json:"ikmR"`
		SKRm        string `json:"skRm"`
		PKRm        string `json:"pkRm"`
		Enc         string `json:"enc"`
		Encryptions []struct {
			AAD, CT, PT string
		} `json:"encryptions"`
		Exports []struct {
			Context string `json:"exporter_context"`
			L       int    `json:"L"`
			Value   string `json:"exported_value"`
		} `json:"exports"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	checked := 0
	for i, v := range vectors {
		var id ciphersuite.ID
		for sid, ids := range pqHPKE {
			if ids == [3]uint16{v.KEM, v.KDF, v.AEAD} {
				id = sid
			}
		}
		if id == 0 || v.Mode != 0 {
			t.Logf("vector %d (KEM 0x%04x, KDF 0x%04x, AEAD 0x%04x, mode %d): no MLS suite uses this HPKE suite in base mode", i, v.KEM, v.KDF, v.AEAD, v.Mode)
			continue
		}
		s, _ := ciphersuite.Lookup(id)
		priv, pub, err := s.DeriveKeyPair(unhex(t, v.IKMR))
		if err != nil || !bytes.Equal(priv, unhex(t, v.SKRm)) || !bytes.Equal(pub, unhex(t, v.PKRm)) {
			t.Errorf("vector %d, %v: DeriveKeyPair does not give skRm, pkRm (%v)", i, id, err)
			continue
		}
		if len(v.Encryptions) > 0 {
			// The first encryption has sequence number 0: a single-shot open.
			e := v.Encryptions[0]
			pt, err := s.HPKEOpen(priv, unhex(t, v.Enc), unhex(t, v.Info), unhex(t, e.AAD), unhex(t, e.CT))
			if err != nil || !bytes.Equal(pt, unhex(t, e.PT)) {
				t.Errorf("vector %d, %v: HPKEOpen = %x, %v; want %s", i, id, pt, err, e.PT)
			}
		}
		for j, x := range v.Exports {
			got, err := s.HPKEExportReceiver(priv, unhex(t, v.Enc), unhex(t, v.Info), string(unhex(t, x.Context)), x.L)
			if err != nil || !bytes.Equal(got, unhex(t, x.Value)) {
				t.Errorf("vector %d, %v: export %d = %x, %v; want %s", i, id, j, got, err, x.Value)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatalf("%s has no vector for an MLS PQ suite", path)
	}
	t.Logf("%d vectors of %s checked in full", checked, path)
}

// hpkePQVectorFile finds the Go distribution's copy of the
// draft-ietf-hpke-pq vectors.
func hpkePQVectorFile() (path, reason string) {
	root := os.Getenv("GOROOT")
	if root == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			return "", "go env GOROOT: " + err.Error()
		}
		root = strings.TrimSpace(string(out))
	}
	p := filepath.Join(root, "src", "crypto", "hpke", "testdata", "hpke-pq.json")
	if _, err := os.Stat(p); err != nil {
		return "", err.Error()
	}
	return p, ""
}

// TestXWingMatchesCircl checks the X-Wing suites against a second,
// independent implementation: circl's X-Wing (draft-connolly-cfrg-xwing-kem,
// final) gives the same public key for the same 32-byte seed, and circl's
// HPKE (KEM_XWING, 0x647a) opens what the suite seals.
func TestXWingMatchesCircl(t *testing.T) {
	aeads := map[uint16]circlhpke.AEAD{1: circlhpke.AEAD_AES128GCM, 2: circlhpke.AEAD_AES256GCM, 3: circlhpke.AEAD_ChaCha20Poly1305}
	kdfs := map[uint16]circlhpke.KDF{1: circlhpke.KDF_HKDF_SHA256, 2: circlhpke.KDF_HKDF_SHA384}
	for _, id := range ciphersuite.PostQuantum() {
		ids := pqHPKE[id]
		if ids[0] != 0x647a {
			continue
		}
		s, _ := ciphersuite.Lookup(id)
		t.Run(s.String(), func(t *testing.T) {
			priv, pub := newKeyPair(t, s, "xwing")
			if len(priv) != xwing.SeedSize {
				t.Fatalf("private key of %d bytes, want the %d-byte X-Wing seed", len(priv), xwing.SeedSize)
			}
			_, circlPub := xwing.DeriveKeyPairPacked(priv)
			if !bytes.Equal(pub, circlPub) {
				t.Fatal("circl derives another X-Wing public key from the same seed")
			}
			suite := circlhpke.NewSuite(circlhpke.KEM_XWING, kdfs[ids[1]], aeads[ids[2]])
			sk, err := circlhpke.KEM_XWING.Scheme().UnmarshalBinaryPrivateKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			info, aad, pt := []byte("info"), []byte("aad"), []byte("path secret")
			enc, ct, err := s.HPKESeal(pub, info, aad, pt)
			if err != nil {
				t.Fatal(err)
			}
			r, err := suite.NewReceiver(sk, info)
			if err != nil {
				t.Fatal(err)
			}
			o, err := r.Setup(enc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := o.Open(ct, aad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("circl HPKE open: %q, %v", got, err)
			}
		})
	}
}

// mldsaVectors are the first key generation case of each parameter set in
// NIST's ACVP ML-DSA-keyGen-FIPS204 vectors (as circl ships them in
// sign/mldsa/testdata): the seed ξ and the length and SHA-256 of pk,
// computed from that file outside this code.
var mldsaVectors = []struct {
	suite  ciphersuite.ID
	scheme sign.Scheme
	tcID   int
	seed   string
	pkLen  int
	pkHash string
	sigLen int // FIPS 204, Table 2
}{
	{ciphersuite.MLS_128_MLKEM768X25519_CHACHA20POLY1305_SHA384_MLDSA44, mldsa44.Scheme(), 1,
		"93EF2E6EF1FB08999D142ABE0295482370D3F43BDB254A78E2B0D5168ECA065F",
		1312, "6995b20ecd5cde41719035028a712ccf35b1adf53b913030423d9d6fa188d673", 2420},
	{ciphersuite.MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65, mldsa65.Scheme(), 26,
		"70CEFB9AED5B68E018B079DA8284B9D5CAD5499ED9C265FF73588005D85C225C",
		1952, "646b26b8d09dbc9e865b6a006c693a3127b065e62fab5fbe8b159c416462feb6", 3309},
	{ciphersuite.MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87, mldsa87.Scheme(), 51,
		"38359FBCD79582CFFE609E137EE2EFE8A8DBCBAD18BA92BB433AB4F09B49299D",
		2592, "ea374a09356e5f89be784f28f4ef938e8976cb5c4db00fbacb257663491748d4", 4627},
}

// TestMLDSAVectors checks the ML-DSA suites' key handling against the ACVP
// key generation vectors (GenerateSignatureKey reading the seed, NewSigner
// of the seed, MarshalSigner giving it back, SignaturePublicKey), and that
// SignWithLabel is pure ML-DSA over SignContent (RFC 9420, Section 5.1.2)
// with an empty context string: circl's verifier accepts it with ctx = ""
// and refuses it with any other context.
func TestMLDSAVectors(t *testing.T) {
	for _, v := range mldsaVectors {
		s, _ := ciphersuite.Lookup(v.suite)
		t.Run(v.scheme.Name(), func(t *testing.T) {
			seed := unhex(t, v.seed)
			gen, err := s.GenerateSignatureKey(bytes.NewReader(seed))
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := s.NewSigner(seed)
			if err != nil {
				t.Fatal(err)
			}
			for name, k := range map[string]func() ([]byte, error){
				"GenerateSignatureKey": func() ([]byte, error) { return s.SignaturePublicKey(gen) },
				"NewSigner":            func() ([]byte, error) { return s.SignaturePublicKey(parsed) },
			} {
				pk, err := k()
				if err != nil {
					t.Fatal(err)
				}
				if h := sha256.Sum256(pk); len(pk) != v.pkLen || hex.EncodeToString(h[:]) != v.pkHash {
					t.Errorf("%s: tcId %d: pk of %d bytes with SHA-256 %x, want %d bytes with %s", name, v.tcID, len(pk), h, v.pkLen, v.pkHash)
				}
			}
			if back, err := s.MarshalSigner(gen); err != nil || !bytes.Equal(back, seed) {
				t.Errorf("MarshalSigner = %X, %v; want the seed", back, err)
			}

			pub, _ := s.SignaturePublicKey(gen)
			content := []byte("KeyPackageTBS bytes")
			sig, err := s.SignWithLabel(gen, "KeyPackageTBS", content)
			if err != nil {
				t.Fatal(err)
			}
			if len(sig) != v.sigLen {
				t.Errorf("signature of %d bytes, want %d", len(sig), v.sigLen)
			}
			pk, err := v.scheme.UnmarshalBinaryPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			tbs := cat(opaque([]byte("MLS 1.0 KeyPackageTBS")), opaque(content))
			if !v.scheme.Verify(pk, tbs, sig, nil) {
				t.Error("circl does not verify the signature over SignContent with an empty context")
			}
			if v.scheme.Verify(pk, tbs, sig, &sign.SignatureOpts{Context: "MLS 1.0"}) {
				t.Error("the signature verifies with a non-empty context")
			}
			if err := s.VerifyWithLabel(pub, "KeyPackageTBS", content, sig); err != nil {
				t.Errorf("VerifyWithLabel: %v", err)
			}
			other := slices.Clone(sig)
			other[len(other)/2] ^= 1
			if err := s.VerifyWithLabel(pub, "KeyPackageTBS", content, other); err == nil {
				t.Error("a flipped signature bit verifies")
			}
			if err := s.VerifyWithLabel(pub, "KeyPackageTBS", content, sig[:len(sig)-1]); err == nil {
				t.Error("a truncated signature verifies")
			}
		})
	}
}
