package memory

import (
	"bytes"
	"context"
	"hash/maphash"
	"sync/atomic"

	"github.com/mlskit/mls/storage"
)

// Store is an in-memory storage.Store. Create it with New.
type Store struct {
	// state is the committed snapshot; it is replaced, never modified.
	state atomic.Pointer[snapshot]
	// writer is a one-slot semaphore serializing Updates; unlike a mutex,
	// waiting on it respects the context.
	writer chan struct{}
	closed atomic.Bool
	seed   maphash.Seed

	txs, puts, deletes, bytesWritten atomic.Uint64
}

// snapshot is an immutable version of the whole store: the root of each
// non-empty bucket.
type snapshot struct {
	buckets map[string]*node
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.StatsReporter = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	s := &Store{
		writer: make(chan struct{}, 1),
		seed:   maphash.MakeSeed(),
	}
	s.state.Store(&snapshot{buckets: map[string]*node{}})
	return s
}

// View runs fn in a read-only transaction on the snapshot committed when
// View was called.
func (s *Store) View(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.begin(ctx, "view"); err != nil {
		return err
	}
	tx := &tx{ctx: ctx, store: s, buckets: s.state.Load().buckets}
	defer func() { tx.done = true }()
	return fn(tx)
}

// Update runs fn in a read-write transaction; see storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if err := s.begin(ctx, "update"); err != nil {
		return err
	}
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return &storage.Error{Op: "update", Err: ctx.Err()}
	}
	defer func() { <-s.writer }()
	// Close may have happened while we waited.
	if s.closed.Load() {
		return &storage.Error{Op: "update", Err: storage.ErrClosed}
	}

	base := s.state.Load()
	tx := &tx{ctx: ctx, store: s, writable: true, buckets: base.buckets}
	// On error or panic the private version is simply dropped: nothing
	// was published, so there is nothing to undo.
	defer func() { tx.done = true }()
	if err := fn(tx); err != nil {
		return err
	}
	tx.done = true
	if err := ctx.Err(); err != nil {
		return &storage.Error{Op: "commit", Err: err}
	}
	if tx.ownMap {
		s.state.Store(&snapshot{buckets: tx.buckets})
	}
	s.txs.Add(1)
	s.puts.Add(tx.puts)
	s.deletes.Add(tx.deletes)
	s.bytesWritten.Add(tx.bytesWritten)
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

// Close marks the store closed; the contents are freed with the Store.
// Transactions already running finish normally. Close is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
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

// Len returns the number of keys in bucket in the committed state, for
// tests and diagnostics.
func (s *Store) Len(bucket string) int {
	return count(s.state.Load().buckets[bucket])
}

func count(n *node) int {
	if n == nil {
		return 0
	}
	return 1 + count(n.left) + count(n.right)
}

// tx is a transaction. A read-write tx starts with the committed bucket
// map and copies it on its first write (ownMap); bucket roots are
// persistent, so the committed state is never touched.
type tx struct {
	ctx      context.Context
	store    *Store
	writable bool
	done     bool
	ownMap   bool
	buckets  map[string]*node

	puts, deletes, bytesWritten uint64
}

func (t *tx) check(op, bucket string, key []byte, write bool) error {
	return storage.CheckCall(storage.TxState{Ctx: t.ctx, Done: t.done, Writable: t.writable}, op, bucket, key, write)
}

func keyErr(op, bucket string, key []byte, err error) error {
	if err != nil {
		return &storage.Error{Op: op, Bucket: bucket, Key: key, Err: err}
	}
	return nil
}

func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

func (t *tx) setRoot(bucket string, root *node) {
	if !t.ownMap {
		m := make(map[string]*node, len(t.buckets)+1)
		for k, v := range t.buckets {
			m[k] = v
		}
		t.buckets, t.ownMap = m, true
	}
	if root == nil {
		delete(t.buckets, bucket)
	} else {
		t.buckets[bucket] = root
	}
}

func (t *tx) Get(bucket string, key []byte) ([]byte, error) {
	if err := t.check("get", bucket, key, false); err != nil {
		return nil, err
	}
	if err := storage.CheckKey(key); err != nil {
		return nil, keyErr("get", bucket, key, err)
	}
	n := get(t.buckets[bucket], key)
	if n == nil {
		return nil, keyErr("get", bucket, key, storage.ErrNotFound)
	}
	return clone(n.value), nil
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
	k, v := clone(key), clone(value)
	t.setRoot(bucket, put(t.buckets[bucket], k, v, maphash.Bytes(t.store.seed, k)))
	t.puts++
	t.bytesWritten += uint64(len(k) + len(v))
	return nil
}

func (t *tx) Delete(bucket string, key []byte) error {
	if err := t.check("delete", bucket, key, true); err != nil {
		return err
	}
	if err := storage.CheckKey(key); err != nil {
		return keyErr("delete", bucket, key, err)
	}
	t.deletes++
	if root, ok := del(t.buckets[bucket], key); ok {
		t.setRoot(bucket, root)
	}
	return nil
}

func (t *tx) DeletePrefix(bucket string, prefix []byte) error {
	if err := t.check("delete prefix", bucket, prefix, true); err != nil {
		return err
	}
	if err := storage.CheckPrefix(prefix); err != nil {
		return keyErr("delete prefix", bucket, prefix, err)
	}
	t.deletes++
	if root, ok := t.buckets[bucket]; ok {
		t.setRoot(bucket, deleteRange(root, prefix, storage.PrefixEnd(prefix)))
	}
	return nil
}

func (t *tx) Scan(bucket string, prefix []byte, fn func(key, value []byte) error) error {
	if err := t.check("scan", bucket, prefix, false); err != nil {
		return err
	}
	if err := storage.CheckPrefix(prefix); err != nil {
		return keyErr("scan", bucket, prefix, err)
	}
	// The root is persistent: writes by fn make new roots and leave this
	// walk on the version of the bucket it started with.
	var it iter
	it.seek(t.buckets[bucket], prefix)
	for n := it.next(); n != nil && bytes.HasPrefix(n.key, prefix); n = it.next() {
		if err := t.ctx.Err(); err != nil {
			return keyErr("scan", bucket, prefix, err)
		}
		if err := fn(clone(n.key), clone(n.value)); err != nil {
			return err
		}
	}
	return nil
}
