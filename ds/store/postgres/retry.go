package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxAttempts bounds how often an operation runs when its pooled
// connection turns out to be dead.
const maxAttempts = 3

// retryable says whether err means that the statement never ran, because
// the pooled connection was already dead: pgx sent nothing (SafeToRetry),
// or the server had terminated the session (administrator command, server
// shutdown or crash: SQLSTATE 57P01, 57P02, 57P03) before it ran anything.
// A pool hands out such a connection once after the server dropped it, for
// instance after pg_terminate_backend or a restart; the next attempt gets
// a fresh connection.
func retryable(err error) bool {
	var nr *noRetry
	if errors.As(err, &nr) {
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03":
			return true
		}
	}
	return false
}

// noRetry marks an error whose operation may have taken effect (a failed
// COMMIT), so that it is never repeated.
type noRetry struct{ err error }

func (e *noRetry) Error() string { return e.err.Error() }
func (e *noRetry) Unwrap() error { return e.err }

// do runs fn, again when it failed on a dead connection (retryable), at
// most maxAttempts times.
func (s *Store) do(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range maxAttempts {
		err = fn()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
		if attempt == 0 {
			// The server dropped this connection, and most likely the
			// pool's other idle ones with it (a restart): replace them
			// all rather than find each dead one by failing on it.
			s.pool.Reset()
		}
	}
	var nr *noRetry
	if errors.As(err, &nr) {
		return nr.err
	}
	return err
}

func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := s.do(ctx, func() error {
		var err error
		tag, err = s.pool.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// row is a pgx.Row whose Scan runs the query, through do.
type row struct {
	s    *Store
	ctx  context.Context
	sql  string
	args []any
}

func (r row) Scan(dest ...any) error {
	return r.s.do(r.ctx, func() error { return r.s.pool.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...) })
}

func (s *Store) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{s: s, ctx: ctx, sql: sql, args: args}
}

// tx runs fn in a transaction, through do: a transaction that failed
// before its COMMIT was sent is rolled back and can run again; one whose
// COMMIT failed is not repeated, since it may have committed.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.do(ctx, func() error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return &noRetry{err}
		}
		return nil
	})
}
