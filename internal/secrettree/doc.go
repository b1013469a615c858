// Package secrettree implements the secret tree of RFC 9420, Section 9: the
// tree of secrets rooted at an epoch's encryption_secret, the per-sender
// handshake and application hash ratchets of Section 9.1, and the deletion
// schedule of Section 9.2.
//
// Node secrets are derived lazily, only along the path from the root to a
// leaf whose ratchets are actually used. Deriving both children of a parent
// deletes the parent's secret; initialising a leaf's two ratchets deletes
// the leaf's base secret; a ratchet secret is deleted as soon as the next
// one is derived; a key and nonce are deleted once the message they protect
// has been sent (Next) or successfully decrypted (Consume).
//
// Receiving is split in two steps so that a message that fails to decrypt
// leaves the tree unchanged: Get returns the key and nonce of a generation
// without changing any state, and Consume, called only after the AEAD
// succeeded, records the generation as used. Keys of skipped generations are
// kept for out-of-order delivery within Config.OutOfOrderTolerance
// (RFC 9420, Section 15.3 leaves the window and the distance to the
// application).
//
// The state of one leaf's ratchets is separable (MarshalLeaf and
// UnmarshalLeaf), so that a storage layer can persist one sender's ratchet
// per message, and the node secrets (MarshalNodes) only when a leaf is used
// for the first time in an epoch.
//
// See https://www.rfc-editor.org/rfc/rfc9420.html#section-9.
package secrettree
