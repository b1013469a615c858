// Package sqlite implements storage.Store on a single SQLite database file,
// through modernc.org/sqlite (SQLite compiled to pure Go, no cgo). It is the
// embedded default for real use.
//
// # File and settings
//
// Open creates the database on first use. Every connection runs with:
//
//   - journal_mode=WAL: readers (View) never block the writer (Update)
//     nor each other, and see a stable snapshot of the last commit.
//   - synchronous=FULL: a commit is on disk before Update returns. WAL with
//     synchronous=NORMAL would stay consistent after a power loss but could
//     lose the last commits, and a member whose state rolls back after it
//     sent a commit or consumed a key is locked out of its group (RFC 9420,
//     Section 16.6 on deleting keys; Section 6.3.1 on the persistent ratchet
//     position), so durability wins over the fsync per commit.
//   - secure_delete=ON: SQLite overwrites deleted and replaced content with
//     zeros, so that the deletions storage performs for forward secrecy
//     (RFC 9420, Section 9.2 and Section 16.6) are not undone by the bytes
//     left in free space. Old copies can still sit in the write-ahead log
//     until it is checkpointed; Checkpoint runs wal_checkpoint(TRUNCATE),
//     which copies the log into the database and empties it.
//   - busy_timeout (default 5 s, see WithBusyTimeout), so that a second
//     process writing the same file waits instead of failing at once.
//   - cell_size_check=ON and SQLite's defensive mode, which make a damaged
//     or hostile file fail with an error rather than misbehave.
//
// # Schema
//
// The key-value pairs live in one table,
//
//	kv(bucket TEXT, key BLOB, value BLOB, PRIMARY KEY(bucket, key)) WITHOUT ROWID
//
// whose primary key gives Scan its byte order and prefix ranges. A table
// schema_version records each applied migration; migrations are an ordered
// list, applied in one transaction at Open. A database whose recorded
// version is newer than this code knows is refused with a
// *SchemaVersionError (errors.Is ErrNewerSchema) and left unchanged. The
// file's SQLite application_id marks it as a store, so Open refuses another
// program's SQLite database (ErrForeign) instead of adding tables to it, and
// a file that is not SQLite or is damaged gives ErrCorrupt.
//
// # Transactions
//
// View is a deferred read transaction on a pooled connection. Update first
// takes an in-process, context-aware writer lock and then runs BEGIN
// IMMEDIATE, so that it holds SQLite's write lock from the start and never
// fails half-way with SQLITE_BUSY because of another writer; across
// processes the busy timeout applies. Context cancellation interrupts a
// running statement and rolls the transaction back.
package sqlite
