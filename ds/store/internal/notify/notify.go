package notify

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by Watch once the hub is closed.
var ErrClosed = errors.New("store is closed")

// Hub is a set of watchers. The zero value is not usable; use New.
type Hub struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
	done     chan struct{}
	closed   bool
}

type watcher struct {
	mu      sync.Mutex
	pending map[string]struct{}
	order   []string // pending IDs in arrival order
	wake    chan struct{}
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{watchers: make(map[*watcher]struct{}), done: make(chan struct{})}
}

// Watch registers fn and returns at once. fn is called, one call at a
// time, from a goroutine of the watcher's own, with each group ID notified
// after Watch returned, until ctx is done or the hub is closed.
// Notifications of the same group that arrive while fn runs are coalesced.
func (h *Hub) Watch(ctx context.Context, fn func(groupID []byte)) error {
	if fn == nil {
		return errors.New("nil watch function")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &watcher{pending: make(map[string]struct{}), wake: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	go func() {
		defer func() {
			h.mu.Lock()
			delete(h.watchers, w)
			h.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-h.done:
				return
			case <-w.wake:
			}
			w.mu.Lock()
			ids := w.order
			w.order = nil
			clear(w.pending)
			w.mu.Unlock()
			for _, id := range ids {
				if ctx.Err() != nil {
					return
				}
				fn([]byte(id))
			}
		}
	}()
	return nil
}

// Notify tells every watcher that groupID's log grew. It never blocks on a
// watcher.
func (h *Hub) Notify(groupID []byte) {
	id := string(groupID)
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.mu.Lock()
		if _, ok := w.pending[id]; !ok {
			w.pending[id] = struct{}{}
			w.order = append(w.order, id)
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Watchers returns how many watchers are registered.
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// Close stops every watcher; later Watch calls fail with ErrClosed. It does
// not wait for a running fn to return.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}
