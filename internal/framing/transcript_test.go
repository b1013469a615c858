package framing

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

func TestTranscriptHashes(t *testing.T) {
	for _, c := range []struct {
		id      ciphersuite.ID
		newHash func() hash.Hash
	}{{1, sha256.New}, {5, sha512.New}, {7, sha512.New384}} {
		t.Run(c.id.String(), func(t *testing.T) {
			e := newEnv(t, c.id)
			fc := e.content(message.ContentCommit)
			ac := e.sign(t, message.WireFormatPublicMessage, fc)
			interimBefore := bytes.Repeat([]byte{0xab}, e.s.HashSize())

			// RFC 9420, Section 8.2, written out with the hash directly.
			h := c.newHash()
			h.Write(interimBefore)
			h.Write([]byte{0, 1}) // wire_format = mls_public_message
			h.Write(encodeContent(t, fc))
			h.Write(wire.AppendVarint(nil, uint64(len(ac.Auth.Signature))))
			h.Write(ac.Auth.Signature)
			wantConfirmed := h.Sum(nil)
			h = c.newHash()
			h.Write(wantConfirmed)
			h.Write(wire.AppendVarint(nil, uint64(len(ac.Auth.ConfirmationTag))))
			h.Write(ac.Auth.ConfirmationTag)
			wantInterim := h.Sum(nil)

			got, err := ConfirmedTranscriptHash(e.s, interimBefore, ac)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wantConfirmed) {
				t.Errorf("confirmed %x, want %x", got, wantConfirmed)
			}
			confirmed, interim, err := TranscriptHashes(e.s, interimBefore, ac)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(confirmed, wantConfirmed) {
				t.Errorf("confirmed %x, want %x", confirmed, wantConfirmed)
			}
			if !bytes.Equal(interim, wantInterim) {
				t.Errorf("interim %x, want %x", interim, wantInterim)
			}
			// Received and verified, the content's encoding comes from
			// the signature check (Unverified.Verify): same hash.
			u, err := publicRoundTrip(t, e, ac)
			if err != nil {
				t.Fatal(err)
			}
			received, err := u.Verify(e.pub)
			if err != nil {
				t.Fatal(err)
			}
			if enc := received.EncodedContent(); !bytes.Equal(enc, append([]byte{0, 1}, encodeContent(t, fc)...)) {
				t.Errorf("the verified content's recorded encoding is %x, want wire_format || content", enc)
			}
			if got, err := ConfirmedTranscriptHash(e.s, interimBefore, received); err != nil || !bytes.Equal(got, wantConfirmed) {
				t.Errorf("confirmed after receipt %x (%v), want %x", got, err, wantConfirmed)
			}
			// The confirmed hash does not cover the confirmation tag.
			ac.Auth.ConfirmationTag = []byte{1}
			got, err = ConfirmedTranscriptHash(e.s, interimBefore, ac)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wantConfirmed) {
				t.Error("confirmed transcript hash depends on the confirmation tag")
			}
		})
	}
}

func TestTranscriptHashErrors(t *testing.T) {
	e := newEnv(t, 1)
	ac := e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentProposal))
	_, err := ConfirmedTranscriptHashInput(ac)
	wantErr(t, err, ErrContentType)
	_, _, err = TranscriptHashes(e.s, nil, ac)
	wantErr(t, err, ErrContentType)
	ac = e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentCommit))
	ac.Auth.ConfirmationTag = nil
	if _, err := ConfirmedTranscriptHash(e.s, nil, ac); err != nil {
		t.Fatalf("confirmed hash before the tag exists: %v", err)
	}
	_, _, err = TranscriptHashes(e.s, nil, ac)
	wantErr(t, err, ErrConfirmationTag)
	_, err = ConfirmedTranscriptHashInput(nil)
	wantErr(t, err, ErrInvalidArgument)
}
