package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/store/storetest"
)

// opener gives each test its own database (storetest.PostgresDSN); calls
// with the same test open it again, as a restarted process or another
// replica would.
func opener() storetest.Opener {
	var mu sync.Mutex
	dsns := make(map[*testing.T]string)
	return func(t *testing.T) ds.Store {
		t.Helper()
		mu.Lock()
		dsn, ok := dsns[t]
		mu.Unlock()
		if !ok {
			dsn = storetest.PostgresDSN(t)
			mu.Lock()
			dsns[t] = dsn
			mu.Unlock()
		}
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) {
	storetest.RequirePostgres(t)
	storetest.Run(t, opener())
}

// Two Stores with their own pools on one database are two mlsd replicas:
// first-commit-wins, key packages handed out once and gapless seqs hold
// across them, and a Watch on one sees the appends made through the other.
func TestReplicas(t *testing.T) {
	open := opener()
	a, b := open(t), open(t)
	n, rounds, kps, workers := 16, 10, 80, 16
	if testing.Short() {
		n, rounds, kps, workers = 8, 4, 30, 8
	}
	t.Run("AppendCommitRace", func(t *testing.T) { storetest.RaceCommits(t, []ds.Store{a, b}, n, rounds) })
	t.Run("TakeKeyPackageRace", func(t *testing.T) { storetest.RaceKeyPackages(t, []ds.Store{a, b}, kps, workers) })
	t.Run("SeqGapless", func(t *testing.T) { storetest.AppendConcurrently(t, []ds.Store{a, b}, workers/2, 20) })
	t.Run("WatchAtoB", func(t *testing.T) { storetest.WatchAcross(t, a, b) })
	t.Run("WatchBtoA", func(t *testing.T) { storetest.WatchAcross(t, b, a) })
}

// Replicas starting together on a fresh database apply each migration once
// (the advisory lock), and reopening applies nothing again.
func TestMigrationsConcurrent(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, max int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != SchemaVersion() || max != SchemaVersion() {
		t.Errorf("schema_migrations: %d rows, max version %d; want %d", rows, max, SchemaVersion())
	}
	// A newer schema is refused, and left as it is.
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version) VALUES ($1)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(t.Context(), dsn); err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if err := conn.QueryRow(t.Context(), `SELECT max(version) FROM schema_migrations`).Scan(&max); err != nil || max != SchemaVersion()+1 {
		t.Errorf("max version = %d, %v; want %d", max, err, SchemaVersion()+1)
	}
}

