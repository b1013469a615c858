package framing

import (
	"bytes"
	"testing"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

// framedCase is a signed PublicMessage content for the framed tests: small
// ones are checked in order, the large commit (an UpdatePath to 10,000
// members, above concurrentMin) with the signature on another goroutine.
type framedCase struct {
	name string
	ac   func(t testing.TB, e *env) *message.AuthenticatedContent
}

var framedCases = []framedCase{
	{"proposal", func(t testing.TB, e *env) *message.AuthenticatedContent {
		return e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentProposal))
	}},
	{"commit", func(t testing.TB, e *env) *message.AuthenticatedContent {
		return e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentCommit))
	}},
	{"external proposal", func(t testing.TB, e *env) *message.AuthenticatedContent {
		fc := e.content(message.ContentProposal)
		fc.Sender = message.Sender{Type: message.SenderExternal, SenderIndex: 3}
		return e.sign(t, message.WireFormatPublicMessage, fc)
	}},
	{"large commit", func(t testing.TB, e *env) *message.AuthenticatedContent { return bigCommit(t, e, 10000) }},
}

// received protects ac and decodes the result from its wire encoding as
// a receiver does, with the encoding of its content as received.
func received(t testing.TB, e *env, ac *message.AuthenticatedContent) (*message.PublicMessage, []byte) {
	t.Helper()
	pm, err := ProtectPublic(e.s, ac, e.membershipKey, e.groupContext)
	if err != nil {
		t.Fatal(err)
	}
	m, content, err := message.UnmarshalMLSMessageContent(message.MustMarshal(message.NewPublicMessage(pm)))
	if err != nil {
		t.Fatal(err)
	}
	return m.PublicMessage, content
}

// opaqueOf encodes opaque<V> (RFC 9420, Section 2.1.2).
func opaqueOf(b []byte) []byte {
	return append(wire.AppendVarint(nil, uint64(len(b))), b...)
}

// TestFramedMatchesEncoding: the buffer framed around the content as
// received holds, byte for byte, SignContent, AuthenticatedContentTBM and
// ConfirmedTranscriptHashInput as encoded independently (RFC 9420,
// Sections 5.1.2, 6.1, 6.2 and 8.2), and so does the one framed from the
// decoded structure.
func TestFramedMatchesEncoding(t *testing.T) {
	forEachSuite(t, func(t *testing.T, e *env) {
		for _, c := range framedCases {
			t.Run(c.name, func(t *testing.T) {
				ac := c.ac(t, e)
				pm, content := received(t, e, ac)
				if !bytes.Equal(content, encodeContent(t, &ac.Content)) {
					t.Fatal("the content as received is not the encoding of the content")
				}
				tbs := append([]byte{0, 1, 0, 1}, content...)
				if pm.Content.Sender.Type == message.SenderMember {
					tbs = append(tbs, e.groupContext...)
				}
				auth := opaqueOf(ac.Auth.Signature)
				if ac.Content.ContentType == message.ContentCommit {
					auth = append(auth, opaqueOf(ac.Auth.ConfirmationTag)...)
				}
				wantSign := append(opaqueOf([]byte("MLS 1.0 FramedContentTBS")), opaqueOf(tbs)...)
				wantTBM := append(bytes.Clone(tbs), auth...)
				wantCTHI := append(append([]byte{0, 1}, content...), opaqueOf(ac.Auth.Signature)...)
				if ac.Content.ContentType == message.ContentCommit {
					in, err := ConfirmedTranscriptHashInput(ac)
					if err != nil || !bytes.Equal(in, wantCTHI) {
						t.Fatalf("ConfirmedTranscriptHashInput differs from the independent encoding (%v)", err)
					}
				}
				for name, raw := range map[string][]byte{"as received": content, "encoded": nil} {
					f, err := frame("test", nil, message.WireFormatPublicMessage, &pm.Content, raw, &pm.Auth, e.groupContext)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(f.signContent(), wantSign) {
						t.Errorf("%s: SignContent differs", name)
					}
					if !bytes.Equal(f.tbm(), wantTBM) {
						t.Errorf("%s: AuthenticatedContentTBM differs", name)
					}
					if got := append(bytes.Clone(f.encodedContent()), f.b[f.auth:f.sig]...); !bytes.Equal(got, wantCTHI) {
						t.Errorf("%s: ConfirmedTranscriptHashInput differs", name)
					}
					if tag := e.s.MAC(e.membershipKey, wantTBM); !f.tagOK(e.s, e.membershipKey, tag) {
						t.Errorf("%s: membership tag differs", name)
					}
					if large := c.name == "large commit"; large != (len(f.b) >= concurrentMin) {
						t.Errorf("%s: %d bytes framed, concurrentMin %d: the case does not test what it says", name, len(f.b), concurrentMin)
					}
				}
			})
		}
	})
}

