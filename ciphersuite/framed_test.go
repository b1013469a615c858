package ciphersuite_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
)

// framed encodes content behind room for label's prefix and frames it in
// place, as a caller of the framed variants does.
func framed(t *testing.T, label string, content []byte) []byte {
	t.Helper()
	room := ciphersuite.LabeledPrefixRoom(label)
	buf := append(make([]byte, room), content...)
	b, err := ciphersuite.PutLabeledPrefix(buf, room, label)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPutLabeledPrefix: the framed struct is SignContent/EncryptContext
// encoded independently, for contents whose length takes 1, 2 and 4
// octets, and too little room is an error.
func TestPutLabeledPrefix(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 16383, 16384, 1 << 20} {
		content := bytes.Repeat([]byte{0xa5}, n)
		if got, want := framed(t, "GroupInfoTBS", content), signContent("GroupInfoTBS", content); !bytes.Equal(got, want) {
			t.Errorf("%d bytes: framed %x..., want %x...", n, got[:min(len(got), 40)], want[:min(len(want), 40)])
		}
	}
	if _, err := ciphersuite.PutLabeledPrefix(make([]byte, 10), 4, "GroupInfoTBS"); err == nil {
		t.Error("a prefix written into too little room")
	}
	if _, err := ciphersuite.PutLabeledPrefix(make([]byte, 10), 11, "GroupInfoTBS"); err == nil {
		t.Error("a prefix written beyond the buffer")
	}
}

// TestFramedVariants: the framed variants give what SignWithLabel,
// EncryptWithLabel and Seal give, and refuse a struct framed for another
// label or with a wrong length.
func TestFramedVariants(t *testing.T) {
	content := bytes.Repeat([]byte("a GroupInfo "), 2000)
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, _ suiteInfo) {
		signer := newSigner(t, s, "framed")
		pub, err := s.SignaturePublicKey(signer)
		if err != nil {
			t.Fatal(err)
		}
		sc := framed(t, "GroupInfoTBS", content)
		sig, err := s.SignWithLabelFramed(signer, "GroupInfoTBS", sc)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyWithLabel(pub, "GroupInfoTBS", content, sig); err != nil {
			t.Errorf("framed signature: %v", err)
		}
		priv, kpub := newKeyPair(t, s, "framed")
		ec := framed(t, "Welcome", content)
		kem, ct, err := s.EncryptWithLabelFramed(kpub, "Welcome", ec, []byte("secrets"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.DecryptWithLabel(priv, "Welcome", content, kem, ct); err != nil || string(pt) != "secrets" {
			t.Errorf("framed encryption: %q, %v", pt, err)
		}
		bad := map[string][]byte{
			"other label":  framed(t, "GroupInfoTBs", content),
			"cut":          sc[:len(sc)-1],
			"extended":     append(slices.Clone(sc), 0),
			"empty":        nil,
			"label only":   sc[:1+len("MLS 1.0 GroupInfoTBS")],
			"not minimal":  append(slices.Clone(sc[:1+len("MLS 1.0 GroupInfoTBS")]), 0x80, 0, 0, 3, 'a', 'b', 'c'),
			"eight octets": append(slices.Clone(sc[:1+len("MLS 1.0 GroupInfoTBS")]), 0xc0, 0, 0, 0, 0, 0, 0, 0),
		}
		for name, b := range bad {
			if _, err := s.SignWithLabelFramed(signer, "GroupInfoTBS", b); err == nil {
				t.Errorf("SignWithLabelFramed: %s accepted", name)
			}
			if _, _, err := s.EncryptWithLabelFramed(kpub, "GroupInfoTBS", b, nil); err == nil {
				t.Errorf("EncryptWithLabelFramed: %s accepted", name)
			}
		}
		key, nonce := make([]byte, s.AEADKeySize()), make([]byte, s.AEADNonceSize())
		want, err := s.Seal(key, nonce, nil, content)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.AppendSeal([]byte("prefix"), key, nonce, nil, content)
		if err != nil || !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("AppendSeal: %v", err)
		}
	})
}
