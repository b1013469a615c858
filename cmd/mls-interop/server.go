package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/proto/mlsclient"
	"github.com/mlskit/mls/storage/memory"
)

// maxStates bounds the number of live states, transactions and signers, so
// that a runner that never calls Free cannot exhaust memory.
const maxStates = 1 << 16

// maxPastEpochs is how many earlier epochs' secrets each member keeps for
// late application messages (the application config's
// out_of_order_across_epochs script needs one).
const maxPastEpochs = 4

// member is one group state: a client on its own memory store and its
// current group.
type member struct {
	mu      sync.Mutex
	client  *mls.Client
	group   *mls.Group
	encrypt bool
	// own holds the proposals this member sent in the current epoch, which
	// it already holds and must not process when a runner lists them.
	own map[string]bool
	// After a ReInit commit: the client (on the same store) and key package
	// for the new group.
	reinitClient *mls.Client
	reinitKP     *mls.KeyPackage
}

// transaction is a client waiting to join: a key package and its client.
type transaction struct {
	mu     sync.Mutex
	client *mls.Client
	kp     *mls.KeyPackage
}

// signer is an external sender (RFC 9420, Section 12.1.8).
type signer struct {
	suite  mls.CipherSuite
	signer crypto.Signer
	cred   credential.Credential
	pub    []byte
}

// server implements mlsclientconnect.MLSClientHandler. State, transaction,
// reinit and signer IDs share one counter, so StorePSK can tell a state
// from a transaction.
type server struct {
	mu      sync.Mutex
	next    uint32
	members map[uint32]*member
	txs     map[uint32]*transaction
	signers map[uint32]*signer
}

func newServer() *server {
	return &server{members: map[uint32]*member{}, txs: map[uint32]*transaction{}, signers: map[uint32]*signer{}}
}

// errArg is a bad request.
func errArg(format string, a ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, a...))
}

// call runs one RPC: it turns library errors into gRPC status codes and a
// panic into an Internal error, so that no request crashes the server.
func call[Q, R any](ctx context.Context, r *connect.Request[Q], f func(context.Context, *Q) (*R, error)) (resp *connect.Response[R], err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, connect.NewError(connect.CodeInternal, fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
		}
	}()
	out, err := f(ctx, r.Msg)
	if err != nil {
		return nil, status(err)
	}
	return connect.NewResponse(out), nil
}

// status maps an error to a gRPC status: the library's error classes
// (errors.go) to the nearest code, with the message kept.
func status(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	code := connect.CodeUnknown
	switch {
	case errors.Is(err, mls.ErrInvalidArgument), errors.Is(err, mls.ErrMalformed), errors.Is(err, mls.ErrUnsupported):
		code = connect.CodeInvalidArgument
	case errors.Is(err, mls.ErrNotFound):
		code = connect.CodeNotFound
	case errors.Is(err, mls.ErrValidation), errors.Is(err, mls.ErrDecrypt), errors.Is(err, mls.ErrReplayed):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, mls.ErrStaleState), errors.Is(err, mls.ErrStorage):
		code = connect.CodeAborted
	}
	return connect.NewError(code, err)
}

func (s *server) add(v any) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.members)+len(s.txs)+len(s.signers) >= maxStates {
		return 0, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%d live states: call Free", maxStates))
	}
	s.next++
	switch v := v.(type) {
	case *member:
		s.members[s.next] = v
	case *transaction:
		s.txs[s.next] = v
	case *signer:
		s.signers[s.next] = v
	}
	return s.next, nil
}

// member returns the state id, locked; the caller unlocks it.
func (s *server) member(id uint32) (*member, error) {
	s.mu.Lock()
	m := s.members[id]
	s.mu.Unlock()
	if m == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no state %d", id))
	}
	m.mu.Lock()
	return m, nil
}

func (s *server) tx(id uint32) (*transaction, error) {
	s.mu.Lock()
	t := s.txs[id]
	s.mu.Unlock()
	if t == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no transaction %d", id))
	}
	t.mu.Lock()
	return t, nil
}

func suiteOf(v uint32) (mls.CipherSuite, error) {
	if v == 0 || v > 0xffff {
		return 0, errArg("cipher suite %d", v)
	}
	id := mls.CipherSuite(v)
	if _, err := ciphersuite.Lookup(id); err != nil {
		return 0, errArg("cipher suite %d: %v", v, err)
	}
	return id, nil
}

