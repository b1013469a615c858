package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	pb "github.com/mlskit/mls/proto/mlsclient"
	"github.com/mlskit/mls/storage/memory"
)

// The 34 RPCs of mls_client.proto. Each is a one-line wrapper around a
// method that takes and returns the bare messages.

type (
	rq[T any] = connect.Request[T]
	rs[T any] = connect.Response[T]
)

func (s *server) Name(c context.Context, r *rq[pb.NameRequest]) (*rs[pb.NameResponse], error) {
	return call(c, r, s.name)
}
func (s *server) SupportedCiphersuites(c context.Context, r *rq[pb.SupportedCiphersuitesRequest]) (*rs[pb.SupportedCiphersuitesResponse], error) {
	return call(c, r, s.supportedCiphersuites)
}
func (s *server) CreateGroup(c context.Context, r *rq[pb.CreateGroupRequest]) (*rs[pb.CreateGroupResponse], error) {
	return call(c, r, s.createGroup)
}
func (s *server) CreateKeyPackage(c context.Context, r *rq[pb.CreateKeyPackageRequest]) (*rs[pb.CreateKeyPackageResponse], error) {
	return call(c, r, s.createKeyPackage)
}
func (s *server) JoinGroup(c context.Context, r *rq[pb.JoinGroupRequest]) (*rs[pb.JoinGroupResponse], error) {
	return call(c, r, s.joinGroup)
}
func (s *server) ExternalJoin(c context.Context, r *rq[pb.ExternalJoinRequest]) (*rs[pb.ExternalJoinResponse], error) {
	return call(c, r, s.externalJoin)
}
func (s *server) GroupInfo(c context.Context, r *rq[pb.GroupInfoRequest]) (*rs[pb.GroupInfoResponse], error) {
	return call(c, r, s.groupInfo)
}
func (s *server) StateAuth(c context.Context, r *rq[pb.StateAuthRequest]) (*rs[pb.StateAuthResponse], error) {
	return call(c, r, s.stateAuth)
}
func (s *server) Export(c context.Context, r *rq[pb.ExportRequest]) (*rs[pb.ExportResponse], error) {
	return call(c, r, s.export)
}
func (s *server) Protect(c context.Context, r *rq[pb.ProtectRequest]) (*rs[pb.ProtectResponse], error) {
	return call(c, r, s.protect)
}
func (s *server) Unprotect(c context.Context, r *rq[pb.UnprotectRequest]) (*rs[pb.UnprotectResponse], error) {
	return call(c, r, s.unprotect)
}
func (s *server) StorePSK(c context.Context, r *rq[pb.StorePSKRequest]) (*rs[pb.StorePSKResponse], error) {
	return call(c, r, s.storePSK)
}
func (s *server) AddProposal(c context.Context, r *rq[pb.AddProposalRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.addProposal)
}
func (s *server) UpdateProposal(c context.Context, r *rq[pb.UpdateProposalRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.updateProposal)
}
func (s *server) RemoveProposal(c context.Context, r *rq[pb.RemoveProposalRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.removeProposal)
}
func (s *server) ExternalPSKProposal(c context.Context, r *rq[pb.ExternalPSKProposalRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.externalPSKProposal)
}
func (s *server) ResumptionPSKProposal(c context.Context, r *rq[pb.ResumptionPSKProposalRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.resumptionPSKProposal)
}
func (s *server) GroupContextExtensionsProposal(c context.Context, r *rq[pb.GroupContextExtensionsProposalRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.groupContextExtensionsProposal)
}
func (s *server) Commit(c context.Context, r *rq[pb.CommitRequest]) (*rs[pb.CommitResponse], error) {
	return call(c, r, s.commit)
}
func (s *server) HandleCommit(c context.Context, r *rq[pb.HandleCommitRequest]) (*rs[pb.HandleCommitResponse], error) {
	return call(c, r, s.handleCommit)
}
func (s *server) HandlePendingCommit(c context.Context, r *rq[pb.HandlePendingCommitRequest]) (*rs[pb.HandleCommitResponse], error) {
	return call(c, r, s.handlePendingCommit)
}
func (s *server) ReInitProposal(c context.Context, r *rq[pb.ReInitProposalRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.reInitProposal)
}
func (s *server) ReInitCommit(c context.Context, r *rq[pb.CommitRequest]) (*rs[pb.CommitResponse], error) {
	return call(c, r, s.commit)
}
func (s *server) HandlePendingReInitCommit(c context.Context, r *rq[pb.HandlePendingCommitRequest]) (*rs[pb.HandleReInitCommitResponse], error) {
	return call(c, r, s.handlePendingReInitCommit)
}
func (s *server) HandleReInitCommit(c context.Context, r *rq[pb.HandleCommitRequest]) (*rs[pb.HandleReInitCommitResponse], error) {
	return call(c, r, s.handleReInitCommit)
}
func (s *server) ReInitWelcome(c context.Context, r *rq[pb.ReInitWelcomeRequest]) (*rs[pb.CreateSubgroupResponse], error) {
	return call(c, r, s.reInitWelcome)
}
func (s *server) HandleReInitWelcome(c context.Context, r *rq[pb.HandleReInitWelcomeRequest]) (*rs[pb.JoinGroupResponse], error) {
	return call(c, r, s.handleReInitWelcome)
}
func (s *server) CreateBranch(c context.Context, r *rq[pb.CreateBranchRequest]) (*rs[pb.CreateSubgroupResponse], error) {
	return call(c, r, s.createBranch)
}
func (s *server) HandleBranch(c context.Context, r *rq[pb.HandleBranchRequest]) (*rs[pb.HandleBranchResponse], error) {
	return call(c, r, s.handleBranch)
}
func (s *server) NewMemberAddProposal(c context.Context, r *rq[pb.NewMemberAddProposalRequest]) (*rs[pb.NewMemberAddProposalResponse], error) {
	return call(c, r, s.newMemberAddProposal)
}
func (s *server) CreateExternalSigner(c context.Context, r *rq[pb.CreateExternalSignerRequest]) (*rs[pb.CreateExternalSignerResponse], error) {
	return call(c, r, s.createExternalSigner)
}
func (s *server) AddExternalSigner(c context.Context, r *rq[pb.AddExternalSignerRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.addExternalSigner)
}
func (s *server) ExternalSignerProposal(c context.Context, r *rq[pb.ExternalSignerProposalRequest]) (*rs[pb.ProposalResponse], error) {
	return call(c, r, s.externalSignerProposal)
}
func (s *server) Free(c context.Context, r *rq[pb.FreeRequest]) (*rs[pb.FreeResponse], error) {
	return call(c, r, s.free)
}

