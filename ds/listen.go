package ds

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// NewHTTPServer returns an http.Server for h that speaks HTTP/1.1 and h2c
// (HTTP/2 without TLS, which gRPC clients use on a plain connection), with
// no write timeout so that Subscribe streams can last.
func NewHTTPServer(h http.Handler) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// Listen starts a Server over store on addr (for example "127.0.0.1:0")
// and returns its base URL ("http://127.0.0.1:PORT") and a function that
// stops it: Subscribe streams end, requests in flight get up to five
// seconds, then the Server closes. The server also stops when ctx ends.
// The store stays open; closing it is the caller's.
//
// This is how `mls demo` embeds mlsd; cmd/mlsd does the same with flags.
func Listen(ctx context.Context, addr string, store Store, opts Options) (url string, stop func() error, err error) {
	srv, err := NewServer(store, opts)
	if err != nil {
		return "", nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		srv.Close()
		return "", nil, err
	}
	hs := NewHTTPServer(srv.Handler())
	done := make(chan error, 1)
	go func() {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	stopped := make(chan struct{})
	var once sync.Once
	var stopErr error
	stopFn := func() error {
		once.Do(func() {
			defer close(stopped)
			stopErr = Shutdown(hs, srv, 5*time.Second)
			if err := <-done; err != nil && stopErr == nil {
				stopErr = err
			}
		})
		return stopErr
	}
	go func() {
		select {
		case <-ctx.Done():
			_ = stopFn()
		case <-stopped:
		}
	}()
	return "http://" + ln.Addr().String(), stopFn, nil
}

// Shutdown stops an http.Server serving srv gracefully: srv closes first,
// which ends Subscribe streams (they would hold Shutdown forever), then the
// HTTP server waits up to grace for other requests.
func Shutdown(hs *http.Server, srv *Server, grace time.Duration) error {
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return hs.Close()
	}
	return err
}