// newClient is a client with its own memory store and a signature key for
// suite.
func newClient(ctx context.Context, identity []byte, suite mls.CipherSuite) (*mls.Client, error) {
	if len(identity) == 0 {
		identity = []byte("mls-interop")
	}
	return mls.NewClient(ctx, memory.New(), credential.NewBasic(identity), nil, credential.AcceptAll, mls.ClientOptions{SignatureSuite: suite})
}

func joinConfig(encrypt bool) mls.JoinConfig {
	return mls.JoinConfig{
		WireFormatPolicy:        mls.WireFormatPolicy{OutgoingPrivate: encrypt},
		UseRatchetTreeExtension: true,
		MaxPastEpochs:           maxPastEpochs,
	}
}

func parseMessage(b []byte, what string) (*mls.Message, error) {
	if len(b) == 0 {
		return nil, errArg("empty %s", what)
	}
	m, err := mls.ParseMessage(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return m, nil
}

func marshal(m *mls.Message) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	return m.MarshalBinary()
}

func extensions(in []*mlsclient.Extension) ([]mls.Extension, error) {
	out := make([]mls.Extension, 0, len(in))
	for _, e := range in {
		if e == nil || e.ExtensionType > 0xffff {
			return nil, errArg("bad extension")
		}
		out = append(out, mls.Extension{Type: uint16(e.ExtensionType), Data: bytes.Clone(e.ExtensionData)})
	}
	return out, nil
}

// newMember registers a group state.
func (s *server) newMember(c *mls.Client, g *mls.Group, encrypt bool) (uint32, error) {
	return s.add(&member{client: c, group: g, encrypt: encrypt, own: map[string]bool{}})
}

// sent records a proposal this member created and returns its bytes.
func (m *member) sent(msg *mls.Message, err error) (*mlsclient.ProposalResponse, error) {
	if err != nil {
		return nil, err
	}
	b, err := msg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	m.own[string(b)] = true
	return &mlsclient.ProposalResponse{Proposal: b}, nil
}

// receive processes proposals sent by others and queues them; those this
// member sent itself are already queued.
func (m *member) receive(ctx context.Context, proposals [][]byte) error {
	for i, b := range proposals {
		if m.own[string(b)] {
			continue
		}
		msg, err := parseMessage(b, fmt.Sprintf("proposal %d", i))
		if err != nil {
			return err
		}
		p, err := m.group.Process(ctx, msg)
		if err != nil {
			return fmt.Errorf("proposal %d: %w", i, err)
		}
		if p.Kind != mls.KindProposal {
			return errArg("proposal %d is a %v message", i, p.Kind)
		}
		if err := m.group.StorePendingProposal(ctx, p.Proposal); err != nil {
			return fmt.Errorf("proposal %d: %w", i, err)
		}
	}
	return nil
}

// handleCommit processes proposals and a commit of another member and
// merges it.
func (m *member) handleCommit(ctx context.Context, proposals [][]byte, commit []byte) error {
	if err := m.receive(ctx, proposals); err != nil {
		return err
	}
	msg, err := parseMessage(commit, "commit")
	if err != nil {
		return err
	}
	p, err := m.group.Process(ctx, msg)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if p.Kind != mls.KindCommit {
		return errArg("commit is a %v message", p.Kind)
	}
	if err := m.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		return err
	}
	clear(m.own)
	return nil
}

// mergePending merges this member's own pending commit.
func (m *member) mergePending(ctx context.Context) error {
	if err := m.group.MergePendingCommit(ctx); err != nil {
		return err
	}
	clear(m.own)
	return nil
}

// leafOf finds the leaf of the member with identity in a list of members.
func leafOf(members []mls.Member, identity []byte) (uint32, bool) {
	for _, mem := range members {
		if bytes.Equal(mem.Credential.Identity(), identity) {
			return mem.Index, true
		}
	}
	return 0, false
}

