package main

import (
	"bytes"
	"fmt"
	"slices"

	pb "github.com/mlskit/mls/proto/mlsclient"
	"github.com/mlskit/mls/proto/mlsclient/mlsclientconnect"
)

type cl = mlsclientconnect.MLSClientClient

// step runs one action of test-config.md (and the actions the official
// configs use beyond it: fullCommit, installExternalPSK, externalJoin,
// reinit, branch, newMemberAddProposal, addExternalSigner,
// externalSignerProposal) and checks the group state where it changes.
func (r *scriptRun) step(i int, s *scriptStep) error {
	out := r.out[i]
	switch s.Action {
	case "createGroup":
		r.groupID = randomBytes(16)
		resp, err := do(r, s.Actor, "CreateGroup", cl.CreateGroup, &pb.CreateGroupRequest{GroupId: r.groupID, CipherSuite: r.suite, EncryptHandshake: r.encrypt, Identity: []byte(s.Actor)})
		if err != nil {
			return err
		}
		r.state[s.Actor] = resp.StateId
		if len(s.Members) == 0 {
			return r.checkpoint(nil, s.Actor)
		}
		var byValue []*pb.ProposalDescription
		for _, m := range s.Members {
			kp, err := do(r, m, "CreateKeyPackage", cl.CreateKeyPackage, &pb.CreateKeyPackageRequest{CipherSuite: r.suite, Identity: []byte(m)})
			if err != nil {
				return err
			}
			r.tx[m] = kp.TransactionId
			byValue = append(byValue, &pb.ProposalDescription{ProposalType: []byte("add"), KeyPackage: kp.KeyPackage})
		}
		return r.fullCommit(s.Actor, &pb.CommitRequest{StateId: resp.StateId, ByValue: byValue}, nil, s.Members, out)

	case "createKeyPackage":
		resp, err := do(r, s.Actor, "CreateKeyPackage", cl.CreateKeyPackage, &pb.CreateKeyPackageRequest{CipherSuite: r.suite, Identity: []byte(s.Actor)})
		if err != nil {
			return err
		}
		r.tx[s.Actor] = resp.TransactionId
		out["key_package"] = resp.KeyPackage

	case "joinGroup":
		w, err := r.get(s.Welcome, "welcome")
		if err != nil {
			return err
		}
		resp, err := do(r, s.Actor, "JoinGroup", cl.JoinGroup, &pb.JoinGroupRequest{TransactionId: r.tx[s.Actor], Welcome: w, EncryptHandshake: r.encrypt, Identity: []byte(s.Actor), RatchetTree: r.out[s.Welcome]["ratchet_tree"]})
		if err != nil {
			return err
		}
		r.state[s.Actor] = resp.StateId
		return r.checkpoint(resp.EpochAuthenticator, s.Actor)

	case "installExternalPSK":
		id, secret := randomBytes(32), randomBytes(32)
		out["psk_id"], out["psk_secret"] = id, secret
		for _, c := range s.Clients {
			sid, ok := r.state[c]
			if !ok {
				sid = r.tx[c]
			}
			if _, err := do(r, c, "StorePSK", cl.StorePSK, &pb.StorePSKRequest{StateOrTransactionId: sid, PskId: id, PskSecret: secret}); err != nil {
				return err
			}
		}

	case "groupInfo":
		id, err := r.stateOf(s.Actor)
		if err != nil {
			return err
		}
		resp, err := do(r, s.Actor, "GroupInfo", cl.GroupInfo, &pb.GroupInfoRequest{StateId: id, ExternalTree: s.externalTree()})
		if err != nil {
			return err
		}
		out["group_info"], out["ratchet_tree"] = resp.GroupInfo, resp.RatchetTree

	case "externalJoin":
		id, err := r.stateOf(s.Actor)
		if err != nil {
			return err
		}
		gi, err := do(r, s.Actor, "GroupInfo", cl.GroupInfo, &pb.GroupInfoRequest{StateId: id, ExternalTree: s.externalTree()})
		if err != nil {
			return err
		}
		var psks []*pb.PreSharedKey
		for _, p := range s.PSKs {
			pid, err := r.get(p, "psk_id")
			if err != nil {
				return err
			}
			sec, err := r.get(p, "psk_secret")
			if err != nil {
				return err
			}
			psks = append(psks, &pb.PreSharedKey{PskId: pid, PskSecret: sec})
		}
		resp, err := do(r, s.Joiner, "ExternalJoin", cl.ExternalJoin, &pb.ExternalJoinRequest{GroupInfo: gi.GroupInfo, RatchetTree: gi.RatchetTree, EncryptHandshake: r.encrypt, Identity: []byte(s.Joiner), RemovePrior: s.RemovePrior, Psks: psks})
		if err != nil {
			return err
		}
		if old, ok := r.state[s.Joiner]; ok && s.RemovePrior {
			// The joiner's earlier state is gone from the group.
			if _, err := do(r, s.Joiner, "Free", cl.Free, &pb.FreeRequest{StateId: old}); err != nil {
				return err
			}
		}
		r.state[s.Joiner] = resp.StateId
		out["commit"] = resp.Commit
		members := append(slices.Clone(s.Members), s.Actor)
		if err := r.handle(members, nil, resp.Commit, resp.EpochAuthenticator); err != nil {
			return err
		}
		return r.checkpoint(resp.EpochAuthenticator, append(members, s.Joiner)...)

	case "addProposal", "updateProposal", "removeProposal", "externalPSKProposal", "resumptionPSKProposal", "groupContextExtensionsProposal":
		p, err := r.propose(s)
		if err != nil {
			return err
		}
		out["proposal"] = p

	case "fullCommit", "commit":
		id, err := r.stateOf(s.Actor)
		if err != nil {
			return err
		}
		req := &pb.CommitRequest{StateId: id, ForcePath: s.forcePath(), ExternalTree: s.externalTree()}
		for _, ix := range s.ByReference {
			p, err := r.get(ix, "proposal")
			if err != nil {
				return err
			}
			req.ByReference = append(req.ByReference, p)
		}
		for k := range s.ByValue {
			d, err := r.describe(&s.ByValue[k])
			if err != nil {
				return err
			}
			req.ByValue = append(req.ByValue, d)
		}
		if s.Action == "commit" {
			resp, err := do(r, s.Actor, "Commit", cl.Commit, req)
			if err != nil {
				return err
			}
			out["commit"], out["welcome"], out["ratchet_tree"] = resp.Commit, resp.Welcome, resp.RatchetTree
			return nil
		}
		return r.fullCommit(s.Actor, req, s.Members, s.Joiners, out)

	case "handleCommit":
		c, err := r.get(s.Commit, "commit")
		if err != nil {
			return err
		}
		var props [][]byte
		for _, ix := range s.ByReference {
			p, err := r.get(ix, "proposal")
			if err != nil {
				return err
			}
			props = append(props, p)
		}
		return r.handle([]string{s.Actor}, props, c, nil)

	case "handlePendingCommit":
		id, err := r.stateOf(s.Actor)
		if err != nil {
			return err
		}
		resp, err := do(r, s.Actor, "HandlePendingCommit", cl.HandlePendingCommit, &pb.HandlePendingCommitRequest{StateId: id})
		if err != nil {
			return err
		}
		r.state[s.Actor] = resp.StateId

	case "protect":
		id, err := r.stateOf(s.Actor)
		if err != nil {
			return err
		}
		resp, err := do(r, s.Actor, "Protect", cl.Protect, &pb.ProtectRequest{StateId: id, AuthenticatedData: []byte(s.AAD), Plaintext: []byte(s.Plaintext)})
		if err != nil {
			return err
		}
		out["ciphertext"], out["authenticated_data"], out["plaintext"] = resp.Ciphertext, []byte(s.AAD), []byte(s.Plaintext)

	case "unprotect":
		id, err := r.stateOf(s.Actor)
		if err != nil {
			return err
		}
		ct, err := r.get(s.Ciphertext, "ciphertext")
		if err != nil {
			return err
		}
		resp, err := do(r, s.Actor, "Unprotect", cl.Unprotect, &pb.UnprotectRequest{StateId: id, Ciphertext: ct})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.Plaintext, r.out[s.Ciphertext]["plaintext"]) || !bytes.Equal(resp.AuthenticatedData, r.out[s.Ciphertext]["authenticated_data"]) {
			return fmt.Errorf("unprotect gave plaintext %q and authenticated data %q, want %q and %q", resp.Plaintext, resp.AuthenticatedData, r.out[s.Ciphertext]["plaintext"], r.out[s.Ciphertext]["authenticated_data"])
		}

	case "reinit":
		return r.reinit(s)

	case "branch":
		return r.branch(s)

	case "newMemberAddProposal":
		id, err := r.stateOf(s.Actor)
		if err != nil {
			return err
		}
		gi, err := do(r, s.Actor, "GroupInfo", cl.GroupInfo, &pb.GroupInfoRequest{StateId: id})
		if err != nil {
			return err
		}
		resp, err := do(r, s.Joiner, "NewMemberAddProposal", cl.NewMemberAddProposal, &pb.NewMemberAddProposalRequest{GroupInfo: gi.GroupInfo, Identity: []byte(s.Joiner)})
		if err != nil {
			return err
		}
		r.tx[s.Joiner] = resp.TransactionId
		out["proposal"] = resp.Proposal

	case "addExternalSigner":
		id, err := r.stateOf(s.Actor)
		if err != nil {
			return err
		}
		es, err := do(r, s.Signer, "CreateExternalSigner", cl.CreateExternalSigner, &pb.CreateExternalSignerRequest{CipherSuite: r.suite, Identity: []byte(s.Signer)})
		if err != nil {
			return err
		}
		r.signer[s.Signer] = es.SignerId
		resp, err := do(r, s.Actor, "AddExternalSigner", cl.AddExternalSigner, &pb.AddExternalSignerRequest{StateId: id, ExternalSender: es.ExternalSender})
		if err != nil {
			return err
		}
		out["proposal"] = resp.Proposal

	case "externalSignerProposal":
		id, err := r.stateOf(s.Member)
		if err != nil {
			return err
		}
		if s.Description == nil {
			return fmt.Errorf("externalSignerProposal without description")
		}
		gi, err := do(r, s.Member, "GroupInfo", cl.GroupInfo, &pb.GroupInfoRequest{StateId: id, ExternalTree: true})
		if err != nil {
			return err
		}
		d, err := r.describe(s.Description)
		if err != nil {
			return err
		}
		resp, err := do(r, s.Actor, "ExternalSignerProposal", cl.ExternalSignerProposal, &pb.ExternalSignerProposalRequest{SignerId: r.signer[s.Actor], GroupInfo: gi.GroupInfo, RatchetTree: gi.RatchetTree, Description: d})
		if err != nil {
			return err
		}
		out["proposal"] = resp.Proposal

	default:
		return fmt.Errorf("unknown action %q", s.Action)
	}
	return nil
}