// supportedSuites are the RFC 9420 suites this client runs.
var supportedSuites = []uint32{1, 2, 3, 4, 5, 6, 7}

func (s *server) name(context.Context, *pb.NameRequest) (*pb.NameResponse, error) {
	return &pb.NameResponse{Name: "mlskit"}, nil
}

func (s *server) supportedCiphersuites(context.Context, *pb.SupportedCiphersuitesRequest) (*pb.SupportedCiphersuitesResponse, error) {
	return &pb.SupportedCiphersuitesResponse{Ciphersuites: supportedSuites}, nil
}

func (s *server) createGroup(ctx context.Context, r *pb.CreateGroupRequest) (*pb.CreateGroupResponse, error) {
	suite, err := suiteOf(r.CipherSuite)
	if err != nil {
		return nil, err
	}
	if len(r.GroupId) == 0 {
		return nil, errArg("empty group_id")
	}
	c, err := newClient(ctx, r.Identity, suite)
	if err != nil {
		return nil, err
	}
	g, err := c.CreateGroup(ctx, suite, mls.GroupConfig{JoinConfig: joinConfig(r.EncryptHandshake), GroupID: r.GroupId})
	if err != nil {
		return nil, err
	}
	id, err := s.newMember(c, g, r.EncryptHandshake)
	return &pb.CreateGroupResponse{StateId: id}, err
}

// keyPackage creates a client and a key package for it, and the private
// keys the response reports.
func keyPackage(ctx context.Context, suite mls.CipherSuite, identity []byte) (c *mls.Client, kp *mls.KeyPackage, initPriv, encPriv, sigPriv []byte, err error) {
	if c, err = newClient(ctx, identity, suite); err != nil {
		return
	}
	if kp, err = c.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{}); err != nil {
		return
	}
	if initPriv, encPriv, err = c.KeyPackagePrivateKeys(ctx, kp.Ref()); err != nil {
		return
	}
	cs, err := ciphersuite.Lookup(suite)
	if err != nil {
		return
	}
	sigPriv, err = cs.MarshalSigner(c.Signer())
	return
}

