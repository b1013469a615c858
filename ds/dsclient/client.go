// Package dsclient is the Go client of mlsd, the delivery service in package
// ds (RFC 9750, Section 5). It drives an mls.Client through the service:
// authentication by the client's signature key, key package publication and
// retrieval, group registration, commits that resolve conflicts themselves
// (clear, catch up, retry: reference/faq.txt), application messages, reading
// a group's log from a cursor kept in the client's own store, and Welcome
// mailboxes.
//
// Every method that changes a group takes the *mls.Group to change; a Client
// serializes the operations on one group, so Sync, Subscribe, Send and Commit
// may run from several goroutines.
package dsclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/ds"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/proto/mlsd/v1/mlsdv1connect"
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// Suite is the cipher suite whose signature scheme the client
	// authenticates with, and the suite of the key packages it publishes
	// and fetches; zero means MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
	// It must match the client's signature key.
	Suite mls.CipherSuite
	// HTTPClient carries the requests; nil means a client of its own
	// (HTTP/1.1, Connect protocol). Pass one with unencrypted HTTP/2 and
	// connect.WithGRPC in ConnectOptions to speak gRPC over h2c.
	HTTPClient connect.HTTPClient
	// ConnectOptions are added to the generated client's options.
	ConnectOptions []connect.ClientOption
	// MaxAttempts bounds the attempts of a commit, proposal or message
	// that loses a race to another member's commit; zero means 10.
	MaxAttempts int
	// RateLimitWait is the first pause after a RATE_LIMITED error (it
	// doubles up to 2 s, at most 5 times); zero means 50 ms.
	RateLimitWait time.Duration
}

// Client is one mls.Client connected to one delivery service.
type Client struct {
	mc       *mls.Client
	rpc      mlsdv1connect.DeliveryServiceClient
	suite    mls.CipherSuite
	attempts int
	rlWait   time.Duration

	authMu   sync.Mutex // serializes authentication
	mu       sync.Mutex
	token    string
	identity []byte
	groups   map[string]*sync.Mutex // one lock per group ID
}

// Dial connects mc to the delivery service at baseURL (for example
// "http://127.0.0.1:7420") and authenticates it.
func Dial(ctx context.Context, baseURL string, mc *mls.Client, opts Options) (*Client, error) {
	if mc == nil {
		return nil, fmt.Errorf("dsclient: %w: nil mls.Client", mls.ErrInvalidArgument)
	}
	c := &Client{mc: mc, suite: opts.Suite, attempts: opts.MaxAttempts, rlWait: opts.RateLimitWait, groups: map[string]*sync.Mutex{}}
	if c.suite == 0 {
		c.suite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	}
	if c.attempts <= 0 {
		c.attempts = 10
	}
	if c.rlWait <= 0 {
		c.rlWait = 50 * time.Millisecond
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}}
	}
	copts := append([]connect.ClientOption{connect.WithInterceptors(bearer{c})}, opts.ConnectOptions...)
	c.rpc = mlsdv1connect.NewDeliveryServiceClient(hc, strings.TrimSuffix(baseURL, "/"), copts...)
	if err := c.Authenticate(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// MLS returns the mls.Client.
func (c *Client) MLS() *mls.Client { return c.mc }

// Suite returns the cipher suite of Options.Suite.
func (c *Client) Suite() mls.CipherSuite { return c.suite }

// Identity returns the identity the service knows the client by.
func (c *Client) Identity() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.identity
}

// RPC returns the generated client, whose calls carry the bearer token.
func (c *Client) RPC() mlsdv1connect.DeliveryServiceClient { return c.rpc }

// Authenticate gets a fresh bearer token: it asks for a challenge for the
// client's credential and signature key, signs it with SignWithLabel
// (RFC 9420, Section 5.1.2) under ds.AuthLabel, bound to the server's name,
// and trades the signature for a token.
func (c *Client) Authenticate(ctx context.Context) error {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	return c.authenticate(ctx)
}

