package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
)

// Version returns a group's stored version, or 0 if none is stored. Every
// save of a group checks the version its handle last read or wrote and
// stores the next one in the same transaction (the root's Group.update),
// so that two handles can never both advance one stored state.
func Version(tx storage.Tx, groupID []byte) (uint64, error) {
	return versionIn(tx, BucketVersions, groupID)
}

// versionIn reads a version record of bucket.
func versionIn(tx storage.Tx, bucket string, groupID []byte) (uint64, error) {
	b, err := tx.Get(bucket, groupID)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, corrupt(groupID, "version record", fmt.Errorf("%d bytes", len(b)))
	}
	return binary.BigEndian.Uint64(b), nil
}

// PutVersion stores a group's version.
func PutVersion(tx storage.Tx, groupID []byte, v uint64) error {
	return tx.Put(BucketVersions, groupID, binary.BigEndian.AppendUint64(nil, v))
}

// HasGroup reports whether the store holds a group record for groupID.
func HasGroup(tx storage.Tx, groupID []byte) (bool, error) {
	_, err := tx.Get(BucketGroups, groupID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// GroupIDs returns the IDs of the stored groups, in byte order.
func GroupIDs(tx storage.Tx) ([][]byte, error) {
	var ids [][]byte
	err := tx.Scan(BucketGroups, nil, func(k, _ []byte) error {
		ids = append(ids, k)
		return nil
	})
	return ids, err
}

// DeleteGroup removes every record of a group.
func DeleteGroup(tx storage.Tx, groupID []byte) error {
	p := GroupPrefix(groupID)
	for _, b := range []string{BucketNodes, BucketRatchets, BucketPast, BucketUpdateKeys} {
		if err := tx.DeletePrefix(b, p); err != nil {
			return err
		}
	}
	for _, b := range []string{BucketGroups, BucketReInit, BucketVersions} {
		if err := tx.Delete(b, groupID); err != nil {
			return err
		}
	}
	return nil
}

// DeleteUpdateKeys removes the private keys of a group's Update proposals.
func DeleteUpdateKeys(tx storage.Tx, groupID []byte) error {
	return tx.DeletePrefix(BucketUpdateKeys, GroupPrefix(groupID))
}

// SignerRecord is the signature key a client generated:
//
//	struct {
//	    uint8 version = 1;
//	    uint16 suite;
//	    opaque private_key<V>;   /* the suite's private key encoding */
//	    uint32 crc32c;
//	} SignerRecord;
type SignerRecord struct {
	Suite      uint16
	PrivateKey []byte
}

var signerKey = []byte("signer")

// Signer returns the client's stored signer record; storage.ErrNotFound if
// there is none.
func Signer(tx storage.Tx) (*SignerRecord, error) {
	b, err := tx.Get(BucketClient, signerKey)
	if err != nil {
		return nil, err
	}
	r := &SignerRecord{}
	if err := r.Unmarshal(b); err != nil {
		return nil, corrupt(nil, "client signature key", err)
	}
	return r, nil
}

// PutSigner stores the client's signer record.
func PutSigner(tx storage.Tx, r *SignerRecord) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	return tx.Put(BucketClient, signerKey, b)
}

// Marshal encodes the record, with its checksum.
func (r *SignerRecord) Marshal() ([]byte, error) {
	e := wire.NewEncoder(nil)
	e.U8(SignerRecordVersion)
	e.U16(r.Suite)
	e.Opaque(r.PrivateKey)
	b, err := e.Bytes()
	if err != nil {
		return nil, err
	}
	return Seal(b), nil
}

// Unmarshal decodes a record that Marshal encoded.
func (r *SignerRecord) Unmarshal(b []byte) error {
	body, err := Unseal(b)
	if err != nil {
		return err
	}
	d := wire.NewDecoder(body)
	v := d.U8("version")
	r.Suite = d.U16("suite")
	r.PrivateKey = d.Opaque("private_key")
	if err := d.Finish(); err != nil {
		return err
	}
	if v != SignerRecordVersion {
		return fmt.Errorf("record version %d", v)
	}
	return nil
}

// KeyPackageRecord is what the store keeps for an unused key package:
//
//	struct {
//	    uint8 version = 1;
//	    opaque init_priv<V>;
//	    opaque encryption_priv<V>;
//	    bool last_resort;
//	    opaque key_package<V>;   /* the KeyPackage */
//	} KeyPackageRecord;
type KeyPackageRecord struct {
	InitPriv, EncryptionPriv []byte
	LastResort               bool
	KeyPackage               []byte
}

// Marshal encodes the record.
func (r *KeyPackageRecord) Marshal() []byte {
	e := wire.NewEncoder(nil)
	e.U8(KeyPackageRecordVersion)
	e.Opaque(r.InitPriv)
	e.Opaque(r.EncryptionPriv)
	e.Bool(r.LastResort)
	e.Opaque(r.KeyPackage)
	return e.MustBytes()
}

// Unmarshal decodes a record that Marshal encoded.
func (r *KeyPackageRecord) Unmarshal(b []byte) error {
	d := wire.NewDecoder(b)
	d.Struct("KeyPackageRecord")
	if v := d.U8("version"); d.Err() == nil && v != KeyPackageRecordVersion {
		d.Failf("version", "unsupported record version %d", v)
	}
	r.InitPriv = d.Opaque("init_priv")
	r.EncryptionPriv = d.Opaque("encryption_priv")
	r.LastResort = d.Bool("last_resort")
	r.KeyPackage = d.Opaque("key_package")
	return d.Finish()
}

// PutKeyPackage stores a key package record under its reference.
func PutKeyPackage(tx storage.Tx, ref []byte, r *KeyPackageRecord) error {
	return tx.Put(BucketKeyPackages, ref, r.Marshal())
}

// KeyPackage returns the record of a key package; storage.ErrNotFound if
// there is none.
func KeyPackage(tx storage.Tx, ref []byte) (*KeyPackageRecord, error) {
	b, err := tx.Get(BucketKeyPackages, ref)
	if err != nil {
		return nil, err
	}
	r := &KeyPackageRecord{}
	if err := r.Unmarshal(b); err != nil {
		return nil, corrupt(nil, fmt.Sprintf("key package %x", ref), err)
	}
	return r, nil
}

// DeleteKeyPackage deletes a key package record.
func DeleteKeyPackage(tx storage.Tx, ref []byte) error {
	return tx.Delete(BucketKeyPackages, ref)
}

// KeyPackages calls f with each stored key package record, in reference
// order, and with the error of a record that cannot be decoded (a
// *CorruptError). It stops at the first error f returns.
func KeyPackages(tx storage.Tx, f func(ref []byte, r *KeyPackageRecord, err error) error) error {
	return tx.Scan(BucketKeyPackages, nil, func(k, v []byte) error {
		r := &KeyPackageRecord{}
		if err := r.Unmarshal(v); err != nil {
			return f(k, nil, corrupt(nil, fmt.Sprintf("key package %x", k), err))
		}
		return f(k, r, nil)
	})
}

// PSK returns an external PSK (RFC 9420, Section 8.4); storage.ErrNotFound
// if it is not stored.
func PSK(tx storage.Tx, id []byte) ([]byte, error) { return tx.Get(BucketPSKs, id) }

// PutPSK stores an external PSK under its ID.
func PutPSK(tx storage.Tx, id, secret []byte) error { return tx.Put(BucketPSKs, id, secret) }

// UpdateKey returns the leaf private key of this member's Update proposal
// whose new leaf has the public key pub; storage.ErrNotFound if there is
// none.
func UpdateKey(tx storage.Tx, groupID, pub []byte) ([]byte, error) {
	return tx.Get(BucketUpdateKeys, UpdateKeyName(groupID, pub))
}

// PutUpdateKey stores the leaf private key of an Update proposal. Every
// merge deletes the group's keys (DeleteUpdateKeys): proposals live for one
// epoch (RFC 9420, Section 12.1.2).
func PutUpdateKey(tx storage.Tx, groupID, pub, priv []byte) error {
	return tx.Put(BucketUpdateKeys, UpdateKeyName(groupID, pub), priv)
}

// ReInit returns the encoded ReInit proposal of the commit that shut a
// group down (RFC 9420, Section 11.2); storage.ErrNotFound if there is none.
func ReInit(tx storage.Tx, groupID []byte) ([]byte, error) { return tx.Get(BucketReInit, groupID) }

// PutReInit stores the encoded ReInit proposal that shut a group down.
func PutReInit(tx storage.Tx, groupID, proposal []byte) error {
	return tx.Put(BucketReInit, groupID, proposal)
}
