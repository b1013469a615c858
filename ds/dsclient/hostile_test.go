package dsclient

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ds"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// A client does not trust the delivery service with anything MLS
// authenticates itself. These tests put a tampering proxy between a client
// and a real mlsd: it rewrites one answer, and the client must refuse it
// with a clear error and leave its state as it was.

// tamperer is a reverse proxy to mlsd that rewrites the next answer of one
// procedure.
type tamperer struct {
	mu   sync.Mutex
	rule map[string]func(proto.Message) // by procedure name, used once
}

func (tp *tamperer) once(procedure string, f func(proto.Message)) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.rule[procedure] = f
}

func startTamperer(t *testing.T, target string) (string, *tamperer) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tp := &tamperer{rule: map[string]func(proto.Message){}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(res *http.Response) error {
		name := res.Request.URL.Path[strings.LastIndex(res.Request.URL.Path, "/")+1:]
		tp.mu.Lock()
		f := tp.rule[name]
		delete(tp.rule, name)
		tp.mu.Unlock()
		if f == nil || res.StatusCode != http.StatusOK {
			return nil
		}
		var msg proto.Message
		switch name {
		case "FetchKeyPackage":
			msg = new(mlsdv1.FetchKeyPackageResponse)
		case "FetchMessages":
			msg = new(mlsdv1.FetchMessagesResponse)
		default:
			return nil
		}
		var body io.Reader = res.Body
		if res.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(res.Body)
			if err != nil {
				return err
			}
			body = zr
			res.Header.Del("Content-Encoding")
		}
		b, err := io.ReadAll(body)
		res.Body.Close()
		if err != nil {
			return err
		}
		if err := proto.Unmarshal(b, msg); err != nil {
			return err
		}
		f(msg)
		if b, err = proto.Marshal(msg); err != nil {
			return err
		}
		res.Body = io.NopCloser(bytes.NewReader(b))
		res.ContentLength = int64(len(b))
		res.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), tp
}

