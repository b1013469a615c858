package framing

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"sync"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

// signPrefixRoom is the largest SignContent prefix of FramedContentTBS:
// opaque label<V> and the longest length header of content<V>.
var signPrefixRoom = len(ciphersuite.AppendSignContentPrefix(nil, signLabel, wire.MaxVarint))

// concurrentMin is the size from which checkFramed verifies the signature
// on another goroutine while it MACs and hashes the same bytes: a commit
// with an UpdatePath in a fresh tree is O(N) bytes (RFC 9420, Section
// 7.6), and hashing them is then most of the cost of each of the three.
// Below it the goroutine would cost more than it saves.
const concurrentMin = 32 << 10

// framed lays out in one buffer everything that covers the content of a
// message (RFC 9420, Sections 5.1.2, 6.1, 6.2 and 8.2), so that the
// content is written once:
//
//	b[start:auth]  SignContent{"MLS 1.0 FramedContentTBS", FramedContentTBS}
//	b[tbs:auth]    FramedContentTBS = version || wire_format || content || [group context]
//	b[tbs:]        AuthenticatedContentTBM = FramedContentTBS || FramedContentAuthData
//	b[tbs+2:content] || b[auth:sig]
//	               ConfirmedTranscriptHashInput = wire_format || content || signature<V>
type framed struct {
	b       []byte
	start   int // SignContent
	content int // end of the content
	auth    int // FramedContentAuthData, the end of FramedContentTBS
	sig     int // end of signature<V>
}

// tbs is where FramedContentTBS starts: after room for the SignContent
// prefix, which is written right-aligned once the length is known.
func (f *framed) tbs() int { return signPrefixRoom }

func (f *framed) signContent() []byte { return f.b[f.start:f.auth] }

func (f *framed) tbm() []byte { return f.b[f.tbs():] }

// encodedContent is wire_format || content, the start of
// ConfirmedTranscriptHashInput, as AuthenticatedContent.SetEncodedContent
// takes it.
func (f *framed) encodedContent() []byte { return f.b[f.tbs()+2 : f.content : f.content] }

// confirmedTranscriptHash returns Hash(interim || ConfirmedTranscriptHashInput)
// (RFC 9420, Section 8.2), written from the buffer in two pieces.
func (f *framed) confirmedTranscriptHash(s *ciphersuite.Suite, interim []byte) []byte {
	return confirmedHash(s, interim, f.encodedContent(), f.b[f.auth:f.sig])
}

// confirmedHash returns Hash(interim || input...) where the pieces of
// input make up ConfirmedTranscriptHashInput (RFC 9420, Section 8.2):
// wire_format || content, then opaque signature<V>.
func confirmedHash(s *ciphersuite.Suite, interim []byte, input ...[]byte) []byte {
	h := s.NewHash()
	h.Write(interim)
	for _, b := range input {
		h.Write(b)
	}
	return h.Sum(nil)
}

// frame appends to buf[:0] the framed buffer of fc sent with wire format
// wf, its auth data and, for member and new_member_commit senders, the
// encoded GroupContext. content, if not nil, is fc as encoded on the wire
// and is copied instead of encoding fc again.
func frame(op string, buf []byte, wf message.WireFormat, fc *message.FramedContent, content []byte, auth *message.FramedContentAuthData, groupContext []byte) (framed, error) {
	var room [64]byte
	e := wire.NewEncoder(buf[:0])
	e.Raw(room[:signPrefixRoom])
	appendTBS(e, wf, fc, content, groupContext)
	f := framed{auth: e.Len()}
	f.content = f.auth
	if needsGroupContext(fc.Sender.Type) {
		f.content -= len(groupContext)
	}
	appendAuth(e, fc.ContentType, auth)
	f.sig = f.auth + wire.VarintLen(uint64(len(auth.Signature))) + len(auth.Signature)
	b, err := e.Bytes()
	if err == nil && f.auth-f.tbs() > wire.MaxVarint {
		err = errors.New("FramedContentTBS longer than a vector can be")
	}
	if err != nil {
		return framed{b: b}, newError(op, ErrInvalidArgument, err)
	}
	prefix := ciphersuite.AppendSignContentPrefix(room[:0], signLabel, f.auth-f.tbs())
	f.start = f.tbs() - len(prefix)
	copy(b[f.start:], prefix)
	f.b = b
	return f, nil
}

// owned returns f with its buffer, grown in p from the pool, copied once
// at its final size, and gives p back: for a framed buffer that outlives
// the call (Unverified, and the encoded content that Verify records).
func (f framed) owned(p *[]byte) framed {
	b := f.b
	f.b = bytes.Clone(b)
	putScratch(p, b)
	return f
}

// tagOK reports whether tag is MAC(membershipKey, AuthenticatedContentTBM)
// (RFC 9420, Section 6.2), compared in constant time.
func (f *framed) tagOK(s *ciphersuite.Suite, membershipKey, tag []byte) bool {
	return hmac.Equal(s.MAC(membershipKey, f.tbm()), tag)
}

// verify checks signature over the SignContent in f (RFC 9420, Section
// 6.1).
func (f *framed) verify(s *ciphersuite.Suite, pub, signature []byte) error {
	if err := s.VerifySignContent(pub, signLabel, f.signContent(), signature); err != nil {
		return newError("verify signature", ErrSignature, err)
	}
	return nil
}

// checks is what checkFramed checks and computes.
type checks struct {
	membershipKey []byte // nil: no membership tag to check
	tag           []byte
	pub           []byte
	signature     []byte
	interim       []byte // nil: no confirmed transcript hash to compute
}

// checkFramed checks the membership tag (if c.membershipKey is set) and
// the signature over f, and computes the confirmed transcript hash (if
// c.interim is set), in this order. tagOK is false if the tag is wrong,
// whatever the signature; confirmed is nil unless both checks pass.
func (f *framed) checkFramed(s *ciphersuite.Suite, c *checks) (tagOK bool, confirmed []byte, sigErr error) {
	if len(f.b) >= concurrentMin {
		return checkConcurrently(s, *f, *c)
	}
	if !f.checkTag(s, c) {
		return false, nil, nil
	}
	if err := f.verify(s, c.pub, c.signature); err != nil {
		return true, nil, err
	}
	return true, f.hash(s, c), nil
}

// checkConcurrently is checkFramed with the signature verified on another
// goroutine while the tag and the hash are computed over the same bytes.
// The result is the same. It takes copies, which the goroutine shares, so
// that the sequential path allocates nothing for it.
func checkConcurrently(s *ciphersuite.Suite, f framed, c checks) (tagOK bool, confirmed []byte, sigErr error) {
	var wg sync.WaitGroup
	wg.Go(func() { sigErr = f.verify(s, c.pub, c.signature) })
	if tagOK = f.checkTag(s, &c); tagOK {
		confirmed = f.hash(s, &c)
	}
	wg.Wait()
	if !tagOK || sigErr != nil {
		return tagOK, nil, sigErr
	}
	return true, confirmed, nil
}

func (f *framed) checkTag(s *ciphersuite.Suite, c *checks) bool {
	return c.membershipKey == nil || f.tagOK(s, c.membershipKey, c.tag)
}

func (f *framed) hash(s *ciphersuite.Suite, c *checks) []byte {
	if c.interim == nil {
		return nil
	}
	return f.confirmedTranscriptHash(s, c.interim)
}
