// Command mlsd is the MLS delivery service (RFC 9750, Section 5) of package
// ds: a key package directory, one ordered log per group in which exactly
// one commit per epoch is accepted, Welcome mailboxes and GroupInfo for
// external joiners, over Connect RPC (gRPC, gRPC-Web and JSON on one port,
// HTTP/1.1 and h2c), with /healthz and /metrics.
//
//	mlsd [-addr 127.0.0.1:7420] [-db mlsd.db | -postgres DSN] [-server-name NAME] [-log-level info]
//	     [-rate R -burst B] [-max-message-size N] [-max-group-info-size N] [-max-tree-leaves N] [-session-ttl D]
//	mlsd bench ...
//
// With -db (the default) the state is one SQLite file; with -postgres,
// several mlsd replicas may serve one PostgreSQL database. mlsd prints
// "mlsd listening on http://HOST:PORT" once it accepts connections (so
// -addr 127.0.0.1:0 picks a free port), and stops gracefully on SIGINT or
// SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/store/postgres"
	"github.com/mlskit/mls/ds/store/sqlite"
)

// commands are the subcommands other than serving, by name (os.Args[1]).
// bench.go adds "bench".
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mlsd:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if cmd, ok := commands[args[0]]; ok {
			return cmd(ctx, args[1:], stdout, stderr)
		}
	}
	return serve(ctx, args, stdout, stderr)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mlsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7420", "listen address (host:port; port 0 picks a free one)")
	db := fs.String("db", "mlsd.db", "SQLite database file")
	pg := fs.String("postgres", "", "PostgreSQL DSN (instead of -db); several replicas may share one database")
	name := fs.String("server-name", "", "name clients bind their authentication signatures to (default: mlsd)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	rate := fs.Float64("rate", 0, "requests per second per client (0: default, negative: unlimited)")
	burst := fs.Int("burst", 0, "burst of requests per client (0: default)")
	maxMsg := fs.Int("max-message-size", 0, "largest MLS message accepted, bytes (0: 1 MiB)")
	maxGI := fs.Int("max-group-info-size", 0, "largest GroupInfo plus ratchet tree accepted, bytes (0: 8 MiB)")
	maxLeaves := fs.Uint("max-tree-leaves", 0, "largest group followed, in leaves (0: 65536)")
	sessionTTL := fs.Duration("session-ttl", 0, "lifetime of a bearer token (0: 24h)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *maxLeaves > 1<<30 {
		return fmt.Errorf("-max-tree-leaves %d: at most %d", *maxLeaves, 1<<30)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lv}))

	store, err := openStore(ctx, *db, *pg)
	if err != nil {
		return err
	}
	defer store.Close()

	url, stop, err := ds.Listen(ctx, *addr, store, ds.Options{
		ServerName: *name, Logger: logger, RatePerSecond: *rate, Burst: *burst, MaxMessageSize: *maxMsg,
		MaxGroupInfoSize: *maxGI, MaxTreeLeaves: uint32(*maxLeaves), SessionTTL: *sessionTTL,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mlsd listening on %s\n", url)
	logger.Info("mlsd started", "url", url, "backend", backendName(*pg))
	<-ctx.Done()
	logger.Info("mlsd stopping")
	start := time.Now()
	err = stop()
	logger.Info("mlsd stopped", "took", time.Since(start).String())
	return err
}

func backendName(pg string) string {
	if pg != "" {
		return "postgres"
	}
	return "sqlite"
}

// openStore opens the SQLite store, or the PostgreSQL one when dsn is set.
func openStore(ctx context.Context, db, dsn string) (ds.Store, error) {
	if dsn != "" {
		return postgres.Open(ctx, dsn)
	}
	return sqlite.Open(ctx, db)
}
