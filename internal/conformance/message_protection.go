package conformance

import (
	"crypto"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
)

func init() { register("message-protection.json", checkMessageProtection) }

type messageProtectionVector struct {
	CipherSuite             uint16 `json:"cipher_suite"`
	GroupID                 hx     `json:"group_id"`
	Epoch                   uint64 `json:"epoch"`
	TreeHash                hx     `json:"tree_hash"`
	ConfirmedTranscriptHash hx     `json:"confirmed_transcript_hash"`
	SignaturePriv           hx     `json:"signature_priv"`
	SignaturePub            hx     `json:"signature_pub"`
	EncryptionSecret        hx     `json:"encryption_secret"`
	SenderDataSecret        hx     `json:"sender_data_secret"`
	MembershipKey           hx     `json:"membership_key"`
	Proposal                hx     `json:"proposal"`
	ProposalPub             hx     `json:"proposal_pub"`
	ProposalPriv            hx     `json:"proposal_priv"`
	Commit                  hx     `json:"commit"`
	CommitPub               hx     `json:"commit_pub"`
	CommitPriv              hx     `json:"commit_priv"`
	Application             hx     `json:"application"`
	ApplicationPriv         hx     `json:"application_priv"`
}

// mpSender is the sender of every message in these vectors: the member
// at leaf 1 of a two-member group (README, "Message Protection").
var mpSender = message.Sender{Type: message.SenderMember, LeafIndex: 1}

// mpLeaves is the size of the group the vectors' secret trees are for.
const mpLeaves = 2

// mpCase is one vector set up for checking one content type.
type mpCase struct {
	v      *messageProtectionVector
	s      *ciphersuite.Suite
	gc     []byte // encoded GroupContext
	signer crypto.Signer
	ct     message.ContentType
	raw    []byte // the raw proposal, commit or application data
}

func checkMessageProtection(raw []byte, r *Report) error {
	var vs []messageProtectionVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		name := fmt.Sprintf("%d/suite=%d", i, v.CipherSuite)
		base, err := newMPCase(v)
		if err != nil {
			r.Check(name, err)
			continue
		}
		for _, c := range []struct {
			label    string
			ct       message.ContentType
			raw      []byte
			pub, prv []byte
		}{
			{"proposal", message.ContentProposal, v.Proposal, v.ProposalPub, v.ProposalPriv},
			{"commit", message.ContentCommit, v.Commit, v.CommitPub, v.CommitPriv},
			{"application", message.ContentApplication, v.Application, nil, v.ApplicationPriv},
		} {
			mc := *base
			mc.ct, mc.raw = c.ct, c.raw
			n := name + "/" + c.label
			if c.ct == message.ContentApplication {
				r.Check(n+"/public_refused", mc.checkPublicRefused())
			} else {
				r.Check(n+"/pub", mc.checkPublic(c.pub))
				r.Check(n+"/protect_public", mc.checkProtectPublic())
			}
			r.Check(n+"/priv", mc.checkPrivate(c.prv))
			r.Check(n+"/protect_private", mc.checkProtectPrivate())
		}
	}
	return nil
}

func newMPCase(v *messageProtectionVector) (*mpCase, error) {
	s, err := suiteFor(v.CipherSuite)
	if err != nil {
		return nil, err
	}
	// The GroupContext of the README: the vector's fields and empty
	// extensions.
	gc, err := message.Marshal(&message.GroupContext{
		Version:                 message.MLS10,
		CipherSuite:             ciphersuite.ID(v.CipherSuite),
		GroupID:                 v.GroupID,
		Epoch:                   v.Epoch,
		TreeHash:                v.TreeHash,
		ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
		Extensions:              []message.Extension{},
	})
	if err != nil {
		return nil, err
	}
	signer, err := s.NewSigner(ecdsaScalar(v.SignaturePriv, v.SignaturePub))
	if err != nil {
		return nil, err
	}
	return &mpCase{v: v, s: s, gc: gc, signer: signer}, nil
}

// ecdsaScalar left-pads an ECDSA private scalar to the curve's size. The
// suite 5 vector's signature_priv is a 65-byte big-endian integer (its
// leading zero octet dropped), while ciphersuite.NewSigner wants the full
// 66 bytes of a P-521 scalar. The size is read off the public key, an
// uncompressed point 0x04 || X || Y (RFC 9420, Section 5.1.1). Other keys
// are returned unchanged.
func ecdsaScalar(priv, pub []byte) []byte {
	if len(pub) < 65 || len(pub)%2 != 1 || pub[0] != 4 {
		return priv
	}
	n := (len(pub) - 1) / 2
	if len(priv) >= n {
		return priv
	}
	return append(make([]byte, n-len(priv), n), priv...)
}

