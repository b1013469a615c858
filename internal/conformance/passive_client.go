package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage/memory"
)

func init() {
	register("passive-client-welcome.json", checkPassiveClient)
	register("passive-client-handling-commit.json", checkPassiveClient)
	register("passive-client-random.json", checkPassiveClient)
}

// passiveVector is one entry of the passive-client-*.json files (vector
// README, "Passive Client Scenarios"): a client joins from a Welcome and
// follows the group through a series of commits.
type passiveVector struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hx `json:"psk_id"`
		PSK   hx `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hx `json:"key_package"`
	SignaturePriv             hx `json:"signature_priv"`
	EncryptionPriv            hx `json:"encryption_priv"`
	InitPriv                  hx `json:"init_priv"`
	Welcome                   hx `json:"welcome"`
	RatchetTree               hx `json:"ratchet_tree"` // nil when the tree is in the Welcome
	InitialEpochAuthenticator hx `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hx `json:"proposals"`
		Commit             hx   `json:"commit"`
		EpochAuthenticator hx   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

// noteLifetime marks a vector that passed only with the leaf-node lifetime
// check relaxed: the vectors were generated years ago and their key
// packages' lifetimes have expired (see the vectors' NOTES.md).
const noteLifetime = "leaf lifetime check relaxed (expired vector lifetimes)"

func checkPassiveClient(raw []byte, r *Report) error {
	var vs []passiveVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		name := fmt.Sprintf("%d/suite=%d", i, v.CipherSuite)
		_, err := runPassive(v, false)
		if errors.Is(err, errJoinLifetime) {
			if _, err = runPassive(v, true); err == nil {
				r.PassNote(name, noteLifetime)
				continue
			}
		}
		r.Check(name, err)
	}
	return nil
}

// errJoinLifetime marks a join that failed only because a leaf's lifetime
// does not cover the current time (tree.ErrLifetime).
var errJoinLifetime = errors.New("join failed on a leaf lifetime")

// runPassive plays one vector through the public API, as a client that
// only receives: import the key package and its private keys, join from
// the Welcome (RFC 9420, Section 12.4.3.1), then process and merge every
// epoch's proposals and commit (Sections 12.1 and 12.4.2), comparing the
// epoch authenticator (Section 8.7) after each step.
func runPassive(v *passiveVector, relaxLifetime bool) (followed bool, err error) {
	ctx := context.Background()
	s, err := suiteFor(v.CipherSuite)
	if err != nil {
		return false, err
	}
	kp, err := mls.ParseKeyPackage(v.KeyPackage)
	if err != nil {
		return false, fmt.Errorf("key_package: %w", err)
	}
	signer, err := s.NewSigner(v.SignaturePriv)
	if err != nil {
		return false, fmt.Errorf("signature_priv: %w", err)
	}
	// The vectors' credentials are basic ones that no one vouches for.
	client, err := mls.NewClient(ctx, memory.New(), kp.Credential(), signer, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		return false, err
	}
	for _, p := range v.ExternalPSKs {
		if err := client.StorePSK(ctx, p.PSKID, p.PSK); err != nil {
			return false, fmt.Errorf("external_psks: %w", err)
		}
	}
	initPriv, err := hpkePrivateKey(s, v.InitPriv)
	if err != nil {
		return false, fmt.Errorf("init_priv: %w", err)
	}
	encPriv, err := hpkePrivateKey(s, v.EncryptionPriv)
	if err != nil {
		return false, fmt.Errorf("encryption_priv: %w", err)
	}
	if _, err := client.ImportKeyPackage(ctx, v.KeyPackage, initPriv, encPriv, false); err != nil {
		return false, fmt.Errorf("key_package: %w", err)
	}
	wm, err := mls.ParseMessage(v.Welcome)
	if err != nil {
		return false, fmt.Errorf("welcome: %w", err)
	}
	cfg := mls.JoinConfig{SkipLifetimeCheck: relaxLifetime}
	var rt []byte
	if len(v.RatchetTree) > 0 {
		rt = v.RatchetTree
	}
	sw, err := client.StageWelcome(ctx, wm, mls.WelcomeOptions{JoinConfig: cfg, RatchetTree: rt})
	if err != nil {
		if !relaxLifetime && errors.Is(err, tree.ErrLifetime) {
			return false, fmt.Errorf("%w: %w", errJoinLifetime, err)
		}
		return false, fmt.Errorf("welcome: %w", err)
	}
	g, err := sw.Join(ctx)
	if err != nil {
		return false, fmt.Errorf("join: %w", err)
	}
	if err := eq("initial_epoch_authenticator", g.EpochAuthenticator(), v.InitialEpochAuthenticator); err != nil {
		return false, err
	}
	// A PublicGroup follows the vector alongside, as long as every
	// handshake is a PublicMessage: after each epoch its ratchet tree
	// must be the member's.
	pg, err := g.PublicGroup(ctx, memory.New(), credential.AcceptAll)
	if err != nil {
		return false, fmt.Errorf("public group: %w", err)
	}
	followed = true
	for n := range v.Epochs {
		e := &v.Epochs[n]
		if err := passiveEpoch(ctx, g, e.Proposals, e.Commit); err != nil {
			return false, fmt.Errorf("epoch %d: %w", n, err)
		}
		if err := eq(fmt.Sprintf("epoch %d: epoch_authenticator", n), g.EpochAuthenticator(), e.EpochAuthenticator); err != nil {
			return false, err
		}
		if followed {
			if followed, err = followEpoch(ctx, pg, g, e.Proposals, e.Commit); err != nil {
				return false, fmt.Errorf("epoch %d: public group: %w", n, err)
			}
		}
	}
	return followed, nil
}

