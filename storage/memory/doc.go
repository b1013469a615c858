// Package memory is an in-memory implementation of storage.Store, for tests
// and short-lived use. Nothing survives the process.
//
// Each bucket is a persistent (immutable, path-copying) treap ordered by
// key, so a transaction's writes cost O(log n) each and never copy a whole
// bucket. A View takes the committed snapshot without locking and keeps it
// for its whole duration; an Update works on a private version built from
// the snapshot and publishes it with one atomic pointer store on commit, so
// a failed Update leaves nothing changed. Updates are serialized by a
// context-aware lock; Views never block and are never blocked.
package memory
