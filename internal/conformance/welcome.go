package conformance

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
)

func init() { register("welcome.json", checkWelcome) }

// welcomeVector is one entry of welcome.json (vector README, "Welcome").
type welcomeVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	InitPriv    hx     `json:"init_priv"`
	SignerPub   hx     `json:"signer_pub"`
	KeyPackage  hx     `json:"key_package"`
	Welcome     hx     `json:"welcome"`
}

// labelWelcome is the EncryptWithLabel label of EncryptedGroupSecrets
// (RFC 9420, Section 12.4.3.1).
const labelWelcome = "Welcome"

func checkWelcome(raw []byte, r *Report) error {
	var vs []welcomeVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		r.Check(fmt.Sprintf("%d/suite=%d", i, v.CipherSuite), checkWelcomeVector(v))
	}
	return nil
}

// checkWelcomeVector follows the README's verification steps, which are
// the joining steps of RFC 9420, Section 12.4.3.1 without a ratchet tree:
// find the EncryptedGroupSecrets for the key package, decrypt it with
// init_priv, derive welcome_secret from joiner_secret with no PSKs,
// decrypt the GroupInfo, verify its signature with signer_pub, and
// recompute its confirmation tag from the epoch's confirmation_key.
func checkWelcomeVector(v *welcomeVector) error {
	s, err := suiteFor(v.CipherSuite)
	if err != nil {
		return err
	}
	kpm, err := message.UnmarshalMLSMessage(v.KeyPackage)
	if err != nil {
		return fmt.Errorf("key_package: %w", err)
	}
	if kpm.WireFormat != message.WireFormatKeyPackage {
		return fmt.Errorf("key_package: wire_format %d, want mls_key_package", kpm.WireFormat)
	}
	kp := kpm.KeyPackage
	wm, err := message.UnmarshalMLSMessage(v.Welcome)
	if err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	if wm.WireFormat != message.WireFormatWelcome {
		return fmt.Errorf("welcome: wire_format %d, want mls_welcome", wm.WireFormat)
	}
	w := wm.Welcome
	if w.CipherSuite != s.ID() || kp.CipherSuite != s.ID() {
		return fmt.Errorf("cipher suites: welcome %d, key package %d, vector %d", w.CipherSuite, kp.CipherSuite, s.ID())
	}

	// The private key must belong to the key package.
	initPub, err := s.HPKEPublicKey(v.InitPriv)
	if err != nil {
		return fmt.Errorf("init_priv: %w", err)
	}
	if err := eq("public key of init_priv", initPub, kp.InitKey); err != nil {
		return err
	}

	// Identify the entry for the key package by its KeyPackageRef.
	ref, err := kp.Ref(s)
	if err != nil {
		return err
	}
	entry := w.Find(ref)
	if entry == nil {
		return fmt.Errorf("no EncryptedGroupSecrets for KeyPackageRef %x", ref)
	}

	// GroupSecrets = DecryptWithLabel(init_priv, "Welcome",
	// encrypted_group_info, kem_output, ciphertext).
	ct := entry.EncryptedGroupSecrets
	plain, err := s.DecryptWithLabel(v.InitPriv, labelWelcome, w.EncryptedGroupInfo, ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return fmt.Errorf("encrypted_group_secrets: %w", err)
	}
	gs, err := message.UnmarshalGroupSecrets(plain)
	if err != nil {
		return fmt.Errorf("group_secrets: %w", err)
	}
	if len(gs.PSKs) != 0 {
		return fmt.Errorf("group_secrets lists %d PSKs; the vector format provides none", len(gs.PSKs))
	}

	// welcome_secret from joiner_secret and the all-zero psk_secret.
	joiner, err := keyschedule.NewJoinerSecret(s, gs.JoinerSecret)
	if err != nil {
		return fmt.Errorf("joiner_secret: %w", err)
	}
	inter, err := joiner.Intermediate(nil)
	if err != nil {
		return err
	}
	giBytes, err := inter.Welcome().OpenGroupInfo(w.EncryptedGroupInfo)
	if err != nil {
		return err
	}
	gi, err := message.UnmarshalGroupInfo(giBytes)
	if err != nil {
		return fmt.Errorf("group_info: %w", err)
	}
	if gi.GroupContext.CipherSuite != s.ID() {
		return fmt.Errorf("group_context.cipher_suite %d, want %d", gi.GroupContext.CipherSuite, s.ID())
	}
	if err := gi.VerifySignature(s, v.SignerPub); err != nil {
		return err
	}
	return checkConfirmationTag(s, inter, gi)
}

// checkConfirmationTag recomputes the GroupInfo's confirmation tag:
// epoch_secret from the joiner's intermediate secret and the GroupContext,
// confirmation_key from it, then MAC(confirmation_key,
// confirmed_transcript_hash) (RFC 9420, Sections 8 and 12.4.3.1).
func checkConfirmationTag(s *ciphersuite.Suite, inter *keyschedule.IntermediateSecret, gi *message.GroupInfo) error {
	gc, err := gi.GroupContext.Marshal()
	if err != nil {
		return err
	}
	epoch, err := inter.Epoch(gc)
	if err != nil {
		return err
	}
	if !epoch.VerifyConfirmationTag(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		return errors.New("confirmation_tag does not match MAC(confirmation_key, confirmed_transcript_hash)")
	}
	return nil
}