// TestVerifyPublicMatchesUnprotect: VerifyPublic, with the content as
// received or encoded again, gives what UnprotectPublic and Verify give,
// and the confirmed transcript hash it computes is the one computed from
// the content alone.
func TestVerifyPublicMatchesUnprotect(t *testing.T) {
	forEachSuite(t, func(t *testing.T, e *env) {
		interim := bytes.Repeat([]byte{0x1f}, e.s.HashSize())
		for _, c := range framedCases {
			t.Run(c.name, func(t *testing.T) {
				ac := c.ac(t, e)
				pm, content := received(t, e, ac)
				u, err := UnprotectPublic(e.s, pm, e.membershipKey, e.groupContext)
				if err != nil {
					t.Fatal(err)
				}
				want, err := u.Verify(e.pub)
				if err != nil {
					t.Fatal(err)
				}
				bare := &message.AuthenticatedContent{WireFormat: ac.WireFormat, Content: ac.Content, Auth: ac.Auth}
				for name, raw := range map[string][]byte{"as received": content, "encoded": nil} {
					for _, untagged := range []bool{false, true} {
						k := &PublicKeys{MembershipKey: e.membershipKey, Untagged: untagged, GroupContext: e.groupContext, SignatureKey: e.pub, Interim: interim}
						got, err := VerifyPublic(e.s, pm, raw, k)
						if err != nil {
							t.Fatalf("%s, untagged %v: %v", name, untagged, err)
						}
						if !bytes.Equal(message.MustMarshal(got), message.MustMarshal(want)) {
							t.Errorf("%s: content differs from UnprotectPublic's", name)
						}
						if ac.Content.ContentType != message.ContentCommit {
							continue
						}
						if got.ConfirmedTranscriptHashAfter(e.s, interim) == nil {
							t.Errorf("%s: no confirmed transcript hash computed", name)
						}
						for _, in := range [][]byte{interim, bytes.Repeat([]byte{0x2e}, e.s.HashSize())} {
							h, err := ConfirmedTranscriptHash(e.s, in, got)
							if err != nil {
								t.Fatal(err)
							}
							for _, other := range []*message.AuthenticatedContent{want, bare} {
								if h2, err := ConfirmedTranscriptHash(e.s, in, other); err != nil || !bytes.Equal(h, h2) {
									t.Errorf("%s: confirmed transcript hash %x, from the content %x (%v)", name, h, h2, err)
								}
							}
						}
					}
				}
			})
		}
	})
}

// TestVerifyPublicTampered: a flipped bit in the content as received, the
// membership tag or the signature fails as UnprotectPublic and Verify
// fail: the membership tag first (it covers the signature), then the
// signature; whether or not the signature is checked concurrently.
func TestVerifyPublicTampered(t *testing.T) {
	e := newEnv(t, 1)
	for _, c := range framedCases {
		t.Run(c.name, func(t *testing.T) {
			ac := c.ac(t, e)
			pm, content := received(t, e, ac)
			member := pm.Content.Sender.Type == message.SenderMember
			tagged := &PublicKeys{MembershipKey: e.membershipKey, GroupContext: e.groupContext, SignatureKey: e.pub}
			untagged := &PublicKeys{Untagged: true, GroupContext: e.groupContext, SignatureKey: e.pub}
			flip := func(b []byte, i int) []byte {
				b = bytes.Clone(b)
				b[i] ^= 0x40
				return b
			}
			for _, i := range []int{0, len(content) / 2, len(content) - 1} {
				bad := flip(content, i)
				_, err := VerifyPublic(e.s, pm, bad, tagged)
				if member {
					wantErr(t, err, ErrMembershipTag)
				} else {
					wantErr(t, err, ErrSignature)
				}
				_, err = VerifyPublic(e.s, pm, bad, untagged)
				wantErr(t, err, ErrSignature)
			}
			wrongKey := *tagged
			wrongKey.SignatureKey = e.otherPub
			_, err := VerifyPublic(e.s, pm, content, &wrongKey)
			wantErr(t, err, ErrSignature)
			badSig := *pm
			badSig.Auth.Signature = flip(pm.Auth.Signature, 3)
			_, err = VerifyPublic(e.s, &badSig, content, untagged)
			wantErr(t, err, ErrSignature)
			_, err = VerifyPublic(e.s, &badSig, content, tagged)
			if member {
				wantErr(t, err, ErrMembershipTag)
				badTag := *pm
				badTag.MembershipTag = flip(pm.MembershipTag, 0)
				_, err = VerifyPublic(e.s, &badTag, content, tagged)
				wantErr(t, err, ErrMembershipTag)
				// A tag that fails wins over a signature that fails too.
				wrongKey.Interim = bytes.Repeat([]byte{1}, e.s.HashSize())
				_, err = VerifyPublic(e.s, &badTag, content, &wrongKey)
				wantErr(t, err, ErrMembershipTag)
				// UnprotectPublic and Verify agree.
				_, err = UnprotectPublic(e.s, &badTag, e.membershipKey, e.groupContext)
				wantErr(t, err, ErrMembershipTag)
			} else {
				wantErr(t, err, ErrSignature)
			}
			// The pooled buffer a failure returned serves the next check.
			if _, err := VerifyPublic(e.s, pm, content, tagged); err != nil {
				t.Fatalf("after the failures: %v", err)
			}
		})
	}
}

// TestVerifyPublicChecks: VerifyPublic makes UnprotectPublic's checks.
func TestVerifyPublicChecks(t *testing.T) {
	e := newEnv(t, 1)
	ac := e.sign(t, message.WireFormatPublicMessage, e.content(message.ContentProposal))
	pm, content := received(t, e, ac)
	_, err := VerifyPublic(e.s, pm, content, nil)
	wantErr(t, err, ErrInvalidArgument)
	_, err = VerifyPublic(e.s, pm, content, &PublicKeys{GroupContext: e.groupContext, SignatureKey: e.pub})
	wantErr(t, err, ErrInvalidArgument)
	_, err = VerifyPublic(e.s, pm, content, &PublicKeys{MembershipKey: e.membershipKey, SignatureKey: e.pub})
	wantErr(t, err, ErrInvalidArgument)
	noTag := *pm
	noTag.MembershipTag = nil
	_, err = VerifyPublic(e.s, &noTag, content, &PublicKeys{Untagged: true, GroupContext: e.groupContext, SignatureKey: e.pub})
	wantErr(t, err, ErrMembershipTag)
}