func (c *Client) authenticate(ctx context.Context) error {
	cs, err := ciphersuite.Lookup(c.suite)
	if err != nil {
		return fmt.Errorf("dsclient: %w", err)
	}
	cred, err := c.mc.Credential().MarshalBinary()
	if err != nil {
		return fmt.Errorf("dsclient: encoding the credential: %w", err)
	}
	key, err := c.mc.SignatureKey(c.suite)
	if err != nil {
		return fmt.Errorf("dsclient: signature key: %w", err)
	}
	ch, err := c.rpc.Challenge(ctx, connect.NewRequest(&mlsdv1.ChallengeRequest{Credential: cred, SignatureKey: key, CipherSuite: uint32(c.suite)}))
	if err != nil {
		return wrap("Challenge", err)
	}
	sig, err := cs.SignWithLabel(c.mc.Signer(), ds.AuthLabel, ds.AuthContent(ch.Msg.Challenge, ch.Msg.ServerName))
	if err != nil {
		return fmt.Errorf("dsclient: signing the challenge: %w", err)
	}
	res, err := c.rpc.Authenticate(ctx, connect.NewRequest(&mlsdv1.AuthenticateRequest{Challenge: ch.Msg.Challenge, Signature: sig}))
	if err != nil {
		return wrap("Authenticate", err)
	}
	c.mu.Lock()
	c.token, c.identity = res.Msg.Token, res.Msg.Identity
	c.mu.Unlock()
	return nil
}

// bearer adds the token to every request but the authentication ones.
type bearer struct{ c *Client }

func (b bearer) set(h http.Header, procedure string) {
	if strings.HasSuffix(procedure, "/Challenge") || strings.HasSuffix(procedure, "/Authenticate") {
		return
	}
	b.c.mu.Lock()
	tok := b.c.token
	b.c.mu.Unlock()
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
}

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		b.set(req.Header(), req.Spec().Procedure)
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		b.set(conn.RequestHeader(), spec.Procedure)
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// call runs one unary RPC: it re-authenticates once when the token was
// refused (expired, or the server forgot it), and waits and retries a few
// times when rate limited.
func call[Req, Res any](ctx context.Context, c *Client, name string, fn func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), msg *Req) (*Res, error) {
	reauthed := false
	wait := c.rlWait
	for try := 0; ; try++ {
		res, err := fn(ctx, connect.NewRequest(msg))
		if err == nil {
			return res.Msg, nil
		}
		switch {
		case connect.CodeOf(err) == connect.CodeUnauthenticated && !reauthed:
			reauthed = true
			if aerr := c.Authenticate(ctx); aerr != nil {
				return nil, aerr
			}
			continue
		case Reason(err) == mlsdv1.Error_REASON_RATE_LIMITED && try < 5:
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, wrap(name, err)
			}
			wait = min(2*wait, 2*time.Second)
			continue
		}
		return nil, wrap(name, err)
	}
}

// --- Errors ------------------------------------------------------------------

