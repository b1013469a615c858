package state

import (
	"encoding/binary"
	"errors"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
)

// A PublicGroup (the root's secret-free follower of a group) is stored in
// buckets of its own, so that one store can hold a member's state and a
// follower's state of the same group:
//
//	publicgroups/<gid>                  the PublicRecord
//	publicnodes/<gid><len><node>        one non-blank node of its ratchet tree
//	publicversions/<gid>                its version (see Version)
//
// The node records and their keys are those of a member's tree (NodeKey),
// written incrementally in the same way.
const (
	BucketPublicGroups   = "publicgroups"
	BucketPublicNodes    = "publicnodes"
	BucketPublicVersions = "publicversions"
	// PublicRecordVersion is the first octet of a PublicRecord.
	PublicRecordVersion = 1
)

// PublicRecord is a PublicGroup's record:
//
//	struct {
//	    uint8 version = 1;
//	    Header header;
//	    opaque confirmation_tag<V>;
//	    bool active;
//	    bool skip_lifetime;
//	    Proposal proposals<V>;
//	    opaque checksum[4];
//	} PublicRecord;
//
// It holds no secret: the GroupContext, the confirmation tag of the
// current epoch (sent in the clear with its commit), the tree's hash and
// size, and the pending proposals.
type PublicRecord struct {
	Header          Header
	ConfirmationTag []byte
	Active          bool
	SkipLifetime    bool
	Proposals       []Proposal
}

// Marshal encodes r, sealed with its checksum.
func (r *PublicRecord) Marshal() ([]byte, error) {
	e := wire.NewEncoder(nil)
	e.U8(PublicRecordVersion)
	r.Header.encode(e)
	e.Opaque(r.ConfirmationTag)
	e.Bool(r.Active)
	e.Bool(r.SkipLifetime)
	e.Vector(func(e *wire.Encoder) {
		for i := range r.Proposals {
			r.Proposals[i].encode(e)
		}
	})
	b, err := e.Bytes()
	if err != nil {
		return nil, err
	}
	return Seal(b), nil
}

// Unmarshal decodes a sealed PublicRecord.
func (r *PublicRecord) Unmarshal(b []byte) error {
	body, err := Unseal(b)
	if err != nil {
		return err
	}
	d := wire.NewDecoder(body)
	d.Struct("PublicRecord")
	if v := d.U8("version"); d.Err() == nil && v != PublicRecordVersion {
		d.Failf("version", "unsupported public record version %d", v)
	}
	r.Header.decode(d)
	r.ConfirmationTag = d.Opaque("confirmation_tag")
	r.Active = d.Bool("active")
	r.SkipLifetime = d.Bool("skip_lifetime")
	r.Proposals = nil
	d.Vector("proposals", func(d *wire.Decoder) { r.Proposals = append(r.Proposals, decodeProposal(d)) })
	return d.Finish()
}

// WritePublicGroup writes a PublicGroup's record and brings its node
// records in line with t: only the nodes merged changed when the stored
// tree is merged's base.
func WritePublicGroup(tx storage.Tx, groupID []byte, r *PublicRecord, t *tree.Tree, merged *Merged) error {
	var old *Header
	if b, err := tx.Get(BucketPublicGroups, groupID); err == nil {
		var o PublicRecord
		if o.Unmarshal(b) == nil {
			old = &o.Header
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := syncTree(tx, BucketPublicNodes, groupID, old, &r.Header, t, merged); err != nil {
		return err
	}
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	return tx.Put(BucketPublicGroups, groupID, b)
}

// LoadPublicGroup reads a PublicGroup's record and its tree, checked
// against the record's tree hash.
func LoadPublicGroup(tx storage.Tx, groupID []byte, suite func(*PublicRecord) (*ciphersuite.Suite, error)) (*PublicRecord, *tree.Tree, error) {
	b, err := tx.Get(BucketPublicGroups, groupID)
	if err != nil {
		return nil, nil, err
	}
	var r PublicRecord
	if err := r.Unmarshal(b); err != nil {
		return nil, nil, corrupt(groupID, "public group record", err)
	}
	s, err := suite(&r)
	if err != nil {
		return nil, nil, corrupt(groupID, "public group record", err)
	}
	t, err := loadTree(tx, BucketPublicNodes, groupID, s, &r.Header)
	if err != nil {
		return nil, nil, err
	}
	return &r, t, nil
}

// PublicVersion and PutPublicVersion are Version and PutVersion for a
// PublicGroup.
func PublicVersion(tx storage.Tx, groupID []byte) (uint64, error) {
	return versionIn(tx, BucketPublicVersions, groupID)
}

// PutPublicVersion stores a PublicGroup's version.
func PutPublicVersion(tx storage.Tx, groupID []byte, v uint64) error {
	return tx.Put(BucketPublicVersions, groupID, binary.BigEndian.AppendUint64(nil, v))
}

// DeletePublicGroup removes every record of a PublicGroup.
func DeletePublicGroup(tx storage.Tx, groupID []byte) error {
	if err := tx.DeletePrefix(BucketPublicNodes, GroupPrefix(groupID)); err != nil {
		return err
	}
	if err := tx.Delete(BucketPublicGroups, groupID); err != nil {
		return err
	}
	return tx.Delete(BucketPublicVersions, groupID)
}