// propose runs one of the member proposal actions.
func (r *scriptRun) propose(s *scriptStep) ([]byte, error) {
	id, err := r.stateOf(s.Actor)
	if err != nil {
		return nil, err
	}
	var resp *pb.ProposalResponse
	switch s.Action {
	case "addProposal":
		kp, err := r.get(s.KeyPackage, "key_package")
		if err != nil {
			return nil, err
		}
		resp, err = do(r, s.Actor, "AddProposal", cl.AddProposal, &pb.AddProposalRequest{StateId: id, KeyPackage: kp})
		if err != nil {
			return nil, err
		}
	case "updateProposal":
		resp, err = do(r, s.Actor, "UpdateProposal", cl.UpdateProposal, &pb.UpdateProposalRequest{StateId: id})
	case "removeProposal":
		resp, err = do(r, s.Actor, "RemoveProposal", cl.RemoveProposal, &pb.RemoveProposalRequest{StateId: id, RemovedId: []byte(s.Removed)})
	case "externalPSKProposal":
		pid, err := r.get(s.PSKID, "psk_id")
		if err != nil {
			return nil, err
		}
		resp, err = do(r, s.Actor, "ExternalPSKProposal", cl.ExternalPSKProposal, &pb.ExternalPSKProposalRequest{StateId: id, PskId: pid})
		if err != nil {
			return nil, err
		}
	case "resumptionPSKProposal":
		resp, err = do(r, s.Actor, "ResumptionPSKProposal", cl.ResumptionPSKProposal, &pb.ResumptionPSKProposalRequest{StateId: id, EpochId: s.EpochID})
	case "groupContextExtensionsProposal":
		resp, err = do(r, s.Actor, "GroupContextExtensionsProposal", cl.GroupContextExtensionsProposal, &pb.GroupContextExtensionsProposalRequest{StateId: id, Extensions: exts(s.Extensions)})
	}
	if err != nil {
		return nil, err
	}
	return resp.Proposal, nil
}

