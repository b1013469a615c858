package main

// mlsd bench: a load test of the delivery service (RFC 9750, Section 5)
// over loopback. It starts mlsd in this process (ds.Listen, one Server per
// replica), creates G groups of M members with dsclient, has every member
// follow its group's log (Subscribe), then has the members commit and send
// application messages, and reports messages per second, the delivery
// latency (send -> decrypted by a subscriber) and the commit latency.
//
//	mlsd bench [-backend sqlite|postgres] [-postgres DSN] [-replicas N]
//	           [-groups G] [-members M] [-messages K] [-commits C]
//	           [-size BYTES] [-duration D] [-drain D]
//
// On SQLite the database is a temporary file, removed afterwards. On
// PostgreSQL, -postgres names an existing database (bench does not start a
// server); every run uses fresh identities and group IDs, so runs on one
// database do not collide. With -replicas 2 each replica is a Server over
// its own connection pool to that database, and the members of every group
// are spread over the replicas, so that fan-out crosses replicas (LISTEN/
// NOTIFY).
//
// Everything is bounded: K messages per group, C commits per group, and the
// sending stops at -duration; delivery is awaited for at most -drain.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/dsclient"
	"github.com/mlskit/mls/ds/store/postgres"
	"github.com/mlskit/mls/ds/store/sqlite"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/storage/memory"
)

func init() { commands["bench"] = runBench }

// benchConfig is what one bench run does.
type benchConfig struct {
	Backend  string // "sqlite" or "postgres"
	DSN      string // PostgreSQL
	Replicas int
	Groups   int
	Members  int
	Messages int // application messages per group
	Commits  int // self-update commits per group, before the messages
	Size     int // bytes of each application message's plaintext
	// Rate is the messages per second all members send together, spread
	// evenly over them; zero means as fast as the service takes them
	// (each member sends its next message once the last one is accepted).
	Rate     float64
	Duration time.Duration
	Drain    time.Duration
	// Logger receives the servers' logs; nil discards them.
	Logger *slog.Logger
}

// Bounds of the flags.
const (
	benchMaxReplicas = 8
	benchMaxGroups   = 1000
	benchMaxMembers  = 500
	benchMaxMessages = 1_000_000
	benchMaxCommits  = 1000
	benchMinSize     = 32
	benchMaxSize     = 64 << 10
)

