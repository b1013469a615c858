package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fixture"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// mls bench measures the group operations through the public API at
// group sizes N on two tree shapes, and in the same run the primitives they
// are made of, from which it computes each operation's bound: the time of
// the primitive operations RFC 9420 makes the party run, and of hashing,
// signing, MACing and encrypting the bytes it makes the party process
// (bench_bounds.go). Ratio = median / bound.
//
// Tree shapes:
//   - fresh: the creator added N-1 members in one commit without a path;
//     every parent is blank, so a path encrypts to every member and a
//     commit is O(N) bytes.
//   - full: every member has committed once (internal/fixture builds it
//     directly); a path encrypts to log N nodes.
//
// Live members: alice (leaf 0, no ratchet_tree extension) commits; bob
// (uses the extension, so his Welcomes carry the tree; stored in SQLite)
// receives, seals and is loaded; a joiner with a last-resort key package
// joins from bob's Welcome again and again.

func init() {
	register(&command{name: "bench", summary: "measure group operations at N members against bounds computed from primitive costs", run: runBench})
}

// benchOps are the operations, in output order.
var benchOps = []string{"update", "process", "add", "addtree", "remove", "join", "seal", "open", "load"}

// benchResult is one row of the output.
type benchResult struct {
	Op       string  `json:"op"`
	N        int     `json:"n"`
	Tree     string  `json:"tree"`
	MedianMS float64 `json:"median_ms"`
	BoundMS  float64 `json:"bound_ms"`
	Bytes    int     `json:"bytes"`
	Reps     int     `json:"reps"`
	// seals is the number of HPKE encryptions in the commit's UpdatePath
	// (update, remove): the resolutions RFC 9420, Section 7.6 makes the
	// committer encrypt to, which its bound counts.
	seals int
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	nList := fs.String("n", "1000,10000,100000", "group sizes `N,...` (each at least 3)")
	treeFlag := fs.String("tree", "fresh,full", "tree shapes `SHAPES`: fresh (one bulk add, parents blank), full (every member has committed)")
	ops := fs.String("ops", strings.Join(benchOps, ","), "operations `OPS` to run, from "+strings.Join(benchOps, ","))
	reps := fs.Int("reps", 5, "runs of each operation; the median is reported")
	budget := fs.Duration("budget", 20*time.Second, "stop repeating an operation after `D` (at least one run)")
	asJSON := fs.Bool("json", false, "print one JSON object per line instead of the table")
	svg := fs.String("svg", "", "draw time against N, with the bounds dashed, into the SVG `FILE`")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if ok, status := parseFlags(fs, "bench [-n N,...] [-tree fresh,full] [-ops OPS] [-reps R] [-json] [-svg FILE]", args, stdout, stderr); !ok {
		return status
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "mls bench: "+format+"\n", a...)
		return 2
	}
	var ns []int
	for _, f := range strings.Split(*nList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 || n > 1<<20 {
			return usageErr("-n: %q is not a group size from 3 to %d", f, 1<<20)
		}
		ns = append(ns, n)
	}
	trees := strings.Split(*treeFlag, ",")
	for _, s := range trees {
		if s != "fresh" && s != "full" {
			return usageErr("-tree: unknown shape %q (fresh, full)", s)
		}
	}
	sel := map[string]bool{}
	for _, o := range strings.Split(*ops, ",") {
		if !slices.Contains(benchOps, o) {
			return usageErr("-ops: unknown operation %q (%s)", o, strings.Join(benchOps, ","))
		}
		sel[o] = true
	}
	if *reps < 1 {
		return usageErr("-reps: %d", *reps)
	}
	s, err := ciphersuite.Lookup(mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		fmt.Fprintf(stderr, "mls bench: %v\n", err)
		return 1
	}
	var selected []string
	for _, o := range benchOps {
		if sel[o] {
			selected = append(selected, o)
		}
	}

	total := 1 + len(ns)*len(trees)*(2+len(selected))
	var pb *progressbar.ProgressBar
	if !*quiet {
		pb = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(false), progressbar.OptionClearOnFinish())
	}
	step := func(desc string) {
		if pb != nil {
			pb.Describe(desc)
		}
	}
	done := func() {
		if pb != nil {
			_ = pb.Add(1)
		}
	}

	step("primitives")
	prims := measurePrimitives(s)
	done()
	dir, err := os.MkdirTemp("", "mls-bench-")
	if err != nil {
		fmt.Fprintf(stderr, "mls bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	var results []benchResult
	var shapes []groupShape
	for _, n := range ns {
		for _, shape := range trees {
			step(fmt.Sprintf("setting up the %s tree of %d members", shape, n))
			g, err := setupBenchGroup(s, n, shape, filepath.Join(dir, fmt.Sprintf("%s-%d", shape, n)))
			done()
			if err != nil {
				fmt.Fprintf(stderr, "\nmls bench: N=%d %s: setup: %v\n", n, shape, err)
				return 1
			}
			for _, op := range selected {
				step(fmt.Sprintf("%s N=%d %s", op, n, shape))
				r, err := g.run(op, *reps, *budget)
				done()
				if err != nil {
					g.close()
					fmt.Fprintf(stderr, "\nmls bench: %s N=%d %s: %v\n", op, n, shape, err)
					return 1
				}
				results = append(results, r)
				sh := g.shape()
				sh.seals = r.seals
				shapes = append(shapes, sh)
			}
			g.close()
			// The machine may be shared: measure the primitives again
			// and keep each one's best, so that the bounds are floors.
			step("primitives")
			prims.minWith(measurePrimitives(s))
		}
	}
	// Bounds from the best primitive costs seen in the whole run.
	for i := range results {
		results[i].BoundMS = prims.bound(results[i].Op, shapes[i]) * 1000
	}
	if pb != nil {
		_ = pb.Finish()
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return 1
			}
		}
	} else {
		printBenchTable(stdout, prims, results)
	}
	if *svg != "" {
		if err := plotBench(*svg, results); err != nil {
			fmt.Fprintf(stderr, "mls bench: -svg: %v\n", err)
			return 1
		}
	}
	return 0
}