// fullCommit: the committer commits and merges, the members handle the
// commit, the joiners join; then every one of them must agree.
func (r *scriptRun) fullCommit(committer string, req *pb.CommitRequest, members, joiners []string, out map[string][]byte) error {
	resp, err := do(r, committer, "Commit", cl.Commit, req)
	if err != nil {
		return err
	}
	out["commit"], out["welcome"] = resp.Commit, resp.Welcome
	if req.ExternalTree {
		out["ratchet_tree"] = resp.RatchetTree
	}
	hp, err := do(r, committer, "HandlePendingCommit", cl.HandlePendingCommit, &pb.HandlePendingCommitRequest{StateId: req.StateId})
	if err != nil {
		return err
	}
	r.state[committer] = hp.StateId
	if err := r.handle(members, req.ByReference, resp.Commit, hp.EpochAuthenticator); err != nil {
		return err
	}
	for _, j := range joiners {
		tx, ok := r.tx[j]
		if !ok {
			return fmt.Errorf("joiner %q has no key package", j)
		}
		jr := &pb.JoinGroupRequest{TransactionId: tx, Welcome: resp.Welcome, EncryptHandshake: r.encrypt, Identity: []byte(j)}
		if req.ExternalTree {
			jr.RatchetTree = resp.RatchetTree
		}
		j2, err := do(r, j, "JoinGroup", cl.JoinGroup, jr)
		if err != nil {
			return err
		}
		if !bytes.Equal(j2.EpochAuthenticator, hp.EpochAuthenticator) {
			return fmt.Errorf("joiner %s's epoch authenticator %x differs from the committer's %x", j, j2.EpochAuthenticator, hp.EpochAuthenticator)
		}
		r.state[j] = j2.StateId
	}
	all := append(append([]string{committer}, members...), joiners...)
	return r.checkpoint(hp.EpochAuthenticator, all...)
}

