package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/treemath"
)

func init() { register("secret-tree.json", checkSecretTree) }

type secretTreeVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	SenderData  struct {
		SenderDataSecret hx `json:"sender_data_secret"`
		Ciphertext       hx `json:"ciphertext"`
		Key              hx `json:"key"`
		Nonce            hx `json:"nonce"`
	} `json:"sender_data"`
	EncryptionSecret hx `json:"encryption_secret"`
	Leaves           [][]struct {
		Generation       uint32 `json:"generation"`
		HandshakeKey     hx     `json:"handshake_key"`
		HandshakeNonce   hx     `json:"handshake_nonce"`
		ApplicationKey   hx     `json:"application_key"`
		ApplicationNonce hx     `json:"application_nonce"`
	} `json:"leaves"`
}

// checkSecretTree verifies the sender data key and nonce of every vector
// and, for every leaf and listed generation, the handshake and application
// keys and nonces, both as a receiver (Get then Consume) and as the sender
// (Next) would derive them (RFC 9420, Sections 6.3.2 and 9).
func checkSecretTree(raw []byte, r *Report) error {
	var vs []secretTreeVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		name := fmt.Sprintf("%d/suite=%d/leaves=%d", i, v.CipherSuite, len(v.Leaves))
		s, err := suiteFor(v.CipherSuite)
		if err != nil {
			r.Check(name, err)
			continue
		}
		sd := v.SenderData
		key, nonce := secrettree.SenderDataKeyNonce(s, sd.SenderDataSecret, sd.Ciphertext)
		err = eq("sender_data.key", key, sd.Key)
		if err == nil {
			err = eq("sender_data.nonce", nonce, sd.Nonce)
		}
		r.Check(name+"/sender_data", err)

		recv, err := secrettree.New(s, v.EncryptionSecret, uint32(len(v.Leaves)), secrettree.Config{})
		if err != nil {
			r.Check(name, err)
			continue
		}
		send, err := secrettree.New(s, v.EncryptionSecret, uint32(len(v.Leaves)), secrettree.Config{})
		if err != nil {
			r.Check(name, err)
			continue
		}
		for leaf := range v.Leaves {
			r.Check(fmt.Sprintf("%s/leaf=%d", name, leaf), checkSecretTreeLeaf(recv, send, v, leaf))
		}
	}
	return nil
}

func checkSecretTreeLeaf(recv, send *secrettree.Tree, v *secretTreeVector, leaf int) error {
	if len(v.Leaves[leaf]) == 0 {
		return fmt.Errorf("vector lists no generations for leaf %d", leaf)
	}
	li := treemath.LeafIndex(leaf)
	for _, g := range v.Leaves[leaf] {
		for _, c := range []struct {
			typ        secrettree.RatchetType
			key, nonce []byte
		}{
			{secrettree.Handshake, g.HandshakeKey, g.HandshakeNonce},
			{secrettree.Application, g.ApplicationKey, g.ApplicationNonce},
		} {
			field := fmt.Sprintf("%s generation %d", c.typ, g.Generation)
			kn, err := recv.Get(li, c.typ, g.Generation)
			if err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			if err := eq(field+" key", kn.Key, c.key); err != nil {
				return err
			}
			if err := eq(field+" nonce", kn.Nonce, c.nonce); err != nil {
				return err
			}
			if err := recv.Consume(li, c.typ, g.Generation); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			// The sender ratchet reaches the same generation by Next.
			for {
				if kn, err = send.Next(li, c.typ); err != nil {
					return fmt.Errorf("%s (sender): %w", field, err)
				}
				if kn.Generation >= g.Generation {
					break
				}
			}
			if kn.Generation != g.Generation {
				return fmt.Errorf("%s (sender): Next skipped to generation %d", field, kn.Generation)
			}
			if err := eq(field+" key (sender)", kn.Key, c.key); err != nil {
				return err
			}
			if err := eq(field+" nonce (sender)", kn.Nonce, c.nonce); err != nil {
				return err
			}
		}
	}
	return nil
}