func printBenchTable(w io.Writer, p *primitives, rs []benchResult) {
	fmt.Fprintf(w, "machine: %d cores (GOMAXPROCS %d), %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(w, "primitives: %s\n\n", p)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tN\ttree\tmedian ms\tbound ms\tratio\tmessage bytes\truns\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.3f\t%.3f\t%.2f\t%d\t%d\t\n", r.Op, r.N, r.Tree, r.MedianMS, r.BoundMS, r.MedianMS/r.BoundMS, r.Bytes, r.Reps)
	}
	tw.Flush()
}

// benchGroup is the set-up group of one size and shape.
type benchGroup struct {
	s           *ciphersuite.Suite
	n           int
	tree        string
	alice, bob  *mls.Group
	bobClient   *mls.Client
	bobID       mls.Identity
	bobStore    storage.Store // bob's state, in memory
	db          storage.Store // a copy of bob's state in SQLite, for load
	joiner      *mls.Client
	joinerKP    *mls.KeyPackage
	selfUpdate  []byte       // alice's self-update commit, never merged
	welcome     *mls.Message // bob's Welcome for the joiner, with the tree
	treeBytes   int          // the encoded ratchet tree
	commitBytes int
}

func (g *benchGroup) close() { g.db.Close() }

// shape is what the bounds depend on.
func (g *benchGroup) shape() groupShape {
	return groupShape{n: g.n, fresh: g.tree == "fresh", treeBytes: g.treeBytes, commitBytes: g.commitBytes}
}

var ctxB = context.Background()

func newBenchClient(s *ciphersuite.Suite, store storage.Store, name string) (*mls.Client, error) {
	c, _, err := newBenchIdentity(s, store, name)
	return c, err
}

