package framing

import (
	"bytes"
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// publicRoundTrip protects ac, sends the PublicMessage through its wire
// encoding, and unprotects it.
func publicRoundTrip(t *testing.T, e *env, ac *message.AuthenticatedContent) (*Unverified, error) {
	t.Helper()
	pm, err := ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	var got message.PublicMessage
	if err := message.Unmarshal(message.MustMarshal(pm), &got); err != nil {
		t.Fatal(err)
	}
	return UnprotectPublic(e.s, &got, e.membershipKey, e.groupContext)
}

func TestPublicRoundTrip(t *testing.T) {
	forEachSuite(t, func(t *testing.T, e *env) {
		for _, ct := range []message.ContentType{message.ContentProposal, message.ContentCommit} {
			fc := e.content(ct)
			ac := e.sign(t, message.WireFormatPublicMessage, fc)
			u, err := publicRoundTrip(t, e, ac)
			if err != nil {
				t.Fatalf("content type %d: %v", ct, err)
			}
			if u.Sender() != fc.Sender || u.ContentType() != ct || u.Epoch() != fc.Epoch || u.WireFormat() != message.WireFormatPublicMessage {
				t.Errorf("unverified view: sender %+v type %d epoch %d wf %d", u.Sender(), u.ContentType(), u.Epoch(), u.WireFormat())
			}
			if _, err := u.Verify(e.otherPub); err == nil {
				t.Fatal("verified under a key that did not sign")
			} else {
				wantErr(t, err, ErrSignature)
			}
			got, err := u.Verify(e.pub)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(encodeContent(t, &got.Content), encodeContent(t, fc)) {
				t.Error("content changed in transit")
			}
			if !bytes.Equal(got.Auth.Signature, ac.Auth.Signature) || !bytes.Equal(got.Auth.ConfirmationTag, ac.Auth.ConfirmationTag) {
				t.Error("auth data changed in transit")
			}
		}
	})
}

func TestProtectPublicRejectsApplication(t *testing.T) {
	e := newEnv(t, 1)
	fc := e.content(message.ContentApplication)
	_, err := SignContent(e.s, e.signer, message.WireFormatPublicMessage, fc, e.groupContext)
	wantErr(t, err, ErrContentType)
	// Even if signed some other way, ProtectPublic refuses it.
	ac := &message.AuthenticatedContent{WireFormat: message.WireFormatPublicMessage, Content: *fc, Auth: message.FramedContentAuthData{Signature: []byte{1}}}
	_, err = ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrContentType)
	// And UnprotectPublic refuses one that arrives.
	pm := &message.PublicMessage{Content: *fc, Auth: ac.Auth, MembershipTag: make([]byte, e.s.HashSize())}
	_, err = UnprotectPublic(e.s, pm, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrContentType)
}

func TestUnprotectPublicMembershipTag(t *testing.T) {
	e := newEnv(t, 1)
	ac := e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentProposal))
	good, err := ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	if len(good.MembershipTag) != e.s.HashSize() {
		t.Fatalf("membership tag of %d bytes, want %d", len(good.MembershipTag), e.s.HashSize())
	}
	if _, err := UnprotectPublic(e.s, good, e.membershipKey, e.groupContext); err != nil {
		t.Fatal(err)
	}
	otherGC := e.gc
	otherGC.Epoch++
	cases := map[string]struct {
		mutate func(pm *message.PublicMessage)
		key    []byte
		gc     []byte
	}{
		"flipped tag bit":    {mutate: func(pm *message.PublicMessage) { pm.MembershipTag[0] ^= 1 }},
		"truncated tag":      {mutate: func(pm *message.PublicMessage) { pm.MembershipTag = pm.MembershipTag[:len(pm.MembershipTag)-1] }},
		"missing tag":        {mutate: func(pm *message.PublicMessage) { pm.MembershipTag = nil }},
		"changed aad":        {mutate: func(pm *message.PublicMessage) { pm.Content.AuthenticatedData = []byte("other") }},
		"changed signature":  {mutate: func(pm *message.PublicMessage) { pm.Auth.Signature[0] ^= 1 }},
		"changed sender":     {mutate: func(pm *message.PublicMessage) { pm.Content.Sender.LeafIndex = 2 }},
		"wrong key":          {key: bytes.Repeat([]byte{1}, e.s.HashSize())},
		"other epoch's gctx": {gc: message.MustMarshal(&otherGC)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			pm := clonePublic(good)
			if c.mutate != nil {
				c.mutate(pm)
			}
			key, gc := e.membershipKey, e.groupContext
			if c.key != nil {
				key = c.key
			}
			if c.gc != nil {
				gc = c.gc
			}
			_, err := UnprotectPublic(e.s, pm, key, gc)
			wantErr(t, err, ErrMembershipTag)
		})
	}
}