func (c *benchConfig) check() error {
	switch {
	case c.Backend != "sqlite" && c.Backend != "postgres":
		return fmt.Errorf("-backend %q: sqlite or postgres", c.Backend)
	case c.Backend == "postgres" && c.DSN == "":
		return errors.New("-backend postgres needs -postgres DSN (bench does not start a PostgreSQL server)")
	case c.Backend == "sqlite" && c.DSN != "":
		return errors.New("-postgres DSN given with -backend sqlite")
	case c.Replicas < 1 || c.Replicas > benchMaxReplicas:
		return fmt.Errorf("-replicas %d: 1 to %d", c.Replicas, benchMaxReplicas)
	case c.Backend == "sqlite" && c.Replicas != 1:
		return errors.New("-replicas: an SQLite database is served by one mlsd; use -backend postgres for replicas")
	case c.Groups < 1 || c.Groups > benchMaxGroups:
		return fmt.Errorf("-groups %d: 1 to %d", c.Groups, benchMaxGroups)
	case c.Members < 2 || c.Members > benchMaxMembers:
		return fmt.Errorf("-members %d: 2 to %d", c.Members, benchMaxMembers)
	case c.Messages < 0 || c.Messages > benchMaxMessages:
		return fmt.Errorf("-messages %d: 0 to %d per group", c.Messages, benchMaxMessages)
	case c.Commits < 0 || c.Commits > benchMaxCommits:
		return fmt.Errorf("-commits %d: 0 to %d per group", c.Commits, benchMaxCommits)
	case c.Size < benchMinSize || c.Size > benchMaxSize:
		return fmt.Errorf("-size %d: %d to %d bytes", c.Size, benchMinSize, benchMaxSize)
	case c.Rate < 0 || c.Rate > 1e6:
		return fmt.Errorf("-rate %v: 0 (unpaced) to 1e6 messages/s", c.Rate)
	case c.Duration <= 0 || c.Drain <= 0:
		return errors.New("-duration and -drain must be positive")
	}
	return nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mlsd bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c benchConfig
	fs.StringVar(&c.Backend, "backend", "sqlite", "store: sqlite (a temporary file) or postgres (needs -postgres)")
	fs.StringVar(&c.DSN, "postgres", "", "PostgreSQL DSN of an existing database (with -backend postgres)")
	fs.IntVar(&c.Replicas, "replicas", 1, "mlsd replicas on the one database (PostgreSQL only for more than 1)")
	fs.IntVar(&c.Groups, "groups", 10, "groups (G)")
	fs.IntVar(&c.Members, "members", 5, "members per group (M)")
	fs.IntVar(&c.Messages, "messages", 200, "application messages per group (K), sent by its members in turn")
	fs.IntVar(&c.Commits, "commits", 5, "self-update commits per group before the messages, for the commit latency")
	fs.IntVar(&c.Size, "size", 128, "plaintext bytes per application message")
	fs.Float64Var(&c.Rate, "rate", 0, "messages per second, all members together (0: each member sends as fast as the service accepts)")
	fs.DurationVar(&c.Duration, "duration", time.Minute, "stop sending after this long")
	fs.DurationVar(&c.Drain, "drain", 30*time.Second, "wait at most this long for the last deliveries (and for each phase's convergence)")
	level := fs.String("log-level", "error", "log level of the servers (to standard error)")
	if len(args) == 0 {
		// A run starts G*M clients and may last -duration plus -drain: it
		// takes at least one flag, so that it never starts by accident.
		fmt.Fprintln(stderr, "usage: mlsd bench [flags] (at least one flag, for example -groups 10 -members 5)")
		fs.PrintDefaults()
		return fmt.Errorf("bench: %w", flag.ErrHelp)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("bench: -log-level: %w", err)
	}
	c.Logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lv}))
	if c.Backend == "sqlite" && c.DSN != "" {
		c.Backend = "postgres" // -postgres alone means PostgreSQL
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	rep, err := runBenchConfig(ctx, c)
	if rep != nil {
		rep.print(stdout)
	}
	return err
}

// latencies are durations, summarized by percentile.
type latencies []time.Duration

// pct returns the p-th percentile (nearest rank), 0 when empty.
func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// benchReport is what a run measured.
type benchReport struct {
	Config benchConfig
	// Setup is the time to create the groups (key packages, add commit,
	// Welcomes) and start the subscriptions.
	Setup time.Duration
	// CommitLatency is, for each accepted commit, the time of
	// dsclient.Commit: catch up, create, post, merge.
	CommitLatency latencies
	CommitRetries int // attempts lost to another commit (none expected)
	// Sent counts the application messages the service accepted; SendErrors
	// those it did not.
	Sent, SendErrors int
	// Expected = Sent * (M-1): each message is for every other member.
	// Delivered counts distinct (message, receiver) pairs, Duplicated the
	// extra copies, Unreadable entries a member could not decrypt.
	Expected, Delivered, Duplicated, Unreadable int
	// SendTime runs from the first send to the last answer; DeliverTime
	// from the first send to the last delivery.
	SendTime, DeliverTime time.Duration
	// Latency is, per delivery, the time from just before the send to the
	// subscriber's handler (decrypted).
	Latency latencies
	// LoadBefore and LoadAfter are /proc/loadavg (empty where unreadable).
	LoadBefore, LoadAfter string
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

func perSecond(n int, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(n)/d.Seconds(), 'f', 1, 64)
}

