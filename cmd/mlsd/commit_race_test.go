package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ds/dsclient"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// A member commits while the others send (RFC 9750, Section 5: the log
// orders them). Messages of the old epoch that the log holds before the
// commit must still be read by the committer and the others: Bob rotates
// his keys again and again while Alice sends, and Bob and Carol each read
// every one of Alice's messages once.
func TestCommitWhileSending(t *testing.T) {
	d := startMlsd(t, buildBin(t, "mlsd"), "-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "mlsd.db"), "-rate", "-1", "-log-level", "warn")
	alice := newFMember(t, d.url, "alice", dsclient.Options{})
	bob := newFMember(t, d.url, "bob", dsclient.Options{})
	carol := newFMember(t, d.url, "carol", dsclient.Options{})
	gid := []byte("commit-while-sending")
	makeGroup(t, string(gid), alice, bob, carol)
	n, commits := 60, 10
	if testing.Short() {
		n, commits = 30, 5
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	type reader struct {
		mu         sync.Mutex
		got        map[string]int
		unreadable []error
	}
	readers := map[string]*reader{}
	handler := func(r *reader) dsclient.Handler {
		return func(ev dsclient.Event) error {
			if ev.Kind != mlsdv1.Kind_KIND_APPLICATION {
				return nil
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if ev.Err != nil {
				r.unreadable = append(r.unreadable, fmt.Errorf("seq %d (epoch %d): %w", ev.Seq, ev.Epoch, ev.Err))
				return nil
			}
			r.got[string(ev.Processed.ApplicationData)]++
			return nil
		}
	}
	subCtx, stopSubs := context.WithCancel(ctx)
	var subs sync.WaitGroup
	for _, m := range []*fmember{bob, carol} {
		r := &reader{got: map[string]int{}}
		readers[m.name] = r
		subs.Add(1)
		go func() {
			defer subs.Done()
			m.c.Subscribe(subCtx, m.g, handler(r))
		}()
	}
	defer func() {
		stopSubs()
		subs.Wait()
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range n {
			if _, err := alice.c.Send(ctx, alice.g, fmt.Appendf(nil, "a-%03d", i), nil); err != nil {
				errs <- fmt.Errorf("Alice's message %d: %w", i, err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range commits {
			if _, err := bob.c.Commit(ctx, bob.g, (*mls.Group).SelfUpdate, handler(readers["bob"])); err != nil {
				errs <- fmt.Errorf("Bob's commit %d: %w", i, err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Everyone reads to the end of the log.
	want := uint64(1 + commits)
	deadline := time.After(30 * time.Second)
	for {
		if _, err := alice.c.Sync(ctx, alice.g, nil); err != nil {
			t.Fatal(err)
		}
		done := alice.g.Epoch() == want
		for _, m := range []*fmember{bob, carol} {
			cur, err := m.c.Cursor(ctx, gid)
			done = done && err == nil && m.g.Epoch() == want && cur == uint64(len(readLog(t, alice.c, gid)))
		}
		if done {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("not at epoch %d at the log's end within 30 s: Alice %d, Bob %d, Carol %d", want, alice.g.Epoch(), bob.g.Epoch(), carol.g.Epoch())
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopSubs()
	subs.Wait()

	for _, name := range []string{"bob", "carol"} {
		r := readers[name]
		missing := 0
		for i := range n {
			switch c := r.got[fmt.Sprintf("a-%03d", i)]; {
			case c == 0:
				missing++
			case c > 1:
				t.Errorf("%s read Alice's message %d %d times", name, i, c)
			}
		}
		if missing == 0 && len(r.unreadable) == 0 {
			continue
		}
		t.Errorf("%s: %d of Alice's %d messages missing; unreadable: %v", name, missing, n, r.unreadable)
	}
}
