package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
)

func init() { register("psk_secret.json", checkPSKSecret) }

type pskSecretVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hx `json:"psk_id"`
		PSK      hx `json:"psk"`
		PSKNonce hx `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hx `json:"psk_secret"`
}

// checkPSKSecret builds an external PreSharedKeyID for every PSK and checks
// the combined psk_secret (RFC 9420, Section 8.4).
func checkPSKSecret(raw []byte, r *Report) error {
	var vs []pskSecretVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		name := fmt.Sprintf("%d/suite=%d/psks=%d", i, v.CipherSuite, len(v.PSKs))
		r.Check(name, checkPSKSecretVector(v))
	}
	return nil
}

func checkPSKSecretVector(v *pskSecretVector) error {
	s, err := suiteFor(v.CipherSuite)
	if err != nil {
		return err
	}
	psks := make([]keyschedule.PSK, 0, len(v.PSKs))
	for j, p := range v.PSKs {
		id, err := message.Marshal(&message.PreSharedKeyID{Type: message.PSKExternal, PSKID: p.PSKID, Nonce: p.PSKNonce})
		if err != nil {
			return fmt.Errorf("PreSharedKeyID %d: %w", j, err)
		}
		psks = append(psks, keyschedule.PSK{ID: id, Secret: p.PSK})
	}
	got, err := keyschedule.DerivePSKSecret(s, psks)
	if err != nil {
		return err
	}
	return eq("psk_secret", got.Bytes(), v.PSKSecret)
}
