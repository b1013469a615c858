package framing

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// unprotect sends pm through its wire encoding and unprotects it
// with the receiver tree.
func (e *env) unprotect(t testing.TB, pm *message.PrivateMessage) (*Decrypted, error) {
	t.Helper()
	var got message.PrivateMessage
	if err := message.Unmarshal(message.MustMarshal(pm), &got); err != nil {
		t.Fatal(err)
	}
	return UnprotectPrivate(e.s, &got, e.recv, e.senderDataSecret, e.groupContext)
}

func TestPrivateRoundTrip(t *testing.T) {
	forEachSuite(t, func(t *testing.T, e *env) {
		for _, ct := range []message.ContentType{message.ContentApplication, message.ContentProposal, message.ContentCommit} {
			for _, pad := range []int{0, 1, 32, 256} {
				fc := e.content(ct)
				ac := e.sign(t, message.WireFormatPrivateMessage, fc)
				pm, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, pad, e.rnd)
				if err != nil {
					t.Fatalf("content type %d pad %d: %v", ct, pad, err)
				}
				if pm.ContentType != ct || pm.Epoch != fc.Epoch || !bytes.Equal(pm.GroupID, fc.GroupID) || !bytes.Equal(pm.AuthenticatedData, fc.AuthenticatedData) {
					t.Errorf("header fields: %+v", pm)
				}
				// AES-GCM and ChaCha20-Poly1305 add a 16-byte tag.
				if pad > 1 && (len(pm.Ciphertext)-16)%pad != 0 {
					t.Errorf("pad %d: plaintext of %d bytes", pad, len(pm.Ciphertext)-16)
				}
				// SenderData is 12 bytes.
				if len(pm.EncryptedSenderData) != 12+16 {
					t.Errorf("encrypted sender data of %d bytes", len(pm.EncryptedSenderData))
				}
				d, err := e.unprotect(t, pm)
				if err != nil {
					t.Fatalf("content type %d pad %d: %v", ct, pad, err)
				}
				if d.Sender() != fc.Sender || d.ContentType() != ct || d.WireFormat() != message.WireFormatPrivateMessage {
					t.Errorf("unverified view: sender %+v type %d wf %d", d.Sender(), d.ContentType(), d.WireFormat())
				}
				got, err := d.Verify(e.pub)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(encodeContent(t, &got.Content), encodeContent(t, fc)) {
					t.Error("content changed in transit")
				}
				if !bytes.Equal(got.Auth.Signature, ac.Auth.Signature) || !bytes.Equal(got.Auth.ConfirmationTag, ac.Auth.ConfirmationTag) {
					t.Error("auth data changed in transit")
				}
				if err := d.Consume(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// The padding is all zeros and the reuse guard is applied: decrypt a
// message by hand, with the secret tree and the sender data key directly.
func TestPrivateByHand(t *testing.T) {
	e := newEnv(t, 1)
	fc := e.content(message.ContentApplication)
	ac := e.sign(t, message.WireFormatPrivateMessage, fc)
	pm, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 64, e.rnd)
	if err != nil {
		t.Fatal(err)
	}
	sdKey, sdNonce := secrettree.SenderDataKeyNonce(e.s, e.senderDataSecret, pm.Ciphertext[:32])
	w := wire.NewEncoder(nil)
	w.Opaque(fc.GroupID)
	w.U64(fc.Epoch)
	w.U8(uint8(message.ContentApplication))
	sdAAD := append([]byte(nil), w.MustBytes()...)
	sd, err := e.s.Open(sdKey, sdNonce, sdAAD, pm.EncryptedSenderData)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd) != 12 || !bytes.Equal(sd[:8], []byte{0, 0, 0, 1, 0, 0, 0, 0}) {
		t.Fatalf("sender data %x, want leaf 1 generation 0", sd)
	}
	guard := sd[8:]
	if bytes.Equal(guard, make([]byte, 4)) {
		t.Fatal("zero reuse guard from a random source")
	}
	kn, err := e.recv.Get(1, secrettree.Application, 0)
	if err != nil {
		t.Fatal(err)
	}
	nonce := append([]byte(nil), kn.Nonce...)
	w.Opaque(fc.AuthenticatedData)
	aad := w.MustBytes()
	if _, err := e.s.Open(kn.Key, nonce, aad, pm.Ciphertext); err == nil {
		t.Fatal("decrypted without the reuse guard")
	}
	for i := range 4 {
		nonce[i] ^= guard[i]
	}
	pt, err := e.s.Open(kn.Key, nonce, aad, pm.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	if len(pt) != 128 {
		t.Fatalf("plaintext of %d bytes, want 128 (padded to 64)", len(pt))
	}
	// opaque application_data<V> || opaque signature<V> || zeros
	want := wire.AppendVarint(nil, uint64(len(fc.ApplicationData)))
	want = append(want, fc.ApplicationData...)
	want = wire.AppendVarint(want, uint64(len(ac.Auth.Signature)))
	want = append(want, ac.Auth.Signature...)
	if !bytes.Equal(pt[:len(want)], want) {
		t.Fatalf("plaintext %x, want prefix %x", pt, want)
	}
	if !bytes.Equal(pt[len(want):], make([]byte, len(pt)-len(want))) {
		t.Fatalf("padding %x not all zero", pt[len(want):])
	}
}

func TestPrivateCraftedErrors(t *testing.T) {
	e := newEnv(t, 1)
	guard := [4]byte{1, 2, 3, 4}
	sig := bytes.Repeat([]byte{9}, 40) // long enough that the ciphertext exceeds Nh
	// A valid application plaintext: opaque data<V> || opaque signature<V>.
	valid := append([]byte{3, 'a', 'b', 'c', byte(len(sig))}, sig...)
	cases := []struct {
		name      string
		ct        message.ContentType
		plaintext []byte
		sd        func(gen uint32) []byte
		mutate    func(pm *message.PrivateMessage)
		kind      error
		cause     error  // also wrapped, if set
		op        string // substring of Op, if set
	}{
		{name: "valid", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard)},
		{name: "valid zero padding", ct: message.ContentApplication, plaintext: append(append([]byte{}, valid...), 0, 0, 0), sd: senderData(1, guard)},
		{name: "non-zero padding", ct: message.ContentApplication, plaintext: append(append([]byte{}, valid...), 0, 0, 1), sd: senderData(1, guard), kind: ErrPadding},
		{name: "padding 0x80", ct: message.ContentApplication, plaintext: append(append([]byte{}, valid...), 0x80), sd: senderData(1, guard), kind: ErrPadding},
		{name: "truncated content", ct: message.ContentApplication, plaintext: valid[:len(valid)-1], sd: senderData(1, guard), kind: ErrMalformed, cause: wire.ErrTruncated},
		{name: "empty plaintext", ct: message.ContentApplication, plaintext: []byte{}, sd: senderData(1, guard), kind: ErrMalformed, cause: wire.ErrTruncated},
		{name: "bad varint", ct: message.ContentApplication, plaintext: []byte{0xc0, 0, 0, 0}, sd: senderData(1, guard), kind: ErrMalformed, cause: wire.ErrInvalidVarint},
		{name: "commit without tag", ct: message.ContentCommit, plaintext: append([]byte{0, 0, byte(len(sig))}, sig...), sd: senderData(1, guard), kind: ErrMalformed, cause: wire.ErrTruncated},
		{name: "commit with empty tag", ct: message.ContentCommit, plaintext: append(append([]byte{0, 0, byte(len(sig))}, sig...), 0), sd: senderData(1, guard), kind: ErrConfirmationTag},
		{name: "truncated proposal", ct: message.ContentProposal, plaintext: []byte{0, 3, 0, 0}, sd: senderData(1, guard), kind: ErrMalformed},
		{name: "leaf out of range", ct: message.ContentApplication, plaintext: valid, sd: senderData(testLeaves, guard), kind: ErrSender, cause: secrettree.ErrLeafOutOfRange},
		{name: "leaf 2^32-1", ct: message.ContentApplication, plaintext: valid, sd: senderData(1<<32-1, guard), kind: ErrSender, cause: secrettree.ErrLeafOutOfRange},
		{name: "wrong leaf", ct: message.ContentApplication, plaintext: valid, sd: senderData(2, guard), kind: ErrDecrypt, op: "content"},
		{name: "wrong guard", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, [4]byte{1, 2, 3, 5}), kind: ErrDecrypt, op: "content"},
		{name: "wrong generation", ct: message.ContentApplication, plaintext: valid, sd: func(gen uint32) []byte { return senderData(1, guard)(gen + 1) }, kind: ErrDecrypt, op: "content"},
		{name: "generation too far ahead", ct: message.ContentApplication, plaintext: valid, sd: func(uint32) []byte { return senderData(1, guard)(1 << 31) }, kind: ErrGeneration, cause: secrettree.ErrTooFarAhead},
		{name: "sender data too long", ct: message.ContentApplication, plaintext: valid, sd: func(gen uint32) []byte { return append(senderData(1, guard)(gen), 0) }, kind: ErrMalformed, cause: wire.ErrTrailingData},
		{name: "sender data too short", ct: message.ContentApplication, plaintext: valid, sd: func(gen uint32) []byte { return senderData(1, guard)(gen)[:11] }, kind: ErrMalformed, cause: wire.ErrTruncated},
		{name: "tampered sender data", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.EncryptedSenderData[0] ^= 1 }, kind: ErrDecrypt, op: "sender data"},
		{name: "tampered ciphertext", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.Ciphertext[len(pm.Ciphertext)-1] ^= 1 }, kind: ErrDecrypt, op: "content"},
		{name: "short ciphertext tampered at the end", ct: message.ContentApplication, plaintext: []byte{0, 0}, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.Ciphertext[len(pm.Ciphertext)-1] ^= 1 }, kind: ErrDecrypt, op: "sender data"},
		{name: "tampered sample", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.Ciphertext[0] ^= 1 }, kind: ErrDecrypt, op: "sender data"},
		{name: "changed authenticated data", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.AuthenticatedData = []byte("x") }, kind: ErrDecrypt, op: "content"},
		{name: "changed epoch", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.Epoch++ }, kind: ErrDecrypt, op: "sender data"},
		{name: "changed group id", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.GroupID = []byte("other") }, kind: ErrDecrypt, op: "sender data"},
		{name: "changed content type", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.ContentType = message.ContentProposal }, kind: ErrDecrypt, op: "sender data"},
		{name: "unknown content type", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.ContentType = 9 }, kind: ErrContentType},
		{name: "empty ciphertext", ct: message.ContentApplication, plaintext: valid, sd: senderData(1, guard), mutate: func(pm *message.PrivateMessage) { pm.Ciphertext = nil }, kind: ErrDecrypt, op: "sender data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.send, e.recv = e.newTree(t), e.newTree(t)
			pm := e.sealRaw(t, c.ct, 1, []byte("ad"), c.plaintext, c.sd, guard)
			if c.mutate != nil {
				c.mutate(pm)
			}
			d, err := UnprotectPrivate(e.s, pm, e.recv, e.senderDataSecret, e.groupContext)
			if c.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(d.Content().ApplicationData, []byte("abc")) || !bytes.Equal(d.ac.Auth.Signature, sig) {
					t.Fatalf("decoded %+v", d.ac)
				}
				return
			}
			fe := wantErr(t, err, c.kind)
			// No failure here is a replay: every case uses an unused
			// generation, so none may be reported as one.
			if errors.Is(err, ErrReplayed) {
				t.Errorf("error %q is reported as a replay", err)
			}
			if c.cause != nil && !errors.Is(err, c.cause) {
				t.Errorf("error %q does not wrap %q", err, c.cause)
			}
			if c.op != "" && !strings.Contains(fe.Op, c.op) {
				t.Errorf("error op %q, want it to mention %q", fe.Op, c.op)
			}
			// A rejected message leaves the receiver's tree unchanged:
			// generation 0 of leaf 1 is still available.
			if _, err := e.recv.Get(1, ratchetFor(c.ct), 0); err != nil {
				t.Errorf("secret tree changed by a rejected message: %v", err)
			}
		})
	}
}

