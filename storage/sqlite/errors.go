package sqlite

import (
	"errors"
	"fmt"

	"github.com/mlskit/mls/storage"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors of this backend, besides those of package storage. Open returns
// them wrapped in an *OpenError; Tx methods wrap them in a *storage.Error.
var (
	// ErrCorrupt: the file is not an SQLite database, or it is damaged.
	// It wraps storage.ErrCorrupt.
	ErrCorrupt = fmt.Errorf("not a valid database file (not SQLite, or damaged): %w", storage.ErrCorrupt)
	// ErrForeign: the file is an SQLite database that another program
	// created; Open does not touch it.
	ErrForeign = errors.New("SQLite database of another application")
	// ErrNewerSchema: the database was written by a newer version of this
	// library; see SchemaVersionError.
	ErrNewerSchema = errors.New("database schema is newer than this library supports")
	// ErrBusy: another connection, usually another process, held the
	// database lock for longer than the busy timeout.
	ErrBusy = errors.New("database is locked by another connection")
)

// OpenError is returned by Open. Err wraps ErrCorrupt, ErrForeign, a
// *SchemaVersionError, ErrBusy, or the error of SQLite or the file system.
type OpenError struct {
	Path string
	Err  error
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("storage/sqlite: open %s: %v", e.Path, e.Err)
}

func (e *OpenError) Unwrap() error { return e.Err }

// SchemaVersionError reports a database whose schema version is newer than
// the newest migration this library knows. errors.Is(err, ErrNewerSchema)
// holds for it.
type SchemaVersionError struct {
	// Version is the version recorded in the database.
	Version int
	// Supported is the newest version this library knows.
	Supported int
}

func (e *SchemaVersionError) Error() string {
	return fmt.Sprintf("%v: database has version %d, newest supported is %d", ErrNewerSchema, e.Version, e.Supported)
}

// Is makes errors.Is(err, ErrNewerSchema) true.
func (e *SchemaVersionError) Is(target error) bool { return target == ErrNewerSchema }

// classify adds this package's sentinels to the errors of SQLite that
// callers need to tell apart. The original error stays in the chain.
func classify(err error) error {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return err
}
