package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/mlskit/mls/storage"
)

// Store is a storage.Store on an SQLite database file. Create it with Open.
type Store struct {
	path  string
	db    *sql.DB
	stmts [numStmts]*sql.Stmt
	// writer serializes Updates in this process; waiting on it respects
	// the context, unlike SQLite's busy handler.
	writer chan struct{}
	closed atomic.Bool

	txs, puts, deletes, bytesWritten atomic.Uint64
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.StatsReporter = (*Store)(nil)
)

// An Option configures Open.
type Option func(*options)

type options struct {
	busyTimeout time.Duration
	maxConns    int
}

// WithBusyTimeout sets how long a statement waits for a lock held by
// another connection (in practice, another process) before failing with
// ErrBusy. The default is 5 seconds. It is rounded down to milliseconds.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = max(d, 0) }
}

// WithMaxConns bounds the number of open SQLite connections: one for the
// writer and the rest for concurrent Views. The default is one more than
// max(3, GOMAXPROCS); values below 2 are raised to 2, since a View inside
// an Update needs a second connection.
func WithMaxConns(n int) Option {
	return func(o *options) { o.maxConns = max(n, 2) }
}

func newOptions(opts []Option) options {
	o := options{
		busyTimeout: 5 * time.Second,
		maxConns:    1 + max(3, runtime.GOMAXPROCS(0)),
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// SQL statements, prepared once per Store and reused on each connection.
const (
	stmtGet = iota
	stmtPut
	stmtDelete
	stmtDeleteRange // bucket, lo, hi
	stmtDeleteFrom  // bucket, lo (no upper bound)
	stmtScanRange   // bucket, lo, hi, limit
	stmtScanFrom    // bucket, lo, limit
	numStmts
)

var stmtSQL = [numStmts]string{
	stmtGet:         `SELECT value FROM kv WHERE bucket = ? AND key = ?`,
	stmtPut:         `INSERT INTO kv (bucket, key, value) VALUES (?, ?, ?) ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value`,
	stmtDelete:      `DELETE FROM kv WHERE bucket = ? AND key = ?`,
	stmtDeleteRange: `DELETE FROM kv WHERE bucket = ? AND key >= ? AND key < ?`,
	stmtDeleteFrom:  `DELETE FROM kv WHERE bucket = ? AND key >= ?`,
	stmtScanRange:   `SELECT key, value FROM kv WHERE bucket = ? AND key >= ? AND key < ? ORDER BY key LIMIT ?`,
	stmtScanFrom:    `SELECT key, value FROM kv WHERE bucket = ? AND key >= ? ORDER BY key LIMIT ?`,
}

// Open opens the store in the SQLite file at path, creating the file and
// its schema if needed and applying pending schema migrations. Errors are
// *OpenError values; see ErrCorrupt, ErrForeign, ErrNewerSchema and
// ErrBusy.
func Open(path string, opts ...Option) (*Store, error) {
	o := newOptions(opts)
	if path == "" {
		return nil, &OpenError{Path: path, Err: errors.New("empty path")}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &OpenError{Path: path, Err: err}
	}

	db, err := sql.Open("sqlite", dsn(abs, o))
	if err != nil {
		return nil, &OpenError{Path: path, Err: err}
	}
	db.SetMaxOpenConns(o.maxConns)
	db.SetMaxIdleConns(o.maxConns)

	ctx := context.Background()
	if err := migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, &OpenError{Path: path, Err: err}
	}
	s := &Store{path: abs, db: db, writer: make(chan struct{}, 1)}
	for i, text := range stmtSQL {
		st, err := db.PrepareContext(ctx, text)
		if err != nil {
			s.closeStmts()
			db.Close()
			return nil, &OpenError{Path: path, Err: classify(err)}
		}
		s.stmts[i] = st
	}
	return s, nil
}

// dsn returns the data source name for the file at the absolute path abs.
// A "file:" URI keeps any '?' or '#' in the path from being read as
// parameters. _txlock=immediate makes read-write transactions start with
// BEGIN IMMEDIATE; read-only ones (Views) use a plain BEGIN. busy_timeout
// comes first so that the other pragmas wait for locks.
func dsn(abs string, o options) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(ON)")
	q.Add("_pragma", "cell_size_check(ON)")
	q.Add("_pragma", "trusted_schema(OFF)")
	q.Set("_defensive", "1")
	q.Set("_txlock", "immediate")
	return (&url.URL{Scheme: "file", Path: abs}).String() + "?" + q.Encode()
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

func (s *Store) closeStmts() {
	for _, st := range s.stmts {
		if st != nil {
			st.Close()
		}
	}
}

// Close closes the database. Transactions already running finish first or
// fail. Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.closeStmts()
	if err := s.db.Close(); err != nil {
		return &storage.Error{Op: "close", Err: err}
	}
	return nil
}