func TestPrivateConsume(t *testing.T) {
	e := newEnv(t, 1)
	ac := e.sign(t, message.WireFormatPrivateMessage, e.content(message.ContentApplication))
	pm, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.unprotect(t, pm)
	if err != nil {
		t.Fatal(err)
	}
	// Consume needs a verified signature.
	wantErr(t, d.Consume(), ErrNotVerified)
	if _, err := d.Verify(e.otherPub); err == nil {
		t.Fatal("verified under the wrong key")
	}
	wantErr(t, d.Consume(), ErrNotVerified)
	// Nothing consumed yet: the message decrypts again.
	d2, err := e.unprotect(t, pm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Verify(e.pub); err != nil {
		t.Fatal(err)
	}
	if err := d.Consume(); err != nil {
		t.Fatal(err)
	}
	// A replay decrypted before the first was consumed cannot consume.
	if _, err := d2.Verify(e.pub); err != nil {
		t.Fatal(err)
	}
	err = d2.Consume()
	wantErr(t, err, ErrReplayed)
	wantErr(t, err, ErrGeneration)
	if !errors.Is(err, secrettree.ErrGenerationUsed) {
		t.Errorf("error %q does not wrap secrettree.ErrGenerationUsed", err)
	}
	// A replay after consumption does not decrypt.
	_, err = e.unprotect(t, pm)
	wantErr(t, err, ErrReplayed)
	wantErr(t, err, ErrGeneration)
	if d.Generation() != 0 {
		t.Errorf("generation %d, want 0", d.Generation())
	}
	// The next message uses the next generation.
	pm, err = ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd)
	if err != nil {
		t.Fatal(err)
	}
	d, err = e.unprotect(t, pm)
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation() != 1 {
		t.Errorf("generation %d, want 1", d.Generation())
	}
}

