package mls_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage/memory"
)

// hexBytes decodes a JSON hex string; null gives nil.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

// passiveVector has the schema of the passive-client test vectors
// (official ones and the interop harness's ../shared/interop/passive).
type passiveVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes `json:"key_package"`
	SignaturePriv             hexBytes `json:"signature_priv"`
	EncryptionPriv            hexBytes `json:"encryption_priv"`
	InitPriv                  hexBytes `json:"init_priv"`
	Welcome                   hexBytes `json:"welcome"`
	RatchetTree               hexBytes `json:"ratchet_tree"`
	InitialEpochAuthenticator hexBytes `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

// padHPKEKey restores leading zero octets a vector generator dropped from
// a NIST-curve HPKE private key (RFC 9180, Section 7.1.2 fixes its length).
func padHPKEKey(s *ciphersuite.Suite, k []byte) []byte {
	ref, _, err := s.DeriveKeyPair(make([]byte, s.HashSize()))
	if err != nil || len(k) == 0 || len(k) >= len(ref) {
		return k
	}
	return append(make([]byte, len(ref)-len(k)), k...)
}

// runPassiveVector joins from the vector's Welcome and follows every epoch,
// comparing epoch authenticators (vector README, "Passive Client
// Scenarios"). It returns the group and whether the lifetime check had to
// be relaxed.
func runPassiveVector(v *passiveVector) (*mls.Group, bool, error) {
	g, err := playPassive(v, false)
	if errors.Is(err, tree.ErrLifetime) {
		g, err = playPassive(v, true)
		return g, true, err
	}
	return g, false, err
}

func playPassive(v *passiveVector, relax bool) (*mls.Group, error) {
	ctx := context.Background()
	s, err := ciphersuite.Lookup(mls.CipherSuite(v.CipherSuite))
	if err != nil {
		return nil, err
	}
	store := memory.New()
	for _, p := range v.ExternalPSKs {
		if err := mls.StorePSK(ctx, store, p.PSKID, p.PSK); err != nil {
			return nil, err
		}
	}
	if _, err := mls.ImportKeyPackage(ctx, store, v.KeyPackage, padHPKEKey(s, v.InitPriv), padHPKEKey(s, v.EncryptionPriv), false); err != nil {
		return nil, fmt.Errorf("key package: %w", err)
	}
	signer, err := s.NewSigner(v.SignaturePriv)
	if err != nil {
		return nil, err
	}
	w, err := mls.ParseMessage(v.Welcome)
	if err != nil {
		return nil, err
	}
	var rt []byte
	if len(v.RatchetTree) > 0 {
		rt = v.RatchetTree
	}
	sw, err := mls.StageWelcome(ctx, store, w, mls.JoinConfig{SkipLifetimeCheck: relax}, mls.WelcomeOptions{RatchetTree: rt})
	if err != nil {
		return nil, fmt.Errorf("welcome: %w", err)
	}
	g, err := sw.Join(ctx, signer)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), v.InitialEpochAuthenticator) {
		return nil, fmt.Errorf("initial epoch authenticator %x, want %x", g.EpochAuthenticator(), v.InitialEpochAuthenticator)
	}
	for n, e := range v.Epochs {
		for k, raw := range e.Proposals {
			m, err := mls.ParseMessage(raw)
			if err != nil {
				return nil, fmt.Errorf("epoch %d proposal %d: %w", n, k, err)
			}
			p, err := g.Process(ctx, m)
			if err != nil {
				return nil, fmt.Errorf("epoch %d proposal %d: %w", n, k, err)
			}
			if p.Kind != mls.KindProposal {
				return nil, fmt.Errorf("epoch %d proposal %d: got %v", n, k, p.Kind)
			}
			if err := g.StorePendingProposal(ctx, p.Proposal); err != nil {
				return nil, err
			}
		}
		m, err := mls.ParseMessage(e.Commit)
		if err != nil {
			return nil, fmt.Errorf("epoch %d commit: %w", n, err)
		}
		p, err := g.Process(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("epoch %d commit: %w", n, err)
		}
		if p.Kind != mls.KindCommit {
			return nil, fmt.Errorf("epoch %d commit: got %v", n, p.Kind)
		}
		if err := g.MergeStagedCommit(ctx, p.Commit); err != nil {
			return nil, fmt.Errorf("epoch %d merge: %w", n, err)
		}
		if !bytes.Equal(g.EpochAuthenticator(), e.EpochAuthenticator) {
			return nil, fmt.Errorf("epoch %d: epoch authenticator %x, want %x", n, g.EpochAuthenticator(), e.EpochAuthenticator)
		}
	}
	return g, nil
}

var interopFull = flag.Bool("interop-full", false, "run every interop passive-client vector, not a sample")

// TestInteropPassive runs the passive-client vectors generated from the
// interop harness scenarios (../shared/interop/passive): welcome joins,
// commits, application messages, branches, reinit, external joins and
// external proposals, all from the point of view of a passive member.
func TestInteropPassive(t *testing.T) {
	dir := filepath.Join("..", "shared", "interop", "passive")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no interop passive vectors in %s", dir)
		}
		t.Skipf("no interop passive vectors in %s", dir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var vs []passiveVector
			if err := json.Unmarshal(raw, &vs); err != nil {
				t.Fatal(err)
			}
			// Every vector with -interop-full; otherwise every 4th (every
			// 16th with -short), which still covers each suite and
			// scenario block of the files.
			stride := 4
			switch {
			case *interopFull:
				stride = 1
			case testing.Short():
				stride = 16
			}
			for i := 0; i < len(vs); i += stride {
				t.Run(fmt.Sprintf("%d/suite=%d", i, vs[i].CipherSuite), func(t *testing.T) {
					if _, _, err := runPassiveVector(&vs[i]); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}
