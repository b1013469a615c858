package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/vectors"
)

type hx = vectors.Hex

func init() { register("crypto-basics.json", checkCryptoBasics) }

type cryptoBasicsVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	RefHash     struct {
		Label string `json:"label"`
		Value hx     `json:"value"`
		Out   hx     `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hx     `json:"secret"`
		Label   string `json:"label"`
		Context hx     `json:"context"`
		Length  int    `json:"length"`
		Out     hx     `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hx     `json:"secret"`
		Label  string `json:"label"`
		Out    hx     `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hx     `json:"secret"`
		Label      string `json:"label"`
		Generation uint32 `json:"generation"`
		Length     int    `json:"length"`
		Out        hx     `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hx     `json:"priv"`
		Pub       hx     `json:"pub"`
		Content   hx     `json:"content"`
		Label     string `json:"label"`
		Signature hx     `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hx     `json:"priv"`
		Pub        hx     `json:"pub"`
		Label      string `json:"label"`
		Context    hx     `json:"context"`
		Plaintext  hx     `json:"plaintext"`
		KEMOutput  hx     `json:"kem_output"`
		Ciphertext hx     `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

// suiteFor looks up a vector's cipher suite; the error names the vector.
func suiteFor(id uint16) (*ciphersuite.Suite, error) {
	return ciphersuite.Lookup(ciphersuite.ID(id))
}

func checkCryptoBasics(raw []byte, r *Report) error {
	var vs []cryptoBasicsVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i, v := range vs {
		name := fmt.Sprintf("%d/suite=%d", i, v.CipherSuite)
		s, err := suiteFor(v.CipherSuite)
		if err != nil {
			r.Check(name, err)
			continue
		}
		r.Check(name+"/ref_hash", eq("out", s.RefHash(v.RefHash.Label, v.RefHash.Value), v.RefHash.Out))
		e := v.ExpandWithLabel
		r.Check(name+"/expand_with_label", eq("out", s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length), e.Out))
		r.Check(name+"/derive_secret", eq("out", s.DeriveSecret(v.DeriveSecret.Secret, v.DeriveSecret.Label), v.DeriveSecret.Out))
		t := v.DeriveTreeSecret
		r.Check(name+"/derive_tree_secret", eq("out", s.DeriveTreeSecret(t.Secret, t.Label, t.Generation, t.Length), t.Out))
		r.Check(name+"/sign_with_label", checkSignWithLabel(s, &v))
		r.Check(name+"/encrypt_with_label", checkEncryptWithLabel(s, &v))
	}
	return nil
}

func checkSignWithLabel(s *ciphersuite.Suite, v *cryptoBasicsVector) error {
	sv := v.SignWithLabel
	if err := s.VerifyWithLabel(sv.Pub, sv.Label, sv.Content, sv.Signature); err != nil {
		return fmt.Errorf("vector signature: %w", err)
	}
	signer, err := s.NewSigner(sv.Priv)
	if err != nil {
		return err
	}
	pub, err := s.SignaturePublicKey(signer)
	if err != nil {
		return err
	}
	if !bytes.Equal(pub, sv.Pub) {
		return mismatch("public key of priv", pub, sv.Pub)
	}
	sig, err := s.SignWithLabel(signer, sv.Label, sv.Content)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(sv.Pub, sv.Label, sv.Content, sig); err != nil {
		return fmt.Errorf("own signature: %w", err)
	}
	// A signature must not verify under another label.
	if s.VerifyWithLabel(sv.Pub, sv.Label+"x", sv.Content, sig) == nil {
		return errors.New("signature verified under a different label")
	}
	return nil
}

func checkEncryptWithLabel(s *ciphersuite.Suite, v *cryptoBasicsVector) error {
	ev := v.EncryptWithLabel
	pt, err := s.DecryptWithLabel(ev.Priv, ev.Label, ev.Context, ev.KEMOutput, ev.Ciphertext)
	if err != nil {
		return fmt.Errorf("vector ciphertext: %w", err)
	}
	if err := eq("plaintext", pt, ev.Plaintext); err != nil {
		return err
	}
	pub, err := s.HPKEPublicKey(ev.Priv)
	if err != nil {
		return err
	}
	if err := eq("public key of priv", pub, ev.Pub); err != nil {
		return err
	}
	kem, ct, err := s.EncryptWithLabel(ev.Pub, ev.Label, ev.Context, ev.Plaintext)
	if err != nil {
		return err
	}
	pt, err = s.DecryptWithLabel(ev.Priv, ev.Label, ev.Context, kem, ct)
	if err != nil {
		return fmt.Errorf("own ciphertext: %w", err)
	}
	return eq("own plaintext", pt, ev.Plaintext)
}

// eq returns nil if got equals want, else a mismatch error.
func eq(field string, got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	return mismatch(field, got, want)
}
