package ds

import (
	"context"
	"errors"
	"time"
)

// Store is the delivery service's durable state: sessions, key packages,
// groups, their ordered logs, cursors and Welcome mailboxes. The server holds
// no state of its own that another replica would need; every decision that
// must hold across replicas (one commit per epoch, a key package handed out
// once) is made inside one Store transaction.
//
// Two implementations exist, with the same behaviour, checked by the suite
// in package ds/storetest: SQLite (embedded, one process) and PostgreSQL
// (several mlsd replicas on one database).
type Store interface {
	// PutChallenge stores a fresh challenge; TakeChallenge returns and
	// deletes it (a challenge is used once), or ErrNotFound when it is
	// unknown or expired at now.
	PutChallenge(ctx context.Context, c Challenge) error
	TakeChallenge(ctx context.Context, nonce []byte, now time.Time) (Challenge, error)

	// PutSession stores a session under the SHA-256 of its token;
	// GetSession returns it, or ErrNotFound when unknown or expired at now.
	PutSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, tokenHash []byte, now time.Time) (Session, error)

	// PutKeyPackages stores key packages; one whose Ref is already stored is
	// left as it is.
	PutKeyPackages(ctx context.Context, kps []KeyPackage) error
	// TakeKeyPackage hands out one key package of identity and suite that
	// is not expired at now and not yet handed out, and marks it handed out,
	// in one transaction: two concurrent calls never return the same one.
	// When only last-resort ones are left, it returns one of them and keeps
	// it available. ErrNotFound when there is none.
	TakeKeyPackage(ctx context.Context, identity []byte, suite uint16, now time.Time) (KeyPackage, error)
	// CountKeyPackages counts the available, unexpired, non-last-resort key
	// packages of identity and suite, and says whether a last-resort one is
	// available.
	CountKeyPackages(ctx context.Context, identity []byte, suite uint16, now time.Time) (n int, lastResort bool, err error)
	// KeyPackageOwner returns the identity that published the key package
	// with this reference (handed out or not), or ErrNotFound.
	KeyPackageOwner(ctx context.Context, ref []byte) ([]byte, error)
	// PruneKeyPackages deletes the key packages expired at now and returns
	// how many.
	PruneKeyPackages(ctx context.Context, now time.Time) (int, error)

	// CreateGroup stores a new group; ErrGroupExists if its ID is taken.
	CreateGroup(ctx context.Context, g Group) error
	// GetGroup returns a group's current state, or ErrNotFound.
	GetGroup(ctx context.Context, groupID []byte) (Group, error)

	// AppendCommit appends a commit for epoch c.Epoch to the group's log and,
	// in the same transaction, moves the group to c.NewState (epoch
	// c.Epoch+1), stores c.Welcomes and records, for each identity of
	// c.Removed, that this commit removed it (see RemovedAt). It fails with a *ConflictError
	// wrapping ErrConflict, and changes nothing, when the group is no longer
	// at c.Epoch (another commit won). A unique (group, epoch) constraint on
	// commits backs this up.
	AppendCommit(ctx context.Context, c Commit) (seq uint64, err error)
	// Append appends a proposal or application message sent in epoch e.Epoch.
	// It fails with a *ConflictError wrapping ErrWrongEpoch, and changes
	// nothing, when the group is not at e.Epoch.
	Append(ctx context.Context, e Entry) (seq uint64, err error)
	// RemovedAt returns the seq of the commit that last removed identity
	// from the group (listed in its Commit.Removed), or ErrNotFound when no
	// commit did. Such an identity may still read the log up to that commit.
	RemovedAt(ctx context.Context, groupID, identity []byte) (seq uint64, err error)
	// Entries returns up to limit entries of the group's log with seq >
	// afterSeq, in order.
	Entries(ctx context.Context, groupID []byte, afterSeq uint64, limit int) ([]Entry, error)
	// Proposals returns the proposals stored for the group's epoch, in
	// order: what a commit of that epoch may reference.
	Proposals(ctx context.Context, groupID []byte, epoch uint64) ([]Entry, error)

	// SetCursor records identity's position in a group's log; it never
	// moves a cursor backwards. Cursor returns it (0 when none).
	SetCursor(ctx context.Context, groupID, identity []byte, seq uint64) error
	Cursor(ctx context.Context, groupID, identity []byte) (uint64, error)

	// Welcomes returns the Welcomes in identity's mailbox; DeleteWelcome
	// removes one of them (not an error when absent).
	Welcomes(ctx context.Context, identity []byte) ([]Welcome, error)
	DeleteWelcome(ctx context.Context, identity []byte, id uint64) error

	// Watch calls fn with a group ID whenever an entry is appended to that
	// group's log, by this process or (PostgreSQL) by another replica,
	// until ctx is done. Notifications may be coalesced or spurious; a
	// subscriber reads Entries after its cursor when notified.
	Watch(ctx context.Context, fn func(groupID []byte)) error

	Close() error
}

