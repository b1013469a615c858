package state

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"

	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/wire"
)

// Buckets (see the layout in the package documentation).
const (
	BucketKeyPackages = "keypackages"
	BucketPSKs        = "psks"
	BucketUpdateKeys  = "updatekeys"
	BucketReInit      = "reinit"
	BucketGroups      = "groups"
	BucketVersions    = "versions"
	BucketNodes       = "nodes"
	BucketRatchets    = "ratchets"
	BucketPast        = "past"
	BucketClient      = "client"
)

// Record versions: the first octet of each record.
const (
	// GroupRecordV2 is the version of past-epoch records and of group
	// records without the resumption PSK retention. Version 1 kept the
	// tree and the secret tree inside the group record and had no pending
	// commit or past epochs; it is not read any more.
	GroupRecordV2 = 2
	// GroupRecordV3 is the version of group records that also hold the
	// resumption PSK retention (after skip_lifetime, as an int32).
	GroupRecordV3 = 3
	// GroupRecordV4 is the version of group records whose pending commit
	// leaves out what can be derived again: the Welcome's
	// encrypted_group_info (sealed again with the stored welcome_secret)
	// and the ratchet tree in the GroupInfo's ratchet_tree extension
	// (encoded again from the tree). It is the version written; versions 2
	// and 3 are still read.
	GroupRecordV4 = 4
	// NodeRecordVersion is the version of node records.
	NodeRecordVersion = 1
	// KeyPackageRecordVersion is the version of key package records.
	KeyPackageRecordVersion = 1
	// SignerRecordVersion is the version of the client's signer record.
	SignerRecordVersion = 1
)

// CorruptError reports a stored record that cannot be decoded or does not
// fit together. GroupID is nil for records of no group (key packages, the
// client's signature key).
type CorruptError struct {
	GroupID []byte
	What    string // which record or check, e.g. "group record", "ratchet tree"
	Err     error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("stored state of group %x is corrupt: %s: %v", e.GroupID, e.What, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

func corrupt(groupID []byte, what string, err error) *CorruptError {
	return &CorruptError{GroupID: groupID, What: what, Err: err}
}

// castagnoli is the CRC-32C table for record checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrChecksum: a record's checksum does not match its contents.
var ErrChecksum = errors.New("checksum mismatch")

// Seal appends the CRC-32C of b to b.
func Seal(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Unseal checks and strips the checksum that Seal appended.
func Unseal(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: record of %d bytes", ErrChecksum, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, ErrChecksum
	}
	return body, nil
}

// GroupPrefix is the key prefix of a group's records in the buckets that
// are keyed by group first: the group ID as opaque<V>.
func GroupPrefix(groupID []byte) []byte {
	e := wire.NewEncoder(nil)
	e.Opaque(groupID)
	return e.MustBytes()
}

// RatchetKey is the key of an epoch's node secrets (leaf nil) or of one
// leaf's sender ratchets in that epoch.
func RatchetKey(groupID []byte, epoch uint64, leaf *uint32) []byte {
	k := binary.BigEndian.AppendUint64(GroupPrefix(groupID), epoch)
	if leaf != nil {
		k = binary.BigEndian.AppendUint32(k, *leaf)
	}
	return k
}

// PastKey is the key of a past-epoch record.
func PastKey(groupID []byte, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64(GroupPrefix(groupID), epoch)
}

// NodeKey is the key of a node record: the group prefix, the bit length of
// the node index, the node index.
func NodeKey(groupID []byte, x tree.NodeIndex) []byte {
	k := append(GroupPrefix(groupID), byte(bits.Len32(uint32(x))))
	return binary.BigEndian.AppendUint32(k, uint32(x))
}

// UpdateKeyName is the key of the leaf private key of this member's
// Update proposal whose new leaf has the public key pub.
func UpdateKeyName(groupID, pub []byte) []byte {
	return append(GroupPrefix(groupID), pub...)
}

// EpochID identifies one epoch of one group: the hash of its encoded
// GroupContext, which includes the confirmed transcript hash. Two epochs
// with the same number (a member that was removed and added again) differ.
func EpochID(gcRaw []byte) []byte {
	h := sha256.Sum256(gcRaw)
	return h[:]
}
