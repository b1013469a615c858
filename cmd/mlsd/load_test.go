package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/mlskit/mls/ds/store/storetest"
)

// The load test (mlsd bench) run tiny: the figures are not asserted (they
// are measured, see BENCHMARKS.md), the counts are: every message sent is
// delivered once to every other member of its group, every commit accepted
// at the first attempt.

func tinyBench(backend, dsn string, replicas int) benchConfig {
	c := benchConfig{
		Backend: backend, DSN: dsn, Replicas: replicas,
		Groups: 2, Members: 3, Messages: 12, Commits: 2, Size: 64,
		Duration: time.Minute, Drain: 30 * time.Second,
	}
	if testing.Short() {
		c.Messages, c.Commits = 6, 1
	}
	return c
}

func checkBench(t *testing.T, c benchConfig) {
	t.Helper()
	rep, err := runBenchConfig(t.Context(), c)
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	var buf bytes.Buffer
	rep.print(&buf)
	t.Logf("\n%s", buf.String())
	sent := c.Groups * c.Messages
	if rep.Sent != sent || rep.SendErrors != 0 {
		t.Errorf("sent %d (%d refused), want %d and none refused", rep.Sent, rep.SendErrors, sent)
	}
	deliveries := sent * (c.Members - 1)
	if rep.Delivered != deliveries || rep.Expected != deliveries {
		t.Errorf("delivered %d of %d, want %d of %d", rep.Delivered, rep.Expected, deliveries, deliveries)
	}
	if rep.Duplicated != 0 || rep.Unreadable != 0 {
		t.Errorf("%d duplicated, %d unreadable deliveries, want none", rep.Duplicated, rep.Unreadable)
	}
	if len(rep.Latency) != deliveries {
		t.Errorf("%d latencies, want one per delivery (%d)", len(rep.Latency), deliveries)
	}
	if n := len(rep.CommitLatency); n != c.Groups*c.Commits || rep.CommitRetries != 0 {
		t.Errorf("%d commits, %d lost races; want %d, none lost (one committer at a time)", n, rep.CommitRetries, c.Groups*c.Commits)
	}
	for _, l := range append(rep.Latency, rep.CommitLatency...) {
		if l <= 0 {
			t.Fatalf("a latency of %v", l)
		}
	}
}

func TestBenchSQLite(t *testing.T) {
	checkBench(t, tinyBench("sqlite", "", 1))
	paced := tinyBench("sqlite", "", 1)
	paced.Rate = 200
	checkBench(t, paced)
}

func TestBenchPostgres(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(strconv.Itoa(replicas), func(t *testing.T) {
			checkBench(t, tinyBench("postgres", storetest.PostgresDSN(t), replicas))
		})
	}
}

// The command's flags and its report, as printed.
func TestBenchCommand(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"bench", "-groups", "1", "-members", "2", "-messages", "4", "-commits", "1", "-size", "40"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("mlsd bench: %v\n%s", err, out.String())
	}
	for _, re := range []string{
		`(?m)^mlsd bench: backend=sqlite replicas=1 groups=1 members=2 messages/group=4 commits/group=1 size=40 rate=unpaced$`,
		`(?m)^commits: 1 accepted, 0 lost races; latency p50 [0-9.]+ms p99 [0-9.]+ms max [0-9.]+ms$`,
		`(?m)^messages: sent 4 \(0 refused\), delivered 4 of 4, duplicated 0, unreadable 0$`,
		`(?m)^throughput: [0-9.]+ messages/s sent \(4 in [^)]+\); [0-9.]+ deliveries/s`,
		`(?m)^delivery latency: p50 [0-9.]+ms p99 [0-9.]+ms max [0-9.]+ms$`,
	} {
		if !regexp.MustCompile(re).Match(out.Bytes()) {
			t.Errorf("the report lacks %s:\n%s", re, out.String())
		}
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-replicas", "2"},                     // SQLite is served by one mlsd
		{"-backend", "postgres"},               // without a DSN
		{"-backend", "oracle"},                 // no such backend
		{"-members", "1"},                      // nobody to deliver to
		{"-groups", "0"},                       // nothing to do
		{"-messages", "2000000"},               // beyond the bound
		{"-size", "8"},                         // too small for the message's id
		{"-duration", "0s"},                    // unbounded
		{"-rate", "-1"},                        // no such rate
		{"-replicas", "9", "-postgres", "x=y"}, // beyond the bound
		{"stray"},
	} {
		var out bytes.Buffer
		err := run(t.Context(), append([]string{"bench"}, args...), &out, io.Discard)
		if err == nil {
			t.Errorf("bench %q: no error", args)
		}
		if out.Len() != 0 {
			t.Errorf("bench %q: printed a report:\n%s", args, out.String())
		}
	}
	// Bare "mlsd bench" prints the usage and runs nothing.
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"bench"}, io.Discard, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("bench without flags: %v, want flag.ErrHelp", err)
	}
	if !bytes.Contains(stderr.Bytes(), []byte("-groups")) {
		t.Errorf("bench without flags printed no usage:\n%s", stderr.String())
	}
}
