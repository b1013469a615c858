package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var listening = regexp.MustCompile(`^mlsd listening on (http://127\.0\.0\.1:\d+)$`)

// waitURL reads the "listening" line from mlsd's stdout.
func waitURL(t *testing.T, r io.Reader) string {
	t.Helper()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case l := <-lines:
		m := listening.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("first line %q", l)
		}
		return m[1]
	case <-time.After(30 * time.Second):
		t.Fatal("mlsd did not print its address within 30 s")
	}
	return ""
}

func healthy(t *testing.T, url string) {
	t.Helper()
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", res.StatusCode)
	}
}

// In process: serve on a free port, answer /healthz, stop when the context
// ends, keeping the database.
func TestServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "mlsd.db")
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-db", db, "-log-level", "warn"}, pw, io.Discard)
		pw.Close()
	}()
	url := waitURL(t, pr)
	healthy(t, url)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mlsd did not stop within 10 s")
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("database: %v", err)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-log-level", "loud"},
		{"stray"},
		{"-postgres", "postgres://127.0.0.1:1/x", "-addr", "127.0.0.1:0"},
	} {
		err := run(t.Context(), args, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if err := run(t.Context(), []string{"bench"}, io.Discard, io.Discard); err == nil || (commands["bench"] == nil && !strings.Contains(err.Error(), "not yet built")) {
		t.Errorf("bench: %v", err)
	}
}

// As a process: SIGTERM stops it gracefully (exit status 0).
func TestProcessSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the mlsd binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "mlsd")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "mlsd.db"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := waitURL(t, out)
	healthy(t, url)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("mlsd exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("mlsd did not exit within 15 s of SIGTERM")
	}
}
