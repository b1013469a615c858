// Command mls-interop is the client of the MLS working group's interop
// harness (github.com/mlswg/mls-implementations, interop/): a gRPC server
// implementing the MLSClient service of mls_client.proto on the public API
// of package mls. A test runner (the official test-runner, or `mls
// interop`) drives one or more of these processes through the scripts of
// the harness's configs.
//
// Usage:
//
//	mls-interop [-host 127.0.0.1] [-port 50001]
//
// It serves gRPC (and Connect and gRPC-Web) over unencrypted HTTP/2 on
// the loopback interface unless -host says otherwise. Every group state
// lives in its own storage/memory store; nothing is written to disk.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/mlskit/mls/proto/mlsclient/mlsclientconnect"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on (loopback by default)")
	port := flag.Int("port", 50001, "TCP port to listen on (0: any free port, printed on stderr)")
	flag.Parse()
	if err := run(*host, *port); err != nil {
		fmt.Fprintln(os.Stderr, "mls-interop:", err)
		os.Exit(1)
	}
}

func run(host string, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	// The runner reads this line to learn the port when it passes -port 0.
	fmt.Fprintf(os.Stderr, "mls-interop listening on %s\n", ln.Addr())
	srv := newHTTPServer(newServer())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPServer serves the MLSClient service over HTTP/1.1 and unencrypted
// HTTP/2 (h2c), which plain gRPC clients use.
func newHTTPServer(s *server) *http.Server {
	mux := http.NewServeMux()
	path, h := mlsclientconnect.NewMLSClientHandler(s)
	mux.Handle(path, h)
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: mux, Protocols: p, ReadHeaderTimeout: 10 * time.Second}
}
