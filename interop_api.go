package mls

import (
	"context"
	"fmt"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/storage"
)

// This file holds API that the interop client (cmd/mls-interop) needs and
// that belongs in the library: moving a key package's private keys between
// clients, the external_senders extension, resumption PSK proposals from
// external senders, and the per-commit choice of sending the ratchet tree
// in or out of band.

// KeyPackagePrivateKeys returns the private keys the client holds for the
// key package with reference ref: the HPKE init key and the leaf's HPKE
// encryption key, in the form ImportKeyPackage takes (RFC 9420, Section
// 10). A client that does not hold it gives ErrNotFound. Together with
// ImportKeyPackage it moves a key package into another store, such as the
// one that holds a group the Welcome resumes (Sections 11.2 and 11.3).
func (c *Client) KeyPackagePrivateKeys(ctx context.Context, ref []byte) (initPriv, encryptionPriv []byte, err error) {
	if ctx == nil || len(ref) == 0 {
		return nil, nil, fmt.Errorf("%w: KeyPackagePrivateKeys needs a context and a reference", ErrInvalidArgument)
	}
	err = view(ctx, c.store, func(tx storage.Tx) error {
		r, err := state.KeyPackage(tx, ref)
		if err != nil {
			return err
		}
		initPriv, encryptionPriv = clone(r.InitPriv), clone(r.EncryptionPriv)
		return nil
	})
	if err != nil {
		return nil, nil, storeErr(err)
	}
	return initPriv, encryptionPriv, nil
}

// ExternalSendersExtension encodes senders as the external_senders group
// context extension (RFC 9420, Section 12.1.8.1), for a
// GroupContextExtensions proposal that changes who may send external
// proposals.
func ExternalSendersExtension(senders []ExternalSender) (Extension, error) {
	es := make(message.ExternalSenders, 0, len(senders))
	for _, x := range senders {
		if len(x.SignatureKey) == 0 || x.Credential.Type() == 0 {
			return Extension{}, fmt.Errorf("%w: external sender without signature key or credential", ErrInvalidArgument)
		}
		es = append(es, message.ExternalSender{SignatureKey: clone(x.SignatureKey), Credential: wireCred(x.Credential)})
	}
	data, err := message.Marshal(&es)
	if err != nil {
		return Extension{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return Extension{Type: uint16(message.ExtensionExternalSenders), Data: data}, nil
}

// MarshalExternalSender encodes one ExternalSender entry (RFC 9420,
// Section 12.1.8.1), the form the interop harness passes around.
func MarshalExternalSender(x ExternalSender) ([]byte, error) {
	if len(x.SignatureKey) == 0 || x.Credential.Type() == 0 {
		return nil, fmt.Errorf("%w: external sender without signature key or credential", ErrInvalidArgument)
	}
	es := message.ExternalSender{SignatureKey: clone(x.SignatureKey), Credential: wireCred(x.Credential)}
	b, err := message.Marshal(&es)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return b, nil
}

// ParseExternalSender decodes one ExternalSender entry (RFC 9420, Section
// 12.1.8.1).
func ParseExternalSender(b []byte) (ExternalSender, error) {
	var es message.ExternalSender
	if err := message.Unmarshal(b, &es); err != nil {
		return ExternalSender{}, fmt.Errorf("%w: external sender: %w", ErrMalformed, err)
	}
	return ExternalSender{SignatureKey: es.SignatureKey, Credential: credOf(es.Credential)}, nil
}

// ParseExternalSenders decodes the data of an external_senders extension
// (RFC 9420, Section 12.1.8.1).
func ParseExternalSenders(data []byte) ([]ExternalSender, error) {
	var es message.ExternalSenders
	if err := message.Unmarshal(data, &es); err != nil {
		return nil, fmt.Errorf("%w: external_senders: %w", ErrMalformed, err)
	}
	out := make([]ExternalSender, len(es))
	for i, x := range es {
		out[i] = ExternalSender{SignatureKey: x.SignatureKey, Credential: credOf(x.Credential)}
	}
	return out, nil
}

// ResumptionPSKProposal proposes injecting the resumption PSK of epoch of
// the group groupID (RFC 9420, Sections 8.6 and 12.1.4, usage
// application), for NewExternalProposal; a member uses
// CommitOptions.ResumptionPSKs. The nonce is drawn when it is sent.
func ResumptionPSKProposal(groupID []byte, epoch uint64) Proposal {
	return Proposal{p: message.Proposal{Type: message.ProposalPSK, PSK: &message.PreSharedKeyProposal{PSK: message.PreSharedKeyID{
		Type: message.PSKResumption, Usage: message.ResumptionApplication, PSKGroupID: clone(groupID), PSKEpoch: epoch,
	}}}}
}

// SetRatchetTreeExtension changes this member's JoinConfig.UseRatchetTreeExtension
// for the commits it creates from now on (RFC 9420, Section 12.4.3.3): with
// on, Welcome messages carry the ratchet tree; without, joiners need it
// out of band (StagedCommit.RatchetTree of the pending commit).
// It changes this handle only; the interop harness chooses per commit.
func (g *Group) SetRatchetTreeExtension(on bool) {
	g.mu.Lock()
	g.cfg.UseRatchetTreeExtension = on
	g.mu.Unlock()
}

// ProposeResumptionPSK sends a PreSharedKey proposal for the resumption PSK
// of an epoch of this group (RFC 9420, Sections 8.6 and 12.1.4, usage
// application) and queues it: the current epoch or one the group still
// keeps (JoinConfig.ResumptionPSKRetention), as the commit checks.
func (g *Group) ProposeResumptionPSK(ctx context.Context, epoch uint64) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	p, err := ResumptionPSKProposal(g.st.GC.GroupID, epoch).build(g.st.Suite, g.cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	return g.propose(ctx, p, nil)
}

// RatchetTree returns the public ratchet tree the group will have once the
// commit is merged (RFC 9420, Section 12.4.3.3), for joiners that get the
// tree out of band: the committer hands it out with the Welcome before it
// merges.
func (sc *StagedCommit) RatchetTree() ([]byte, error) {
	if sc == nil || sc.diff == nil {
		return nil, fmt.Errorf("%w: no staged commit", ErrInvalidArgument)
	}
	return sc.diff.EncodeRatchetTree()
}