func newBenchIdentity(s *ciphersuite.Suite, store storage.Store, name string) (*mls.Client, mls.Identity, error) {
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		return nil, mls.Identity{}, err
	}
	id := mls.Identity{Credential: credential.NewBasic([]byte(name)), Signer: signer}
	c, err := clientFor(store, id)
	return c, id, err
}

func clientFor(store storage.Store, id mls.Identity) (*mls.Client, error) {
	return mls.NewClient(ctxB, store, id.Credential, id.Signer, credential.AcceptAll, mls.ClientOptions{})
}

// copyStore copies the buckets of internal/state from src to dst in one
// transaction.
func copyStore(dst, src storage.Store) error {
	return dst.Update(ctxB, func(w storage.Tx) error {
		return src.View(ctxB, func(r storage.Tx) error {
			for _, b := range []string{state.BucketKeyPackages, state.BucketPSKs, state.BucketUpdateKeys, state.BucketReInit,
				state.BucketGroups, state.BucketVersions, state.BucketNodes, state.BucketRatchets, state.BucketPast, state.BucketClient} {
				if err := r.Scan(b, nil, func(k, v []byte) error { return w.Put(b, k, v) }); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// setupBenchGroup builds the group of n members of the given shape; bob's
// state goes to the SQLite file db.
func setupBenchGroup(s *ciphersuite.Suite, n int, shape, db string) (*benchGroup, error) {
	g := &benchGroup{s: s, n: n, tree: shape, bobStore: memory.New()}
	var err error
	if g.db, err = sqlite.Open(db); err != nil {
		return nil, err
	}
	if shape == "full" {
		err = g.setupFull()
	} else {
		err = g.setupFresh()
	}
	if err == nil {
		err = copyStore(g.db, g.bobStore)
	}
	if err == nil {
		err = g.prepare()
	}
	if err != nil {
		g.db.Close()
		return nil, err
	}
	return g, nil
}

func (g *benchGroup) setupFull() error {
	fg, err := fixture.New(g.s, uint32(g.n), fixture.Options{})
	if err != nil {
		return err
	}
	load := func(leaf uint32, rte bool, store storage.Store) (*mls.Client, mls.Identity, *mls.Group, error) {
		fg.Config.RatchetTreeExtension = rte
		id := mls.Identity{Credential: credential.NewBasic(tree.MemberIdentity(tree.LeafIndex(leaf))), Signer: fg.Full.Signer(tree.LeafIndex(leaf))}
		if err := fg.Write(ctxB, store, tree.LeafIndex(leaf)); err != nil {
			return nil, id, nil, err
		}
		c, err := clientFor(store, id)
		if err != nil {
			return nil, id, nil, err
		}
		grp, err := c.LoadGroup(ctxB, fg.GroupContext.GroupID)
		return c, id, grp, err
	}
	if _, _, g.alice, err = load(0, false, memory.New()); err != nil {
		return err
	}
	g.bobClient, g.bobID, g.bob, err = load(uint32(g.n/2), true, g.bobStore)
	return err
}

func (g *benchGroup) setupFresh() error {
	alice, err := newBenchClient(g.s, memory.New(), "alice")
	if err != nil {
		return err
	}
	if g.alice, err = alice.CreateGroup(ctxB, g.s.ID(), mls.GroupConfig{}); err != nil {
		return err
	}
	if g.bobClient, g.bobID, err = newBenchIdentity(g.s, g.bobStore, "bob"); err != nil {
		return err
	}
	kps := make([]*mls.KeyPackage, g.n-1)
	if kps[0], err = g.bobClient.NewKeyPackage(ctxB, g.s.ID(), mls.KeyPackageOptions{}); err != nil {
		return err
	}
	// The other members' key packages, on all cores; their private keys
	// go to one shared store and are never used.
	others := memory.New()
	var wg sync.WaitGroup
	errs := make([]error, len(kps))
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := 1 + w; i < len(kps); i += workers {
				c, err := newBenchClient(g.s, others, fmt.Sprintf("member %d", i+1))
				if err == nil {
					kps[i], err = c.NewKeyPackage(ctxB, g.s.ID(), mls.KeyPackageOptions{})
				}
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	res, err := g.alice.AddMembers(ctxB, kps...)
	if err != nil {
		return err
	}
	if err := g.alice.MergePendingCommit(ctxB); err != nil {
		return err
	}
	rt, err := g.alice.ExportRatchetTree()
	if err != nil {
		return err
	}
	sw, err := g.bobClient.StageWelcome(ctxB, res.Welcome, mls.WelcomeOptions{JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}, RatchetTree: rt})
	if err != nil {
		return err
	}
	g.bob, err = sw.Join(ctxB)
	return err
}

// prepare makes the joiner and the prepared messages; every commit is
// cleared, so the group stays at its epoch.
func (g *benchGroup) prepare() error {
	if !bytes.Equal(g.alice.EpochAuthenticator(), g.bob.EpochAuthenticator()) || len(g.bob.Members()) != g.n {
		return errors.New("alice and bob disagree after setup")
	}
	var err error
	if g.joiner, err = newBenchClient(g.s, memory.New(), "joiner"); err != nil {
		return err
	}
	if g.joinerKP, err = g.joiner.NewKeyPackage(ctxB, g.s.ID(), mls.KeyPackageOptions{LastResort: true}); err != nil {
		return err
	}
	res, err := g.alice.SelfUpdate(ctxB)
	if err != nil {
		return err
	}
	if g.selfUpdate, err = res.Commit.MarshalBinary(); err != nil {
		return err
	}
	g.commitBytes = len(g.selfUpdate)
	if err := g.alice.ClearPendingCommit(ctxB); err != nil {
		return err
	}
	if res, err = g.bob.AddMembers(ctxB, g.joinerKP); err != nil {
		return err
	}
	g.welcome = res.Welcome
	if err := g.bob.ClearPendingCommit(ctxB); err != nil {
		return err
	}
	rt, err := g.alice.ExportRatchetTree()
	g.treeBytes = len(rt)
	return err
}

func msgLen(ms ...*mls.Message) int {
	n := 0
	for _, m := range ms {
		if m != nil {
			b, _ := m.MarshalBinary()
			n += len(b)
		}
	}
	return n
}

// pathSeals returns the number of encrypted path secrets in the
// UpdatePath of a commit sent as a PublicMessage (0 without a path).
func pathSeals(m *mls.Message) (int, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return 0, err
	}
	mm, err := message.UnmarshalMLSMessage(b)
	if err != nil {
		return 0, err
	}
	if mm.PublicMessage == nil || mm.PublicMessage.Content.Commit == nil || mm.PublicMessage.Content.Commit.Path == nil {
		return 0, nil
	}
	n := 0
	for _, pn := range mm.PublicMessage.Content.Commit.Path.Nodes {
		n += len(pn.EncryptedPathSecret)
	}
	return n, nil
}

var benchPayload = bytes.Repeat([]byte("0123456789abcdef"), 64)

// run times op: reps runs (fewer once budget is spent), the median.
func (g *benchGroup) run(op string, reps int, budget time.Duration) (benchResult, error) {
	r := benchResult{Op: op, N: g.n, Tree: g.tree}
	var f func() (time.Duration, error)
	commit := func(m *mls.Group, do func() (*mls.CommitResult, error), size func(*mls.CommitResult) int) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			t0 := time.Now()
			res, err := do()
			d := time.Since(t0)
			if err != nil {
				return 0, err
			}
			r.Bytes = size(res)
			if r.seals, err = pathSeals(res.Commit); err != nil {
				return 0, err
			}
			return d, m.ClearPendingCommit(ctxB)
		}
	}
	switch op {
	case "update":
		f = commit(g.alice, func() (*mls.CommitResult, error) { return g.alice.SelfUpdate(ctxB) },
			func(c *mls.CommitResult) int { return msgLen(c.Commit) })
	case "add":
		f = commit(g.alice, func() (*mls.CommitResult, error) { return g.alice.AddMembers(ctxB, g.joinerKP) },
			func(c *mls.CommitResult) int { return msgLen(c.Commit, c.Welcome) })
	case "addtree":
		f = commit(g.bob, func() (*mls.CommitResult, error) { return g.bob.AddMembers(ctxB, g.joinerKP) },
			func(c *mls.CommitResult) int { return msgLen(c.Commit, c.Welcome) })
	case "remove":
		f = commit(g.alice, func() (*mls.CommitResult, error) { return g.alice.RemoveMembers(ctxB, uint32(g.n-1)) },
			func(c *mls.CommitResult) int { return msgLen(c.Commit) })
	case "process":
		r.Bytes = len(g.selfUpdate)
		f = func() (time.Duration, error) {
			t0 := time.Now()
			m, err := mls.ParseMessage(g.selfUpdate)
			if err != nil {
				return 0, err
			}
			p, err := g.bob.Process(ctxB, m)
			if err == nil && p.Kind != mls.KindCommit {
				err = fmt.Errorf("processed a %v, want a commit", p.Kind)
			}
			return time.Since(t0), err
		}
	case "join":
		r.Bytes = msgLen(g.welcome)
		f = func() (time.Duration, error) {
			t0 := time.Now()
			sw, err := g.joiner.StageWelcome(ctxB, g.welcome, mls.WelcomeOptions{})
			if err != nil {
				return 0, err
			}
			jg, err := sw.Join(ctxB)
			d := time.Since(t0)
			if err == nil && len(jg.Members()) != g.n+1 {
				err = fmt.Errorf("joined a group of %d members, want %d", len(jg.Members()), g.n+1)
			}
			if err == nil {
				err = g.joiner.DeleteGroup(ctxB, jg.GroupID())
			}
			return d, err
		}
	case "seal":
		f = func() (time.Duration, error) {
			t0 := time.Now()
			m, err := g.bob.Seal(ctxB, benchPayload, nil)
			d := time.Since(t0)
			r.Bytes = msgLen(m)
			return d, err
		}
	case "open":
		f = func() (time.Duration, error) {
			m, err := g.alice.Seal(ctxB, benchPayload, nil)
			if err != nil {
				return 0, err
			}
			r.Bytes = msgLen(m)
			t0 := time.Now()
			p, err := g.bob.Process(ctxB, m)
			d := time.Since(t0)
			if err == nil && !bytes.Equal(p.ApplicationData, benchPayload) {
				err = errors.New("opened a different payload")
			}
			return d, err
		}
	case "load":
		r.Bytes = g.treeBytes
		// A new client each time: a client hands out the group it has
		// open instead of loading it again.
		f = func() (time.Duration, error) {
			c, err := clientFor(g.db, g.bobID)
			if err != nil {
				return 0, err
			}
			t0 := time.Now()
			lg, err := c.LoadGroup(ctxB, g.bob.GroupID())
			d := time.Since(t0)
			if err == nil && !bytes.Equal(lg.EpochAuthenticator(), g.bob.EpochAuthenticator()) {
				err = errors.New("the loaded group is not bob's")
			}
			return d, err
		}
	default:
		return r, fmt.Errorf("unknown operation %q", op)
	}
	var times []time.Duration
	var spent time.Duration
	for len(times) < reps && (len(times) == 0 || spent < budget) {
		d, err := f()
		if err != nil {
			return r, err
		}
		times = append(times, d)
		spent += d
	}
	slices.Sort(times)
	r.Reps = len(times)
	r.MedianMS = float64(times[len(times)/2]) / float64(time.Millisecond)
	if len(times)%2 == 0 {
		r.MedianMS = float64(times[len(times)/2-1]+times[len(times)/2]) / 2 / float64(time.Millisecond)
	}
	return r, nil
}
