package notify

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A watcher whose fn is stuck blocks neither Notify nor the other
// watchers, and gets the notifications that arrived meanwhile, coalesced,
// once it is free.
func TestSlowWatcher(t *testing.T) {
	h := New()
	defer h.Close()
	ctx := t.Context()
	release := make(chan struct{})
	slow := make(chan string, 100)
	if err := h.Watch(ctx, func(id []byte) {
		<-release
		slow <- string(id)
	}); err != nil {
		t.Fatal(err)
	}
	fast := make(chan string, 100)
	if err := h.Watch(ctx, func(id []byte) { fast <- string(id) }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			h.Notify([]byte("a"))
			h.Notify([]byte("b"))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked on a stuck watcher")
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case id := <-fast:
			got[id] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("fast watcher saw %v, want a and b", got)
		}
	}
	close(release)
	// The slow one sees a (the call that was stuck), then the rest,
	// coalesced: at most one more a and one b.
	seen := map[string]int{}
	timeout := time.After(10 * time.Second)
	for seen["b"] == 0 {
		select {
		case id := <-slow:
			seen[id]++
		case <-timeout:
			t.Fatalf("slow watcher saw %v, want b too", seen)
		}
	}
	if seen["a"] > 2 || seen["b"] > 1 {
		t.Errorf("slow watcher saw %v: notifications were not coalesced", seen)
	}
}

func TestCancelAndClose(t *testing.T) {
	h := New()
	ctx, cancel := context.WithCancel(t.Context())
	calls := make(chan []byte, 10)
	if err := h.Watch(ctx, func(id []byte) { calls <- id }); err != nil {
		t.Fatal(err)
	}
	h.Notify([]byte("x"))
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("no call")
	}
	cancel()
	for i := 0; h.Watchers() != 0; i++ {
		if i == 1000 {
			t.Fatal("cancelled watcher still registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.Notify([]byte("y"))
	if err := h.Watch(t.Context(), nil); err == nil {
		t.Error("Watch(nil fn) succeeded")
	}
	if err := h.Watch(ctx, func([]byte) {}); err == nil {
		t.Error("Watch with a done context succeeded")
	}
	h.Close()
	h.Close()
	if err := h.Watch(t.Context(), func([]byte) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close: err = %v, want ErrClosed", err)
	}
	select {
	case id := <-calls:
		t.Errorf("cancelled watcher was called with %q", id)
	default:
	}
}