func (s *Store) begin(ctx context.Context, op string) error {
	if s.closed.Load() {
		return &storage.Error{Op: op, Err: storage.ErrClosed}
	}
	if err := ctx.Err(); err != nil {
		return &storage.Error{Op: op, Err: err}
	}
	return nil
}

// lockWriter takes the in-process writer lock, or fails when ctx is done.
func (s *Store) lockWriter(ctx context.Context, op string) error {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return &storage.Error{Op: op, Err: ctx.Err()}
	}
	if s.closed.Load() {
		<-s.writer
		return &storage.Error{Op: op, Err: storage.ErrClosed}
	}
	return nil
}

func (s *Store) unlockWriter() { <-s.writer }

// View runs fn in a read-only transaction; see storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.begin(ctx, "view"); err != nil {
		return err
	}
	sqlTx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.opErr(ctx, "view", "", nil, err)
	}
	t := &tx{ctx: ctx, store: s, sqlTx: sqlTx}
	defer func() {
		t.done = true
		sqlTx.Rollback()
	}()
	return fn(t)
}

// Update runs fn in a read-write transaction; see storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.begin(ctx, "update"); err != nil {
		return err
	}
	if err := s.lockWriter(ctx, "update"); err != nil {
		return err
	}
	defer s.unlockWriter()
	sqlTx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE
	if err != nil {
		return s.opErr(ctx, "update", "", nil, err)
	}
	t := &tx{ctx: ctx, store: s, sqlTx: sqlTx, writable: true}
	committed := false
	// Runs on error and on panic; a panic continues after the rollback.
	defer func() {
		t.done = true
		if !committed {
			sqlTx.Rollback()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	t.done = true
	if err := ctx.Err(); err != nil {
		return &storage.Error{Op: "commit", Err: err}
	}
	if err := sqlTx.Commit(); err != nil {
		return s.opErr(ctx, "commit", "", nil, err)
	}
	committed = true
	s.txs.Add(1)
	s.puts.Add(t.puts)
	s.deletes.Add(t.deletes)
	s.bytesWritten.Add(t.bytesWritten)
	return nil
}

// opErr wraps a failure of database/sql or SQLite. When the context is
// done, the failure is its consequence (an interrupted statement, a
// transaction rolled back by database/sql), so the context's error leads.
func (s *Store) opErr(ctx context.Context, op, bucket string, key []byte, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("%w: %w", cerr, err)
	} else {
		err = classify(err)
	}
	if s.closed.Load() && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", storage.ErrClosed, err)
	}
	return &storage.Error{Op: op, Bucket: bucket, Key: key, Err: err}
}

// Checkpoint copies the write-ahead log into the database file and
// truncates the log to zero bytes (PRAGMA wal_checkpoint(TRUNCATE)). After
// it, deleted values survive in neither file: secure_delete has zeroed them
// in the database, and the log that held older page images is empty. It
// waits for the running Update, and fails with ErrBusy if a View (or
// another process) keeps using the log past the busy timeout.
func (s *Store) Checkpoint() error {
	ctx := context.Background()
	if err := s.begin(ctx, "checkpoint"); err != nil {
		return err
	}
	if err := s.lockWriter(ctx, "checkpoint"); err != nil {
		return err
	}
	defer s.unlockWriter()
	var busy, logFrames, checkpointed int64
	err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed)
	if err != nil {
		return s.opErr(ctx, "checkpoint", "", nil, err)
	}
	if busy != 0 {
		return &storage.Error{Op: "checkpoint", Err: fmt.Errorf("%w: %d of %d log frames copied", ErrBusy, checkpointed, logFrames)}
	}
	return nil
}

// Stats returns the counts of committed work; see storage.Stats.
func (s *Store) Stats() storage.Stats {
	return storage.Stats{
		Txs:          s.txs.Load(),
		Puts:         s.puts.Load(),
		Deletes:      s.deletes.Load(),
		BytesWritten: s.bytesWritten.Load(),
	}
}