// clonePublic deep-copies a PublicMessage through its encoding.
func clonePublic(pm *message.PublicMessage) *message.PublicMessage {
	var out message.PublicMessage
	if err := message.Unmarshal(message.MustMarshal(pm), &out); err != nil {
		panic(err)
	}
	return &out
}

func TestPublicExternalSender(t *testing.T) {
	e := newEnv(t, 1)
	fc := e.content(message.ContentProposal)
	fc.Sender = message.Sender{Type: message.SenderExternal, SenderIndex: 0}
	// No GroupContext in the TBS of an external sender: signing without
	// one works.
	ac, err := SignContent(e.s, e.signer, message.WireFormatPublicMessage, fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := ProtectPublic(e.s, ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pm.MembershipTag != nil {
		t.Fatal("membership tag on an external sender's message")
	}
	u, err := UnprotectPublic(e.s, pm, e.membershipKey, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Verify(e.pub); err != nil {
		t.Fatal(err)
	}
	// The signature does not depend on the GroupContext.
	u, err = UnprotectPublic(e.s, pm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Verify(e.pub); err != nil {
		t.Fatal(err)
	}
	// A membership tag on a non-member's message is refused.
	pm.MembershipTag = make([]byte, e.s.HashSize())
	_, err = UnprotectPublic(e.s, pm, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrMembershipTag)
	// A changed content fails the signature (nothing else covers it).
	pm.MembershipTag = nil
	pm.Content.AuthenticatedData = []byte("changed")
	u, err = UnprotectPublic(e.s, pm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Verify(e.pub)
	wantErr(t, err, ErrSignature)
}

func TestSenderContentTypeRules(t *testing.T) {
	e := newEnv(t, 1)
	add := &message.Proposal{Type: message.ProposalAdd, Add: &message.AddProposal{}}
	cases := []struct {
		name   string
		sender message.Sender
		ct     message.ContentType
		prop   *message.Proposal
		kind   error
	}{
		{"external commit", message.Sender{Type: message.SenderExternal}, message.ContentCommit, nil, ErrSender},
		{"new_member_proposal remove", message.Sender{Type: message.SenderNewMemberProposal}, message.ContentProposal, nil, ErrSender},
		{"new_member_commit proposal", message.Sender{Type: message.SenderNewMemberCommit}, message.ContentProposal, add, ErrSender},
		{"unknown sender type", message.Sender{Type: 9}, message.ContentProposal, nil, ErrSender},
		{"sender type 0", message.Sender{Type: 0}, message.ContentProposal, nil, ErrSender},
		{"unknown content type", message.Sender{Type: message.SenderMember}, 7, nil, ErrContentType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fc := e.content(c.ct)
			if c.prop != nil {
				fc.Proposal = c.prop
			}
			fc.Sender = c.sender
			_, err := SignContent(e.s, e.signer, message.WireFormatPublicMessage, fc, e.groupContext)
			wantErr(t, err, c.kind)
			pm := &message.PublicMessage{Content: *fc, Auth: message.FramedContentAuthData{Signature: []byte{1}}}
			if c.ct == message.ContentCommit {
				pm.Auth.ConfirmationTag = []byte{2}
			}
			_, err = UnprotectPublic(e.s, pm, e.membershipKey, e.groupContext)
			wantErr(t, err, c.kind)
		})
	}
	// The allowed combinations sign.
	ok := []struct {
		sender message.Sender
		ct     message.ContentType
		prop   *message.Proposal
	}{
		{message.Sender{Type: message.SenderExternal, SenderIndex: 3}, message.ContentProposal, nil},
		{message.Sender{Type: message.SenderNewMemberProposal}, message.ContentProposal, add},
		{message.Sender{Type: message.SenderNewMemberCommit}, message.ContentCommit, nil},
	}
	for _, c := range ok {
		fc := e.content(c.ct)
		if c.prop != nil {
			fc.Proposal = c.prop
		}
		fc.Sender = c.sender
		if _, err := SignContent(e.s, e.signer, message.WireFormatPublicMessage, fc, e.groupContext); err != nil {
			t.Errorf("sender %+v content %d: %v", c.sender, c.ct, err)
		}
	}
}

func TestContentBodyMismatch(t *testing.T) {
	e := newEnv(t, 1)
	fc := e.content(message.ContentProposal)
	fc.Proposal = nil
	_, err := SignContent(e.s, e.signer, message.WireFormatPublicMessage, fc, e.groupContext)
	wantErr(t, err, ErrContentType)
	fc = e.content(message.ContentCommit)
	fc.Proposal = &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{}}
	_, err = SignContent(e.s, e.signer, message.WireFormatPublicMessage, fc, e.groupContext)
	wantErr(t, err, ErrContentType)
	fc = e.content(message.ContentApplication)
	fc.Commit = &message.Commit{}
	_, err = SignContent(e.s, e.signer, message.WireFormatPrivateMessage, fc, e.groupContext)
	wantErr(t, err, ErrContentType)
}

func TestConfirmationTagPresence(t *testing.T) {
	e := newEnv(t, 1)
	ac := e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentCommit))
	ac.Auth.ConfirmationTag = nil
	_, err := ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrConfirmationTag)
	ac = e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentProposal))
	ac.Auth.ConfirmationTag = []byte{1, 2, 3}
	_, err = ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrConfirmationTag)
	pm := &message.PublicMessage{Content: *e.content(message.ContentCommit), Auth: message.FramedContentAuthData{Signature: []byte{1}}}
	_, err = UnprotectPublic(e.s, pm, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrConfirmationTag)
}