// The unique (group_id, epoch) constraint is a backstop on its own: a
// commits row that the group's epoch does not know of (as if another
// replica's check had been skipped) turns the append into a conflict that
// stores nothing.
func TestCommitUniqueBackstop(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	g := ds.Group{ID: []byte("backstop-group-1"), Mode: ds.HandshakePublic, State: ds.GroupState{GroupInfo: []byte{1}}}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO commits (group_id, epoch, seq) VALUES ($1, 0, 99)`, g.ID); err != nil {
		t.Fatal(err)
	}
	c := ds.Commit{
		Entry:    ds.Entry{GroupID: g.ID, Epoch: 0, Kind: ds.KindCommit, Sender: []byte("x"), Data: []byte("commit")},
		NewState: ds.GroupState{Epoch: 1, GroupInfo: []byte{2}},
		Welcomes: []ds.Welcome{{Identity: []byte("w"), GroupID: g.ID, Data: []byte("welcome")}},
	}
	_, err = s.AppendCommit(ctx, c)
	var ce *ds.ConflictError
	if !errors.As(err, &ce) || ce.Err != ds.ErrConflict {
		t.Fatalf("AppendCommit: err = %v, want *ConflictError{ErrConflict}", err)
	}
	got, err := s.GetGroup(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State.Epoch != 0 || got.LastSeq != 0 {
		t.Errorf("group at epoch %d, last seq %d; want 0, 0", got.State.Epoch, got.LastSeq)
	}
	if es, err := s.Entries(ctx, g.ID, 0, 10); err != nil || len(es) != 0 {
		t.Errorf("Entries = %d, %v; want none", len(es), err)
	}
	if ws, err := s.Welcomes(ctx, []byte("w")); err != nil || len(ws) != 0 {
		t.Errorf("Welcomes = %d, %v; want none", len(ws), err)
	}
}

// When the LISTEN connection is killed, the listener reconnects and
// notifies the groups appended to meanwhile.
func TestWatchReconnect(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	ch := make(chan []byte, 100)
	if err := s.Watch(ctx, func(id []byte) {
		select {
		case ch <- append([]byte{}, id...):
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	g := ds.Group{ID: []byte("reconnect-group-"), Mode: ds.HandshakePublic, State: ds.GroupState{GroupInfo: []byte{1}}}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		tag, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, listenApp)
		if err != nil {
			t.Fatal(err)
		}
		if tag.RowsAffected() != 1 {
			t.Fatalf("round %d: terminated %d listener connections, want 1", round, tag.RowsAffected())
		}
		// Appended while the listener is down or reconnecting.
		if _, err := s.Append(ctx, ds.Entry{GroupID: g.ID, Kind: ds.KindApplication, Sender: []byte("s"), Data: []byte("m")}); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(15 * time.Second)
	wait:
		for {
			select {
			case id := <-ch:
				if string(id) == string(g.ID) {
					break wait
				}
			case <-deadline:
				t.Fatalf("round %d: no notification within 15s after the listener was killed", round)
			}
		}
		// Wait for the listener to be back before killing it again.
		for i := 0; ; i++ {
			s.listener.mu.Lock()
			n := s.listener.sessions
			s.listener.mu.Unlock()
			if n >= round+2 {
				break
			}
			if i == 150 {
				t.Fatalf("round %d: listener did not reconnect", round)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func TestWatchAfterClose(t *testing.T) {
	s, err := Open(t.Context(), storetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Watch(t.Context(), func([]byte) {}); err == nil {
		t.Error("Watch after Close succeeded")
	}
}

func TestLongGroupIDRefused(t *testing.T) {
	s, err := Open(t.Context(), storetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id := make([]byte, MaxGroupIDLen+1)
	if err := s.CreateGroup(t.Context(), ds.Group{ID: id, Mode: ds.HandshakePublic}); err == nil {
		t.Fatal("CreateGroup with a too long ID succeeded")
	}
	if _, err := s.GetGroup(t.Context(), id); err != ds.ErrNotFound {
		t.Errorf("GetGroup: err = %v, want ErrNotFound", err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) ds.Store {
		s, err := Open(b.Context(), storetest.PostgresBenchDSN(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

const crashDSNEnv = "MLSD_STORE_CRASH_DSN"

func TestMain(m *testing.M) {
	if id := os.Getenv(storetest.CrashChildEnv); id != "" {
		os.Exit(crashChild(id, os.Getenv(crashDSNEnv)))
	}
	os.Exit(m.Run())
}

// crashChild appends to the group until it is killed.
func crashChild(hexID, dsn string) int {
	id, err := hex.DecodeString(hexID)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	s, err := Open(ctx, dsn)
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

// A replica SIGKILLed while appending (its transactions cut off) loses no
// acknowledged message and leaves no gap; the log goes on.
func TestCrashMidAppend(t *testing.T) {
	storetest.RequirePostgres(t)
	rounds, acks := 3, 200
	if testing.Short() {
		rounds, acks = 2, 50
	}
	dsn := storetest.PostgresDSN(t)
	open := func(t *testing.T) ds.Store {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.CrashTest(t, open, func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), crashDSNEnv+"="+dsn)
		return cmd
	}, rounds, acks)
}

// When the server terminates every connection of the Store (as at an
// administrator's command or a server restart), each operation still
// succeeds: a dead pooled connection is detected before anything ran and
// the operation runs again on a fresh one, and the listener reconnects.
func TestConnectionsTerminated(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	ch := make(chan []byte, 100)
	if err := s.Watch(ctx, func(id []byte) {
		select {
		case ch <- append([]byte{}, id...):
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	g := ds.Group{ID: []byte("terminated-group"), Mode: ds.HandshakePublic, State: ds.GroupState{GroupInfo: []byte{1}}}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	// Fill the pool with idle connections.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Append(ctx, ds.Entry{GroupID: g.ID, Kind: ds.KindApplication, Sender: []byte("s"), Data: []byte("m")}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	ops := []struct {
		name string
		fn   func() error
	}{
		{"Append", func() error {
			_, err := s.Append(ctx, ds.Entry{GroupID: g.ID, Kind: ds.KindApplication, Sender: []byte("s"), Data: []byte("m")})
			return err
		}},
		{"GetGroup", func() error { _, err := s.GetGroup(ctx, g.ID); return err }},
		{"Entries", func() error { _, err := s.Entries(ctx, g.ID, 0, 10); return err }},
		{"Welcomes", func() error { _, err := s.Welcomes(ctx, []byte("nobody")); return err }},
		{"SetCursor", func() error { return s.SetCursor(ctx, g.ID, []byte("me"), 1) }},
		{"PutKeyPackages", func() error {
			return s.PutKeyPackages(ctx, []ds.KeyPackage{{Ref: []byte(time.Now().String()), Identity: []byte("me"), Suite: 1, Data: []byte{1}, NotAfter: time.Now().Add(time.Hour)}})
		}},
		{"TakeKeyPackage", func() error { _, err := s.TakeKeyPackage(ctx, []byte("me"), 1, time.Now()); return err }},
	}
	others := `FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`
	for i, op := range ops {
		tag, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) `+others)
		if err != nil {
			t.Fatal(err)
		}
		// At first the pool's connections and the listener's; later at
		// least the one the previous operation used.
		if want := int64(1); tag.RowsAffected() < want || i == 0 && tag.RowsAffected() < 3 {
			t.Fatalf("%s: terminated %d connections", op.name, tag.RowsAffected())
		}
		// Wait until they are gone, so that their FATAL messages were sent.
		// (The listener may reconnect meanwhile: it is not the pool's.)
		for j := 0; ; j++ {
			var n int
			if err := admin.QueryRow(ctx, `SELECT count(*) `+others+` AND application_name <> $1`, listenApp).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if j == 500 {
				t.Fatalf("%s: %d terminated connections still there after 5s", op.name, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := op.fn(); err != nil {
			t.Errorf("%s after the server terminated the connections: %v", op.name, err)
		}
	}
	// The listener came back and still delivers.
	for i := 0; ; i++ {
		if _, err := s.Append(ctx, ds.Entry{GroupID: g.ID, Kind: ds.KindApplication, Sender: []byte("s"), Data: []byte("m")}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if i == 150 {
			t.Fatal("no Watch notification within 15s after the connections were terminated")
		}
	}
}

// A database of schema version 1 (before the removals table) is upgraded
// on Open, its data kept, and removals recorded from then on.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := t.Context()
	dsn := storetest.PostgresDSN(t)
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	g := ds.Group{ID: []byte("g1"), Mode: ds.HandshakePublic, State: ds.GroupState{GroupInfo: []byte("gi"), RatchetTree: []byte("tree")}, Created: time.Now()}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{`DROP TABLE removals`, `DELETE FROM schema_migrations WHERE version > 1`} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if s, err = Open(ctx, dsn); err != nil {
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
		Entry:    ds.Entry{GroupID: g.ID, Kind: ds.KindCommit, Sender: []byte("alice"), Data: []byte("commit"), Received: time.Now()},
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
