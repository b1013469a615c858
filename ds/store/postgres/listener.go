package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mlskit/mls/ds/store/internal/notify"
)

const (
	// listenApp is the application_name of the LISTEN connection.
	listenApp = "mlsd-listen"
	// keepalive is how often an idle LISTEN connection is checked.
	keepalive = 15 * time.Second
	// catchUpMargin covers transactions that began before the listener
	// last knew itself connected and committed after: their groups'
	// updated time (the transaction's start) is at most this much older.
	catchUpMargin = time.Minute
	// readyWait bounds how long Watch waits for the first LISTEN.
	readyWait  = 15 * time.Second
	maxBackoff = 5 * time.Second
)

// listener holds one dedicated connection LISTENing on channel and feeds
// the hub. When the connection fails it reconnects, with backoff, and then
// notifies every group appended to since it last knew itself connected (by
// the database's clock), so that no append is missed across the gap;
// notifications may then be spurious, which Watch allows.
type listener struct {
	cfg    *pgx.ConnConfig
	hub    *notify.Hub
	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{} // closed after the first LISTEN

	mu       sync.Mutex
	lastErr  error
	sessions int // connections that reached LISTEN
}

func newListener(cfg *pgx.ConnConfig, hub *notify.Hub) *listener {
	cfg = cfg.Copy()
	cfg.RuntimeParams["application_name"] = listenApp
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{cfg: cfg, hub: hub, cancel: cancel, done: make(chan struct{}), ready: make(chan struct{})}
	go l.run(ctx)
	return l
}

func (l *listener) stop() {
	l.cancel()
	<-l.done
}

func (l *listener) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	var since time.Time // the database's clock when last known listening
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		listened, err := l.session(ctx, &since)
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		l.lastErr = err
		l.mu.Unlock()
		if listened {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session runs one LISTEN connection until it fails; listened says whether
// it got as far as listening.
func (l *listener) session(ctx context.Context, since *time.Time) (listened bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	cancel()
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return false, err
	}
	now, err := dbNow(ctx, conn)
	if err != nil {
		return false, err
	}
	if !since.IsZero() {
		if err := l.catchUp(ctx, conn, since.Add(-catchUpMargin)); err != nil {
			return false, err
		}
	}
	*since = now
	l.mu.Lock()
	l.lastErr = nil
	if l.sessions == 0 {
		close(l.ready)
	}
	l.sessions++
	l.mu.Unlock()

	lastPing := time.Now()
	for {
		wctx, cancel := context.WithTimeout(ctx, keepalive)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		switch {
		case err == nil:
			if id, err := hex.DecodeString(n.Payload); err == nil {
				l.hub.Notify(id)
			}
		case pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded):
		default:
			return true, err
		}
		if time.Since(lastPing) >= keepalive {
			now, err := dbNow(ctx, conn)
			if err != nil {
				return true, err
			}
			*since, lastPing = now, time.Now()
		}
	}
}

func dbNow(ctx context.Context, conn *pgx.Conn) (time.Time, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var now time.Time
	err := conn.QueryRow(qctx, `SELECT clock_timestamp()`).Scan(&now)
	return now, err
}

// catchUp notifies every group appended to since from.
func (l *listener) catchUp(ctx context.Context, conn *pgx.Conn, from time.Time) error {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := conn.Query(qctx, `SELECT id FROM groups WHERE updated >= $1`, from)
	if err != nil {
		return err
	}
	var ids [][]byte
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		l.hub.Notify(id)
	}
	return nil
}

// Watch implements ds.Store. It registers fn and returns once this Store's
// listener is LISTENing: fn then sees every append committed afterwards,
// through any replica, called from a goroutine of its own, one call at a
// time, until ctx is done or the Store is closed. When the LISTEN
// connection fails, the listener reconnects and notifies every group
// appended to in the meantime (spurious notifications are possible). Watch
// fails when no LISTEN connection could be made within 15 seconds.
func (s *Store) Watch(ctx context.Context, fn func(groupID []byte)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return wrap("watch", notify.ErrClosed)
	}
	if s.listener == nil {
		s.listener = newListener(s.pool.Config().ConnConfig, s.hub)
	}
	l := s.listener
	s.mu.Unlock()

	wctx, cancel := context.WithCancel(ctx)
	if err := s.hub.Watch(wctx, fn); err != nil {
		cancel()
		return wrap("watch", err)
	}
	timer := time.NewTimer(readyWait)
	defer timer.Stop()
	select {
	case <-l.ready:
		context.AfterFunc(ctx, cancel) // release wctx with ctx
		return nil
	case <-ctx.Done():
		cancel()
		return wrap("watch", ctx.Err())
	case <-l.done: // the Store was closed
		cancel()
		return wrap("watch", notify.ErrClosed)
	case <-timer.C:
		cancel()
		err := l.err()
		if err == nil {
			err = errors.New("no connection yet")
		}
		return fmt.Errorf("ds/store/postgres: watch: not listening after %v: %w", readyWait, err)
	}
}
