// Package mls implements Messaging Layer Security (RFC 9420): end-to-end
// encrypted groups of two to hundreds of thousands of members, with
// continuous key rotation for forward secrecy and post-compromise security.
//
// # Clients
//
// Everything starts from a [Client], built once with [NewClient] from a
// store (storage/memory, storage/sqlite or any storage.Store), a credential,
// a signature key (any crypto.Signer, or nil for a software key that the
// client generates and keeps in the store) and a credential.Validator, the
// application's Authentication Service (RFC 9420, Section 5.3.1). There are
// no package-level constructors for groups or key packages: the Client is
// the only way to create key packages and to create, join (Welcome and
// external commit), load, list and delete groups, so every [Group] carries
// the client's validator, clock, randomness and limits. Accepting every
// credential must be asked for by name, with credential.AcceptAll.
//
// # Groups
//
// A [Group] is one member's view of a group. Every operation that changes it
// either succeeds completely, stored in one transaction, or leaves it and
// its store exactly as they were. Commits are pending until merged
// (MergePendingCommit, once the delivery service accepted them); received
// commits come back staged from Process for inspection (MergeStagedCommit).
//
// One writer per group: a stored group carries a version. A save from a
// handle whose version is not the stored one (another handle, another
// process, a retry after a timeout saved first) fails with [ErrStaleState]
// and writes nothing, and the handle refuses every further operation until
// the group is loaded again. So no sender ratchet key and nonce ever
// encrypts two messages (RFC 9420, Section 9.2). Within one process a
// Client hands out one live handle per group, safe for concurrent use.
//
// # Errors
//
// Every error matches, with errors.Is, one of the documented classes:
// [ErrMalformed], [ErrUnsupported], [ErrValidation] (a *[ValidationError]
// naming the rule), [ErrDecrypt], [ErrReplayed], [ErrStaleState],
// [ErrNotFound], [ErrCorruptState], [ErrInvalidArgument], and the group
// state errors ([ErrPendingCommit], [ErrInactive], ...).
package mls
