package ds

import (
	"bytes"
	"encoding/binary"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// extRatchetTree is the ratchet_tree extension type (RFC 9420, Section
// 12.4.3.3).
const extRatchetTree = 0x0002

// groupInfoParts splits an MLSMessage holding a GroupInfo (RFC 9420,
// Section 12.4.3) into the encoded GroupContext, the GroupInfoTBS (what the
// signature covers: group_context, extensions, confirmation_tag, signer),
// the signer's leaf index and the signature. ok is false when b is not
// exactly such a message.
//
//	struct {
//	    GroupContext group_context;
//	    Extension extensions<V>;
//	    opaque confirmation_tag<V>;
//	    uint32 signer;
//	    opaque signature<V>;
//	} GroupInfo;
//
//	struct {
//	    ProtocolVersion version = mls10;
//	    CipherSuite cipher_suite;
//	    opaque group_id<V>;
//	    uint64 epoch;
//	    opaque tree_hash<V>;
//	    opaque confirmed_transcript_hash<V>;
//	    Extension extensions<V>;
//	} GroupContext;
func groupInfoParts(b []byte) (gc, tbs []byte, signer uint32, sig []byte, ok bool) {
	if len(b) < 4 || binary.BigEndian.Uint16(b[2:4]) != 4 { // mls_group_info
		return nil, nil, 0, nil, false
	}
	r := reader{b: b, off: 4}
	start := r.off
	r.skip(4) // version, cipher_suite
	r.vector()
	r.skip(8) // epoch
	r.vector()
	r.vector()
	r.vector()
	gcEnd := r.off
	r.vector() // extensions
	r.vector() // confirmation_tag
	signerAt := r.off
	r.skip(4)
	tbsEnd := r.off
	sig = r.vector()
	if r.bad || r.off != len(b) {
		return nil, nil, 0, nil, false
	}
	return b[start:gcEnd], b[start:tbsEnd], binary.BigEndian.Uint32(b[signerAt:tbsEnd]), sig, true
}

// reader walks TLS-encoded bytes (RFC 9420, Section 2.1); once a read runs
// past the end, bad is set and every later read is empty.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) skip(n int) {
	if r.bad || len(r.b)-r.off < n {
		r.bad = true
		return
	}
	r.off += n
}

// vector reads an opaque<V> and returns its content.
func (r *reader) vector() []byte {
	if r.bad {
		return nil
	}
	n, l, ok := varint(r.b[r.off:])
	if !ok || uint64(len(r.b)-r.off-l) < n {
		r.bad = true
		return nil
	}
	v := r.b[r.off+l : r.off+l+int(n)]
	r.off += l + int(n)
	return v
}

// groupInfoMatches checks, without rebuilding the group, that a posted
// GroupInfo and tree describe exactly the epoch pg is in after merging a
// commit: the tree is pg's own, byte for byte; the GroupInfo's
// GroupContext is pg's; and its signature verifies under the signer's leaf
// (SignWithLabel(., "GroupInfoTBS", GroupInfoTBS), RFC 9420, Section
// 12.4.3). This is what mls.NewPublicGroup would conclude, without
// revalidating every leaf of a tree the server has just validated. It
// reports handled=false when it cannot decide (no separate tree, a
// ratchet_tree extension, another encoding of the tree), and the caller
// then falls back to NewPublicGroup.
func groupInfoMatches(pg *mls.PublicGroup, giMsg *mls.Message, rawGI, tree []byte) (handled bool, err error) {
	if len(tree) == 0 {
		return false, nil
	}
	gi, err := giMsg.GroupInfo()
	if err != nil {
		return false, nil
	}
	for _, x := range gi.Extensions() {
		if x.Type == extRatchetTree {
			return false, nil
		}
	}
	own, err := pg.ExportRatchetTree()
	if err != nil || !bytes.Equal(own, tree) {
		return false, nil
	}
	gc, tbs, signer, sig, ok := groupInfoParts(rawGI)
	if !ok {
		return false, nil
	}
	if !bytes.Equal(gc, pg.GroupContext()) {
		return true, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the GroupInfo is not the epoch the commit creates (GroupContext differs)")
	}
	m, ok := pg.Member(signer)
	if !ok {
		return true, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the GroupInfo's signer %d is not a member", signer)
	}
	suite, err := ciphersuite.Lookup(pg.CipherSuite())
	if err != nil {
		return true, err
	}
	if err := suite.VerifyWithLabel(m.SignatureKey, "GroupInfoTBS", tbs, sig); err != nil {
		return true, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the GroupInfo's signature does not verify under leaf %d", signer)
	}
	return true, nil
}
