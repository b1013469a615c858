// Package ds is mlsd, the delivery service of RFC 9750 (Section 5) for MLS
// groups: a key package directory, a strongly consistent ordered log per
// group in which exactly one commit per epoch is accepted, Welcome
// mailboxes, the latest GroupInfo for external joiners, and authentication
// of clients by their MLS signature key. It speaks Connect RPC (gRPC,
// gRPC-Web and JSON; the schema is proto/mlsd/v1/mlsd.proto) and keeps its
// state in a Store: SQLite for one process, PostgreSQL for several replicas.
package ds