// secretTree builds a fresh secret tree for the vector's two members.
func (c *mpCase) secretTree() (*secrettree.Tree, error) {
	return secrettree.New(c.s, c.v.EncryptionSecret, mpLeaves, secrettree.Config{})
}

// content builds the FramedContent of the raw value from leaf 1.
func (c *mpCase) content() (*message.FramedContent, error) {
	fc := &message.FramedContent{
		GroupID:     c.v.GroupID,
		Epoch:       c.v.Epoch,
		Sender:      mpSender,
		ContentType: c.ct,
		// Arbitrary authenticated data, to show it survives protection.
		AuthenticatedData: []byte("mls conformance"),
	}
	switch c.ct {
	case message.ContentApplication:
		fc.ApplicationData = c.raw
	case message.ContentProposal:
		fc.Proposal = new(message.Proposal)
		if err := message.Unmarshal(c.raw, fc.Proposal); err != nil {
			return nil, fmt.Errorf("vector proposal: %w", err)
		}
	case message.ContentCommit:
		fc.Commit = new(message.Commit)
		if err := message.Unmarshal(c.raw, fc.Commit); err != nil {
			return nil, fmt.Errorf("vector commit: %w", err)
		}
	}
	return fc, nil
}

// sign signs the raw value for wire format wf. A commit gets a
// confirmation tag: the vectors give no confirmation key, and framing
// carries the tag without checking it, so any MAC value serves.
func (c *mpCase) sign(wf message.WireFormat) (*message.AuthenticatedContent, error) {
	fc, err := c.content()
	if err != nil {
		return nil, err
	}
	ac, err := framing.SignContent(c.s, c.signer, wf, fc, c.gc)
	if err != nil {
		return nil, err
	}
	if c.ct == message.ContentCommit {
		ac.Auth.ConfirmationTag = c.s.MAC(make([]byte, c.s.HashSize()), c.v.ConfirmedTranscriptHash)
	}
	return ac, nil
}

// checkContent compares an unprotected, verified content with the raw
// value of the vector.
func (c *mpCase) checkContent(ac *message.AuthenticatedContent, wf message.WireFormat) error {
	fc := &ac.Content
	if ac.WireFormat != wf {
		return fmt.Errorf("wire format %d, want %d", ac.WireFormat, wf)
	}
	if fc.Sender != mpSender {
		return fmt.Errorf("sender %+v, want member 1", fc.Sender)
	}
	if err := eq("group_id", fc.GroupID, c.v.GroupID); err != nil {
		return err
	}
	if fc.Epoch != c.v.Epoch {
		return fmt.Errorf("epoch %d, want %d", fc.Epoch, c.v.Epoch)
	}
	if fc.ContentType != c.ct {
		return fmt.Errorf("content type %d, want %d", fc.ContentType, c.ct)
	}
	var got []byte
	var err error
	switch c.ct {
	case message.ContentApplication:
		got = fc.ApplicationData
	case message.ContentProposal:
		got, err = message.Marshal(fc.Proposal)
	case message.ContentCommit:
		got, err = message.Marshal(fc.Commit)
	}
	if err != nil {
		return err
	}
	return eq("content", got, c.raw)
}

// unprotectPublic decodes an MLSMessage, unprotects it as a PublicMessage
// with the membership key and verifies it with signature_pub.
func (c *mpCase) unprotectPublic(msg []byte) (*message.AuthenticatedContent, error) {
	var m message.MLSMessage
	if err := message.Unmarshal(msg, &m); err != nil {
		return nil, err
	}
	if m.WireFormat != message.WireFormatPublicMessage || m.PublicMessage == nil {
		return nil, fmt.Errorf("wire format %d, want PublicMessage", m.WireFormat)
	}
	u, err := framing.UnprotectPublic(c.s, m.PublicMessage, c.v.MembershipKey, c.gc)
	if err != nil {
		return nil, err
	}
	return u.Verify(c.v.SignaturePub)
}

// unprotectPrivate decodes an MLSMessage, decrypts it as a PrivateMessage
// with tree and the sender data secret, verifies it with signature_pub and
// consumes its key.
func (c *mpCase) unprotectPrivate(msg []byte, tree *secrettree.Tree) (*message.AuthenticatedContent, error) {
	var m message.MLSMessage
	if err := message.Unmarshal(msg, &m); err != nil {
		return nil, err
	}
	if m.WireFormat != message.WireFormatPrivateMessage || m.PrivateMessage == nil {
		return nil, fmt.Errorf("wire format %d, want PrivateMessage", m.WireFormat)
	}
	d, err := framing.UnprotectPrivate(c.s, m.PrivateMessage, tree, c.v.SenderDataSecret, c.gc)
	if err != nil {
		return nil, err
	}
	ac, err := d.Verify(c.v.SignaturePub)
	if err != nil {
		return nil, err
	}
	if err := d.Consume(); err != nil {
		return nil, err
	}
	return ac, nil
}