func (s *server) createKeyPackage(ctx context.Context, r *pb.CreateKeyPackageRequest) (*pb.CreateKeyPackageResponse, error) {
	suite, err := suiteOf(r.CipherSuite)
	if err != nil {
		return nil, err
	}
	c, kp, initPriv, encPriv, sigPriv, err := keyPackage(ctx, suite, r.Identity)
	if err != nil {
		return nil, err
	}
	b, err := kp.MarshalMessage()
	if err != nil {
		return nil, err
	}
	id, err := s.add(&transaction{client: c, kp: kp})
	return &pb.CreateKeyPackageResponse{TransactionId: id, KeyPackage: b, InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: sigPriv}, err
}

func (s *server) joinGroup(ctx context.Context, r *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	t, err := s.tx(r.TransactionId)
	if err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	w, err := parseMessage(r.Welcome, "welcome")
	if err != nil {
		return nil, err
	}
	sw, err := t.client.StageWelcome(ctx, w, mls.WelcomeOptions{JoinConfig: joinConfig(r.EncryptHandshake), RatchetTree: r.RatchetTree})
	if err != nil {
		return nil, err
	}
	g, err := sw.Join(ctx)
	if err != nil {
		return nil, err
	}
	id, err := s.newMember(t.client, g, r.EncryptHandshake)
	return &pb.JoinGroupResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, err
}

// publicView follows the group a GroupInfo (and maybe a separate ratchet
// tree) describes, without secrets: its members and extensions.
func publicView(ctx context.Context, gi *mls.Message, tree []byte) (*mls.PublicGroup, error) {
	return mls.NewPublicGroup(ctx, memory.New(), credential.AcceptAll, gi, mls.PublicGroupOptions{RatchetTree: tree})
}

func (s *server) externalJoin(ctx context.Context, r *pb.ExternalJoinRequest) (*pb.ExternalJoinResponse, error) {
	giMsg, err := parseMessage(r.GroupInfo, "group_info")
	if err != nil {
		return nil, err
	}
	gi, err := giMsg.GroupInfo()
	if err != nil {
		return nil, err
	}
	c, err := newClient(ctx, r.Identity, gi.CipherSuite())
	if err != nil {
		return nil, err
	}
	opts := mls.ExternalJoinOptions{JoinConfig: joinConfig(r.EncryptHandshake), RatchetTree: r.RatchetTree}
	for _, p := range r.Psks {
		if p == nil {
			return nil, errArg("empty PSK")
		}
		if err := c.StorePSK(ctx, p.PskId, p.PskSecret); err != nil {
			return nil, err
		}
		opts.ExternalPSKs = append(opts.ExternalPSKs, p.PskId)
	}
	if r.RemovePrior {
		pg, err := publicView(ctx, giMsg, r.RatchetTree)
		if err != nil {
			return nil, err
		}
		leaf, ok := leafOf(pg.Members(), c.Credential().Identity())
		if !ok {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("remove_prior: no member %q in the group", c.Credential().Identity()))
		}
		opts.RemoveLeaf = &leaf
	}
	g, res, err := c.JoinExternal(ctx, giMsg, opts)
	if err != nil {
		return nil, err
	}
	commit, err := marshal(res.Commit)
	if err != nil {
		return nil, err
	}
	id, err := s.newMember(c, g, r.EncryptHandshake)
	return &pb.ExternalJoinResponse{StateId: id, Commit: commit, EpochAuthenticator: g.EpochAuthenticator()}, err
}