// handle has members process proposals and a commit; want, if set, is the
// epoch authenticator they must reach.
func (r *scriptRun) handle(members []string, proposals [][]byte, commit, want []byte) error {
	for _, m := range members {
		id, err := r.stateOf(m)
		if err != nil {
			return err
		}
		resp, err := do(r, m, "HandleCommit", cl.HandleCommit, &pb.HandleCommitRequest{StateId: id, Proposal: proposals, Commit: commit})
		if err != nil {
			return err
		}
		if want != nil && !bytes.Equal(resp.EpochAuthenticator, want) {
			return fmt.Errorf("member %s's epoch authenticator %x differs from the committer's %x", m, resp.EpochAuthenticator, want)
		}
		r.state[m] = resp.StateId
	}
	return nil
}

// reinit: a ReInit proposal (or an external one from an earlier step) is
// committed, every member handles it, the welcomer creates the new group
// and the others join it (RFC 9420, Section 11.2).
func (r *scriptRun) reinit(s *scriptStep) error {
	everyone := []string{}
	for _, a := range append([]string{s.Proposer, s.Committer, s.Welcomer}, s.Members...) {
		if a != "" && !slices.Contains(everyone, a) {
			everyone = append(everyone, a)
		}
	}
	var prop []byte
	if s.Proposer != "" {
		newID := r.newGroupID(s.ChangeGroupID)
		if s.ChangeCipherSuite {
			if err := r.changeSuite(); err != nil {
				return err
			}
		}
		id, err := r.stateOf(s.Proposer)
		if err != nil {
			return err
		}
		resp, err := do(r, s.Proposer, "ReInitProposal", cl.ReInitProposal, &pb.ReInitProposalRequest{StateId: id, CipherSuite: r.suite, GroupId: newID, Extensions: exts(s.Extensions)})
		if err != nil {
			return err
		}
		prop = resp.Proposal
	} else {
		var err error
		if prop, err = r.get(s.ExternalReInit, "proposal"); err != nil {
			return err
		}
	}
	cid, err := r.stateOf(s.Committer)
	if err != nil {
		return err
	}
	cr, err := do(r, s.Committer, "ReInitCommit", cl.ReInitCommit, &pb.CommitRequest{StateId: cid, ByReference: [][]byte{prop}})
	if err != nil {
		return err
	}
	hp, err := do(r, s.Committer, "HandlePendingReInitCommit", cl.HandlePendingReInitCommit, &pb.HandlePendingCommitRequest{StateId: cid})
	if err != nil {
		return err
	}
	reinitID := map[string]uint32{s.Committer: hp.ReinitId}
	kps := map[string][]byte{s.Committer: hp.KeyPackage}
	for _, m := range everyone {
		if m == s.Committer {
			continue
		}
		id, err := r.stateOf(m)
		if err != nil {
			return err
		}
		h, err := do(r, m, "HandleReInitCommit", cl.HandleReInitCommit, &pb.HandleCommitRequest{StateId: id, Proposal: [][]byte{prop}, Commit: cr.Commit})
		if err != nil {
			return err
		}
		if !bytes.Equal(h.EpochAuthenticator, hp.EpochAuthenticator) {
			return fmt.Errorf("member %s's epoch authenticator %x differs from the committer's %x", m, h.EpochAuthenticator, hp.EpochAuthenticator)
		}
		reinitID[m], kps[m] = h.ReinitId, h.KeyPackage
	}
	if err := r.checkpoint(hp.EpochAuthenticator, everyone...); err != nil {
		return err
	}
	var list [][]byte
	for _, m := range everyone {
		if m != s.Welcomer {
			list = append(list, kps[m])
		}
	}
	w, err := do(r, s.Welcomer, "ReInitWelcome", cl.ReInitWelcome, &pb.ReInitWelcomeRequest{ReinitId: reinitID[s.Welcomer], KeyPackage: list, ForcePath: s.forcePath(), ExternalTree: s.externalTree()})
	if err != nil {
		return err
	}
	newState := map[string]uint32{s.Welcomer: w.StateId}
	for _, m := range everyone {
		if m == s.Welcomer {
			continue
		}
		var tree []byte
		if s.externalTree() {
			tree = w.RatchetTree
		}
		j, err := do(r, m, "HandleReInitWelcome", cl.HandleReInitWelcome, &pb.HandleReInitWelcomeRequest{ReinitId: reinitID[m], Welcome: w.Welcome, RatchetTree: tree})
		if err != nil {
			return err
		}
		if !bytes.Equal(j.EpochAuthenticator, w.EpochAuthenticator) {
			return fmt.Errorf("member %s's epoch authenticator %x in the new group differs from the welcomer's %x", m, j.EpochAuthenticator, w.EpochAuthenticator)
		}
		newState[m] = j.StateId
	}
	// The old states stay with the client until the script's end (Free).
	for m, id := range newState {
		if old, ok := r.state[m]; ok {
			r.cur.Actor = m
			if _, err := do(r, m, "Free", cl.Free, &pb.FreeRequest{StateId: old}); err != nil {
				return err
			}
		}
		r.state[m] = id
	}
	return r.checkpoint(w.EpochAuthenticator, everyone...)
}

