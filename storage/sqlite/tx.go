package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/mlskit/mls/storage"
)

// scanBatch is how many rows Scan reads per query. Scan reads a batch,
// closes the query, and only then calls fn, so fn may use the same
// transaction; memory use is bounded by the batch.
const scanBatch = 128

// tx is a transaction on one pooled connection.
type tx struct {
	ctx      context.Context
	store    *Store
	sqlTx    *sql.Tx
	writable bool
	done     bool
	// stmts are the store's statements bound to this transaction's
	// connection, made on first use.
	stmts [numStmts]*sql.Stmt

	puts, deletes, bytesWritten uint64
}

func (t *tx) stmt(i int) *sql.Stmt {
	if t.stmts[i] == nil {
		t.stmts[i] = t.sqlTx.StmtContext(t.ctx, t.store.stmts[i])
	}
	return t.stmts[i]
}

// check validates the call and the transaction's state.
func (t *tx) check(op, bucket string, key []byte, write bool) error {
	return storage.CheckCall(storage.TxState{Ctx: t.ctx, Done: t.done, Writable: t.writable}, op, bucket, key, write)
}

func keyErr(op, bucket string, key []byte, err error) error {
	return &storage.Error{Op: op, Bucket: bucket, Key: key, Err: err}
}

// blob returns b as a non-nil slice: database/sql binds a nil []byte as
// NULL, which matches no key and violates NOT NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (t *tx) Get(bucket string, key []byte) ([]byte, error) {
	if err := t.check("get", bucket, key, false); err != nil {
		return nil, err
	}
	if err := storage.CheckKey(key); err != nil {
		return nil, keyErr("get", bucket, key, err)
	}
	var v []byte // Scan into *[]byte copies the bytes
	err := t.stmt(stmtGet).QueryRowContext(t.ctx, bucket, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyErr("get", bucket, key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, t.store.opErr(t.ctx, "get", bucket, key, err)
	}
	return blob(v), nil
}

func (t *tx) Put(bucket string, key, value []byte) error {
	if err := t.check("put", bucket, key, true); err != nil {
		return err
	}
	if err := storage.CheckKey(key); err != nil {
		return keyErr("put", bucket, key, err)
	}
	if err := storage.CheckValue(len(value)); err != nil {
		return keyErr("put", bucket, key, err)
	}
	// The driver copies the arguments into SQLite's memory when binding.
	if _, err := t.stmt(stmtPut).ExecContext(t.ctx, bucket, key, blob(value)); err != nil {
		return t.store.opErr(t.ctx, "put", bucket, key, err)
	}
	t.puts++
	t.bytesWritten += uint64(len(key) + len(value))
	return nil
}

func (t *tx) Delete(bucket string, key []byte) error {
	if err := t.check("delete", bucket, key, true); err != nil {
		return err
	}
	if err := storage.CheckKey(key); err != nil {
		return keyErr("delete", bucket, key, err)
	}
	if _, err := t.stmt(stmtDelete).ExecContext(t.ctx, bucket, key); err != nil {
		return t.store.opErr(t.ctx, "delete", bucket, key, err)
	}
	t.deletes++
	return nil
}

func (t *tx) DeletePrefix(bucket string, prefix []byte) error {
	const op = "delete prefix"
	if err := t.check(op, bucket, prefix, true); err != nil {
		return err
	}
	if err := storage.CheckPrefix(prefix); err != nil {
		return keyErr(op, bucket, prefix, err)
	}
	var err error
	if hi := storage.PrefixEnd(prefix); hi != nil {
		_, err = t.stmt(stmtDeleteRange).ExecContext(t.ctx, bucket, blob(prefix), hi)
	} else {
		_, err = t.stmt(stmtDeleteFrom).ExecContext(t.ctx, bucket, blob(prefix))
	}
	if err != nil {
		return t.store.opErr(t.ctx, op, bucket, prefix, err)
	}
	t.deletes++
	return nil
}

type pair struct{ k, v []byte }

func (t *tx) Scan(bucket string, prefix []byte, fn func(key, value []byte) error) error {
	if err := t.check("scan", bucket, prefix, false); err != nil {
		return err
	}
	if err := storage.CheckPrefix(prefix); err != nil {
		return keyErr("scan", bucket, prefix, err)
	}
	lo, hi := blob(prefix), storage.PrefixEnd(prefix)
	batch := make([]pair, 0, scanBatch)
	for {
		var err error
		batch, err = t.scanBatch(bucket, lo, hi, batch[:0])
		if err != nil {
			return t.store.opErr(t.ctx, "scan", bucket, prefix, err)
		}
		// Continue after the last key: its immediate successor in byte
		// order is the key followed by a zero byte. Computed before fn
		// runs, since fn owns the slices it receives.
		if len(batch) == scanBatch {
			last := batch[len(batch)-1].k
			next := make([]byte, len(last)+1)
			copy(next, last)
			lo = next
		}
		for _, p := range batch {
			if err := t.ctx.Err(); err != nil {
				return keyErr("scan", bucket, prefix, err)
			}
			if err := fn(p.k, p.v); err != nil {
				return err
			}
		}
		if len(batch) < scanBatch {
			return nil
		}
	}
}

func (t *tx) scanBatch(bucket string, lo, hi []byte, out []pair) ([]pair, error) {
	var rows *sql.Rows
	var err error
	if hi != nil {
		rows, err = t.stmt(stmtScanRange).QueryContext(t.ctx, bucket, lo, hi, scanBatch)
	} else {
		rows, err = t.stmt(stmtScanFrom).QueryContext(t.ctx, bucket, lo, scanBatch)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var p pair
		if err := rows.Scan(&p.k, &p.v); err != nil {
			return nil, err
		}
		p.v = blob(p.v)
		out = append(out, p)
	}
	return out, rows.Err()
}
