package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/store/sqlite"
	"github.com/mlskit/mls/ds/store/storetest"
)

// opener gives each test its own database file; calls with the same test
// reopen it.
func opener() storetest.Opener {
	var mu sync.Mutex
	paths := make(map[*testing.T]string)
	return func(t *testing.T) ds.Store {
		t.Helper()
		mu.Lock()
		p, ok := paths[t]
		if !ok {
			p = filepath.Join(t.TempDir(), "mlsd.db")
			paths[t] = p
		}
		mu.Unlock()
		s, err := sqlite.Open(t.Context(), p)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, opener())
}

// The suite holds with synchronous=NORMAL too, and the setting is applied.
func TestSyncNormal(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mlsd.db"), sqlite.WithSyncNormal())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := sqlite.SyncSetting(t, s); got != 1 {
		t.Errorf("synchronous = %d, want 1 (NORMAL)", got)
	}
	d, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mlsd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := sqlite.SyncSetting(t, d); got != 2 {
		t.Errorf("default synchronous = %d, want 2 (FULL)", got)
	}
	storetest.RaceCommits(t, []ds.Store{s}, 4, 2)
}

// Two Stores on one file, as two processes would open it: one commit per
// epoch and each key package handed out once still hold (SQLite's write
// lock serializes them).
func TestTwoStoresOneFile(t *testing.T) {
	open := opener()
	a, b := open(t), open(t)
	storetest.RaceCommits(t, []ds.Store{a, b}, 8, 3)
	storetest.RaceKeyPackages(t, []ds.Store{a, b}, 20, 6)
	storetest.AppendConcurrently(t, []ds.Store{a, b}, 4, 10)
}

// Migrations are recorded once each, however often the file is opened.
func TestMigrationsRecordedOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mlsd.db")
	for range 3 {
		s, err := sqlite.Open(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, max int
	if err := db.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != sqlite.SchemaVersion() || max != sqlite.SchemaVersion() || n < 1 {
		t.Errorf("schema_migrations has %d rows, max version %d; want %d", n, max, sqlite.SchemaVersion())
	}
}

// A database written by a newer program is refused, and left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mlsd.db")
	s, err := sqlite.Open(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	future := sqlite.SchemaVersion() + 1
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, future); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(t.Context(), p); err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	var max int
	if err := db.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&max); err != nil || max != future {
		t.Errorf("max version = %d, %v; want %d", max, err, future)
	}
}

func TestOpenEmptyPath(t *testing.T) {
	if _, err := sqlite.Open(t.Context(), ""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) ds.Store {
		s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "mlsd.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

const crashDBEnv = "MLSD_STORE_CRASH_DB"

func TestMain(m *testing.M) {
	if id := os.Getenv(storetest.CrashChildEnv); id != "" {
		os.Exit(crashChild(id, os.Getenv(crashDBEnv)))
	}
	os.Exit(m.Run())
}

// crashChild appends to the group until it is killed.
func crashChild(hexID, path string) int {
	id, err := hex.DecodeString(hexID)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := storetest.AppendUntilKilled(ctx, s, id, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// A process SIGKILLed while appending loses no acknowledged message and
// leaves no gap; the log goes on after a restart.
func TestCrashMidAppend(t *testing.T) {
	rounds, acks := 3, 200
	if testing.Short() {
		rounds, acks = 2, 50
	}
	open := opener()
	s := open(t)
	path := s.(*sqlite.Store).Path()
	s.Close()
	storetest.CrashTest(t, open, func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashDBEnv+"="+path)
		return cmd
	}, rounds, acks)
}

// A database of schema version 1 (before the removals table) is upgraded
// on Open, its data kept, and removals recorded from then on.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := t.Context()
	p := filepath.Join(t.TempDir(), "mlsd.db")
	s, err := sqlite.Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	g := ds.Group{ID: []byte("g1"), Mode: ds.HandshakePublic, State: ds.GroupState{GroupInfo: []byte("gi"), RatchetTree: []byte("tree")}}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{`DROP TABLE removals`, `DELETE FROM schema_migrations WHERE version > 1`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	if s, err = sqlite.Open(ctx, p); err != nil {
		t.Fatalf("Open of a version 1 database: %v", err)
	}
	defer s.Close()
	if got, err := s.GetGroup(ctx, g.ID); err != nil || string(got.State.GroupInfo) != "gi" {
		t.Fatalf("the group after the upgrade: %+v, %v", got, err)
	}
	if _, err := s.RemovedAt(ctx, g.ID, []byte("carol")); !errors.Is(err, ds.ErrNotFound) {
		t.Errorf("RemovedAt after the upgrade: %v, want ErrNotFound", err)
	}
	c := ds.Commit{
		Entry:    ds.Entry{GroupID: g.ID, Kind: ds.KindCommit, Sender: []byte("alice"), Data: []byte("commit")},
		NewState: ds.GroupState{Epoch: 1, GroupInfo: []byte("gi1"), RatchetTree: []byte("tree1")},
		Removed:  [][]byte{[]byte("carol")},
	}
	if seq, err := s.AppendCommit(ctx, c); err != nil || seq != 1 {
		t.Fatalf("AppendCommit = %d, %v", seq, err)
	}
	if seq, err := s.RemovedAt(ctx, g.ID, []byte("carol")); err != nil || seq != 1 {
		t.Errorf("RemovedAt = %d, %v; want 1", seq, err)
	}
}