// Errors a Store returns. Anything else is an internal error.
var (
	ErrNotFound    = errors.New("ds: not found")
	ErrGroupExists = errors.New("ds: group already exists")
	ErrConflict    = errors.New("ds: another commit was accepted for this epoch")
	ErrWrongEpoch  = errors.New("ds: message is not for the group's current epoch")
)

// ConflictError says where the group is now, so that the client can catch up.
type ConflictError struct {
	Err          error // ErrConflict or ErrWrongEpoch
	CurrentEpoch uint64
	LastSeq      uint64
}

func (e *ConflictError) Error() string { return e.Err.Error() }
func (e *ConflictError) Unwrap() error { return e.Err }

// Challenge is an authentication challenge issued to a credential and
// signature key.
type Challenge struct {
	Nonce        []byte
	Credential   []byte // TLS-encoded MLS Credential
	SignatureKey []byte
	CipherSuite  uint16
	Expires      time.Time
}

// Session is an authenticated client.
type Session struct {
	TokenHash    []byte // SHA-256 of the bearer token
	Identity     []byte
	Credential   []byte
	SignatureKey []byte
	CipherSuite  uint16
	Expires      time.Time
}

// KeyPackage is a published key package.
type KeyPackage struct {
	Ref        []byte
	Identity   []byte
	Suite      uint16
	Data       []byte // the MLSMessage
	LastResort bool
	NotAfter   time.Time
}

// HandshakeMode is how a group's handshake messages travel.
type HandshakeMode uint8

const (
	HandshakePublic    HandshakeMode = 1
	HandshakeEncrypted HandshakeMode = 2
)

// GroupState is what the server knows of one epoch of a group: the
// GroupInfo signed by a member and the ratchet tree.
type GroupState struct {
	Epoch       uint64
	GroupInfo   []byte // MLSMessage
	RatchetTree []byte // may be empty when GroupInfo carries the extension
}

// Group is a registered group.
type Group struct {
	ID                 []byte
	Mode               HandshakeMode
	AllowExternalJoins bool
	State              GroupState
	LastSeq            uint64
	Created            time.Time
}

// Kind is the kind of a log entry.
type Kind uint8

const (
	KindCommit      Kind = 1
	KindProposal    Kind = 2
	KindApplication Kind = 3
)

// Entry is one entry of a group's log.
type Entry struct {
	GroupID  []byte
	Seq      uint64 // set by the Store
	Epoch    uint64
	Kind     Kind
	Sender   []byte // authenticated identity of the poster
	Data     []byte // the MLSMessage
	Received time.Time
}

// Commit is a commit to append, with the state it creates.
type Commit struct {
	Entry               // Kind is KindCommit; Epoch the epoch it was sent in
	NewState GroupState // Epoch is Entry.Epoch+1
	Welcomes []Welcome
	// Removed lists the identities that were members before the commit
	// and have no leaf after it: they may read the log up to and including
	// this commit, which tells them of their removal (RFC 9750, Section 6.4).
	Removed [][]byte
}

// Welcome is a Welcome in the mailbox of the identity that published the
// key package it is encrypted to.
type Welcome struct {
	ID            uint64 // set by the Store
	Identity      []byte
	KeyPackageRef []byte
	GroupID       []byte
	Data          []byte // MLSMessage
	RatchetTree   []byte
}