// Handshake and application messages use separate ratchets.
func TestPrivateRatchetSeparation(t *testing.T) {
	e := newEnv(t, 1)
	for i := range 3 {
		ac := e.sign(t, message.WireFormatPrivateMessage, e.content(message.ContentApplication))
		if _, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd); err != nil {
			t.Fatal(i, err)
		}
	}
	ac := e.sign(t, message.WireFormatPrivateMessage, e.content(message.ContentProposal))
	pm, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.unprotect(t, pm)
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation() != 0 {
		t.Errorf("first proposal at handshake generation %d, want 0", d.Generation())
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestProtectPrivateErrors(t *testing.T) {
	e := newEnv(t, 1)
	ac := e.sign(t, message.WireFormatPrivateMessage, e.content(message.ContentApplication))
	pub := e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentProposal))
	_, err := ProtectPrivate(e.s, pub, e.send, e.senderDataSecret, 0, e.rnd)
	wantErr(t, err, ErrWireFormat)
	_, err = ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, -1, e.rnd)
	wantErr(t, err, ErrInvalidArgument)
	_, err = ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, MaxPadBlock+1, e.rnd)
	wantErr(t, err, ErrInvalidArgument)
	_, err = ProtectPrivate(e.s, ac, nil, e.senderDataSecret, 0, e.rnd)
	wantErr(t, err, ErrInvalidArgument)
	_, err = ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, failReader{})
	wantErr(t, err, ErrInvalidArgument)
	// A failed protect did not use a generation.
	if _, err := e.send.Get(1, secrettree.Application, 0); err != nil {
		t.Errorf("generation 0 gone after failed protects: %v", err)
	}
	// Non-member senders cannot send PrivateMessages.
	fc := e.content(message.ContentProposal)
	fc.Sender = message.Sender{Type: message.SenderExternal}
	_, err = SignContent(e.s, e.signer, message.WireFormatPrivateMessage, fc, e.groupContext)
	wantErr(t, err, ErrSender)
	forged := &message.AuthenticatedContent{WireFormat: message.WireFormatPrivateMessage, Content: *fc, Auth: message.FramedContentAuthData{Signature: []byte{1}}}
	_, err = ProtectPrivate(e.s, forged, e.send, e.senderDataSecret, 0, e.rnd)
	wantErr(t, err, ErrSender)
	// A member leaf outside the tree.
	fc = e.content(message.ContentApplication)
	fc.Sender.LeafIndex = testLeaves
	ac = e.sign(t, message.WireFormatPrivateMessage, fc)
	_, err = ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd)
	wantErr(t, err, ErrSender)
	// A commit without its confirmation tag.
	ac = e.sign(t, message.WireFormatPrivateMessage, e.content(message.ContentCommit))
	ac.Auth.ConfirmationTag = nil
	_, err = ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd)
	wantErr(t, err, ErrConfirmationTag)
	// Unprotect without a GroupContext cannot verify later: refused early.
	ac = e.sign(t, message.WireFormatPrivateMessage, e.content(message.ContentApplication))
	pm, err := ProtectPrivate(e.s, ac, e.send, e.senderDataSecret, 0, e.rnd)
	if err != nil {
		t.Fatal(err)
	}
	_, err = UnprotectPrivate(e.s, pm, e.recv, e.senderDataSecret, nil)
	wantErr(t, err, ErrInvalidArgument)
	_, err = UnprotectPrivate(e.s, pm, nil, e.senderDataSecret, e.groupContext)
	wantErr(t, err, ErrInvalidArgument)
	// The wrong sender data secret.
	_, err = UnprotectPrivate(e.s, pm, e.recv, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrDecrypt)
}

// A PrivateMessage signed by leaf 1 but whose sender data names another
// leaf cannot exist without the content key of that leaf; but a member
// that re-encrypts another's content under its own leaf produces a
// message whose signature no longer verifies, since the TBS names the
// sender.
func TestPrivateSenderBoundBySignature(t *testing.T) {
	e := newEnv(t, 1)
	fc := e.content(message.ContentApplication)
	ac := e.sign(t, message.WireFormatPrivateMessage, fc)
	forged := *ac
	forged.Content.Sender.LeafIndex = 2
	pm, err := ProtectPrivate(e.s, &forged, e.send, e.senderDataSecret, 0, e.rnd)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.unprotect(t, pm)
	if err != nil {
		t.Fatal(err)
	}
	if d.Sender().LeafIndex != 2 {
		t.Fatalf("sender leaf %d, want 2", d.Sender().LeafIndex)
	}
	_, err = d.Verify(e.pub)
	wantErr(t, err, ErrSignature)
	wantErr(t, d.Consume(), ErrNotVerified)
	if _, err := e.recv.Get(treemath.LeafIndex(2), secrettree.Application, 0); err != nil {
		t.Errorf("rejected message changed the tree: %v", err)
	}
}