// Error is an error returned by the delivery service: the Connect code and
// the mlsd.v1.Error detail, if the server sent one.
type Error struct {
	Op           string // the RPC
	Code         connect.Code
	Reason       mlsdv1.Error_Reason
	CurrentEpoch uint64 // for COMMIT_CONFLICT and WRONG_EPOCH
	LastSeq      uint64
	Detail       string
	Err          error // the *connect.Error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("dsclient: %s: %v", e.Op, e.Code)
	if e.Reason != mlsdv1.Error_REASON_UNSPECIFIED {
		s += " " + strings.TrimPrefix(e.Reason.String(), "REASON_")
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	} else if ce := new(connect.Error); errors.As(e.Err, &ce) && ce.Message() != "" {
		s += ": " + ce.Message()
	}
	if e.Reason == mlsdv1.Error_REASON_COMMIT_CONFLICT || e.Reason == mlsdv1.Error_REASON_WRONG_EPOCH {
		s += fmt.Sprintf(" (group at epoch %d, last seq %d)", e.CurrentEpoch, e.LastSeq)
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches the sentinel of e's reason.
func (e *Error) Is(target error) bool {
	s, ok := target.(*sentinel)
	return ok && s.reason == e.Reason
}

type sentinel struct {
	reason mlsdv1.Error_Reason
	text   string
}

func (s *sentinel) Error() string { return "dsclient: " + s.text }

// Sentinels matching an *Error by its reason, for errors.Is.
var (
	ErrUnauthenticated       error = &sentinel{mlsdv1.Error_REASON_UNAUTHENTICATED, "unauthenticated"}
	ErrNotMember             error = &sentinel{mlsdv1.Error_REASON_NOT_MEMBER, "not a member of the group"}
	ErrMalformed             error = &sentinel{mlsdv1.Error_REASON_MALFORMED, "malformed request"}
	ErrTooLarge              error = &sentinel{mlsdv1.Error_REASON_TOO_LARGE, "too large"}
	ErrRateLimited           error = &sentinel{mlsdv1.Error_REASON_RATE_LIMITED, "rate limited"}
	ErrCommitConflict        error = &sentinel{mlsdv1.Error_REASON_COMMIT_CONFLICT, "another commit won the epoch"}
	ErrWrongEpoch            error = &sentinel{mlsdv1.Error_REASON_WRONG_EPOCH, "not the group's current epoch"}
	ErrInvalidMessage        error = &sentinel{mlsdv1.Error_REASON_INVALID_MESSAGE, "invalid message"}
	ErrUnknownGroup          error = &sentinel{mlsdv1.Error_REASON_UNKNOWN_GROUP, "unknown group"}
	ErrGroupExists           error = &sentinel{mlsdv1.Error_REASON_GROUP_EXISTS, "group exists"}
	ErrNoKeyPackage          error = &sentinel{mlsdv1.Error_REASON_NO_KEY_PACKAGE, "no key package left"}
	ErrExternalJoinForbidden error = &sentinel{mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED, "external joins not allowed"}
	ErrNotOwner              error = &sentinel{mlsdv1.Error_REASON_NOT_OWNER, "not the key package's owner"}
)

// Client-side errors.
var (
	// ErrTooManyAttempts: an operation lost to other members' commits
	// Options.MaxAttempts times in a row.
	ErrTooManyAttempts = errors.New("dsclient: too many attempts lost to other commits")
	// ErrRemoved: this member is no longer in the group.
	ErrRemoved = errors.New("dsclient: removed from the group")
	// ErrUnexpected: the service handed out something that does not fit
	// (a key package of another identity, a gap in the log).
	ErrUnexpected = errors.New("dsclient: unexpected answer from the delivery service")
)

// wrap turns a Connect error into an *Error carrying its mlsd.v1.Error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if e := new(Error); errors.As(err, &e) {
		return err
	}
	e := &Error{Op: op, Code: connect.CodeOf(err), Err: err}
	var ce *connect.Error
	if errors.As(err, &ce) {
		for _, d := range ce.Details() {
			v, derr := d.Value()
			if me, ok := v.(*mlsdv1.Error); derr == nil && ok {
				e.Reason, e.CurrentEpoch, e.LastSeq, e.Detail = me.Reason, me.CurrentEpoch, me.LastSeq, me.Detail
				break
			}
		}
	}
	return e
}

// Reason returns the mlsd.v1.Error reason in err's chain, or
// REASON_UNSPECIFIED.
func Reason(err error) mlsdv1.Error_Reason {
	if e := new(Error); errors.As(err, &e) {
		return e.Reason
	}
	if ce := new(connect.Error); errors.As(err, &ce) {
		if e := wrap("", ce).(*Error); e != nil {
			return e.Reason
		}
	}
	return mlsdv1.Error_REASON_UNSPECIFIED
}
