package framing

import (
	"crypto/rand"
	"errors"
	"io"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// reuseGuardSize is the length of SenderData.reuse_guard (RFC 9420,
// Section 6.3.2).
const reuseGuardSize = 4

// MaxPadBlock caps the padding block ProtectPrivate accepts, so a
// configuration mistake cannot make every message megabytes long.
const MaxPadBlock = 1 << 16

// ratchetFor picks the secret tree ratchet for a content type: application
// messages use the application ratchet, proposals and commits the
// handshake ratchet (RFC 9420, Section 9).
func ratchetFor(ct message.ContentType) secrettree.RatchetType {
	if ct == message.ContentApplication {
		return secrettree.Application
	}
	return secrettree.Handshake
}

// treeError classifies a secret tree error: a leaf outside the tree is a
// bad sender, anything else a generation without a key.
func treeError(op string, err error) error {
	switch {
	case errors.Is(err, secrettree.ErrLeafOutOfRange):
		return newError(op, ErrSender, err)
	case errors.Is(err, secrettree.ErrGenerationUsed):
		return newError(op, ErrReplayed, err)
	}
	return newError(op, ErrGeneration, err)
}

// appendContentAAD appends PrivateContentAAD (RFC 9420, Section 6.3.1):
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;
//	    opaque authenticated_data<V>;
//	} PrivateContentAAD;
func appendContentAAD(e *wire.Encoder, groupID []byte, epoch uint64, ct message.ContentType, authenticatedData []byte) {
	appendSenderDataAAD(e, groupID, epoch, ct)
	e.Opaque(authenticatedData)
}

// appendSenderDataAAD appends SenderDataAAD (RFC 9420, Section 6.3.2):
//
//	struct {
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    ContentType content_type;
//	} SenderDataAAD;
func appendSenderDataAAD(e *wire.Encoder, groupID []byte, epoch uint64, ct message.ContentType) {
	e.Opaque(groupID)
	e.U64(epoch)
	e.U8(uint8(ct))
}

// ciphertextSample returns the first KDF.Nh bytes of the content
// ciphertext, or all of it if shorter (RFC 9420, Section 6.3.2).
func ciphertextSample(s *ciphersuite.Suite, ciphertext []byte) []byte {
	return ciphertext[:min(len(ciphertext), s.HashSize())]
}

// applyReuseGuard XORs the reuse guard into the first four bytes of a copy
// of nonce (RFC 9420, Section 6.3.1).
func applyReuseGuard(nonce []byte, guard [reuseGuardSize]byte) []byte {
	out := append([]byte(nil), nonce...)
	for i := range guard {
		out[i] ^= guard[i]
	}
	return out
}

// appendPrivateContent appends PrivateMessageContent without its padding
// (RFC 9420, Section 6.3.1):
//
//	struct {
//	    select (PrivateMessage.content_type) {
//	        case application: opaque application_data<V>;
//	        case proposal:    Proposal proposal;
//	        case commit:      Commit commit;
//	    };
//	    FramedContentAuthData auth;
//	    opaque padding[length_of_padding];
//	} PrivateMessageContent;
func appendPrivateContent(e *wire.Encoder, fc *message.FramedContent, auth *message.FramedContentAuthData) {
	switch fc.ContentType {
	case message.ContentApplication:
		e.Opaque(fc.ApplicationData)
	case message.ContentProposal:
		fc.Proposal.Encode(e)
	case message.ContentCommit:
		fc.Commit.Encode(e)
	}
	appendAuth(e, fc.ContentType, auth)
}

// privateContent is a decoded PrivateMessageContent.
type privateContent struct {
	applicationData []byte
	proposal        *message.Proposal
	commit          *message.Commit
	auth            message.FramedContentAuthData
}

// decodePrivateContent decodes a PrivateMessageContent plaintext of content
// type ct (RFC 9420, Section 6.3.1): the content, the auth data, then
// padding, which must be all zero bytes. ct must be a known content type.
func decodePrivateContent(op string, plaintext []byte, ct message.ContentType) (*privateContent, error) {
	d := wire.NewDecoder(plaintext)
	d.Struct("PrivateMessageContent")
	var pc privateContent
	switch ct {
	case message.ContentApplication:
		pc.applicationData = d.Opaque("application_data")
	case message.ContentProposal:
		pc.proposal = new(message.Proposal)
		pc.proposal.Decode(d)
	case message.ContentCommit:
		pc.commit = new(message.Commit)
		pc.commit.Decode(d)
	default:
		return nil, newError(op, ErrContentType, errorf("unknown content type %d", ct))
	}
	pc.auth.DecodeFor(d, ct)
	if err := d.Err(); err != nil {
		return nil, newError(op, ErrMalformed, err)
	}
	padding := d.Peek()
	var or byte
	for _, b := range padding {
		or |= b
	}
	if or != 0 {
		return nil, newError(op, ErrPadding, errorf("%d bytes of padding hold a non-zero byte", len(padding)))
	}
	return &pc, nil
}

// ProtectPrivate encrypts a signed AuthenticatedContent as a
// PrivateMessage (RFC 9420, Section 6.3).
//
// ac must have been signed for WireFormatPrivateMessage by a member
// sender, and a commit must carry its confirmation tag. The content key
// and nonce come from the next generation of the sender's handshake or
// application ratchet in tree (which advances; a generation is never
// used twice), the nonce XORed with a fresh reuse guard read from rnd
// (crypto/rand.Reader if nil). The plaintext is padded with zero bytes to
// a multiple of padBlock bytes (0 or 1: no padding; at most MaxPadBlock).
// The sender data is encrypted under the key and nonce derived from
// senderDataSecret and the ciphertext sample.
func ProtectPrivate(s *ciphersuite.Suite, ac *message.AuthenticatedContent, tree *secrettree.Tree, senderDataSecret []byte, padBlock int, rnd io.Reader) (*message.PrivateMessage, error) {
	const op = "protect PrivateMessage"
	if s == nil || ac == nil || tree == nil {
		return nil, newError(op, ErrInvalidArgument, errors.New("nil suite, content or secret tree"))
	}
	if padBlock < 0 || padBlock > MaxPadBlock {
		return nil, newError(op, ErrInvalidArgument, errorf("padding block %d outside [0, %d]", padBlock, MaxPadBlock))
	}
	if ac.WireFormat != message.WireFormatPrivateMessage {
		return nil, newError(op, ErrWireFormat, errorf("content signed for wire format %d", ac.WireFormat))
	}
	fc := &ac.Content
	if err := checkContent(op, fc); err != nil {
		return nil, err
	}
	if fc.Sender.Type != message.SenderMember {
		// RFC 9420, Section 6.3.2: SenderData is built from a member sender only.
		return nil, newError(op, ErrSender, errorf("sender type %d cannot send a PrivateMessage", fc.Sender.Type))
	}
	if err := checkAuth(op, fc.ContentType, &ac.Auth); err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	var guard [reuseGuardSize]byte
	if _, err := io.ReadFull(rnd, guard[:]); err != nil {
		return nil, newError(op+": reuse guard", ErrInvalidArgument, err)
	}

	e := wire.NewEncoder(nil)
	appendPrivateContent(e, fc, &ac.Auth)
	if padBlock > 1 {
		if r := e.Len() % padBlock; r != 0 {
			e.Raw(make([]byte, padBlock-r))
		}
	}
	plaintext, err := e.Bytes()
	if err != nil {
		return nil, newError(op, ErrInvalidArgument, err)
	}
	defer clear(plaintext)

	e = wire.NewEncoder(nil)
	appendContentAAD(e, fc.GroupID, fc.Epoch, fc.ContentType, fc.AuthenticatedData)
	aad, err := e.Bytes()
	if err != nil {
		return nil, newError(op, ErrInvalidArgument, err)
	}

	leaf := treemath.LeafIndex(fc.Sender.LeafIndex)
	kn, err := tree.Next(leaf, ratchetFor(fc.ContentType))
	if err != nil {
		return nil, treeError(op+": secret tree", err)
	}
	ciphertext, err := s.Seal(kn.Key, applyReuseGuard(kn.Nonce, guard), aad, plaintext)
	if err != nil {
		return nil, newError(op+": content", ErrInvalidArgument, err)
	}

	sd := message.SenderData{LeafIndex: fc.Sender.LeafIndex, Generation: kn.Generation, ReuseGuard: guard}
	sdPlain := message.MustMarshal(&sd) // fixed 12 bytes
	e = wire.NewEncoder(nil)
	appendSenderDataAAD(e, fc.GroupID, fc.Epoch, fc.ContentType)
	sdAAD := e.MustBytes() // group_id fit in the content AAD above
	sdKey, sdNonce := secrettree.SenderDataKeyNonce(s, senderDataSecret, ciphertextSample(s, ciphertext))
	encSenderData, err := s.Seal(sdKey, sdNonce, sdAAD, sdPlain)
	if err != nil {
		return nil, newError(op+": sender data", ErrInvalidArgument, err)
	}
	return &message.PrivateMessage{
		GroupID:             fc.GroupID,
		Epoch:               fc.Epoch,
		ContentType:         fc.ContentType,
		AuthenticatedData:   fc.AuthenticatedData,
		EncryptedSenderData: encSenderData,
		Ciphertext:          ciphertext,
	}, nil
}

// Decrypted is a PrivateMessage whose sender data and content decrypted
// and decoded, but whose signature is not yet verified and whose key is
// not yet consumed. Verify the signature (Unverified.Verify), validate the
// content, then call Consume; until then the secret tree is unchanged, so
// dropping a Decrypted rejects the message without side effects.
type Decrypted struct {
	*Unverified
	tree       *secrettree.Tree
	leaf       treemath.LeafIndex
	ratchet    secrettree.RatchetType
	generation uint32
}

// Generation returns the sender ratchet generation the message used.
func (d *Decrypted) Generation() uint32 { return d.generation }

// Consume marks the message's key as used in the secret tree (RFC 9420,
// Section 9.2), after the caller has verified the signature and accepted
// the message. It fails with ErrNotVerified before a successful Verify,
// and with ErrReplayed (an ErrGeneration) if the key was consumed
// meanwhile (a replay decrypted concurrently); either way the message must be rejected.
func (d *Decrypted) Consume() error {
	const op = "consume PrivateMessage key"
	if !d.verified {
		return newError(op, ErrNotVerified, nil)
	}
	if err := d.tree.Consume(d.leaf, d.ratchet, d.generation); err != nil {
		return treeError(op, err)
	}
	return nil
}

// UnprotectPrivate decrypts a PrivateMessage (RFC 9420, Section 6.3):
// the sender data with the key and nonce derived from senderDataSecret and
// the ciphertext sample, then the content with the key of the sender's
// ratchet at the sender data's generation (read with Tree.Get, which
// changes nothing) and the nonce XORed with the reuse guard. It checks the
// PrivateMessageContent decodes for the message's content type and that
// its padding is all zeros (Section 6.3.1).
//
// groupContext is the encoded GroupContext of the current epoch, needed
// to verify the signature. The sender leaf is only known to be inside the
// secret tree; the caller must check it is not blank (RFC 9420,
// Section 6.3.2), which it does in passing when it looks up the leaf's
// signature key for Verify. The group ID and epoch are the caller's check.
func UnprotectPrivate(s *ciphersuite.Suite, pm *message.PrivateMessage, tree *secrettree.Tree, senderDataSecret, groupContext []byte) (*Decrypted, error) {
	const op = "unprotect PrivateMessage"
	if s == nil || pm == nil || tree == nil {
		return nil, newError(op, ErrInvalidArgument, errors.New("nil suite, message or secret tree"))
	}
	if err := checkGroupContext(op, message.SenderMember, groupContext); err != nil {
		return nil, err
	}
	ct := pm.ContentType
	if ct != message.ContentApplication && ct != message.ContentProposal && ct != message.ContentCommit {
		return nil, newError(op, ErrContentType, errorf("unknown content type %d", ct))
	}

	e := wire.NewEncoder(nil)
	appendSenderDataAAD(e, pm.GroupID, pm.Epoch, ct)
	sdAAD, err := e.Bytes()
	if err != nil {
		return nil, newError(op, ErrInvalidArgument, err)
	}
	sdKey, sdNonce := secrettree.SenderDataKeyNonce(s, senderDataSecret, ciphertextSample(s, pm.Ciphertext))
	sdPlain, err := s.Open(sdKey, sdNonce, sdAAD, pm.EncryptedSenderData)
	if err != nil {
		return nil, newError(op+": sender data", ErrDecrypt, err)
	}
	var sd message.SenderData
	if err := message.Unmarshal(sdPlain, &sd); err != nil {
		return nil, newError(op+": sender data", ErrMalformed, err)
	}

	leaf := treemath.LeafIndex(sd.LeafIndex)
	ratchet := ratchetFor(ct)
	kn, err := tree.Get(leaf, ratchet, sd.Generation)
	if err != nil {
		return nil, treeError(op+": secret tree", err)
	}
	e = wire.NewEncoder(nil)
	appendContentAAD(e, pm.GroupID, pm.Epoch, ct, pm.AuthenticatedData)
	aad, err := e.Bytes()
	if err != nil {
		return nil, newError(op, ErrInvalidArgument, err)
	}
	plaintext, err := s.Open(kn.Key, applyReuseGuard(kn.Nonce, sd.ReuseGuard), aad, pm.Ciphertext)
	if err != nil {
		return nil, newError(op+": content", ErrDecrypt, err)
	}
	defer clear(plaintext)
	pc, err := decodePrivateContent(op+": content", plaintext, ct)
	if err != nil {
		return nil, err
	}
	if err := checkAuth(op+": content", ct, &pc.auth); err != nil {
		return nil, err
	}
	return &Decrypted{
		Unverified: &Unverified{
			suite:        s,
			groupContext: groupContext,
			ac: message.AuthenticatedContent{
				WireFormat: message.WireFormatPrivateMessage,
				Content: message.FramedContent{
					GroupID:           pm.GroupID,
					Epoch:             pm.Epoch,
					Sender:            message.Sender{Type: message.SenderMember, LeafIndex: sd.LeafIndex},
					AuthenticatedData: pm.AuthenticatedData,
					ContentType:       ct,
					ApplicationData:   pc.applicationData,
					Proposal:          pc.proposal,
					Commit:            pc.commit,
				},
				Auth: pc.auth,
			},
		},
		tree:       tree,
		leaf:       leaf,
		ratchet:    ratchet,
		generation: sd.Generation,
	}, nil
}