// branch: the actor creates a subgroup of itself and members (RFC 9420,
// Section 11.3) from fresh key packages; the members join it.
func (r *scriptRun) branch(s *scriptStep) error {
	tx := map[string]uint32{}
	var kps [][]byte
	for _, m := range s.Members {
		kp, err := do(r, m, "CreateKeyPackage", cl.CreateKeyPackage, &pb.CreateKeyPackageRequest{CipherSuite: r.suite, Identity: []byte(m)})
		if err != nil {
			return err
		}
		tx[m] = kp.TransactionId
		kps = append(kps, kp.KeyPackage)
	}
	id, err := r.stateOf(s.Actor)
	if err != nil {
		return err
	}
	b, err := do(r, s.Actor, "CreateBranch", cl.CreateBranch, &pb.CreateBranchRequest{StateId: id, GroupId: randomBytes(16), Extensions: exts(s.Extensions), KeyPackages: kps, ForcePath: s.forcePath(), ExternalTree: s.externalTree()})
	if err != nil {
		return err
	}
	newState := map[string]uint32{s.Actor: b.StateId}
	for _, m := range s.Members {
		mid, err := r.stateOf(m)
		if err != nil {
			return err
		}
		var tree []byte
		if s.externalTree() {
			tree = b.RatchetTree
		}
		h, err := do(r, m, "HandleBranch", cl.HandleBranch, &pb.HandleBranchRequest{StateId: mid, TransactionId: tx[m], Welcome: b.Welcome, RatchetTree: tree})
		if err != nil {
			return err
		}
		if !bytes.Equal(h.EpochAuthenticator, b.EpochAuthenticator) {
			return fmt.Errorf("member %s's epoch authenticator %x in the branch differs from the creator's %x", m, h.EpochAuthenticator, b.EpochAuthenticator)
		}
		newState[m] = h.StateId
	}
	// The old group goes on: both must still agree.
	old := append([]string{s.Actor}, s.Members...)
	if err := r.checkpoint(nil, old...); err != nil {
		return err
	}
	for m, id := range newState {
		if prev, ok := r.state[m]; ok {
			if _, err := do(r, m, "Free", cl.Free, &pb.FreeRequest{StateId: prev}); err != nil {
				return err
			}
		}
		r.state[m] = id
	}
	return r.checkpoint(b.EpochAuthenticator, old...)
}
