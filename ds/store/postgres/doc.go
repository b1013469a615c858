// Package postgres is the ds.Store of mlsd on PostgreSQL
// (github.com/jackc/pgx/v5), for several mlsd replicas sharing one
// database. Every decision that must hold across replicas is made inside
// one transaction: AppendCommit and Append lock the group's row (SELECT ...
// FOR UPDATE) and check the epoch under the lock, so exactly one commit
// per epoch is accepted (RFC 9750, Section 5.2.1), with a unique (group_id,
// epoch) constraint on the commits table as a backstop; the log's sequence
// numbers come from the group's row, so they have no gaps; TakeKeyPackage
// locks the row it hands out with FOR UPDATE SKIP LOCKED, so a key package
// is handed out once. Appends NOTIFY the channel mlsd_append in their
// transaction, and Watch LISTENs on a dedicated connection, so a watcher
// on one replica sees the appends of all.
//
// The conformance suite of package ds/store/storetest runs on it.
package postgres