// commitOptions turns inline proposal descriptions into CommitOptions.
func (m *member) commitOptions(descs []*mlsclient.ProposalDescription) (mls.CommitOptions, error) {
	var o mls.CommitOptions
	for i, d := range descs {
		if d == nil {
			return o, errArg("by_value %d: empty", i)
		}
		switch string(d.ProposalType) {
		case "add":
			kp, err := mls.ParseKeyPackage(d.KeyPackage)
			if err != nil {
				return o, fmt.Errorf("by_value %d: %w", i, err)
			}
			o.Add = append(o.Add, kp)
		case "remove":
			leaf, ok := leafOf(m.group.Members(), d.RemovedId)
			if !ok {
				return o, connect.NewError(connect.CodeNotFound, fmt.Errorf("by_value %d: no member %q", i, d.RemovedId))
			}
			o.Remove = append(o.Remove, leaf)
		case "externalPSK":
			o.ExternalPSKs = append(o.ExternalPSKs, d.PskId)
		case "resumptionPSK":
			o.ResumptionPSKs = append(o.ResumptionPSKs, d.EpochId)
		case "groupContextExtensions":
			exts, err := extensions(d.Extensions)
			if err != nil {
				return o, err
			}
			o.GroupContextExtensions = exts
		case "reinit":
			exts, err := extensions(d.Extensions)
			if err != nil {
				return o, err
			}
			suite, err := suiteOf(d.CipherSuite)
			if err != nil {
				return o, err
			}
			o.ReInit = &mls.ReInitParams{GroupID: d.GroupId, Version: 1, CipherSuite: suite, Extensions: exts}
		default:
			return o, errArg("by_value %d: proposal type %q", i, d.ProposalType)
		}
	}
	if o.GroupContextExtensions == nil {
		// nil means "unchanged"; an explicit empty list must clear them.
		for _, d := range descs {
			if string(d.ProposalType) == "groupContextExtensions" {
				o.GroupContextExtensions = []mls.Extension{}
			}
		}
	}
	return o, nil
}

// commit creates a commit covering the proposals by reference (processed
// first) and by value.
func (m *member) commit(ctx context.Context, r *mlsclient.CommitRequest) (*mlsclient.CommitResponse, error) {
	if err := m.receive(ctx, r.ByReference); err != nil {
		return nil, err
	}
	opts, err := m.commitOptions(r.ByValue)
	if err != nil {
		return nil, err
	}
	opts.ForcePath = r.ForcePath
	m.group.SetRatchetTreeExtension(!r.ExternalTree)
	defer m.group.SetRatchetTreeExtension(true)
	res, err := m.group.Commit(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := &mlsclient.CommitResponse{}
	if out.Commit, err = marshal(res.Commit); err != nil {
		return nil, err
	}
	if out.Welcome, err = marshal(res.Welcome); err != nil {
		return nil, err
	}
	if r.ExternalTree {
		if out.RatchetTree, err = m.group.PendingCommit().RatchetTree(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// prepareReInit readies a member whose group a ReInit commit shut down: a
// client for the new suite on the same store (the Welcome's resumption PSK
// is found there) and a key package for it. It returns the reinit ID.
func (s *server) prepareReInit(ctx context.Context, m *member) (*mlsclient.HandleReInitCommitResponse, error) {
	params, ok := m.group.ReInitParams()
	if !ok {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the commit has no ReInit proposal"))
	}
	c := m.client
	if params.CipherSuite != m.group.CipherSuite() {
		cs, err := ciphersuite.Lookup(params.CipherSuite)
		if err != nil {
			return nil, errArg("ReInit cipher suite: %v", err)
		}
		sig, err := cs.GenerateSignatureKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if c, err = mls.NewClient(ctx, m.client.Store(), m.client.Credential(), sig, credential.AcceptAll, mls.ClientOptions{}); err != nil {
			return nil, err
		}
	}
	kp, err := c.NewKeyPackage(ctx, params.CipherSuite, mls.KeyPackageOptions{})
	if err != nil {
		return nil, err
	}
	kpb, err := kp.MarshalMessage()
	if err != nil {
		return nil, err
	}
	m.reinitClient, m.reinitKP = c, kp
	s.mu.Lock()
	s.next++
	id := s.next
	s.members[id] = m
	s.mu.Unlock()
	return &mlsclient.HandleReInitCommitResponse{ReinitId: id, KeyPackage: kpb, EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}