// followEpoch has a PublicGroup process one epoch's proposals and commit
// and compares its tree with the member's. It reports false, and stops,
// at the first PrivateMessage, which a PublicGroup cannot follow.
func followEpoch(ctx context.Context, pg *mls.PublicGroup, g *mls.Group, proposals []hx, commit hx) (bool, error) {
	for _, raw := range append(append([]hx(nil), proposals...), commit) {
		m, err := mls.ParseMessage(raw)
		if err != nil {
			return false, err
		}
		p, err := pg.Process(ctx, m)
		if err != nil {
			return false, err
		}
		switch {
		case p.Encrypted:
			return false, nil
		case p.Kind == mls.KindProposal:
			err = pg.StorePendingProposal(ctx, p.Proposal)
		case p.Kind == mls.KindCommit:
			err = pg.Merge(ctx, p.Commit)
		}
		if err != nil {
			return false, err
		}
	}
	mine, err := g.ExportRatchetTree()
	if err != nil {
		return false, err
	}
	theirs, err := pg.ExportRatchetTree()
	if err != nil {
		return false, err
	}
	if pg.Epoch() != g.Epoch() || !bytes.Equal(mine, theirs) {
		return false, fmt.Errorf("at epoch %d the public group (epoch %d) holds another ratchet tree", g.Epoch(), pg.Epoch())
	}
	return true, nil
}

// hpkePrivateKey restores the leading zero octets some vector generators
// drop from a NIST-curve HPKE private key (several P-521 keys in the
// passive-client vectors have 65 of the 66 octets RFC 9180, Section 7.1.2
// prescribes). The full length is taken from a key the suite derives.
func hpkePrivateKey(s *ciphersuite.Suite, priv []byte) ([]byte, error) {
	ref, _, err := s.DeriveKeyPair(make([]byte, s.HashSize()))
	if err != nil {
		return nil, err
	}
	if len(priv) == 0 || len(priv) >= len(ref) {
		return priv, nil
	}
	return append(make([]byte, len(ref)-len(priv)), priv...), nil
}

// passiveEpoch processes one epoch's standalone proposals, which must each
// come back as a proposal and are queued for the commit, and then the
// commit, which is merged.
func passiveEpoch(ctx context.Context, g *mls.Group, proposals []hx, commit hx) error {
	for k, raw := range proposals {
		m, err := mls.ParseMessage(raw)
		if err != nil {
			return fmt.Errorf("proposal %d: %w", k, err)
		}
		p, err := g.Process(ctx, m)
		if err != nil {
			return fmt.Errorf("proposal %d: %w", k, err)
		}
		if p.Kind != mls.KindProposal {
			return fmt.Errorf("proposal %d: processed as %v, want proposal", k, p.Kind)
		}
		if err := g.StorePendingProposal(ctx, p.Proposal); err != nil {
			return fmt.Errorf("proposal %d: %w", k, err)
		}
	}
	m, err := mls.ParseMessage(commit)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	p, err := g.Process(ctx, m)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if p.Kind != mls.KindCommit {
		return fmt.Errorf("commit: processed as %v, want commit", p.Kind)
	}
	if err := g.MergeStagedCommit(ctx, p.Commit); err != nil {
		return fmt.Errorf("commit: merge: %w", err)
	}
	return nil
}

// RunPassiveVector plays one vector in the passive-client schema (the
// official files and the interop harness's interop/passive files share it)
// and reports whether it needed the lifetime relaxation and whether a
// PublicGroup followed it to the end (every handshake public).
func RunPassiveVector(raw []byte) (relaxed, followed bool, err error) {
	var v passiveVector
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, false, err
	}
	followed, err = runPassive(&v, false)
	if errors.Is(err, errJoinLifetime) {
		followed, err = runPassive(&v, true)
		return true, followed, err
	}
	return false, followed, err
}
