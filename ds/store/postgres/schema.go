package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations is the ordered schema history: migrations[i] moves the schema
// to version i+1. A released migration never changes; a new schema is a new
// entry appended to the list.
var migrations = [][]string{
	// Version 1: the delivery service's tables (RFC 9750, Section 5).
	{
		`CREATE TABLE challenges (
			nonce         bytea PRIMARY KEY,
			credential    bytea NOT NULL,
			signature_key bytea NOT NULL,
			cipher_suite  integer NOT NULL,
			expires       timestamptz NOT NULL
		)`,
		`CREATE INDEX challenges_expires ON challenges (expires)`,
		`CREATE TABLE sessions (
			token_hash    bytea PRIMARY KEY,
			identity      bytea NOT NULL,
			credential    bytea NOT NULL,
			signature_key bytea NOT NULL,
			cipher_suite  integer NOT NULL,
			expires       timestamptz NOT NULL
		)`,
		`CREATE INDEX sessions_expires ON sessions (expires)`,
		// A handed-out key package stays (taken) so that the Welcome to
		// it can be routed to its owner; pruning removes it once expired.
		`CREATE TABLE key_packages (
			id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			ref         bytea NOT NULL UNIQUE,
			identity    bytea NOT NULL,
			suite       integer NOT NULL,
			data        bytea NOT NULL,
			last_resort boolean NOT NULL,
			not_after   timestamptz NOT NULL,
			taken       boolean NOT NULL DEFAULT false
		)`,
		`CREATE INDEX key_packages_available ON key_packages (identity, suite, last_resort, id) WHERE NOT taken`,
		`CREATE INDEX key_packages_not_after ON key_packages (not_after)`,
		// updated is the time of the last append, so that a watcher that
		// lost its LISTEN connection can catch up (see listener). It has
		// no index: the catch-up scan is rare, and without one an append's
		// UPDATE of the row stays a heap-only (HOT) update.
		`CREATE TABLE groups (
			id                   bytea PRIMARY KEY,
			mode                 smallint NOT NULL,
			allow_external_joins boolean NOT NULL,
			epoch                bigint NOT NULL,
			group_info           bytea NOT NULL,
			ratchet_tree         bytea NOT NULL,
			last_seq             bigint NOT NULL,
			created              timestamptz NOT NULL,
			updated              timestamptz NOT NULL DEFAULT now()
		)`,
		`CREATE TABLE entries (
			group_id bytea NOT NULL,
			seq      bigint NOT NULL,
			epoch    bigint NOT NULL,
			kind     smallint NOT NULL,
			sender   bytea NOT NULL,
			data     bytea NOT NULL,
			received timestamptz NOT NULL,
			PRIMARY KEY (group_id, seq)
		)`,
		`CREATE INDEX entries_proposals ON entries (group_id, epoch, seq) WHERE kind = 2`,
		// One commit per group and epoch, across replicas: the backstop of
		// the epoch check made under the group's row lock (RFC 9750,
		// Section 5.2.1).
		`CREATE TABLE commits (
			group_id bytea NOT NULL,
			epoch    bigint NOT NULL,
			seq      bigint NOT NULL,
			CONSTRAINT commits_one_per_epoch PRIMARY KEY (group_id, epoch)
		)`,
		`CREATE TABLE cursors (
			group_id bytea NOT NULL,
			identity bytea NOT NULL,
			seq      bigint NOT NULL,
			PRIMARY KEY (group_id, identity)
		)`,
		`CREATE TABLE welcomes (
			id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			identity        bytea NOT NULL,
			key_package_ref bytea NOT NULL,
			group_id        bytea NOT NULL,
			data            bytea NOT NULL,
			ratchet_tree    bytea NOT NULL
		)`,
		`CREATE INDEX welcomes_identity ON welcomes (identity, id)`,
	},
	// Version 2: the commit that last removed an identity from a group,
	// which that identity may still read (ds.Store.RemovedAt).
	{
		`CREATE TABLE removals (
			group_id bytea NOT NULL,
			identity bytea NOT NULL,
			seq      bigint NOT NULL,
			PRIMARY KEY (group_id, identity)
		)`,
	},
}

// SchemaVersion is the schema version this package writes.
func SchemaVersion() int { return len(migrations) }

// migrationLock is the key of the advisory lock that serializes migrations
// of replicas starting together ("mlsd" in ASCII).
const migrationLock = 0x6d6c7364

// migrate applies the migrations the database lacks in one transaction,
// under a transaction-level advisory lock, so that replicas starting
// together apply each migration once and a failure leaves the schema as it
// was.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if current > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this program's %d", current, len(migrations))
		}
		for i := current; i < len(migrations); i++ {
			for _, stmt := range migrations[i] {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d: %w", i+1, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, i+1); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		return nil
	})
}
