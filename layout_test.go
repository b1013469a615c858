package mls

import "github.com/mlskit/mls/internal/state"

// The storage layout of internal/state under the short names the tests of
// this package use to look at and damage stored records.
const (
	bucketGroups      = state.BucketGroups
	bucketNodes       = state.BucketNodes
	bucketRatchets    = state.BucketRatchets
	bucketPast        = state.BucketPast
	bucketUpdateKeys  = state.BucketUpdateKeys
	bucketKeyPackages = state.BucketKeyPackages
	bucketPSKs        = state.BucketPSKs
)

var (
	seal       = state.Seal
	unseal     = state.Unseal
	nodeKey    = state.NodeKey
	ratchetKey = state.RatchetKey
	gidPrefix  = state.GroupPrefix
)

// keyPackageRecord is the part of a state.KeyPackageRecord the tests read.
type keyPackageRecord struct{ raw, initPriv []byte }

func (r *keyPackageRecord) unmarshal(b []byte) error {
	var s state.KeyPackageRecord
	if err := s.Unmarshal(b); err != nil {
		return err
	}
	r.raw, r.initPriv = s.KeyPackage, s.InitPriv
	return nil
}
