package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Limits on names, keys and values. They are the same for every backend so
// that data moves between backends unchanged.
const (
	// MaxBucketLen is the longest bucket name, in bytes.
	MaxBucketLen = 255
	// MaxKeySize is the longest key, in bytes. MLS group IDs are
	// opaque<V> of any length (RFC 9420, Section 8.1), so the limit is
	// generous; the group layer hashes longer identifiers.
	MaxKeySize = 1<<16 - 1
	// MaxValueSize is the largest value, in bytes, well below SQLite's
	// default limit of 10^9 bytes per value.
	MaxValueSize = 256 << 20
)

// Sentinel errors. Tx methods return them wrapped in an *Error; test with
// errors.Is.
var (
	// ErrNotFound: Get found no value under the key.
	ErrNotFound = errors.New("key not found")
	// ErrReadOnly: a write was attempted in a View transaction.
	ErrReadOnly = errors.New("write in a read-only transaction")
	// ErrTxDone: the Tx was used after its View or Update function returned.
	ErrTxDone = errors.New("transaction already finished")
	// ErrClosed: the store was used after Close.
	ErrClosed = errors.New("store is closed")
	// ErrInvalidBucket: the bucket name is empty, too long, not UTF-8, or
	// contains NUL.
	ErrInvalidBucket = errors.New("invalid bucket name")
	// ErrInvalidKey: the key is empty.
	ErrInvalidKey = errors.New("invalid key")
	// ErrTooLarge: the key or value exceeds MaxKeySize or MaxValueSize.
	ErrTooLarge = errors.New("key or value too large")
	// ErrCorrupt: the backend found its own data damaged (a file that
	// fails its integrity checks). Backends wrap it, under their own more
	// precise sentinel if they have one, so that callers can tell damaged
	// data from a store that is merely unavailable.
	ErrCorrupt = errors.New("stored data is damaged")
)

// Store is a transactional key-value store. See the package documentation
// for the contract every implementation follows.
type Store interface {
	// View runs fn in a read-only transaction that sees a consistent
	// snapshot of the committed state. It returns fn's error.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction. The transaction commits
	// atomically if fn returns nil and ctx is not done, and rolls back
	// entirely otherwise: Update then returns fn's error unchanged, or an
	// error wrapping the context's error. If fn panics, the transaction is
	// rolled back and the panic continues.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store's resources. Later View and Update calls
	// return ErrClosed. Calling Close again returns nil.
	Close() error
}

// Tx is a transaction, valid only inside the function passed to View or
// Update and only on the goroutine running it.
type Tx interface {
	// Get returns a copy of the value stored under key in bucket, or an
	// error wrapping ErrNotFound.
	Get(bucket string, key []byte) ([]byte, error)
	// Put stores a copy of value under key in bucket, replacing any
	// previous value.
	Put(bucket string, key, value []byte) error
	// Delete removes key from bucket. Deleting an absent key is not an
	// error.
	Delete(bucket string, key []byte) error
	// Scan calls fn, in ascending byte order of the keys, for each key in
	// bucket that starts with prefix; an empty prefix selects the whole
	// bucket. fn receives copies it may keep. Scan stops at the first
	// error from fn and returns it unchanged.
	Scan(bucket string, prefix []byte, fn func(key, value []byte) error) error
	// DeletePrefix removes every key in bucket that starts with prefix; an
	// empty prefix empties the bucket.
	DeletePrefix(bucket string, prefix []byte) error
}

// Stats counts the work of a store's committed read-write transactions
// since it was opened. Rolled-back transactions and Views count nothing.
type Stats struct {
	// Txs is the number of committed Update transactions.
	Txs uint64
	// Puts is the number of Put calls.
	Puts uint64
	// Deletes is the number of Delete and DeletePrefix calls (not the
	// number of keys they removed).
	Deletes uint64
	// BytesWritten is the sum of len(key)+len(value) over the Puts.
	BytesWritten uint64
}