// A signature binds the wire format: content signed for PrivateMessage and
// relabelled as PublicMessage by someone holding the membership key fails
// verification (RFC 9420, Section 6.1).
func TestSignatureBindsWireFormat(t *testing.T) {
	e := newEnv(t, 1)
	ac := e.sign(t, message.WireFormatPrivateMessage, e.content(message.ContentProposal))
	_, err := ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrWireFormat)
	ac.WireFormat = message.WireFormatPublicMessage
	pm, err := ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	u, err := UnprotectPublic(e.s, pm, e.membershipKey, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Verify(e.pub)
	wantErr(t, err, ErrSignature)
}

// A member's signature covers the GroupContext: the same content verified
// against another epoch's GroupContext fails.
func TestSignatureBindsGroupContext(t *testing.T) {
	e := newEnv(t, 1)
	ac := e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentProposal))
	if err := VerifySignature(e.s, e.pub, ac, e.groupContext); err != nil {
		t.Fatal(err)
	}
	gc := e.gc
	gc.TreeHash = append([]byte{0}, gc.TreeHash[1:]...)
	if bytes.Equal(gc.TreeHash, e.gc.TreeHash) {
		gc.TreeHash[0] = 1
	}
	err := VerifySignature(e.s, e.pub, ac, message.MustMarshal(&gc))
	wantErr(t, err, ErrSignature)
}

func TestMissingArguments(t *testing.T) {
	e := newEnv(t, 1)
	fc := e.content(message.ContentProposal)
	_, err := SignContent(e.s, e.signer, message.WireFormatPublicMessage, fc, nil)
	wantErr(t, err, ErrInvalidArgument)
	_, err = SignContent(e.s, e.signer, message.WireFormatWelcome, fc, e.groupContext)
	wantErr(t, err, ErrWireFormat)
	_, err = SignContent(nil, e.signer, message.WireFormatPublicMessage, fc, e.groupContext)
	wantErr(t, err, ErrInvalidArgument)
	ac := e.sign(t, message.WireFormatPublicMessage, fc)
	_, err = ProtectPublic(e.s, ac, nil, e.groupContext)
	wantErr(t, err, ErrInvalidArgument)
	_, err = ProtectPublic(e.s, ac, e.membershipKey, nil)
	wantErr(t, err, ErrInvalidArgument)
	pm, err := ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	_, err = UnprotectPublic(e.s, pm, nil, e.groupContext)
	wantErr(t, err, ErrInvalidArgument)
	_, err = UnprotectPublic(e.s, pm, e.membershipKey, nil)
	wantErr(t, err, ErrInvalidArgument)
	_, err = UnprotectPublic(e.s, nil, e.membershipKey, e.groupContext)
	wantErr(t, err, ErrInvalidArgument)
	err = VerifySignature(e.s, e.pub, ac, nil)
	wantErr(t, err, ErrInvalidArgument)
	// A signer of another suite's algorithm is refused.
	e5 := newEnv(t, 5)
	_, err = SignContent(e.s, e5.signer, message.WireFormatPublicMessage, fc, e.groupContext)
	wantErr(t, err, ErrInvalidArgument)
}

func TestErrorMessage(t *testing.T) {
	e := newEnv(t, 1)
	pm := &message.PublicMessage{Content: *e.content(message.ContentProposal), Auth: message.FramedContentAuthData{Signature: []byte{1}}, MembershipTag: []byte{1}}
	_, err := UnprotectPublic(e.s, pm, e.membershipKey, e.groupContext)
	fe := wantErr(t, err, ErrMembershipTag)
	const want = "mls: framing: unprotect PublicMessage: invalid membership tag: member 1"
	if fe.Error() != want {
		t.Errorf("error text %q, want %q", fe.Error(), want)
	}
}