func (r *benchReport) print(w io.Writer) {
	c := r.Config
	rate := "unpaced"
	if c.Rate > 0 {
		rate = strconv.FormatFloat(c.Rate, 'f', -1, 64) + "/s"
	}
	fmt.Fprintf(w, "mlsd bench: backend=%s replicas=%d groups=%d members=%d messages/group=%d commits/group=%d size=%d rate=%s\n",
		c.Backend, c.Replicas, c.Groups, c.Members, c.Messages, c.Commits, c.Size, rate)
	fmt.Fprintf(w, "load average before: %s\n", r.LoadBefore)
	fmt.Fprintf(w, "setup: %d groups of %d members in %s\n", c.Groups, c.Members, r.Setup.Round(time.Millisecond))
	fmt.Fprintf(w, "commits: %d accepted, %d lost races; latency p50 %s p99 %s max %s\n",
		len(r.CommitLatency), r.CommitRetries, ms(r.CommitLatency.pct(50)), ms(r.CommitLatency.pct(99)), ms(r.CommitLatency.pct(100)))
	fmt.Fprintf(w, "messages: sent %d (%d refused), delivered %d of %d, duplicated %d, unreadable %d\n",
		r.Sent, r.SendErrors, r.Delivered, r.Expected, r.Duplicated, r.Unreadable)
	fmt.Fprintf(w, "throughput: %s messages/s sent (%d in %s); %s deliveries/s (first send to last delivery, %s)\n",
		perSecond(r.Sent, r.SendTime), r.Sent, r.SendTime.Round(time.Millisecond), perSecond(r.Delivered, r.DeliverTime), r.DeliverTime.Round(time.Millisecond))
	fmt.Fprintf(w, "delivery latency: p50 %s p99 %s max %s\n", ms(r.Latency.pct(50)), ms(r.Latency.pct(99)), ms(r.Latency.pct(100)))
	fmt.Fprintf(w, "load average after: %s\n", r.LoadAfter)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// benchMember is one member of one group.
type benchMember struct {
	group, index int
	c            *dsclient.Client
	g            *mls.Group
}

// benchRun is the shared state of one run.
type benchRun struct {
	cfg   benchConfig
	start time.Time
	// sentAt[g][i] is when message i of group g was handed to Send, in
	// nanoseconds since start (0: not sent).
	sentAt [][]atomic.Int64

	mu         sync.Mutex
	seen       []map[[2]int]int // per receiver (group*M+index): message -> copies
	latency    latencies
	lastDeliv  time.Duration
	delivered  int
	duplicated int
	unreadable int
}

// runBenchConfig runs one bench. The report is returned with the error
// when the run got as far as measuring something.
func runBenchConfig(ctx context.Context, cfg benchConfig) (*benchReport, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rep := &benchReport{Config: cfg, LoadBefore: loadAvg()}
	cfg.Logger = nil
	rep.Config.Logger = nil

	// The stores and servers.
	var stores []ds.Store
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	if cfg.Backend == "sqlite" {
		dir, err := os.MkdirTemp("", "mlsd-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		s, err := sqlite.Open(ctx, filepath.Join(dir, "mlsd.db"))
		if err != nil {
			return nil, err
		}
		stores = append(stores, s)
	} else {
		for range cfg.Replicas {
			s, err := postgres.Open(ctx, cfg.DSN)
			if err != nil {
				return nil, err
			}
			stores = append(stores, s)
		}
	}
	sctx, stopServers := context.WithCancel(ctx)
	defer stopServers()
	var urls []string
	var stops []func() error
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	for _, s := range stores {
		url, stop, err := ds.Listen(sctx, "127.0.0.1:0", s, ds.Options{Logger: logger, RatePerSecond: -1})
		if err != nil {
			return nil, err
		}
		urls, stops = append(urls, url), append(stops, stop)
	}

	run := &benchRun{cfg: cfg, start: time.Now()}
	run.sentAt = make([][]atomic.Int64, cfg.Groups)
	for g := range run.sentAt {
		run.sentAt[g] = make([]atomic.Int64, cfg.Messages)
	}
	run.seen = make([]map[[2]int]int, cfg.Groups*cfg.Members)
	for i := range run.seen {
		run.seen[i] = map[[2]int]int{}
	}

	// Setup: the groups, in parallel.
	t0 := time.Now()
	var tag [4]byte
	rand.Read(tag[:])
	runID := hex.EncodeToString(tag[:])
	groups := make([][]*benchMember, cfg.Groups)
	if err := parallel(cfg.Groups, func(gi int) error {
		ms, err := setupGroup(ctx, cfg, urls, runID, gi)
		groups[gi] = ms
		return err
	}); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}

	// Every member follows its group's log.
	subCtx, stopSubs := context.WithCancel(ctx)
	var subs sync.WaitGroup
	subErrs := make(chan error, cfg.Groups*cfg.Members)
	defer func() {
		stopSubs()
		subs.Wait()
	}()
	for _, ms := range groups {
		for _, m := range ms {
			subs.Add(1)
			go func() {
				defer subs.Done()
				err := m.c.Subscribe(subCtx, m.g, run.handler(m))
				if subCtx.Err() == nil && err != nil {
					subErrs <- fmt.Errorf("group %d member %d: Subscribe: %w", m.group, m.index, err)
				}
			}()
		}
	}
	rep.Setup = time.Since(t0)

	// Commits: per group, C self-updates by the members in turn; then every
	// member must reach the last epoch (its subscription is live).
	var cmu sync.Mutex
	if err := parallel(cfg.Groups, func(gi int) error {
		ms := groups[gi]
		for r := range cfg.Commits {
			m := ms[r%len(ms)]
			t := time.Now()
			p, err := m.c.Commit(ctx, m.g, (*mls.Group).SelfUpdate, nil)
			if err != nil {
				return fmt.Errorf("group %d commit %d: %w", gi, r, err)
			}
			cmu.Lock()
			rep.CommitLatency = append(rep.CommitLatency, time.Since(t))
			rep.CommitRetries += p.Attempts - 1
			cmu.Unlock()
		}
		return nil
	}); err != nil {
		return rep, err
	}
	want := uint64(1 + cfg.Commits)
	if err := waitUntil(ctx, cfg.Drain, subErrs, func() bool {
		for _, ms := range groups {
			for _, m := range ms {
				if m.g.Epoch() != want {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return rep, fmt.Errorf("members reaching epoch %d: %w", want, err)
	}

	// Messages: each member sends the messages of its turn, as fast as the
	// service takes them, until K per group or the duration.
	sendCtx, stopSending := context.WithTimeout(ctx, cfg.Duration)
	defer stopSending()
	var sent, sendErrs atomic.Int64
	var lastAnswer atomic.Int64
	first := time.Since(run.start)
	var senders sync.WaitGroup
	for _, ms := range groups {
		for _, m := range ms {
			senders.Add(1)
			go func() {
				defer senders.Done()
				// With a rate, member j of group g sends every interval,
				// its first message offset so that the sends interleave.
				var interval time.Duration
				var next time.Time
				if cfg.Rate > 0 {
					senders := cfg.Groups * cfg.Members
					interval = time.Duration(float64(time.Second) * float64(senders) / cfg.Rate)
					next = time.Now().Add(interval * time.Duration(m.group*cfg.Members+m.index) / time.Duration(senders))
				}
				for i := m.index; i < cfg.Messages && sendCtx.Err() == nil; i += cfg.Members {
					if interval > 0 {
						select {
						case <-time.After(time.Until(next)):
						case <-sendCtx.Done():
							return
						}
						next = next.Add(interval)
					}
					run.sentAt[m.group][i].Store(int64(time.Since(run.start)))
					if _, err := m.c.Send(sendCtx, m.g, payload(m.group, i, cfg.Size), nil); err != nil {
						run.sentAt[m.group][i].Store(0)
						if sendCtx.Err() == nil {
							sendErrs.Add(1)
						}
						continue
					}
					sent.Add(1)
					for now := int64(time.Since(run.start)); ; {
						if last := lastAnswer.Load(); now <= last || lastAnswer.CompareAndSwap(last, now) {
							break
						}
					}
				}
			}()
		}
	}
	senders.Wait()
	rep.Sent, rep.SendErrors = int(sent.Load()), int(sendErrs.Load())
	rep.SendTime = time.Duration(lastAnswer.Load()) - first
	rep.Expected = rep.Sent * (cfg.Members - 1)
	derr := waitUntil(ctx, cfg.Drain, subErrs, func() bool {
		run.mu.Lock()
		defer run.mu.Unlock()
		return run.delivered+run.unreadable >= rep.Expected
	})
	run.mu.Lock()
	rep.Delivered, rep.Duplicated, rep.Unreadable = run.delivered, run.duplicated, run.unreadable
	rep.Latency = slices.Clone(run.latency)
	if run.lastDeliv > 0 {
		rep.DeliverTime = run.lastDeliv - first
	}
	run.mu.Unlock()
	rep.LoadAfter = loadAvg()
	if derr != nil {
		return rep, fmt.Errorf("delivery: %d of %d within %v: %w", rep.Delivered, rep.Expected, cfg.Drain, derr)
	}
	return rep, nil
}

// payload is message i of group g: "g:i:" then padding to size bytes.
func payload(g, i, size int) []byte {
	b := fmt.Appendf(nil, "%d:%d:", g, i)
	for len(b) < size {
		b = append(b, 'x')
	}
	return b
}

func parsePayload(b []byte) (g, i int, ok bool) {
	gs, rest, ok1 := strings.Cut(string(b), ":")
	is, _, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	g, err1 := strconv.Atoi(gs)
	i, err2 := strconv.Atoi(is)
	return g, i, err1 == nil && err2 == nil
}

// handler records what member m receives.
func (r *benchRun) handler(m *benchMember) dsclient.Handler {
	recv := m.group*r.cfg.Members + m.index
	return func(ev dsclient.Event) error {
		if ev.Kind != mlsdv1.Kind_KIND_APPLICATION {
			return nil
		}
		now := time.Since(r.start)
		r.mu.Lock()
		defer r.mu.Unlock()
		if ev.Err != nil || ev.Processed == nil {
			r.unreadable++
			return nil
		}
		g, i, ok := parsePayload(ev.Processed.ApplicationData)
		if !ok || g != m.group || i < 0 || i >= r.cfg.Messages {
			r.unreadable++
			return nil
		}
		key := [2]int{g, i}
		r.seen[recv][key]++
		if r.seen[recv][key] > 1 {
			r.duplicated++
			return nil
		}
		r.delivered++
		if at := r.sentAt[g][i].Load(); at > 0 {
			r.latency = append(r.latency, now-time.Duration(at))
		}
		r.lastDeliv = max(r.lastDeliv, now)
		return nil
	}
}

// setupGroup creates group gi: its first member registers it and adds the
// others, who publish a key package each and join from their Welcome.
// Member j talks to replica j mod R.
func setupGroup(ctx context.Context, cfg benchConfig, urls []string, runID string, gi int) ([]*benchMember, error) {
	ms := make([]*benchMember, cfg.Members)
	for j := range ms {
		id := fmt.Sprintf("bench-%s-g%d-m%d", runID, gi, j)
		mc, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte(id)), nil, credential.AcceptAll, mls.ClientOptions{})
		if err != nil {
			return nil, err
		}
		c, err := dsclient.Dial(ctx, urls[j%len(urls)], mc, dsclient.Options{})
		if err != nil {
			return nil, err
		}
		ms[j] = &benchMember{group: gi, index: j, c: c}
	}
	first := ms[0]
	g, err := first.c.MLS().CreateGroup(ctx, first.c.Suite(), mls.GroupConfig{GroupID: fmt.Appendf(nil, "bench-%s-g%d", runID, gi)})
	if err != nil {
		return nil, err
	}
	if err := first.c.CreateGroup(ctx, g, dsclient.CreateOptions{}); err != nil {
		return nil, err
	}
	first.g = g
	var kps []*mls.KeyPackage
	for _, m := range ms[1:] {
		if _, err := m.c.PublishKeyPackages(ctx, 1, false); err != nil {
			return nil, err
		}
		kp, err := first.c.FetchKeyPackage(ctx, m.c.Identity())
		if err != nil {
			return nil, err
		}
		kps = append(kps, kp)
	}
	if _, err := first.c.Commit(ctx, g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		return g.AddMembers(ctx, kps...)
	}, nil); err != nil {
		return nil, fmt.Errorf("adding the members: %w", err)
	}
	for _, m := range ms[1:] {
		js, err := m.c.Join(ctx, mls.JoinConfig{})
		if err != nil {
			return nil, err
		}
		if len(js) != 1 || js[0].Err != nil {
			return nil, fmt.Errorf("member %d: %d Welcomes (%v), want 1", m.index, len(js), joinErr(js))
		}
		m.g = js[0].Group
	}
	return ms, nil
}

func joinErr(js []dsclient.Joined) error {
	for _, j := range js {
		if j.Err != nil {
			return j.Err
		}
	}
	return nil
}

// parallel runs fn(0..n-1) at once and returns the first error.
func parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitUntil polls cond every 5 ms until it holds, a subscription fails,
// ctx ends or limit passes.
func waitUntil(ctx context.Context, limit time.Duration, errs <-chan error, cond func() bool) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errors.New("timed out")
		case <-tick.C:
		}
	}
	return nil
}
