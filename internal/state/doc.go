// Package state is the versioned binary encoding of a client's stored
// state: its groups (RFC 9420 group state: the ratchet tree, the secret
// tree, the key schedule, past epochs, pending proposals and commits), its
// key packages and its own signature key. The library owns this layout;
// every storage backend (package storage) keeps the same bytes.
//
// The record types hold plain data with exported fields; the root package
// converts between them and its own types, and runs the transactions.
//
// # Layout
//
// <gid> is the group ID encoded as opaque<V> (RFC 9420, Section 2.1.2), so
// no group's keys are a prefix of another's; integers are big endian.
//
//	keypackages/<KeyPackageRef>    private keys of an unused key package
//	psks/<psk_id>                  external PSKs
//	updatekeys/<gid><public key>   leaf keys of this member's Update proposals
//	reinit/<gid>                   the ReInit that ended the group
//	groups/<gid>                   the group record (GroupRecord)
//	versions/<group ID>            the group's version, a uint64
//	nodes/<gid><len><node>         one non-blank node of the ratchet tree
//	ratchets/<gid><epoch>          the node secrets of an epoch's secret tree
//	ratchets/<gid><epoch><leaf>    one leaf's sender ratchets in that epoch
//	past/<gid><epoch>              an earlier epoch kept for late messages
//	client/signer                  the signature key the client generated
//
// (The groups, reinit and versions buckets are keyed by the group ID
// itself, not <gid>.)
//
// The ratchet tree lives in per-node records so that a commit writes the
// nodes it changed (a direct path: O(log N) of them, RFC 9420, Section
// 7.8) and not the whole tree. In a node key, <node> is the node index as
// uint32 and <len> its bit length (math/bits.Len32) as one octet: the keys
// of the nodes at or beyond 2^k are then the prefixes <gid><k+1> ...
// <gid><32>, so dropping the right half of a truncated tree (RFC 9420,
// Section 7.7) is a few DeletePrefix calls.
//
// The secret tree (RFC 9420, Section 9) lives in the ratchets records, so
// that an application message writes one sender's ratchets and not the
// whole secret tree; the node secrets are written again only when a leaf is
// used for the first time in an epoch.
//
// The group, past and ratchets records (and the client's signer record)
// end in a CRC-32C of the rest, so that damaged storage is reported rather
// than loaded: the secrets they hold cannot be checked any other way. The
// tree is checked against the tree hash the group record holds, the epoch
// secrets (by the caller) against the confirmation tag.
//
// Every save reconciles the store with the group in one transaction
// (WriteGroup): it reads the header of the previous group record (tree
// hash, epochs whose secrets are stored) and writes what differs. Keys
// that the new state no longer needs (an old epoch's secrets, a replaced
// leaf key, nodes of a truncated tree) are deleted in the transaction that
// makes them obsolete (RFC 9420, Sections 9.2 and 16.6).
//
// # Errors
//
// A record that cannot be decoded or does not fit together gives a
// *CorruptError; errors of the store pass through unchanged.
package state
