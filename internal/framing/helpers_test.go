package framing

import (
	"bytes"
	"crypto"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// testLeaves is the size of the secret trees the tests build.
const testLeaves = 4

// env is one epoch of a test group: keys for a member sender at leaf 1, a
// sender-side and a receiver-side secret tree built from the same
// encryption secret.
type env struct {
	s                *ciphersuite.Suite
	signer           crypto.Signer
	pub              []byte
	otherPub         []byte // a key that did not sign anything
	gc               message.GroupContext
	groupContext     []byte
	membershipKey    []byte
	encryptionSecret []byte
	senderDataSecret []byte
	send, recv       *secrettree.Tree
	rnd              io.Reader
}

// detReader returns a deterministic random source for tests.
func detReader(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func readN(t testing.TB, r io.Reader, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newEnv(t testing.TB, id ciphersuite.ID) *env {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	rnd := detReader(byte(id))
	signer, err := s.GenerateSignatureKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.SignaturePublicKey(signer)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.GenerateSignatureKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, err := s.SignaturePublicKey(other)
	if err != nil {
		t.Fatal(err)
	}
	nh := s.HashSize()
	e := &env{
		s: s, signer: signer, pub: pub, otherPub: otherPub,
		gc: message.GroupContext{
			Version:                 message.MLS10,
			CipherSuite:             id,
			GroupID:                 []byte("test group"),
			Epoch:                   7,
			TreeHash:                readN(t, rnd, nh),
			ConfirmedTranscriptHash: readN(t, rnd, nh),
			Extensions:              []message.Extension{},
		},
		membershipKey:    readN(t, rnd, nh),
		encryptionSecret: readN(t, rnd, nh),
		senderDataSecret: readN(t, rnd, nh),
		rnd:              rnd,
	}
	e.groupContext = message.MustMarshal(&e.gc)
	e.send = e.newTree(t)
	e.recv = e.newTree(t)
	return e
}

func (e *env) newTree(t testing.TB) *secrettree.Tree {
	t.Helper()
	tr, err := secrettree.New(e.s, e.encryptionSecret, testLeaves, secrettree.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// content returns a FramedContent of the given type from member leaf 1 in
// the env's group and epoch.
func (e *env) content(ct message.ContentType) *message.FramedContent {
	fc := &message.FramedContent{
		GroupID:           e.gc.GroupID,
		Epoch:             e.gc.Epoch,
		Sender:            message.Sender{Type: message.SenderMember, LeafIndex: 1},
		AuthenticatedData: []byte("aad"),
		ContentType:       ct,
	}
	switch ct {
	case message.ContentApplication:
		fc.ApplicationData = []byte("hello, group")
	case message.ContentProposal:
		fc.Proposal = &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: 2}}
	case message.ContentCommit:
		fc.Commit = &message.Commit{Proposals: []message.ProposalOrRef{
			{Proposal: &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: 3}}},
		}}
	}
	return fc
}

// sign signs fc for wire format wf and gives commits a confirmation tag.
func (e *env) sign(t testing.TB, wf message.WireFormat, fc *message.FramedContent) *message.AuthenticatedContent {
	t.Helper()
	ac, err := SignContent(e.s, e.signer, wf, fc, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	if fc.ContentType == message.ContentCommit {
		ac.Auth.ConfirmationTag = bytes.Repeat([]byte{0xc7}, e.s.HashSize())
	}
	return ac
}

// sealRaw builds a PrivateMessage around an arbitrary content plaintext
// and sender data plaintext, encrypted the way RFC 9420, Section 6.3 says
// with the env's keys, but without any of ProtectPrivate's checks. It
// takes the key of the next generation of leaf's ratchet for ct from the
// sender tree, and applies guard to the nonce.
func (e *env) sealRaw(t testing.TB, ct message.ContentType, leaf uint32, authData, plaintext []byte, senderData func(gen uint32) []byte, guard [4]byte) *message.PrivateMessage {
	t.Helper()
	typ := secrettree.Handshake
	if ct == message.ContentApplication {
		typ = secrettree.Application
	}
	kn, err := e.send.Next(treemath.LeafIndex(leaf), typ)
	if err != nil {
		t.Fatal(err)
	}
	nonce := append([]byte(nil), kn.Nonce...)
	for i := range guard {
		nonce[i] ^= guard[i]
	}
	w := wire.NewEncoder(nil)
	w.Opaque(e.gc.GroupID)
	w.U64(e.gc.Epoch)
	w.U8(uint8(ct))
	sdAAD := append([]byte(nil), w.MustBytes()...)
	w.Opaque(authData)
	aad := w.MustBytes()
	ciphertext, err := e.s.Seal(kn.Key, nonce, aad, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	sample := ciphertext[:min(len(ciphertext), e.s.HashSize())]
	sdKey, sdNonce := secrettree.SenderDataKeyNonce(e.s, e.senderDataSecret, sample)
	esd, err := e.s.Seal(sdKey, sdNonce, sdAAD, senderData(kn.Generation))
	if err != nil {
		t.Fatal(err)
	}
	return &message.PrivateMessage{
		GroupID: e.gc.GroupID, Epoch: e.gc.Epoch, ContentType: ct,
		AuthenticatedData: authData, EncryptedSenderData: esd, Ciphertext: ciphertext,
	}
}

// senderData encodes SenderData by hand (RFC 9420, Section 6.3.2).
func senderData(leaf uint32, guard [4]byte) func(gen uint32) []byte {
	return func(gen uint32) []byte {
		w := wire.NewEncoder(nil)
		w.U32(leaf)
		w.U32(gen)
		w.Raw(guard[:])
		return w.MustBytes()
	}
}

// wantErr fails unless err is an *Error of the given kind.
func wantErr(t testing.TB, err, kind error) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *framing.Error", err, err)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q is not %q", err, kind)
	}
	return fe
}

// encodeContent returns the FramedContent encoding, for comparing contents.
func encodeContent(t testing.TB, fc *message.FramedContent) []byte {
	t.Helper()
	b, err := message.Marshal(fc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forEachSuite runs f as a subtest per cipher suite.
func forEachSuite(t *testing.T, f func(t *testing.T, e *env)) {
	for _, id := range ciphersuite.All() {
		t.Run(id.String(), func(t *testing.T) { f(t, newEnv(t, id)) })
	}
}
