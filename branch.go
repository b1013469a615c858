package mls

import (
	"context"
	"fmt"
	"io"

	"github.com/mlskit/mls/internal/message"
)

// Branch creates a subgroup of g (RFC 9420, Section 11.3): a new group
// with ID groupID, the same cipher suite, and the group context
// extensions of cfg, created by the client c (a client on the store that
// holds g, so that the members find g's state when they join), whose first
// commit adds the key packages kps (fresh key packages of some of g's
// members) and injects g's current resumption PSK with usage branch. The
// Welcome names that PSK: a joiner must hold g at the same epoch in the
// store it joins with, and StageWelcome checks that the new group starts
// at epoch 1 (Section 11.3). The new group is stored at epoch 0 with the
// commit pending: merge it with MergePendingCommit, then send the Welcome.
//
// Section 11.3 wants the new group's members to be a subset of g's: every
// key package's credential must present the identity of a member of g
// (ErrInvalidArgument otherwise), and the joiners check the same.
func (g *Group) Branch(ctx context.Context, c *Client, groupID []byte, cfg GroupConfig, kps ...*KeyPackage) (*Group, *CommitResult, error) {
	if ctx == nil || c == nil {
		return nil, nil, fmt.Errorf("%w: Branch needs a context and a client", ErrInvalidArgument)
	}
	if len(groupID) == 0 {
		return nil, nil, fmt.Errorf("%w: Branch needs a group ID", ErrInvalidArgument)
	}
	for _, kp := range kps {
		if kp == nil {
			return nil, nil, fmt.Errorf("%w: nil key package", ErrInvalidArgument)
		}
	}
	g.mu.Lock()
	if err := g.checkHandle(); err != nil {
		g.mu.Unlock()
		return nil, nil, err
	}
	if !g.active {
		g.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: Branch of an inactive group", ErrInactive)
	}
	st := g.st
	members := map[string]bool{}
	for _, m := range membersOf(st.Tree.View()) {
		members[string(m.Credential.Identity())] = true
	}
	for _, kp := range kps {
		if !members[string(kp.Credential().Identity())] {
			g.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: Branch: %s is not a member of the group (RFC 9420, Section 11.3)", ErrInvalidArgument, kp.Credential())
		}
	}
	suite := CipherSuite(st.Suite.ID())
	held := &heldPSK{
		id:     message.PreSharedKeyID{Type: message.PSKResumption, Usage: message.ResumptionBranch, PSKGroupID: clone(st.GC.GroupID), PSKEpoch: st.GC.Epoch},
		secret: st.keys.ResumptionPSK(),
	}
	g.mu.Unlock()
	held.id.Nonce = make([]byte, st.Suite.HashSize())
	if _, err := io.ReadFull(c.rand(), held.id.Nonce); err != nil {
		return nil, nil, err
	}
	cfg.GroupID = clone(groupID)
	ng, err := c.CreateGroup(ctx, suite, cfg)
	if err != nil {
		return nil, nil, err
	}
	res, err := ng.Commit(ctx, CommitOptions{Add: kps, reinitPSK: held})
	if err != nil {
		_ = c.DeleteGroup(ctx, ng.GroupID())
		return nil, nil, err
	}
	return ng, res, nil
}