func (s *server) groupInfo(_ context.Context, r *pb.GroupInfoRequest) (*pb.GroupInfoResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	gi, err := m.group.ExportGroupInfo(!r.ExternalTree)
	if err != nil {
		return nil, err
	}
	out := &pb.GroupInfoResponse{}
	if out.GroupInfo, err = gi.MarshalBinary(); err != nil {
		return nil, err
	}
	if r.ExternalTree {
		if out.RatchetTree, err = m.group.ExportRatchetTree(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *server) stateAuth(_ context.Context, r *pb.StateAuthRequest) (*pb.StateAuthResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return &pb.StateAuthResponse{StateAuthSecret: m.group.EpochAuthenticator()}, nil
}

func (s *server) export(_ context.Context, r *pb.ExportRequest) (*pb.ExportResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if r.KeyLength > 1<<16 {
		return nil, errArg("key_length %d", r.KeyLength)
	}
	b, err := m.group.ExportSecret(r.Label, r.Context, int(r.KeyLength))
	return &pb.ExportResponse{ExportedSecret: b}, err
}

func (s *server) protect(ctx context.Context, r *pb.ProtectRequest) (*pb.ProtectResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	msg, err := m.group.Seal(ctx, r.Plaintext, r.AuthenticatedData)
	if err != nil {
		return nil, err
	}
	b, err := msg.MarshalBinary()
	return &pb.ProtectResponse{Ciphertext: b}, err
}

func (s *server) unprotect(ctx context.Context, r *pb.UnprotectRequest) (*pb.UnprotectResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	msg, err := parseMessage(r.Ciphertext, "ciphertext")
	if err != nil {
		return nil, err
	}
	p, err := m.group.Process(ctx, msg)
	if err != nil {
		return nil, err
	}
	if p.Kind != mls.KindApplication {
		return nil, errArg("ciphertext is a %v message", p.Kind)
	}
	return &pb.UnprotectResponse{AuthenticatedData: p.AuthenticatedData, Plaintext: p.ApplicationData}, nil
}

func (s *server) storePSK(ctx context.Context, r *pb.StorePSKRequest) (*pb.StorePSKResponse, error) {
	var c *mls.Client
	if m, err := s.member(r.StateOrTransactionId); err == nil {
		c = m.client
		m.mu.Unlock()
	} else if t, err := s.tx(r.StateOrTransactionId); err == nil {
		c = t.client
		t.mu.Unlock()
	} else {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no state or transaction %d", r.StateOrTransactionId))
	}
	return &pb.StorePSKResponse{}, c.StorePSK(ctx, r.PskId, r.PskSecret)
}

func (s *server) addProposal(ctx context.Context, r *pb.AddProposalRequest) (*pb.ProposalResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	kp, err := mls.ParseKeyPackage(r.KeyPackage)
	if err != nil {
		return nil, err
	}
	msg, _, err := m.group.ProposeAdd(ctx, kp)
	return m.sent(msg, err)
}

func (s *server) updateProposal(ctx context.Context, r *pb.UpdateProposalRequest) (*pb.ProposalResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	msg, _, err := m.group.ProposeSelfUpdate(ctx)
	return m.sent(msg, err)
}

func (s *server) removeProposal(ctx context.Context, r *pb.RemoveProposalRequest) (*pb.ProposalResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	leaf, ok := leafOf(m.group.Members(), r.RemovedId)
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no member %q", r.RemovedId))
	}
	msg, _, err := m.group.ProposeRemove(ctx, leaf)
	return m.sent(msg, err)
}

func (s *server) externalPSKProposal(ctx context.Context, r *pb.ExternalPSKProposalRequest) (*pb.ProposalResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	msg, _, err := m.group.ProposePSK(ctx, r.PskId)
	return m.sent(msg, err)
}

func (s *server) resumptionPSKProposal(ctx context.Context, r *pb.ResumptionPSKProposalRequest) (*pb.ProposalResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	msg, _, err := m.group.ProposeResumptionPSK(ctx, r.EpochId)
	return m.sent(msg, err)
}

func (s *server) groupContextExtensionsProposal(ctx context.Context, r *pb.GroupContextExtensionsProposalRequest) (*pb.ProposalResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	exts, err := extensions(r.Extensions)
	if err != nil {
		return nil, err
	}
	msg, _, err := m.group.ProposeGroupContextExtensions(ctx, exts)
	return m.sent(msg, err)
}

func (s *server) commit(ctx context.Context, r *pb.CommitRequest) (*pb.CommitResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return m.commit(ctx, r)
}

func (s *server) handleCommit(ctx context.Context, r *pb.HandleCommitRequest) (*pb.HandleCommitResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if err := m.handleCommit(ctx, r.Proposal, r.Commit); err != nil {
		return nil, err
	}
	return &pb.HandleCommitResponse{StateId: r.StateId, EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}

func (s *server) handlePendingCommit(ctx context.Context, r *pb.HandlePendingCommitRequest) (*pb.HandleCommitResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if err := m.mergePending(ctx); err != nil {
		return nil, err
	}
	return &pb.HandleCommitResponse{StateId: r.StateId, EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}

func (s *server) reInitProposal(ctx context.Context, r *pb.ReInitProposalRequest) (*pb.ProposalResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	suite, err := suiteOf(r.CipherSuite)
	if err != nil {
		return nil, err
	}
	exts, err := extensions(r.Extensions)
	if err != nil {
		return nil, err
	}
	msg, _, err := m.group.ProposeReInit(ctx, r.GroupId, suite, exts)
	return m.sent(msg, err)
}

func (s *server) handlePendingReInitCommit(ctx context.Context, r *pb.HandlePendingCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if err := m.mergePending(ctx); err != nil {
		return nil, err
	}
	return s.prepareReInit(ctx, m)
}

func (s *server) handleReInitCommit(ctx context.Context, r *pb.HandleCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if err := m.handleCommit(ctx, r.Proposal, r.Commit); err != nil {
		return nil, err
	}
	return s.prepareReInit(ctx, m)
}

// subgroup finishes a new group whose first commit is pending (ReInit or
// branch): merge, register, answer.
func (s *server) subgroup(ctx context.Context, c *mls.Client, ng *mls.Group, res *mls.CommitResult, externalTree, encrypt bool) (*pb.CreateSubgroupResponse, error) {
	out := &pb.CreateSubgroupResponse{}
	var err error
	if externalTree {
		if out.RatchetTree, err = ng.PendingCommit().RatchetTree(); err != nil {
			return nil, err
		}
	}
	if err := ng.MergePendingCommit(ctx); err != nil {
		return nil, err
	}
	if out.Welcome, err = marshal(res.Welcome); err != nil {
		return nil, err
	}
	ng.SetRatchetTreeExtension(true)
	out.EpochAuthenticator = ng.EpochAuthenticator()
	out.StateId, err = s.newMember(c, ng, encrypt)
	return out, err
}

func keyPackages(in [][]byte) ([]*mls.KeyPackage, error) {
	kps := make([]*mls.KeyPackage, 0, len(in))
	for i, b := range in {
		kp, err := mls.ParseKeyPackage(b)
		if err != nil {
			return nil, fmt.Errorf("key package %d: %w", i, err)
		}
		kps = append(kps, kp)
	}
	return kps, nil
}

func (s *server) reInitWelcome(ctx context.Context, r *pb.ReInitWelcomeRequest) (*pb.CreateSubgroupResponse, error) {
	m, err := s.member(r.ReinitId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if m.reinitClient == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("state %d is not after a ReInit commit", r.ReinitId))
	}
	kps, err := keyPackages(r.KeyPackage)
	if err != nil {
		return nil, err
	}
	// ReInitGroup's first commit adds the members; force_path has no
	// effect there, as the RFC's creator commit (Section 11.2) needs none.
	jc := joinConfig(m.encrypt)
	jc.UseRatchetTreeExtension = !r.ExternalTree
	if err := m.dropSameID(ctx); err != nil {
		return nil, err
	}
	ng, res, err := m.group.ReInitGroup(ctx, m.reinitClient, mls.GroupConfig{JoinConfig: jc}, kps...)
	if err != nil {
		return nil, err
	}
	return s.subgroup(ctx, m.reinitClient, ng, res, r.ExternalTree, m.encrypt)
}

func (s *server) handleReInitWelcome(ctx context.Context, r *pb.HandleReInitWelcomeRequest) (*pb.JoinGroupResponse, error) {
	m, err := s.member(r.ReinitId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if m.reinitClient == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("state %d is not after a ReInit commit", r.ReinitId))
	}
	w, err := parseMessage(r.Welcome, "welcome")
	if err != nil {
		return nil, err
	}
	sw, err := m.reinitClient.StageWelcome(ctx, w, mls.WelcomeOptions{JoinConfig: joinConfig(m.encrypt), RatchetTree: r.RatchetTree})
	if err != nil {
		return nil, err
	}
	if err := m.dropSameID(ctx); err != nil {
		return nil, err
	}
	g, err := sw.Join(ctx)
	if err != nil {
		return nil, err
	}
	id, err := s.newMember(m.reinitClient, g, m.encrypt)
	return &pb.JoinGroupResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, err
}

func (s *server) createBranch(ctx context.Context, r *pb.CreateBranchRequest) (*pb.CreateSubgroupResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	kps, err := keyPackages(r.KeyPackages)
	if err != nil {
		return nil, err
	}
	exts, err := extensions(r.Extensions)
	if err != nil {
		return nil, err
	}
	jc := joinConfig(m.encrypt)
	jc.UseRatchetTreeExtension = !r.ExternalTree
	ng, res, err := m.group.Branch(ctx, m.client, r.GroupId, mls.GroupConfig{JoinConfig: jc, GroupContextExtensions: exts}, kps...)
	if err != nil {
		return nil, err
	}
	return s.subgroup(ctx, m.client, ng, res, r.ExternalTree, m.encrypt)
}

func (s *server) handleBranch(ctx context.Context, r *pb.HandleBranchRequest) (*pb.HandleBranchResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	t, err := s.tx(r.TransactionId)
	if err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	// The Welcome's branch PSK is in the store of the old group; the key
	// package is in the transaction's. Move the key package over, and
	// join as the key package's client on the old group's store.
	c, err := mls.NewClient(ctx, m.client.Store(), t.client.Credential(), t.client.Signer(), credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		return nil, err
	}
	initPriv, encPriv, err := t.client.KeyPackagePrivateKeys(ctx, t.kp.Ref())
	if err != nil {
		return nil, err
	}
	kpb, err := t.kp.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if _, err := c.ImportKeyPackage(ctx, kpb, initPriv, encPriv, false); err != nil {
		return nil, err
	}
	w, err := parseMessage(r.Welcome, "welcome")
	if err != nil {
		return nil, err
	}
	sw, err := c.StageWelcome(ctx, w, mls.WelcomeOptions{JoinConfig: joinConfig(m.encrypt), RatchetTree: r.RatchetTree})
	if err != nil {
		return nil, err
	}
	g, err := sw.Join(ctx)
	if err != nil {
		return nil, err
	}
	id, err := s.newMember(c, g, m.encrypt)
	return &pb.HandleBranchResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, err
}

func (s *server) newMemberAddProposal(ctx context.Context, r *pb.NewMemberAddProposalRequest) (*pb.NewMemberAddProposalResponse, error) {
	giMsg, err := parseMessage(r.GroupInfo, "group_info")
	if err != nil {
		return nil, err
	}
	gi, err := giMsg.GroupInfo()
	if err != nil {
		return nil, err
	}
	c, kp, initPriv, encPriv, sigPriv, err := keyPackage(ctx, gi.CipherSuite(), r.Identity)
	if err != nil {
		return nil, err
	}
	msg, err := mls.NewJoinProposal(kp, c.Signer(), giMsg)
	if err != nil {
		return nil, err
	}
	b, err := msg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	id, err := s.add(&transaction{client: c, kp: kp})
	return &pb.NewMemberAddProposalResponse{TransactionId: id, Proposal: b, InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: sigPriv}, err
}

func (s *server) createExternalSigner(_ context.Context, r *pb.CreateExternalSignerRequest) (*pb.CreateExternalSignerResponse, error) {
	suite, err := suiteOf(r.CipherSuite)
	if err != nil {
		return nil, err
	}
	cs, err := ciphersuite.Lookup(suite)
	if err != nil {
		return nil, errArg("%v", err)
	}
	sig, err := cs.GenerateSignatureKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := cs.SignaturePublicKey(sig)
	if err != nil {
		return nil, err
	}
	identity := r.Identity
	if len(identity) == 0 {
		identity = []byte("external signer")
	}
	e := &signer{suite: suite, signer: sig, cred: credential.NewBasic(identity), pub: pub}
	b, err := mls.MarshalExternalSender(mls.ExternalSender{SignatureKey: pub, Credential: e.cred})
	if err != nil {
		return nil, err
	}
	id, err := s.add(e)
	return &pb.CreateExternalSignerResponse{SignerId: id, ExternalSender: b}, err
}

// externalSendersType is the external_senders extension (RFC 9420,
// Section 17.3).
const externalSendersType = 5

func (s *server) addExternalSigner(ctx context.Context, r *pb.AddExternalSignerRequest) (*pb.ProposalResponse, error) {
	m, err := s.member(r.StateId)
	if err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	x, err := mls.ParseExternalSender(r.ExternalSender)
	if err != nil {
		return nil, err
	}
	exts := m.group.Extensions()
	var senders []mls.ExternalSender
	kept := exts[:0]
	for _, e := range exts {
		if e.Type == externalSendersType {
			if senders, err = mls.ParseExternalSenders(e.Data); err != nil {
				return nil, err
			}
			continue
		}
		kept = append(kept, e)
	}
	ext, err := mls.ExternalSendersExtension(append(senders, x))
	if err != nil {
		return nil, err
	}
	msg, _, err := m.group.ProposeGroupContextExtensions(ctx, append(kept, ext))
	return m.sent(msg, err)
}

func (s *server) externalSignerProposal(ctx context.Context, r *pb.ExternalSignerProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	e := s.signers[r.SignerId]
	s.mu.Unlock()
	if e == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no signer %d", r.SignerId))
	}
	d := r.Description
	if d == nil {
		return nil, errArg("no description")
	}
	giMsg, err := parseMessage(r.GroupInfo, "group_info")
	if err != nil {
		return nil, err
	}
	pg, err := publicView(ctx, giMsg, r.RatchetTree)
	if err != nil {
		return nil, err
	}
	// The runner does not learn the signer's index (AddExternalSigner
	// answers with a bare proposal), so find it in external_senders.
	index := r.SignerIndex
	for _, x := range pg.Extensions() {
		if x.Type != externalSendersType {
			continue
		}
		senders, err := mls.ParseExternalSenders(x.Data)
		if err != nil {
			return nil, err
		}
		for i, es := range senders {
			if bytes.Equal(es.SignatureKey, e.pub) {
				index = uint32(i)
			}
		}
	}
	var p mls.Proposal
	switch string(d.ProposalType) {
	case "add":
		kp, err := mls.ParseKeyPackage(d.KeyPackage)
		if err != nil {
			return nil, err
		}
		p = mls.AddProposal(kp)
	case "remove":
		leaf, ok := leafOf(pg.Members(), d.RemovedId)
		if !ok {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no member %q", d.RemovedId))
		}
		p = mls.RemoveProposal(leaf)
	case "externalPSK":
		p = mls.ExternalPSKProposal(d.PskId)
	case "resumptionPSK":
		p = mls.ResumptionPSKProposal(pg.GroupID(), d.EpochId)
	case "groupContextExtensions":
		exts, err := extensions(d.Extensions)
		if err != nil {
			return nil, err
		}
		p = mls.GroupContextExtensionsProposal(exts)
	case "reinit":
		exts, err := extensions(d.Extensions)
		if err != nil {
			return nil, err
		}
		suite, err := suiteOf(d.CipherSuite)
		if err != nil {
			return nil, err
		}
		p = mls.ReInitProposal(mls.ReInitParams{GroupID: d.GroupId, Version: 1, CipherSuite: suite, Extensions: exts})
	default:
		return nil, errArg("proposal type %q", d.ProposalType)
	}
	msg, err := mls.NewExternalProposal(pg.GroupID(), pg.Epoch(), pg.CipherSuite(), index, e.signer, p)
	if err != nil {
		return nil, err
	}
	b, err := msg.MarshalBinary()
	return &pb.ProposalResponse{Proposal: b}, err
}

func (s *server) free(_ context.Context, r *pb.FreeRequest) (*pb.FreeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, okm := s.members[r.StateId]
	_, okt := s.txs[r.StateId]
	_, oks := s.signers[r.StateId]
	if !okm && !okt && !oks {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such state"))
	}
	delete(s.members, r.StateId)
	delete(s.txs, r.StateId)
	delete(s.signers, r.StateId)
	return &pb.FreeResponse{}, nil
}

// dropSameID deletes the old group from the store when the ReInit keeps
// its group ID, so that the new group can take its place: a store holds
// one group per ID. The old group's state is no longer needed once the
// Welcome is staged (its resumption PSK is resolved then) or, for the
// welcomer, once ReInitGroup has the PSK from the handle in memory.
func (m *member) dropSameID(ctx context.Context) error {
	params, ok := m.group.ReInitParams()
	if !ok || !bytes.Equal(params.GroupID, m.group.GroupID()) {
		return nil
	}
	return m.reinitClient.DeleteGroup(ctx, params.GroupID)
}
