// Package storage defines the transactional key-value interface through
// which the MLS group layer persists its state, and the rules every backend
// follows.
//
// The interface is deliberately small, in the spirit of bbolt: named
// buckets of byte keys and byte values, read-only transactions (View) and
// read-write transactions (Update) that commit atomically or not at all.
// The group layer owns the key layout and the versioned binary encoding of
// the values, so every backend stores the same bytes and a new backend is a
// few dozen lines.
//
// # Why transactions
//
// A state change of a group (merging a commit, sending or receiving an
// application message, creating a key package) is one Update: after a crash
// the group is at the old epoch or the new one, never between. This matters
// beyond tidiness. MLS deletes key material as soon as it is used (RFC
// 9420, Section 9.2 and Section 16.6), so a state that is half-written or
// lost after a commit locks the member out of the group, and a lost
// position in a sender ratchet risks key and nonce reuse (RFC 9420,
// Section 6.3.1). Consumed secrets must be deleted in the same transaction
// that makes them obsolete.
//
// # Contract
//
// Every backend in this module satisfies the same contract, checked by the
// conformance suite in package storagetest:
//
//   - Buckets are named by 1 to MaxBucketLen bytes of valid UTF-8 without
//     NUL. A bucket exists as long as it holds a key; there is no call to
//     create or drop one (DeletePrefix with an empty prefix empties it).
//   - Keys are 1 to MaxKeySize bytes; values 0 to MaxValueSize bytes. An
//     empty value is stored and read back as an empty, non-nil slice.
//   - Get returns ErrNotFound for an absent key. Delete of an absent key is
//     not an error.
//   - Slices are never shared with the caller: Put copies its arguments,
//     and Get and Scan hand out fresh copies that the caller may keep and
//     modify.
//   - Scan visits keys with a given prefix in ascending byte order
//     (bytes.Compare). A write transaction reads its own uncommitted writes.
//     The callback may read and write through the same transaction; whether
//     the running Scan visits keys that the callback writes to the scanned
//     bucket is unspecified.
//   - Update commits if fn returns nil and the context is not done; it rolls
//     back entirely if fn returns an error (which Update returns unchanged),
//     if the context is done (Update returns an error wrapping the
//     context's error), or if fn panics (the panic continues after the
//     rollback). View and Update check the context before they start, and
//     Tx methods check it on every call.
//   - Transactions are isolated: a View never sees writes of an Update that
//     has not committed, and sees a stable snapshot for its whole duration.
//     Updates are serialized; Views run concurrently with each other and
//     with an Update.
//   - A Tx is valid only inside the function it was passed to and must not
//     be used from several goroutines at once. After the function returns,
//     every method returns ErrTxDone.
//   - Writes in a View return ErrReadOnly. After Close, View and Update
//     return ErrClosed; Close is idempotent.
//   - Do not call Update from inside another Update on the same store:
//     Updates are serialized, so the inner one waits for the outer one
//     and deadlocks (or, with a deadline, fails). A View inside an Update
//     is fine and sees the committed state, not the Update's writes.
//
// Errors from a Tx method are *Error values that name the operation, the
// bucket and (a prefix of) the key, and wrap a sentinel (ErrNotFound,
// ErrReadOnly, ErrTxDone, ErrInvalidBucket, ErrInvalidKey, ErrTooLarge),
// the context's error, or the backend's own error; test them with
// errors.Is and errors.As.
//
// # Statistics
//
// Backends implement StatsReporter so that tests can check that writes are
// incremental, for example that an application message writes one sender's
// ratchet state and not the whole tree (see Stats).
//
// # Backends
//
// Package storage/memory keeps everything in memory, for tests and
// short-lived use. Package storage/sqlite stores a single SQLite file
// through modernc.org/sqlite (pure Go, no cgo); it is the default for real
// use.
package storage
