package ds

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/proto/mlsd/v1/mlsdv1connect"
)

// Defaults of Options.
const (
	DefaultMaxMessageSize   = 1 << 20 // 1 MiB
	DefaultMaxGroupInfoSize = 8 << 20 // 8 MiB: GroupInfo plus ratchet tree
	DefaultMaxTreeLeaves    = 1 << 16
	DefaultRatePerSecond    = 100
	DefaultBurst            = 200
	DefaultSessionTTL       = 24 * time.Hour
	DefaultChallengeTTL     = 2 * time.Minute
	DefaultPruneInterval    = time.Minute
	DefaultFetchLimit       = 256
	MaxFetchLimit           = 1024
	// DefaultSubscribePoll is how often a subscription reads the log even
	// without a notification, so that a lost notification (a PostgreSQL
	// connection that dropped) delays delivery and never loses it.
	DefaultSubscribePoll = 5 * time.Second
	// MaxKeyPackagesPerRequest bounds PublishKeyPackages.
	MaxKeyPackagesPerRequest = 256
	// maxSmallField bounds identities, credentials, keys, group IDs,
	// challenges and signatures.
	maxSmallField = 64 << 10
)

// Options configure a Server. The zero value is a usable configuration.
type Options struct {
	// ServerName is the name a client's challenge signature binds to
	// (AuthContent), so that a signature for one server is worthless at
	// another. Empty means "mlsd".
	ServerName string
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Validator is the Authentication Service (RFC 9420, Section 5.3.1)
	// that accepts or refuses the credentials of clients and of group
	// members; nil means credential.AcceptAll.
	Validator credential.Validator
	// MaxMessageSize bounds each MLS message a client posts (key package,
	// proposal, commit, application message, Welcome); zero means
	// DefaultMaxMessageSize.
	MaxMessageSize int
	// MaxGroupInfoSize bounds a GroupInfo and its ratchet tree together;
	// zero means DefaultMaxGroupInfoSize.
	MaxGroupInfoSize int
	// MaxTreeLeaves bounds the ratchet trees the server follows; zero means
	// DefaultMaxTreeLeaves.
	MaxTreeLeaves uint32
	// RatePerSecond and Burst are the token bucket of each authenticated
	// identity (and of each remote address for Challenge and
	// Authenticate); zero means the defaults, a negative RatePerSecond
	// turns rate limiting off.
	RatePerSecond float64
	Burst         int
	// SessionTTL is the lifetime of a bearer token, ChallengeTTL that of a
	// challenge; zero means the defaults.
	SessionTTL   time.Duration
	ChallengeTTL time.Duration
	// PruneInterval is how often expired key packages are deleted; zero
	// means DefaultPruneInterval, negative never.
	PruneInterval time.Duration
	// SubscribePoll: see DefaultSubscribePoll.
	SubscribePoll time.Duration
	// MaxCachedGroups bounds the groups whose PublicGroup the server keeps
	// in memory; zero means 4096.
	MaxCachedGroups int
	// Now is the clock; nil means time.Now. Rand is the source of
	// challenges and tokens; nil means crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Server is mlsd: the Connect service of proto/mlsd/v1 over a Store.
// It is safe for concurrent use; all durable state is in the Store, so
// several Servers (replicas) may share one PostgreSQL Store.
type Server struct {
	store   Store
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader
	limiter *limiter
	metrics *metrics
	groups  *groupCache
	hub     *hub
	handler http.Handler

	sessMu   sync.Mutex
	sessions map[string]Session // by token hash: a cache of Store sessions

	ctx    context.Context // canceled by Close: ends streams and workers
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewServer returns a Server over store and starts its workers (the Store's
// Watch for subscriptions, and key package pruning); Close stops them. The
// Server does not close the store.
func NewServer(store Store, opts Options) (*Server, error) {
	if store == nil {
		return nil, errors.New("ds: NewServer needs a Store")
	}
	if opts.ServerName == "" {
		opts.ServerName = "mlsd"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Validator == nil {
		opts.Validator = credential.AcceptAll
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.MaxGroupInfoSize <= 0 {
		opts.MaxGroupInfoSize = DefaultMaxGroupInfoSize
	}
	if opts.MaxTreeLeaves == 0 {
		opts.MaxTreeLeaves = DefaultMaxTreeLeaves
	}
	if opts.RatePerSecond == 0 {
		opts.RatePerSecond = DefaultRatePerSecond
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.ChallengeTTL <= 0 {
		opts.ChallengeTTL = DefaultChallengeTTL
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = DefaultPruneInterval
	}
	if opts.SubscribePoll <= 0 {
		opts.SubscribePoll = DefaultSubscribePoll
	}
	if opts.MaxCachedGroups <= 0 {
		opts.MaxCachedGroups = 4096
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	s := &Server{
		store:    store,
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		rand:     opts.Rand,
		metrics:  newMetrics(),
		groups:   newGroupCache(opts.MaxCachedGroups),
		sessions: make(map[string]Session),
	}
	if opts.RatePerSecond > 0 {
		s.limiter = newLimiter(opts.RatePerSecond, float64(opts.Burst), opts.Now)
	}
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mlsd_cached_groups", Help: "Groups whose PublicGroup this replica holds in memory.",
	}, func() float64 { return float64(s.groups.len()) }))
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub()
	s.handler = s.buildHandler()

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watch()
	}()
	if opts.PruneInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.pruneLoop()
		}()
	}
	return s, nil
}

// readMaxBytes is the largest request body Connect reads: a commit post
// carries a commit, a Welcome, and two GroupInfo-sized fields (the new
// GroupInfo with its tree, and the tree for the Welcome). Per-field limits
// are checked by the handlers, with Reason TOO_LARGE.
func (s *Server) readMaxBytes() int {
	return 2*s.opts.MaxMessageSize + 2*s.opts.MaxGroupInfoSize + 64<<10
}

func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	path, h := mlsdv1connect.NewDeliveryServiceHandler(s,
		connect.WithReadMaxBytes(s.readMaxBytes()),
		connect.WithInterceptors(&interceptor{s: s}),
		// A panic is a bug, never an answer to input: log it with the
		// stack, count it, and answer internal.
		connect.WithRecover(func(ctx context.Context, spec connect.Spec, _ http.Header, v any) error {
			s.log.ErrorContext(ctx, "panic in handler", "rpc", spec.Procedure, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.metrics.observe(rpcName(spec.Procedure), connect.NewError(connect.CodeInternal, nil), 0)
			return connect.NewError(connect.CodeInternal, errors.New("internal error"))
		}),
	)
	mux.Handle(path, h)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
}

// Handler returns the HTTP handler: the Connect service (gRPC, gRPC-Web
// and Connect's protocol, binary and JSON) under /mlsd.v1.DeliveryService/,
// GET /healthz and GET /metrics (Prometheus). Serve it over HTTP/1.1 and
// h2c (HTTP/2 without TLS, which gRPC needs), as Listen does, or behind TLS.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the workers and ends every Subscribe stream. It does not
// close the Store.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// healthz answers 200 when the Store answers (a read of a group that does
// not exist), 503 otherwise.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	_, err := s.store.GetGroup(ctx, []byte("mlsd healthz"))
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.WarnContext(ctx, "health check failed", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// pruneLoop deletes expired key packages (and challenges and sessions)
// every PruneInterval (RFC 9750, Section 5.1: a DS hands out only usable
// key material).
func (s *Server) pruneLoop() {
	t := time.NewTicker(s.opts.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.prune()
		}
	}
}

func (s *Server) prune() {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	n, err := s.store.PruneKeyPackages(ctx, s.now())
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("pruning key packages", "err", err)
		}
		return
	}
	if n > 0 {
		s.log.Info("pruned expired key packages", "count", n)
	}
	// Challenges and sessions, where the Store can delete them (both
	// backends can; it is not part of the Store interface).
	if p, ok := s.store.(interface {
		PruneExpired(context.Context, time.Time) (int, error)
	}); ok {
		n, err := p.PruneExpired(ctx, s.now())
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("pruning challenges and sessions", "err", err)
			}
			return
		}
		if n > 0 {
			s.log.Debug("pruned expired challenges and sessions", "count", n)
		}
	}
}
