package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ds/dsclient"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/proto/mlsd/v1/mlsdv1connect"
)

// tokenRecorder remembers the bearer token a client sends, so that the
// test can send raw HTTP requests as that client.
type tokenRecorder struct {
	mu    sync.Mutex
	token string
}

func (r *tokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if a := req.Header.Get("Authorization"); a != "" {
		r.mu.Lock()
		r.token = a
		r.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (r *tokenRecorder) get() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.token
}

// groupSnapshot is what the service holds of a group: its epoch, last seq,
// GroupInfo and every entry of its log.
type groupSnapshot struct {
	info *mlsdv1.GetGroupInfoResponse
	log  []*mlsdv1.Envelope
}

func snapshot(t *testing.T, m *fmember, gid []byte) groupSnapshot {
	t.Helper()
	info, err := m.c.GroupInfo(t.Context(), gid)
	if err != nil {
		t.Fatalf("GetGroupInfo: %v", err)
	}
	return groupSnapshot{info: info, log: readLog(t, m.c, gid)}
}

func (s groupSnapshot) equal(o groupSnapshot) bool {
	if !proto.Equal(s.info, o.info) || len(s.log) != len(o.log) {
		return false
	}
	for i := range s.log {
		if !proto.Equal(s.log[i], o.log[i]) {
			return false
		}
	}
	return true
}

// Hostile input against a running mlsd (SQLite, messages up to 4 KiB):
// malformed, oversized, unauthenticated, forged-token, non-member and
// invalid posts are each refused with their typed error (the mlsd.v1.Error
// reason), the group's state at the service (epoch, last seq, GroupInfo,
// every log entry) is unchanged, and the process stays healthy and goes on
// serving the members.
func TestHostileInput(t *testing.T) {
	bin := buildBin(t, "mlsd")
	const maxMsg = 4096
	d := startMlsd(t, bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "mlsd.db"),
		"-rate", "-1", "-log-level", "error", "-max-message-size", fmt.Sprint(maxMsg))
	rec := new(tokenRecorder)
	alice := newFMember(t, d.url, "alice", dsclient.Options{HTTPClient: &http.Client{Transport: rec}})
	bob := newFMember(t, d.url, "bob", dsclient.Options{})
	mallory := newFMember(t, d.url, "mallory", dsclient.Options{})
	gid := []byte("hostile")
	makeGroup(t, string(gid), alice, bob)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// Some traffic, so that the log is not just the add.
	for i := range 3 {
		if _, err := bob.c.Send(ctx, bob.g, fmt.Appendf(nil, "hello %d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.c.Sync(ctx, alice.g, nil); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, alice, gid)
	epoch := alice.g.Epoch()

	// Mallory's own group under the same ID, at the same epoch: her
	// messages are well-formed, for the right group ID and epoch, signed,
	// and hers.
	mg, err := mallory.c.MLS().CreateGroup(ctx, mallory.c.Suite(), mls.GroupConfig{GroupID: gid})
	if err != nil {
		t.Fatal(err)
	}
	for mg.Epoch() < epoch {
		if _, err := mg.SelfUpdate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := mg.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	seal := func(g *mls.Group, text string) []byte {
		t.Helper()
		msg, err := g.Seal(ctx, []byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := msg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	malloryMsg := seal(mg, "from mallory")
	mres, err := mg.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	malloryCommit := commitRequest(t, mg, mres)
	// And her message and commit of the next epoch, ahead of the group.
	if err := mg.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := mg.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mg.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	malloryAhead := seal(mg, "from mallory, ahead")
	mres, err = mg.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	malloryAheadCommit := commitRequest(t, mg, mres)

	// A valid message of Alice's, used with missing and forged tokens; it
	// is never accepted, so Alice's ratchet just skips a generation.
	aliceMsg := seal(alice.g, "never posted")
	// A commit of Bob's, tampered with in the middle (its signature no
	// longer verifies).
	bres, err := bob.g.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tampered := commitRequest(t, bob.g, bres)
	tampered.Commit = bytes.Clone(tampered.Commit)
	tampered.Commit[len(tampered.Commit)/2] ^= 0x40
	// Bob's untampered commit with another member's GroupInfo: Alice's
	// group at the current epoch is not the epoch the commit creates.
	mismatched := commitRequest(t, bob.g, bres)
	gi, err := alice.g.ExportGroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	if mismatched.GroupInfo, err = gi.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	// An application message of another group of Alice's, posted to this
	// one.
	other, err := alice.c.MLS().CreateGroup(ctx, alice.c.Suite(), mls.GroupConfig{GroupID: []byte("elsewhere")})
	if err != nil {
		t.Fatal(err)
	}
	otherMsg := seal(other, "wrong group")

	anon := mlsdv1connect.NewDeliveryServiceClient(http.DefaultClient, d.url)
	forged := mlsdv1connect.NewDeliveryServiceClient(http.DefaultClient, d.url, connect.WithInterceptors(headerInterceptor{"Authorization", "Bearer " + strings.Repeat("ab", 32)}))
	postMsg := func(c mlsdv1connect.DeliveryServiceClient, msg []byte) error {
		_, err := c.PostMessage(ctx, connect.NewRequest(&mlsdv1.PostMessageRequest{GroupId: gid, Message: msg}))
		return err
	}
	postCommit := func(c mlsdv1connect.DeliveryServiceClient, req *mlsdv1.PostCommitRequest) error {
		_, err := c.PostCommit(ctx, connect.NewRequest(req))
		return err
	}
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16)
	for _, tc := range []struct {
		name string
		want mlsdv1.Error_Reason
		call func() error
	}{
		{"garbage message", mlsdv1.Error_REASON_MALFORMED, func() error { return postMsg(alice.c.RPC(), garbage) }},
		{"empty message", mlsdv1.Error_REASON_MALFORMED, func() error { return postMsg(alice.c.RPC(), nil) }},
		{"truncated message", mlsdv1.Error_REASON_MALFORMED, func() error { return postMsg(alice.c.RPC(), aliceMsg[:len(aliceMsg)/2]) }},
		{"garbage commit", mlsdv1.Error_REASON_MALFORMED, func() error {
			return postCommit(alice.c.RPC(), &mlsdv1.PostCommitRequest{GroupId: gid, Commit: garbage, GroupInfo: garbage})
		}},
		{"garbage proposal", mlsdv1.Error_REASON_MALFORMED, func() error {
			_, err := alice.c.RPC().PostProposal(ctx, connect.NewRequest(&mlsdv1.PostProposalRequest{GroupId: gid, Proposal: garbage}))
			return err
		}},
		{"oversized message", mlsdv1.Error_REASON_TOO_LARGE, func() error {
			return postMsg(alice.c.RPC(), append(bytes.Clone(aliceMsg), make([]byte, maxMsg)...))
		}},
		{"oversized commit", mlsdv1.Error_REASON_TOO_LARGE, func() error {
			return postCommit(alice.c.RPC(), &mlsdv1.PostCommitRequest{GroupId: gid, Commit: make([]byte, maxMsg+1), GroupInfo: garbage})
		}},
		{"no token", mlsdv1.Error_REASON_UNAUTHENTICATED, func() error { return postMsg(anon, aliceMsg) }},
		{"no token, read", mlsdv1.Error_REASON_UNAUTHENTICATED, func() error {
			_, err := anon.FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: gid}))
			return err
		}},
		{"forged token", mlsdv1.Error_REASON_UNAUTHENTICATED, func() error { return postMsg(forged, aliceMsg) }},
		{"forged token, commit", mlsdv1.Error_REASON_UNAUTHENTICATED, func() error { return postCommit(forged, mismatched) }},
		{"non-member message", mlsdv1.Error_REASON_NOT_MEMBER, func() error { return postMsg(mallory.c.RPC(), malloryMsg) }},
		{"non-member commit", mlsdv1.Error_REASON_NOT_MEMBER, func() error { return postCommit(mallory.c.RPC(), malloryCommit) }},
		{"non-member read", mlsdv1.Error_REASON_NOT_MEMBER, func() error {
			_, err := mallory.c.RPC().FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: gid}))
			return err
		}},
		{"non-member subscribe", mlsdv1.Error_REASON_NOT_MEMBER, func() error {
			s, err := mallory.c.RPC().Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: gid}))
			if err != nil {
				return err
			}
			defer s.Close()
			for s.Receive() {
				return fmt.Errorf("a non-member's stream delivered seq %d", s.Msg().Seq)
			}
			return s.Err()
		}},
		{"tampered commit", mlsdv1.Error_REASON_INVALID_MESSAGE, func() error { return postCommit(bob.c.RPC(), tampered) }},
		{"commit with another epoch's GroupInfo", mlsdv1.Error_REASON_INVALID_MESSAGE, func() error { return postCommit(bob.c.RPC(), mismatched) }},
		{"message of another group", mlsdv1.Error_REASON_INVALID_MESSAGE, func() error { return postMsg(alice.c.RPC(), otherMsg) }},
		{"application message posted as a commit", mlsdv1.Error_REASON_INVALID_MESSAGE, func() error {
			return postCommit(alice.c.RPC(), &mlsdv1.PostCommitRequest{GroupId: gid, Commit: aliceMsg, GroupInfo: mismatched.GroupInfo, RatchetTree: mismatched.RatchetTree})
		}},
	} {
		err := tc.call()
		if got := dsclient.Reason(err); got != tc.want {
			t.Errorf("%s: %v (reason %v), want reason %v", tc.name, err, got, tc.want)
		}
		if after := snapshot(t, alice, gid); !after.equal(before) {
			t.Fatalf("%s changed the group: epoch %d -> %d, last seq %d -> %d", tc.name, before.info.Epoch, after.info.Epoch, before.info.LastSeq, after.info.LastSeq)
		}
	}
	if err := bob.g.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}

	// A non-member's posts for another epoch than the group's: NOT_MEMBER,
	// which does not tell a non-member where the group is (RFC 9750,
	// Section 6.5: only members read a group).
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"non-member message of another epoch", func() error { return postMsg(mallory.c.RPC(), malloryAhead) }},
		{"non-member commit of another epoch", func() error { return postCommit(mallory.c.RPC(), malloryAheadCommit) }},
	} {
		err := tc.call()
		if got := dsclient.Reason(err); got != mlsdv1.Error_REASON_NOT_MEMBER {
			t.Errorf("%s: %v (reason %v), want NOT_MEMBER", tc.name, err, got)
		}
		if de := errDetail(err); de != nil && (de.CurrentEpoch != 0 || de.LastSeq != 0) {
			t.Errorf("%s: the refusal tells a non-member the group's epoch %d and last seq %d", tc.name, de.CurrentEpoch, de.LastSeq)
		}
		if after := snapshot(t, alice, gid); !after.equal(before) {
			t.Fatalf("%s changed the group", tc.name)
		}
	}

	// Raw HTTP: bodies that are not a request at all, with Alice's token.
	token := rec.get()
	if token == "" {
		t.Fatal("no token recorded")
	}
	path := d.url + mlsdv1connect.DeliveryServicePostMessageProcedure
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		code        string // the Connect error code
	}{
		{"not protobuf", "application/proto", garbage, "invalid_argument"},
		{"not JSON", "application/json", []byte(`{"groupId": `), "invalid_argument"},
		{"JSON of the wrong shape", "application/json", []byte(`{"groupId": 7, "message": [1,2]}`), "invalid_argument"},
		{"body beyond the read limit", "application/proto", bytes.Repeat([]byte{0x0a}, 17<<20), "resource_exhausted"},
	} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", tc.ctype)
		req.Header.Set("Authorization", token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		var ce struct{ Code string }
		if res.StatusCode == http.StatusOK || json.Unmarshal(body, &ce) != nil || ce.Code != tc.code {
			t.Errorf("%s: HTTP %d %q, want a Connect error %q", tc.name, res.StatusCode, body, tc.code)
		}
	}
	if after := snapshot(t, alice, gid); !after.equal(before) {
		t.Fatal("raw requests changed the group")
	}

	// Still healthy, still serving the members.
	if err := healthz(d.url); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, alice.g, []byte("still here"), nil); err != nil {
		t.Fatalf("Alice's message after the attacks: %v", err)
	}
	var got []string
	if _, err := bob.c.Sync(ctx, bob.g, func(ev dsclient.Event) error {
		if ev.Processed != nil && ev.Kind == mlsdv1.Kind_KIND_APPLICATION {
			got = append(got, string(ev.Processed.ApplicationData))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "still here" {
		t.Errorf("Bob read %q after the attacks, want [still here]", got)
	}
}

// headerInterceptor sets a header on every request.
type headerInterceptor struct{ key, value string }

func (h headerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set(h.key, h.value)
		return next(ctx, req)
	}
}

func (h headerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set(h.key, h.value)
		return conn
	}
}

func (h headerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