// Sub returns s - prev, the work done between two readings.
func (s Stats) Sub(prev Stats) Stats {
	return Stats{
		Txs:          s.Txs - prev.Txs,
		Puts:         s.Puts - prev.Puts,
		Deletes:      s.Deletes - prev.Deletes,
		BytesWritten: s.BytesWritten - prev.BytesWritten,
	}
}

// StatsReporter is implemented by stores that count their writes. Tests use
// it to check that a state change writes only what it changed.
type StatsReporter interface {
	Stats() Stats
}

// Error describes a failed store operation. Err is a sentinel of this
// package, a context error, or the backend's error.
type Error struct {
	// Op is the operation: "get", "put", "delete", "scan", "delete prefix",
	// "view", "update", "commit", ...
	Op string
	// Bucket is the bucket concerned, if any.
	Bucket string
	// Key is the key or prefix concerned, if any.
	Key []byte
	// Err is the cause.
	Err error
}

// maxKeyInError bounds how much of a key an error message shows.
const maxKeyInError = 16

func (e *Error) Error() string {
	msg := "storage: " + e.Op
	if e.Bucket != "" {
		msg += " in bucket " + strconv.Quote(e.Bucket)
	}
	if e.Key != nil {
		k := e.Key
		ell := ""
		if len(k) > maxKeyInError {
			k, ell = k[:maxKeyInError], "..."
		}
		unit := "bytes"
		if len(e.Key) == 1 {
			unit = "byte"
		}
		msg += fmt.Sprintf(" key %s%s (%d %s)", hex.EncodeToString(k), ell, len(e.Key), unit)
	}
	return msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// CheckBucket reports whether name is a valid bucket name; the error wraps
// ErrInvalidBucket. Backends call it before using a name.
func CheckBucket(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidBucket)
	case len(name) > MaxBucketLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidBucket, len(name), MaxBucketLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidBucket)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return fmt.Errorf("%w: NUL byte at offset %d", ErrInvalidBucket, i)
		}
	}
	return nil
}

// CheckKey reports whether key is a valid key; the error wraps ErrInvalidKey
// or ErrTooLarge.
func CheckKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes, more than %d", ErrTooLarge, len(key), MaxKeySize)
	}
	return nil
}

// CheckPrefix reports whether prefix is a valid Scan or DeletePrefix
// prefix: anything up to MaxKeySize bytes, including empty.
func CheckPrefix(prefix []byte) error {
	if len(prefix) > MaxKeySize {
		return fmt.Errorf("%w: prefix of %d bytes, more than %d", ErrTooLarge, len(prefix), MaxKeySize)
	}
	return nil
}

// CheckValue reports whether a value of n bytes may be stored; the error
// wraps ErrTooLarge.
func CheckValue(n int) error {
	if n > MaxValueSize {
		return fmt.Errorf("%w: value of %d bytes, more than %d", ErrTooLarge, n, MaxValueSize)
	}
	return nil
}

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, so that the keys with that prefix are exactly those k with
// prefix <= k < PrefixEnd(prefix). It returns nil when no such bound exists
// (prefix is empty or all 0xff bytes): then every key >= prefix has it.
func PrefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end := make([]byte, i+1)
			copy(end, prefix)
			end[i]++
			return end
		}
	}
	return nil
}

// TxState is what a backend knows about one of its transactions, for
// CheckCall.
type TxState struct {
	Ctx      context.Context
	Done     bool // committed or rolled back
	Writable bool // an Update, not a View
}

// CheckCall validates a Tx method call the same way for every backend: the
// transaction is still open, writes happen only in Update, the context is
// live and the bucket name is valid. The error is an *Error for op.
func CheckCall(st TxState, op, bucket string, key []byte, write bool) error {
	var err error
	switch {
	case st.Done:
		err = ErrTxDone
	case write && !st.Writable:
		err = ErrReadOnly
	default:
		err = st.Ctx.Err()
	}
	if err == nil {
		err = CheckBucket(bucket)
	}
	if err != nil {
		return &Error{Op: op, Bucket: bucket, Key: key, Err: err}
	}
	return nil
}
