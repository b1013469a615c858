package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations is the ordered schema history: migrations[i] moves the schema
// to version i+1. A released migration never changes; a new schema is a new
// entry appended to the list.
//
// Times are microseconds since the Unix epoch, UTC. 64-bit unsigned values
// (epochs, sequence numbers) are stored as their int64 bit pattern and never
// exceed math.MaxInt64 in practice (Store checks).
var migrations = [][]string{
	// Version 1: the delivery service's tables (RFC 9750, Section 5).
	{
		`CREATE TABLE challenges (
				nonce         BLOB PRIMARY KEY NOT NULL,
				credential    BLOB NOT NULL,
				signature_key BLOB NOT NULL,
				cipher_suite  INTEGER NOT NULL,
				expires       INTEGER NOT NULL
			)`,
		`CREATE INDEX challenges_expires ON challenges (expires)`,
		`CREATE TABLE sessions (
				token_hash    BLOB PRIMARY KEY NOT NULL,
				identity      BLOB NOT NULL,
				credential    BLOB NOT NULL,
				signature_key BLOB NOT NULL,
				cipher_suite  INTEGER NOT NULL,
				expires       INTEGER NOT NULL
			)`,
		`CREATE INDEX sessions_expires ON sessions (expires)`,
		// A handed-out key package stays (taken = 1) so that the
		// Welcome to it can be routed to its owner; pruning removes
		// it once expired.
		`CREATE TABLE key_packages (
				id          INTEGER PRIMARY KEY AUTOINCREMENT,
				ref         BLOB NOT NULL UNIQUE,
				identity    BLOB NOT NULL,
				suite       INTEGER NOT NULL,
				data        BLOB NOT NULL,
				last_resort INTEGER NOT NULL,
				not_after   INTEGER NOT NULL,
				taken       INTEGER NOT NULL DEFAULT 0
			)`,
		`CREATE INDEX key_packages_available ON key_packages (identity, suite, taken, last_resort, id)`,
		`CREATE INDEX key_packages_not_after ON key_packages (not_after)`,
		`CREATE TABLE groups (
				id                   BLOB PRIMARY KEY NOT NULL,
				mode                 INTEGER NOT NULL,
				allow_external_joins INTEGER NOT NULL,
				epoch                INTEGER NOT NULL,
				group_info           BLOB NOT NULL,
				ratchet_tree         BLOB NOT NULL,
				last_seq             INTEGER NOT NULL,
				created              INTEGER NOT NULL
			) WITHOUT ROWID`,
		`CREATE TABLE entries (
				group_id BLOB NOT NULL,
				seq      INTEGER NOT NULL,
				epoch    INTEGER NOT NULL,
				kind     INTEGER NOT NULL,
				sender   BLOB NOT NULL,
				data     BLOB NOT NULL,
				received INTEGER NOT NULL,
				PRIMARY KEY (group_id, seq)
			) WITHOUT ROWID`,
		`CREATE INDEX entries_proposals ON entries (group_id, epoch, seq) WHERE kind = 2`,
		// One commit per group and epoch: the backstop of the epoch
		// check in AppendCommit (RFC 9750, Section 5.2.1).
		`CREATE TABLE commits (
				group_id BLOB NOT NULL,
				epoch    INTEGER NOT NULL,
				seq      INTEGER NOT NULL,
				PRIMARY KEY (group_id, epoch)
			) WITHOUT ROWID`,
		`CREATE TABLE cursors (
				group_id BLOB NOT NULL,
				identity BLOB NOT NULL,
				seq      INTEGER NOT NULL,
				PRIMARY KEY (group_id, identity)
			) WITHOUT ROWID`,
		`CREATE TABLE welcomes (
				id              INTEGER PRIMARY KEY AUTOINCREMENT,
				identity        BLOB NOT NULL,
				key_package_ref BLOB NOT NULL,
				group_id        BLOB NOT NULL,
				data            BLOB NOT NULL,
				ratchet_tree    BLOB NOT NULL
			)`,
		`CREATE INDEX welcomes_identity ON welcomes (identity, id)`,
	},
	// Version 2: the commit that last removed an identity from a group,
	// which that identity may still read (ds.Store.RemovedAt).
	{
		`CREATE TABLE removals (
				group_id BLOB NOT NULL,
				identity BLOB NOT NULL,
				seq      INTEGER NOT NULL,
				PRIMARY KEY (group_id, identity)
			) WITHOUT ROWID`,
	},
}

// SchemaVersion is the schema version this package writes.
func SchemaVersion() int { return len(migrations) }

// migrate applies the migrations the database lacks, all in one write
// transaction (BEGIN IMMEDIATE), so that two processes opening the same
// file do not both apply them and a failed Open leaves the file as it was.
func migrate(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return err
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this program's %d", current, len(migrations))
	}
	now := time.Now().UnixMicro()
	for i := current; i < len(migrations); i++ {
		for _, stmt := range migrations[i] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, i+1, now); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return tx.Commit()
}
