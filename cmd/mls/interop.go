package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	pb "github.com/mlskit/mls/proto/mlsclient"
	"github.com/mlskit/mls/proto/mlsclient/mlsclientconnect"
)

func init() {
	register(&command{name: "interop", summary: "run the MLS working group's interop configs against live mls-interop clients", run: runInterop})
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// interopResult is one execution of one script.
type interopResult struct {
	Config      string     `json:"config"`
	Script      string     `json:"script"`
	Suite       uint32     `json:"suite"`
	Encrypt     bool       `json:"encrypt"`
	Clients     []string   `json:"clients"`
	Checkpoints int        `json:"checkpoints"`
	Failure     *stepError `json:"failure,omitempty"`
	Seconds     float64    `json:"seconds"`
}

func runInterop(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("interop", flag.ContinueOnError)
	var clients listFlag
	fs.Var(&clients, "client", "`host:port` of a running interop client (repeatable); default: start -n mls-interop processes")
	n := fs.Int("n", 3, "number of mls-interop processes to start when no -client is given")
	suites := fs.String("suites", "1", "cipher suites to run: a comma-separated list or \"all\" (every suite all clients support)")
	encrypt := fs.String("encrypt", "false,true", "handshake framings to run: false (PublicMessage), true (PrivateMessage), or both")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of tables")
	parallel := fs.Int("parallel", 2, "scripts to run at once")
	timeout := fs.Duration("timeout", 2*time.Minute, "time limit of one RPC")
	verbose := fs.Bool("v", false, "print a line on stderr as each script run ends")
	var configs []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fmt.Fprintln(stdout, "Usage: mls interop [flags] CONFIG...")
				fs.PrintDefaults()
				return 0
			}
			fmt.Fprintf(stderr, "mls interop: %v\n", err)
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		configs = append(configs, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(configs) == 0 {
		fmt.Fprintln(stderr, "Usage: mls interop [flags] CONFIG...\n\nCONFIG is a config file of the interop harness, such as ../shared/interop/configs/commit.json.")
		return 2
	}
	var modes []bool
	for _, m := range strings.Split(*encrypt, ",") {
		b, err := strconv.ParseBool(strings.TrimSpace(m))
		if err != nil {
			fmt.Fprintf(stderr, "mls interop: -encrypt: %q is not true or false\n", m)
			return 2
		}
		if !slices.Contains(modes, b) {
			modes = append(modes, b)
		}
	}
	if *parallel < 1 || *n < 1 {
		fmt.Fprintln(stderr, "mls interop: -parallel and -n must be at least 1")
		return 2
	}
	type config struct {
		name    string
		scripts map[string]script
	}
	var cfgs []config
	for _, path := range configs {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "mls interop: %v\n", err)
			return 1
		}
		var c struct {
			Scripts map[string]script `json:"scripts"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			fmt.Fprintf(stderr, "mls interop: %s: %v\n", path, err)
			return 1
		}
		cfgs = append(cfgs, config{strings.TrimSuffix(filepath.Base(path), ".json"), c.Scripts})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if len(clients) == 0 {
		addrs, stop, err := startClients(ctx, *n, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "mls interop: starting mls-interop: %v\n", err)
			return 1
		}
		defer stop()
		clients = addrs
	}
	pool, err := connectClients(ctx, clients)
	if err != nil {
		fmt.Fprintf(stderr, "mls interop: %v\n", err)
		return 1
	}
	var suiteList []uint32
	if *suites == "all" {
		for _, s := range supportedSuitesAll {
			ok := true
			for _, c := range pool {
				ok = ok && c.suites[s]
			}
			if ok {
				suiteList = append(suiteList, s)
			}
		}
	} else {
		for _, f := range strings.Split(*suites, ",") {
			v, err := strconv.ParseUint(strings.TrimSpace(f), 0, 16)
			if err != nil || v == 0 {
				fmt.Fprintf(stderr, "mls interop: -suites: bad suite %q\n", f)
				return 2
			}
			suiteList = append(suiteList, uint32(v))
		}
	}

	// The jobs: every script of every config, for each suite and framing.
	// Actors are spread over the clients round-robin, starting at a
	// different client for each job, so every client plays every role
	// across the matrix (and deep_random's hundreds of actors share the
	// clients).
	type job struct {
		cfg, name string
		s         script
		suite     uint32
		encrypt   bool
		offset    int
	}
	var jobs []job
	for _, c := range cfgs {
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range c.scripts {
				if !yield(k) {
					return
				}
			}
		})
		for _, name := range names {
			for _, su := range suiteList {
				for _, e := range modes {
					jobs = append(jobs, job{c.name, name, c.scripts[name], su, e, len(jobs)})
				}
			}
		}
	}
	start := time.Now()
	results := make([]interopResult, len(jobs))
	var wg sync.WaitGroup
	var progress sync.Mutex
	sem := make(chan struct{}, *parallel)
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			r := &scriptRun{ctx: ctx, timeout: *timeout, suite: j.suite, encrypt: j.encrypt, clients: map[string]*rpcClient{}}
			res := interopResult{Config: j.cfg, Script: j.name, Suite: j.suite, Encrypt: j.encrypt}
			for k, a := range j.s.actors() {
				c := pool[(k+j.offset)%len(pool)]
				r.clients[a] = c
				if !slices.Contains(res.Clients, c.name+"@"+c.addr) {
					res.Clients = append(res.Clients, c.name+"@"+c.addr)
				}
			}
			if !pool[0].suites[j.suite] {
				res.Failure = &stepError{Step: -1, Action: "setup", Err: fmt.Sprintf("suite %d not supported by %s", j.suite, pool[0].addr)}
			} else {
				res.Checkpoints, res.Failure = r.runScript(j.s)
			}
			res.Seconds = time.Since(t0).Seconds()
			results[i] = res
			if *verbose {
				verdict := "passed"
				if res.Failure != nil {
					verdict = "FAILED: " + res.Failure.Error()
				}
				progress.Lock()
				fmt.Fprintf(stderr, "%s/%s suite %d encrypt=%v: %s in %.1fs\n", res.Config, res.Script, res.Suite, res.Encrypt, verdict, res.Seconds)
				progress.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	passed, failed := 0, 0
	for _, r := range results {
		if r.Failure == nil {
			passed++
		} else {
			failed++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Clients []string        `json:"clients"`
			Results []interopResult `json:"results"`
			Passed  int             `json:"passed"`
			Failed  int             `json:"failed"`
			Seconds float64         `json:"seconds"`
		}{clients, results, passed, failed, elapsed.Seconds()})
	} else {
		printInteropTables(stdout, results, elapsed)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// printInteropTables prints, per config, the scripts passed and failed per
// suite and framing, then every failure.
func printInteropTables(w io.Writer, results []interopResult, elapsed time.Duration) {
	type key struct {
		cfg     string
		suite   uint32
		encrypt bool
	}
	type count struct{ pass, fail, checks int }
	counts := map[key]*count{}
	var keys []key
	for _, r := range results {
		k := key{r.Config, r.Suite, r.Encrypt}
		if counts[k] == nil {
			counts[k] = &count{}
			keys = append(keys, k)
		}
		if r.Failure == nil {
			counts[k].pass++
		} else {
			counts[k].fail++
		}
		counts[k].checks += r.Checkpoints
	}
	last := ""
	for _, k := range keys {
		if k.cfg != last {
			fmt.Fprintf(w, "\n%s\n  %-6s %-9s %6s %6s %11s\n", k.cfg, "suite", "handshake", "passed", "failed", "checkpoints")
			last = k.cfg
		}
		mode := "public"
		if k.encrypt {
			mode = "private"
		}
		c := counts[k]
		fmt.Fprintf(w, "  %-6d %-9s %6d %6d %11d\n", k.suite, mode, c.pass, c.fail, c.checks)
	}
	var fails []interopResult
	for _, r := range results {
		if r.Failure != nil {
			fails = append(fails, r)
		}
	}
	if len(fails) > 0 {
		fmt.Fprintln(w, "\nFailures:")
		for _, r := range fails {
			fmt.Fprintf(w, "  %s/%s suite %d encrypt=%v: %v\n", r.Config, r.Script, r.Suite, r.Encrypt, r.Failure)
		}
	}
	fmt.Fprintf(w, "\n%d scripts in %.1fs\n", len(results), elapsed.Seconds())
}

// startClients builds mls-interop once into a temporary directory and
// starts n processes on free loopback ports.
func startClients(ctx context.Context, n int, stderr io.Writer) ([]string, func(), error) {
	dir, err := os.MkdirTemp("", "mls-interop")
	if err != nil {
		return nil, nil, err
	}
	bin := filepath.Join(dir, "mls-interop")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/mlskit/mls/cmd/mls-interop")
	build.Stderr = stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("go build: %w", err)
	}
	var procs []*exec.Cmd
	stop := func() {
		for _, p := range procs {
			_ = p.Process.Signal(os.Interrupt)
		}
		for _, p := range procs {
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
		os.RemoveAll(dir)
	}
	var addrs []string
	for range n {
		p := exec.CommandContext(ctx, bin, "-port", "0")
		out, err := p.StderrPipe()
		if err != nil {
			stop()
			return nil, nil, err
		}
		if err := p.Start(); err != nil {
			stop()
			return nil, nil, err
		}
		procs = append(procs, p)
		line := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			first := true
			for sc.Scan() {
				if first {
					line <- sc.Text()
					first = false
					continue
				}
				fmt.Fprintln(stderr, "mls-interop:", sc.Text())
			}
			if first {
				close(line)
			}
		}()
		select {
		case l, ok := <-line:
			addr, found := strings.CutPrefix(l, "mls-interop listening on ")
			if !ok || !found {
				stop()
				return nil, nil, fmt.Errorf("mls-interop did not start: %q", l)
			}
			addrs = append(addrs, addr)
		case <-time.After(30 * time.Second):
			stop()
			return nil, nil, errors.New("mls-interop did not report its address within 30s")
		}
	}
	return addrs, stop, nil
}

// connectClients opens gRPC (over h2c) connections and asks each client
// its name and suites.
func connectClients(ctx context.Context, addrs []string) ([]*rpcClient, error) {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: p, MaxIdleConnsPerHost: 16}}
	var out []*rpcClient
	for _, a := range addrs {
		c := &rpcClient{addr: a, suites: map[uint32]bool{}, rpc: mlsclientconnect.NewMLSClientClient(hc, "http://"+a, connect.WithGRPC())}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		nr, err := c.rpc.Name(cctx, connect.NewRequest(&pb.NameRequest{}))
		if err == nil {
			var sr *connect.Response[pb.SupportedCiphersuitesResponse]
			sr, err = c.rpc.SupportedCiphersuites(cctx, connect.NewRequest(&pb.SupportedCiphersuitesRequest{}))
			if err == nil {
				c.name = nr.Msg.Name
				for _, s := range sr.Msg.Ciphersuites {
					c.suites[s] = true
				}
			}
		}
		cancel()
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", a, err)
		}
		out = append(out, c)
	}
	return out, nil
}
