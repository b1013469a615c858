package main

import (
	"context"
	"errors"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/mlskit/mls/proto/mlsclient"
)

// TestBadRequests: malformed or unknown inputs get a status error with a
// message and the server keeps serving.
func TestBadRequests(t *testing.T) {
	s := newServer()
	ctx := context.Background()
	codeOf := func(err error) connect.Code {
		var ce *connect.Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a status", err)
		}
		if ce.Message() == "" {
			t.Fatal("status without a message")
		}
		return ce.Code()
	}
	if _, err := s.CreateGroup(ctx, connect.NewRequest(&pb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 0x9999})); codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad suite: %v", err)
	}
	if _, err := s.JoinGroup(ctx, connect.NewRequest(&pb.JoinGroupRequest{TransactionId: 42, Welcome: []byte{1}})); codeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown transaction: %v", err)
	}
	if _, err := s.ExternalJoin(ctx, connect.NewRequest(&pb.ExternalJoinRequest{GroupInfo: []byte{0, 1, 0, 4, 9}})); codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("garbage group info: %v", err)
	}
	if _, err := s.Free(ctx, connect.NewRequest(&pb.FreeRequest{StateId: 7})); codeOf(err) != connect.CodeNotFound {
		t.Fatalf("free unknown: %v", err)
	}
	g, err := s.CreateGroup(ctx, connect.NewRequest(&pb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 1, Identity: []byte("a")}))
	if err != nil {
		t.Fatal(err)
	}
	id := g.Msg.StateId
	if _, err := s.HandleCommit(ctx, connect.NewRequest(&pb.HandleCommitRequest{StateId: id, Commit: []byte("junk")})); codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("junk commit: %v", err)
	}
	if _, err := s.HandlePendingReInitCommit(ctx, connect.NewRequest(&pb.HandlePendingCommitRequest{StateId: id})); err == nil {
		t.Fatal("no pending commit: accepted")
	}
	if _, err := s.ReInitWelcome(ctx, connect.NewRequest(&pb.ReInitWelcomeRequest{ReinitId: id})); codeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("reinit welcome without reinit: %v", err)
	}
	// The state still works.
	if _, err := s.StateAuth(ctx, connect.NewRequest(&pb.StateAuthRequest{StateId: id})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Free(ctx, connect.NewRequest(&pb.FreeRequest{StateId: id})); err != nil {
		t.Fatal(err)
	}
}
