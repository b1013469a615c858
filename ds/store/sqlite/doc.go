// Package sqlite is the embedded ds.Store of mlsd: one process, one SQLite
// file (modernc.org/sqlite, no cgo), in WAL mode. Every write runs on one
// connection in a BEGIN IMMEDIATE transaction, so writes are serialized and
// the epoch check of AppendCommit and Append (RFC 9750, Section 5.2.1: one
// commit per epoch) cannot race; reads use a pool of other connections.
// Watch is an in-process broadcast.
//
// The conformance suite of package ds/store/storetest runs on it.
package sqlite
