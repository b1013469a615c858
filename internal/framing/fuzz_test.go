package framing

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/vectors"
	"github.com/mlskit/mls/internal/wire"
)

// protectionVector is the part of a message-protection.json vector the
// fuzz seeds need.
type protectionVector struct {
	CipherSuite             uint16      `json:"cipher_suite"`
	GroupID                 vectors.Hex `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	TreeHash                vectors.Hex `json:"tree_hash"`
	ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
	SignaturePub            vectors.Hex `json:"signature_pub"`
	EncryptionSecret        vectors.Hex `json:"encryption_secret"`
	SenderDataSecret        vectors.Hex `json:"sender_data_secret"`
	ProposalPriv            vectors.Hex `json:"proposal_priv"`
	CommitPriv              vectors.Hex `json:"commit_priv"`
	ApplicationPriv         vectors.Hex `json:"application_priv"`
}

// loadProtectionVectors reads message-protection.json. Without the vector
// directory it returns none, except under CI=true, where it fails; the
// fuzz targets then run from their corpus under testdata/fuzz.
func loadProtectionVectors(t testing.TB) []protectionVector {
	t.Helper()
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vectors.Read(dir, "message-protection.json")
	if errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true" {
		t.Logf("seeding without the vectors: %v", err)
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var vs []protectionVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("message-protection.json holds no vectors")
	}
	return vs
}

// privateMessage decodes an MLSMessage holding a PrivateMessage.
func privateMessage(b []byte) (*message.PrivateMessage, bool) {
	var m message.MLSMessage
	if message.Unmarshal(b, &m) != nil || m.PrivateMessage == nil {
		return nil, false
	}
	return m.PrivateMessage, true
}

// decryptByHand returns the sender data and content plaintexts of a
// vector PrivateMessage, decrypted with the primitives directly (RFC 9420,
// Section 6.3), without this package's code.
func decryptByHand(t testing.TB, v *protectionVector, msg []byte) (sd, pt []byte) {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.ID(v.CipherSuite))
	if err != nil {
		t.Fatal(err)
	}
	pm, ok := privateMessage(msg)
	if !ok {
		t.Fatal("vector message is not a PrivateMessage")
	}
	w := wire.NewEncoder(nil)
	w.Opaque(pm.GroupID)
	w.U64(pm.Epoch)
	w.U8(uint8(pm.ContentType))
	sdAAD := append([]byte(nil), w.MustBytes()...)
	w.Opaque(pm.AuthenticatedData)
	aad := w.MustBytes()
	key, nonce := secrettree.SenderDataKeyNonce(s, v.SenderDataSecret, pm.Ciphertext[:min(len(pm.Ciphertext), s.HashSize())])
	sd, err = s.Open(key, nonce, sdAAD, pm.EncryptedSenderData)
	if err != nil || len(sd) != 12 {
		t.Fatalf("sender data: %v (%d bytes)", err, len(sd))
	}
	tree, err := secrettree.New(s, v.EncryptionSecret, 2, secrettree.Config{})
	if err != nil {
		t.Fatal(err)
	}
	typ := secrettree.Handshake
	if pm.ContentType == message.ContentApplication {
		typ = secrettree.Application
	}
	leaf := uint32(sd[0])<<24 | uint32(sd[1])<<16 | uint32(sd[2])<<8 | uint32(sd[3])
	gen := uint32(sd[4])<<24 | uint32(sd[5])<<16 | uint32(sd[6])<<8 | uint32(sd[7])
	kn, err := tree.Get(treemath.LeafIndex(leaf), typ, gen)
	if err != nil {
		t.Fatal(err)
	}
	n := append([]byte(nil), kn.Nonce...)
	for i := range 4 {
		n[i] ^= sd[8+i]
	}
	pt, err = s.Open(kn.Key, n, aad, pm.Ciphertext)
	if err != nil {
		t.Fatalf("content: %v", err)
	}
	return sd, pt
}

// FuzzDecodePrivateContent feeds arbitrary plaintexts to the
// PrivateMessageContent decoder (RFC 9420, Section 6.3.1). Whatever it
// accepts must re-encode to a prefix of the input followed by zeros.
// Seeded from testdata/fuzz (TestGenerateFuzzCorpus) and, when present,
// the decrypted vector plaintexts.
func FuzzDecodePrivateContent(f *testing.F) {
	vs := loadProtectionVectors(f)
	seeds := 0
	for i := range vs {
		v := &vs[i]
		for _, c := range []struct {
			msg []byte
			ct  message.ContentType
		}{{v.ApplicationPriv, message.ContentApplication}, {v.ProposalPriv, message.ContentProposal}, {v.CommitPriv, message.ContentCommit}} {
			_, pt := decryptByHand(f, v, c.msg)
			f.Add(pt, uint8(c.ct))
			seeds++
		}
	}
	fuzzcorpus.Require(f, seeds)
	f.Fuzz(func(t *testing.T, pt []byte, ct uint8) {
		pc, err := decodePrivateContent("fuzz", pt, message.ContentType(ct))
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		fc := &message.FramedContent{ContentType: message.ContentType(ct), ApplicationData: pc.applicationData, Proposal: pc.proposal, Commit: pc.commit}
		w := wire.NewEncoder(nil)
		appendPrivateContent(w, fc, &pc.auth)
		enc, err := w.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(pt, enc) {
			t.Fatalf("re-encoding %x is not a prefix of the input %x", enc, pt)
		}
		if !bytes.Equal(pt[len(enc):], make([]byte, len(pt)-len(enc))) {
			t.Fatalf("accepted non-zero padding %x", pt[len(enc):])
		}
	})
}

// FuzzUnprotectPrivate feeds arbitrary MLSMessage bytes to UnprotectPrivate
// with the keys of newEnv(1), seeded (testdata/fuzz, from
// TestGenerateFuzzCorpus) with PrivateMessages protected under those keys.
// It must fail with a typed error or produce a message that verifies.
func FuzzUnprotectPrivate(f *testing.F) {
	fuzzcorpus.Require(f, 0)
	e := newEnv(f, 1)
	f.Fuzz(func(t *testing.T, msg []byte) {
		pm, ok := privateMessage(msg)
		if !ok {
			return
		}
		d, err := UnprotectPrivate(e.s, pm, e.newTree(t), e.senderDataSecret, e.groupContext)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if _, err := d.Verify(e.pub); err != nil {
			// Only a changed header (group ID, epoch, authenticated
			// data) that still decrypts could get here, which AEAD
			// rules out; the signature covers the rest.
			t.Fatalf("decrypted but does not verify: %v", err)
		}
		if err := d.Consume(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzUnprotectPrivatePlaintext encrypts arbitrary sender data and content
// plaintexts correctly (so the fuzzer gets past the AEAD) and unprotects
// them. Seeded from testdata/fuzz (TestGenerateFuzzCorpus) and, when
// present, the decrypted vector plaintexts of suite 1.
func FuzzUnprotectPrivatePlaintext(f *testing.F) {
	seeds := 0
	if vs := loadProtectionVectors(f); len(vs) > 0 {
		v := &vs[0]
		for _, c := range []struct {
			msg []byte
			ct  message.ContentType
		}{{v.ApplicationPriv, message.ContentApplication}, {v.ProposalPriv, message.ContentProposal}, {v.CommitPriv, message.ContentCommit}} {
			sd, pt := decryptByHand(f, v, c.msg)
			// The vector's sender is leaf 1 of 2; here leaf 1 of 4 at
			// generation 0.
			sd = append([]byte{0, 0, 0, 1, 0, 0, 0, 0}, sd[8:]...)
			f.Add(sd, pt, uint8(c.ct))
			seeds++
		}
	}
	fuzzcorpus.Require(f, seeds)
	e := newEnv(f, 1)
	f.Fuzz(func(t *testing.T, sd, pt []byte, ct uint8) {
		e.send, e.recv = e.newTree(t), e.newTree(t)
		// Encrypt with the reuse guard the sender data names, if it
		// names one.
		var guard [4]byte
		if len(sd) >= 12 {
			copy(guard[:], sd[8:12])
		}
		pm := e.sealRaw(t, message.ContentType(ct), 1, []byte("ad"), pt, func(uint32) []byte { return sd }, guard)
		d, err := UnprotectPrivate(e.s, pm, e.recv, e.senderDataSecret, e.groupContext)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if len(sd) != 12 {
			t.Fatalf("accepted sender data of %d bytes", len(sd))
		}
		if d.ContentType() != message.ContentType(ct) || d.Sender() != (message.Sender{Type: message.SenderMember, LeafIndex: 1}) || d.Generation() != 0 {
			t.Fatalf("decrypted content type %d sender %+v", d.ContentType(), d.Sender())
		}
	})
}

// TestGenerateFuzzCorpus writes the corpora of this package's fuzz
// targets from newEnv(1) (whose keys come from a seeded source): the
// content plaintexts of an application message, a proposal and a commit
// (also padded), their sender data, and the PrivateMessages protecting
// them at generations 0 and 3, unpadded and padded. It runs only with
// MLS_UPDATE_FUZZ_CORPUS=1.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	e := newEnv(t, 1)
	content := fuzzcorpus.New(".", "FuzzDecodePrivateContent")
	plaintext := fuzzcorpus.New(".", "FuzzUnprotectPrivatePlaintext")
	private := fuzzcorpus.New(".", "FuzzUnprotectPrivate")
	for _, ct := range []message.ContentType{message.ContentApplication, message.ContentProposal, message.ContentCommit} {
		ac := e.sign(t, message.WireFormatPrivateMessage, e.content(ct))
		w := wire.NewEncoder(nil)
		appendPrivateContent(w, &ac.Content, &ac.Auth)
		pt, err := w.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		padded := append(bytes.Clone(pt), make([]byte, 16)...)
		content.Add(pt, uint8(ct))
		content.Add(padded, uint8(ct))
		plaintext.Add(senderData(1, [4]byte{})(0), pt, uint8(ct))
		plaintext.Add(senderData(1, [4]byte{1, 2, 3, 4})(0), padded, uint8(ct))
		for _, gen := range []int{0, 3} {
			for _, pad := range []int{0, 32} {
				tree := e.newTree(t)
				for range gen {
					if _, err := tree.Next(1, ratchetFor(ct)); err != nil {
						t.Fatal(err)
					}
				}
				pm, err := ProtectPrivate(e.s, ac, tree, e.senderDataSecret, pad, e.rnd)
				if err != nil {
					t.Fatal(err)
				}
				private.Add(message.MustMarshal(&message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatPrivateMessage, PrivateMessage: pm}))
			}
		}
	}
	content.Write(t)
	plaintext.Write(t)
	private.Write(t)
}