func TestHostileKeyPackage(t *testing.T) {
	url := startServer(t, ds.Options{})
	proxy, tp := startTamperer(t, url)
	ctx := context.Background()
	alice, bob, carol := newMember(t, proxy, "alice"), newMember(t, url, "bob"), newMember(t, url, "carol")
	if _, err := bob.c.PublishKeyPackages(ctx, 4, false); err != nil {
		t.Fatal(err)
	}
	carolKPs, err := carol.c.PublishKeyPackages(ctx, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	carolKP, err := carolKPs[0].MarshalMessage()
	if err != nil {
		t.Fatal(err)
	}
	// Carol's key package handed out as Bob's.
	tp.once("FetchKeyPackage", func(m proto.Message) { m.(*mlsdv1.FetchKeyPackageResponse).KeyPackage = carolKP })
	if _, err := alice.c.FetchKeyPackage(ctx, []byte("bob")); !errors.Is(err, ErrUnexpected) || !strings.Contains(err.Error(), `got one of "carol"`) {
		t.Errorf("another identity's key package: %v, want ErrUnexpected naming carol", err)
	}
	// Bob's key package with its signature broken (one byte of the end).
	tp.once("FetchKeyPackage", func(m proto.Message) {
		kp := m.(*mlsdv1.FetchKeyPackageResponse).KeyPackage
		kp[len(kp)-1] ^= 1
	})
	if _, err := alice.c.FetchKeyPackage(ctx, []byte("bob")); err == nil || !errors.Is(err, mls.ErrValidation) && !errors.Is(err, mls.ErrMalformed) {
		t.Errorf("a key package with a broken signature: %v, want a validation error", err)
	}
	// Not a key package at all.
	tp.once("FetchKeyPackage", func(m proto.Message) { m.(*mlsdv1.FetchKeyPackageResponse).KeyPackage = []byte{0, 1, 0, 5} })
	if _, err := alice.c.FetchKeyPackage(ctx, []byte("bob")); !errors.Is(err, mls.ErrMalformed) {
		t.Errorf("garbage: %v, want ErrMalformed", err)
	}
	// The honest answer still works.
	kp, err := alice.c.FetchKeyPackage(ctx, []byte("bob"))
	if err != nil || string(kp.Credential().Identity()) != "bob" {
		t.Errorf("honest fetch: %v", err)
	}
}

// TestHostileLog: tampered log pages. A commit the member cannot apply
// stops the reading with the cursor and the group unchanged; an
// application message it cannot read is reported and skipped.
func TestHostileLog(t *testing.T) {
	url := startServer(t, ds.Options{})
	ctx := context.Background()
	ms := group(t, url, "alice", "bob")
	alice, bob := ms[0], ms[1]
	proxy, tp := startTamperer(t, url)
	bobVia, err := Dial(ctx, proxy, bob.c.MLS(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Bob reads the log up to his Welcome's epoch; what follows is a
	// commit (the first entry of his next page) and a message.
	if _, err := bob.c.Sync(ctx, bob.g, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Commit(ctx, alice.g, (*mls.Group).SelfUpdate, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.Send(ctx, alice.g, []byte("after the commit"), nil); err != nil {
		t.Fatal(err)
	}
	cur0, _ := bob.c.Cursor(ctx, bob.g.GroupID())
	epoch0, auth0 := bob.g.Epoch(), bob.g.EpochAuthenticator()
	unchanged := func(what string) {
		t.Helper()
		if cur, _ := bob.c.Cursor(ctx, bob.g.GroupID()); cur != cur0 || bob.g.Epoch() != epoch0 || !bytes.Equal(bob.g.EpochAuthenticator(), auth0) {
			t.Errorf("%s: cursor %d, epoch %d; want them unchanged (%d, %d)", what, cur, bob.g.Epoch(), cur0, epoch0)
		}
	}
	for _, tc := range []struct {
		name   string
		tamper func(*mlsdv1.FetchMessagesResponse)
		want   error
	}{
		{"gap", func(r *mlsdv1.FetchMessagesResponse) { r.Messages = r.Messages[1:] }, ErrUnexpected},
		{"future epoch", func(r *mlsdv1.FetchMessagesResponse) { r.Messages[0].Epoch++ }, ErrUnexpected},
		{"past epoch", func(r *mlsdv1.FetchMessagesResponse) { r.Messages[0].Epoch-- }, ErrUnexpected},
		{"another entry's message", func(r *mlsdv1.FetchMessagesResponse) { r.Messages[0].Message = r.Messages[1].Message }, ErrUnexpected},
		{"commit garbage", func(r *mlsdv1.FetchMessagesResponse) { r.Messages[0].Message = []byte{1, 2, 3} }, mls.ErrMalformed},
		{"commit bit flip", func(r *mlsdv1.FetchMessagesResponse) {
			m := r.Messages[0].Message
			m[len(m)/2] ^= 0x40
		}, nil},
	} {
		tp.once("FetchMessages", func(m proto.Message) { tc.tamper(m.(*mlsdv1.FetchMessagesResponse)) })
		var evs []Event
		_, err := bobVia.Sync(ctx, bob.g, collect(&evs))
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: Sync = %v, want an error matching %v", tc.name, err, tc.want)
		}
		if len(evs) != 0 {
			t.Errorf("%s: the handler saw %d events", tc.name, len(evs))
		}
		unchanged(tc.name)
	}
	// An application message with a flipped ciphertext byte: reported,
	// skipped, and the reading goes on.
	if _, err := alice.c.Send(ctx, alice.g, []byte("last"), nil); err != nil {
		t.Fatal(err)
	}
	tp.once("FetchMessages", func(m proto.Message) {
		r := m.(*mlsdv1.FetchMessagesResponse)
		b := r.Messages[1].Message
		b[len(b)-3] ^= 1
	})
	var evs []Event
	if _, err := bobVia.Sync(ctx, bob.g, collect(&evs)); err != nil {
		t.Fatalf("Sync with a damaged application message: %v", err)
	}
	if len(evs) != 3 || evs[1].Err == nil || evs[1].Processed != nil || fmt.Sprint(texts(evs)) != "[alice: last]" {
		t.Errorf("events %+v; want the commit, an unreadable message, and %q", evs, "last")
	}
	agree(t, alice, bob)
}