// checkPublic: the vector's PublicMessage verifies with membership_key and
// signature_pub and carries the raw value.
func (c *mpCase) checkPublic(msg []byte) error {
	ac, err := c.unprotectPublic(msg)
	if err != nil {
		return err
	}
	return c.checkContent(ac, message.WireFormatPublicMessage)
}

// checkProtectPublic: protecting the raw value as a PublicMessage gives a
// message that unprotects and verifies.
func (c *mpCase) checkProtectPublic() error {
	ac, err := c.sign(message.WireFormatPublicMessage)
	if err != nil {
		return err
	}
	pm, err := framing.ProtectPublic(c.s, ac, c.v.MembershipKey, c.gc)
	if err != nil {
		return err
	}
	msg, err := message.NewPublicMessage(pm).Marshal()
	if err != nil {
		return err
	}
	got, err := c.unprotectPublic(msg)
	if err != nil {
		return fmt.Errorf("own message: %w", err)
	}
	if err := eq("authenticated_data", got.Content.AuthenticatedData, ac.Content.AuthenticatedData); err != nil {
		return err
	}
	return c.checkContent(got, message.WireFormatPublicMessage)
}

// checkPublicRefused: application data cannot be protected as a
// PublicMessage (RFC 9420, Section 6), neither at signing nor at
// protection.
func (c *mpCase) checkPublicRefused() error {
	fc, err := c.content()
	if err != nil {
		return err
	}
	if _, err := framing.SignContent(c.s, c.signer, message.WireFormatPublicMessage, fc, c.gc); !errors.Is(err, framing.ErrContentType) {
		return fmt.Errorf("signing application data for a PublicMessage: got %v, want ErrContentType", err)
	}
	// Signed as if for a PrivateMessage, then relabelled.
	ac, err := c.sign(message.WireFormatPrivateMessage)
	if err != nil {
		return err
	}
	ac.WireFormat = message.WireFormatPublicMessage
	if _, err := framing.ProtectPublic(c.s, ac, c.v.MembershipKey, c.gc); !errors.Is(err, framing.ErrContentType) {
		return fmt.Errorf("protecting application data as a PublicMessage: got %v, want ErrContentType", err)
	}
	return nil
}

// checkPrivate: the vector's PrivateMessage decrypts with a fresh secret
// tree and sender_data_secret, verifies with signature_pub and carries the
// raw value; a second delivery is refused.
func (c *mpCase) checkPrivate(msg []byte) error {
	tree, err := c.secretTree()
	if err != nil {
		return err
	}
	ac, err := c.unprotectPrivate(msg, tree)
	if err != nil {
		return err
	}
	if err := c.checkContent(ac, message.WireFormatPrivateMessage); err != nil {
		return err
	}
	if _, err := c.unprotectPrivate(msg, tree); !errors.Is(err, framing.ErrGeneration) {
		return fmt.Errorf("replay: got %v, want ErrGeneration", err)
	}
	return nil
}

// checkProtectPrivate: protecting the raw value as a PrivateMessage with
// one secret tree gives a message that another tree built from the same
// encryption_secret decrypts.
func (c *mpCase) checkProtectPrivate() error {
	ac, err := c.sign(message.WireFormatPrivateMessage)
	if err != nil {
		return err
	}
	send, err := c.secretTree()
	if err != nil {
		return err
	}
	pm, err := framing.ProtectPrivate(c.s, ac, send, c.v.SenderDataSecret, 32, rand.Reader)
	if err != nil {
		return err
	}
	msg, err := message.NewPrivateMessage(pm).Marshal()
	if err != nil {
		return err
	}
	recv, err := c.secretTree()
	if err != nil {
		return err
	}
	got, err := c.unprotectPrivate(msg, recv)
	if err != nil {
		return fmt.Errorf("own message: %w", err)
	}
	if err := eq("authenticated_data", got.Content.AuthenticatedData, ac.Content.AuthenticatedData); err != nil {
		return err
	}
	if err := eq("confirmation_tag", got.Auth.ConfirmationTag, ac.Auth.ConfirmationTag); err != nil {
		return err
	}
	return c.checkContent(got, message.WireFormatPrivateMessage)
}
