// Package ds is mlsd, the delivery service of RFC 9750 (Section 5) for MLS
// groups: a key package directory, a strongly consistent ordered log per
// group in which exactly one commit per epoch is accepted, Welcome
// mailboxes, the latest GroupInfo for external joiners, and authentication
// of clients by their MLS signature key. It speaks Connect RPC (gRPC,
// gRPC-Web and JSON; the schema is proto/mlsd/v1/mlsd.proto) and keeps its
// state in a Store: SQLite for one process, PostgreSQL for several replicas.
//
// # Serving
//
// NewServer builds a Server over a Store; Handler serves the RPCs under
// /mlsd.v1.DeliveryService/, GET /healthz (200 when the Store answers) and
// GET /metrics (Prometheus: mlsd_requests_total{rpc,code},
// mlsd_request_duration_seconds{rpc}, mlsd_messages_total{kind},
// mlsd_groups_created_total, mlsd_commit_conflicts_total,
// mlsd_subscriptions, mlsd_cached_groups, mlsd_groupinfo_checks_total).
// Listen does it all on a loopback or public address (HTTP/1.1 and h2c, so
// plain gRPC works); cmd/mlsd is the binary.
//
// # Protocol
//
// A client calls Challenge with its credential, signature key and cipher
// suite, signs SignWithLabel(key, AuthLabel, AuthContent(challenge,
// server_name)) and calls Authenticate for a bearer token; every other RPC
// carries "Authorization: Bearer <token>". Tokens are stored hashed in the
// Store, so every replica accepts them.
//
// Every post is for the group's current epoch. A commit carries the
// GroupInfo and ratchet tree of the epoch it creates, and its Welcome. With
// public handshakes the server validates proposals and commits with its
// PublicGroup (every check of RFC 9420 that needs no secret: not the
// confirmation and membership tags) and requires the posted GroupInfo to be
// exactly the merged epoch; with encrypted handshakes it orders by the
// PrivateMessage header and takes the membership from the posted
// GroupInfo, verified on its own. The Store accepts the first commit of an
// epoch; a later one fails with COMMIT_CONFLICT, and the client fetches,
// processes the winner and retries. Welcomes are stored only for the
// winning commit, in the mailboxes of the identities that published the
// key packages they are encrypted to.
//
// Only members (by the server's view of the group) post and read. A
// non-member may post an external commit or a join proposal where the
// group allows external joins, and a client of a member's identity that
// lost its state may resync (an external commit removing its old leaf)
// anywhere (RFC 9750, Section 6.6). An identity that a commit removed
// (no leaf of it left) may still read the log up to and including that
// commit, so that a member offline at its removal learns of it; it gets
// NOT_MEMBER after it.
//
// Errors are Connect errors whose code gives the class and whose first
// detail is an mlsd.v1.Error with the reason; ErrorReason extracts it.
//
// # Limits
//
// RFC 9750 leaves two gaps that no delivery service closes without the
// group's secrets (Section 5.3, Invalid Commits): a public commit whose
// confirmation tag is wrong, and any encrypted commit, are accepted if
// everything the server can check holds, and the members then refuse them.
// Clients recover by resyncing.
package ds
