package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// applicationID is written to the SQLite header field application_id
// ("MLSK") so that a store file is recognisable and another program's
// database is not mistaken for an empty store.
const applicationID = 0x4d4c534b

// A migration moves the schema from version-1 to version. Migrations never
// change once released; a new schema is a new migration appended to the
// list.
type migration struct {
	version int
	stmts   []string
}

// migrations is the ordered schema history.
var migrations = []migration{
	{
		version: 1,
		stmts: []string{
			`CREATE TABLE kv (
				bucket TEXT NOT NULL,
				key    BLOB NOT NULL,
				value  BLOB NOT NULL,
				PRIMARY KEY (bucket, key)
			) WITHOUT ROWID`,
		},
	},
}

// createVersionTable creates the table recording applied migrations, on a
// new database only.
const createVersionTable = `CREATE TABLE schema_version (
	version    INTEGER PRIMARY KEY NOT NULL,
	applied_at INTEGER NOT NULL
)`

// migrate checks the database's identity and schema version and applies
// the missing migrations of migs, all in one write transaction, so a failed
// Open leaves the file as it was.
func migrate(ctx context.Context, db *sql.DB, migs []migration) (err error) {
	for i, m := range migs {
		if m.version != i+1 {
			return fmt.Errorf("storage/sqlite: migration %d has version %d, want %d", i, m.version, i+1)
		}
	}
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: see the DSN in Open
	if err != nil {
		return classify(err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()

	var appID int64
	if err := tx.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&appID); err != nil {
		return classify(err)
	}
	var tables int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&tables); err != nil {
		return classify(err)
	}
	current := 0
	switch {
	case appID == 0 && tables == 0:
		// A new (or empty) file.
		if _, err := tx.ExecContext(ctx, createVersionTable); err != nil {
			return classify(err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA application_id = %d`, applicationID)); err != nil {
			return classify(err)
		}
	case appID != applicationID:
		return fmt.Errorf("%w (application_id %#x, %d schema objects)", ErrForeign, appID, tables)
	default:
		var v sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("%w: reading the schema version: %w", ErrCorrupt, classify(err))
		}
		if !v.Valid {
			return fmt.Errorf("%w: no schema version recorded", ErrCorrupt)
		}
		current = int(v.Int64)
	}
	if current > len(migs) {
		return &SchemaVersionError{Version: current, Supported: len(migs)}
	}
	if current < 0 {
		return fmt.Errorf("%w: schema version %d", ErrCorrupt, current)
	}
	now := time.Now().Unix()
	for _, m := range migs[current:] {
		for _, stmt := range m.stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migration to version %d: %w", m.version, classify(err))
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`, m.version, now); err != nil {
			return fmt.Errorf("migration to version %d: %w", m.version, classify(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return classify(err)
	}
	return nil
}
