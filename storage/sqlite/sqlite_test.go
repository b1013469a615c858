package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/storagetest"
)

func openTemp(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return openTemp(t) })
}

func put(t *testing.T, s *Store, bucket, key string, value []byte) {
	t.Helper()
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		return tx.Put(bucket, []byte(key), value)
	})
	if err != nil {
		t.Fatalf("Put(%q, %q): %v", bucket, key, err)
	}
}

func get(t *testing.T, s *Store, bucket, key string) ([]byte, error) {
	t.Helper()
	var v []byte
	err := s.View(context.Background(), func(tx storage.Tx) error {
		var err error
		v, err = tx.Get(bucket, []byte(key))
		return err
	})
	return v, err
}

// rawDB opens the file with plain SQLite settings, bypassing Open, to
// inspect or tamper with it.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestReopenPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "b", "k", []byte("persisted"))
	put(t, s, "b", "gone", []byte("x"))
	err = s.Update(context.Background(), func(tx storage.Tx) error { return tx.Delete("b", []byte("gone")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if s.Path() != path { // t.TempDir is absolute
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	if v, err := get(t, s, "b", "k"); err != nil || string(v) != "persisted" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	if _, err := get(t, s, "b", "gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted key after reopen: %v", err)
	}
	var versions []int64
	rows, err := rawDB(t, path).Query(`SELECT version FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if !slices.Equal(versions, []int64{1}) {
		t.Fatalf("reopening changed the recorded versions to %v", versions)
	}
}

func TestSchemaRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	var version, appID int64
	var mode, kvSQL string
	if err := db.QueryRow(`SELECT max(version) FROM schema_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != 1 {
		t.Errorf("schema version %d, want 1", version)
	}
	if err := db.QueryRow(`PRAGMA application_id`).Scan(&appID); err != nil {
		t.Fatal(err)
	}
	if appID != 0x4d4c534b { // "MLSK"
		t.Errorf("application_id %#x", appID)
	}
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal (it is persistent)", mode)
	}
	if err := db.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = 'kv'`).Scan(&kvSQL); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(kvSQL, "PRIMARY KEY (bucket, key)") || !strings.HasSuffix(kvSQL, "WITHOUT ROWID") {
		t.Errorf("kv table: %s", kvSQL)
	}
}

// TestConnectionSettings checks the per-connection pragmas on every pooled
// connection the store hands out.
func TestConnectionSettings(t *testing.T) {
	s := openTemp(t, WithBusyTimeout(1234*time.Millisecond), WithMaxConns(3))
	ctx := context.Background()
	var conns []*sql.Conn
	for range 3 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		for _, p := range []struct {
			pragma string
			want   string
		}{
			{"secure_delete", "1"},
			{"synchronous", "2"}, // FULL
			{"journal_mode", "wal"},
			{"busy_timeout", "1234"},
			{"cell_size_check", "1"},
			{"trusted_schema", "0"},
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != p.want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, p.pragma, got, p.want)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "b", "k", []byte("v"))
	s.Close()
	rawExec(t, path, `INSERT INTO schema_version (version, applied_at) VALUES (2, 0)`)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	_, err = Open(path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of a version 2 database: %v, want ErrNewerSchema", err)
	}
	var sv *SchemaVersionError
	if !errors.As(err, &sv) || sv.Version != 2 || sv.Supported != 1 {
		t.Fatalf("error %v: SchemaVersionError %+v, want version 2, supported 1", err, sv)
	}
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Path != path {
		t.Fatalf("error %v is not an *OpenError for %s", err, path)
	}
	if !strings.Contains(err.Error(), "version 2") {
		t.Errorf("message %q does not give the version", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the refused Open changed the database file")
	}
}

func TestForeignDatabaseRefused(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.db")
	rawExec(t, other, `CREATE TABLE notes (body TEXT)`, `INSERT INTO notes VALUES ('hello')`)
	_, err := Open(other)
	if !errors.Is(err, ErrForeign) {
		t.Fatalf("Open of another program's database: %v, want ErrForeign", err)
	}
	var n int
	if err := rawDB(t, other).QueryRow(`SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the refused Open left %d schema objects, want the 1 table it found", n)
	}

	// An empty database that another program has claimed.
	claimed := filepath.Join(dir, "claimed.db")
	rawExec(t, claimed, `PRAGMA application_id = 12345`)
	if _, err := Open(claimed); !errors.Is(err, ErrForeign) {
		t.Fatalf("Open of a database with another application_id: %v, want ErrForeign", err)
	}

	// Our application_id but no version table: damaged.
	broken := filepath.Join(dir, "broken.db")
	rawExec(t, broken, `PRAGMA application_id = 1296847691`, `CREATE TABLE kv (x)`)
	if _, err := Open(broken); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a store without schema_version: %v, want ErrCorrupt", err)
	}
}

// storeFile returns the bytes of a closed store holding 2000 small values.
func storeFile(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx storage.Tx) error {
		for i := range 2000 {
			if err := tx.Put("b", []byte{byte(i >> 8), byte(i)}, bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // the last close checkpoints the log
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 16*4096 {
		t.Fatalf("store file has only %d bytes; the WAL was not checkpointed at Close", len(raw))
	}
	return raw
}

// scanAll opens the file and reads every key, returning the first error.
func scanAll(path string) error {
	s, err := Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.View(context.Background(), func(tx storage.Tx) error {
		return tx.Scan("b", nil, func(k, v []byte) error { return nil })
	})
}

func TestCorruptFileRefused(t *testing.T) {
	good := storeFile(t)
	flipped := bytes.Clone(good)
	for i := 2 * 4096; i < len(flipped); i++ {
		flipped[i] ^= 0x5a
	}
	badHeader := bytes.Clone(good)
	copy(badHeader[16:24], bytes.Repeat([]byte{0xff}, 8)) // page size and versions
	cases := []struct {
		name string
		data []byte
	}{
		{"text", []byte("hello, this is not a database")},
		{"random", bytes.Repeat([]byte("garbage!"), 1000)},
		{"bad header", badHeader},
		{"truncated", good[:len(good)/2]},
		{"damaged pages", flipped},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.db")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			// Damage may show at Open or only when the pages are read.
			err := scanAll(path)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{"", dir, filepath.Join(dir, "missing", "store.db")} {
		s, err := Open(path)
		var oe *OpenError
		if !errors.As(err, &oe) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%q) = %v, want an *OpenError", path, err)
		}
	}
}

func TestOddPath(t *testing.T) {
	// Characters that mean something in a URI must stay part of the name.
	path := filepath.Join(t.TempDir(), "we?ird#na%20me &x=1.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "b", "k", []byte("v"))
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at the given path: %v", err)
	}
}

// secret is a distinctive 32-byte value that occurs nowhere else.
var secret = []byte("\x8e\x17SECRET-for-fs-test!!\x01\x02\xfe\xfd\xc3\x5a\x99\x00\x7f\xaa")

// filesContain reports which files of the store's directory contain b.
func filesContain(t *testing.T, dir string, b []byte) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var hits []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			hits = append(hits, e.Name())
		}
	}
	return hits
}

// TestSecureDelete checks that deleted and overwritten values leave no
// trace in the database or its write-ahead log once checkpointed: the
// property forward secrecy needs from storage (RFC 9420, Section 16.6).
func TestSecureDelete(t *testing.T) {
	if len(secret) != 32 {
		t.Fatalf("secret has %d bytes, want 32", len(secret))
	}
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		remove func(tx storage.Tx) error
	}{
		{"Delete", func(tx storage.Tx) error { return tx.Delete("keys", []byte("victim")) }},
		{"DeletePrefix", func(tx storage.Tx) error { return tx.DeletePrefix("keys", []byte("vic")) }},
		{"Overwrite", func(tx storage.Tx) error {
			return tx.Put("keys", []byte("victim"), bytes.Repeat([]byte{'n'}, 45))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(filepath.Join(dir, "store.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Neighbours keep the page in use, so the value is erased as
			// a cell, not only as a freed page.
			err = s.Update(ctx, func(tx storage.Tx) error {
				for i := range 20 {
					if err := tx.Put("keys", []byte{'a', byte(i)}, bytes.Repeat([]byte{'x'}, 50)); err != nil {
						return err
					}
				}
				return tx.Put("keys", []byte("victim"), secret)
			})
			if err != nil {
				t.Fatal(err)
			}
			// Controls: the scan finds the value where it is.
			if hits := filesContain(t, dir, secret); !slices.Contains(hits, "store.db-wal") {
				t.Fatalf("before checkpoint, the value is in %v; want the WAL", hits)
			}
			if err := s.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if hits := filesContain(t, dir, secret); !slices.Equal(hits, []string{"store.db"}) {
				t.Fatalf("after checkpoint, the value is in %v; want only the database", hits)
			}

			if err := s.Update(ctx, c.remove); err != nil {
				t.Fatal(err)
			}
			if err := s.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if hits := filesContain(t, dir, secret); len(hits) != 0 {
				t.Fatalf("after removal and checkpoint, the value is still in %v", hits)
			}
			if fi, err := os.Stat(filepath.Join(dir, "store.db-wal")); err == nil && fi.Size() != 0 {
				t.Errorf("WAL has %d bytes after a TRUNCATE checkpoint", fi.Size())
			}
			// The neighbours are intact.
			if v, err := get(t, s, "keys", "a\x13"); err != nil || !bytes.Equal(v, bytes.Repeat([]byte{'x'}, 50)) {
				t.Fatalf("neighbour: %q, %v", v, err)
			}
		})
	}
}

func TestCheckpointBusyAndClosed(t *testing.T) {
	s := openTemp(t, WithBusyTimeout(50*time.Millisecond))
	put(t, s, "b", "k", []byte("v1"))
	// A View holding a snapshot that needs the log keeps TRUNCATE from
	// finishing.
	reading := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	put(t, s, "b", "k", []byte("v2"))
	go func() {
		done <- s.View(context.Background(), func(tx storage.Tx) error {
			if _, err := tx.Get("b", []byte("k")); err != nil {
				return err
			}
			close(reading)
			<-release
			return nil
		})
	}()
	<-reading
	put(t, s, "b", "k", []byte("v3"))
	err := s.Checkpoint()
	close(release)
	if err2 := <-done; err2 != nil {
		t.Fatal(err2)
	}
	if !errors.Is(err, ErrBusy) {
		t.Errorf("Checkpoint with an active reader: %v, want ErrBusy", err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Errorf("Checkpoint without readers: %v", err)
	}
	s.Close()
	if err := s.Checkpoint(); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Checkpoint after Close: %v, want ErrClosed", err)
	}
}

// TestTwoStoresOneFile opens the same file twice, as two processes would,
// and checks that their writes serialize through SQLite's locks.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	impatient, err := Open(path, WithBusyTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer impatient.Close()

	put(t, a, "b", "from-a", []byte("1"))
	if v, err := get(t, b, "b", "from-a"); err != nil || string(v) != "1" {
		t.Fatalf("b reads a's commit: %q, %v", v, err)
	}

	holding := make(chan struct{})
	release := make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		aDone <- a.Update(context.Background(), func(tx storage.Tx) error {
			if err := tx.Put("b", []byte("held"), []byte("a")); err != nil {
				return err
			}
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding

	err = impatient.Update(context.Background(), func(tx storage.Tx) error {
		return tx.Put("b", []byte("impatient"), []byte("x"))
	})
	if !errors.Is(err, ErrBusy) {
		t.Errorf("Update while another store writes, 50ms busy timeout: %v, want ErrBusy", err)
	}

	bDone := make(chan error, 1)
	go func() {
		bDone <- b.Update(context.Background(), func(tx storage.Tx) error {
			// Runs only after a commits: it must see a's write.
			v, err := tx.Get("b", []byte("held"))
			if err != nil {
				return err
			}
			return tx.Put("b", []byte("after"), append(v, 'b'))
		})
	}()
	time.Sleep(100 * time.Millisecond) // b is now waiting on SQLite's lock
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatalf("b's Update waiting on the lock: %v", err)
	}
	if v, err := get(t, a, "b", "after"); err != nil || string(v) != "ab" {
		t.Fatalf("after both: %q, %v", v, err)
	}
	if _, err := get(t, a, "b", "impatient"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the failed Update left a value: %v", err)
	}
}

func TestMigrations(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 {
			t.Fatalf("migration %d has version %d", i, m.version)
		}
	}
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "b", "k", []byte("kept"))
	s.Close()

	db, err := sql.Open("sqlite", dsn(path, newOptions(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	versions := func() []int64 {
		t.Helper()
		rows, err := db.Query(`SELECT version FROM schema_version ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var vs []int64
		for rows.Next() {
			var v int64
			rows.Scan(&v)
			vs = append(vs, v)
		}
		return vs
	}

	// A failing migration changes nothing.
	failing := append(slices.Clone(migrations),
		migration{2, []string{`CREATE TABLE extra (x)`}},
		migration{3, []string{`THIS IS NOT SQL`}})
	if err := migrate(ctx, db, failing); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("failing migration: %v", err)
	}
	if vs := versions(); !slices.Equal(vs, []int64{1}) {
		t.Fatalf("after a failed migration, versions %v", vs)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'extra'`).Scan(&n)
	if n != 0 {
		t.Fatal("a failed migration left its table")
	}

	// Out-of-order lists are rejected.
	if err := migrate(ctx, db, []migration{{2, nil}}); err == nil {
		t.Fatal("migration list starting at 2 accepted")
	}

	// An upgrade applies the missing migrations in order.
	next := append(slices.Clone(migrations),
		migration{2, []string{`CREATE TABLE extra (x)`}},
		migration{3, []string{`INSERT INTO extra VALUES (3)`}})
	if err := migrate(ctx, db, next); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if vs := versions(); !slices.Equal(vs, []int64{1, 2, 3}) {
		t.Fatalf("after upgrade, versions %v", vs)
	}
	var v string
	if err := db.QueryRow(`SELECT value FROM kv WHERE bucket = 'b' AND key = X'6b'`).Scan(&v); err != nil || v != "kept" {
		t.Fatalf("data after upgrade: %q, %v", v, err)
	}
	// Running it again does nothing.
	if err := migrate(ctx, db, next); err != nil {
		t.Fatal(err)
	}
	db.QueryRow(`SELECT count(*) FROM extra`).Scan(&n)
	if n != 1 {
		t.Fatalf("migration 3 ran %d times", n)
	}
	// The released code, which knows only version 1, refuses the file.
	err = migrate(ctx, db, migrations)
	var sv *SchemaVersionError
	if !errors.As(err, &sv) || sv.Version != 3 || sv.Supported != len(migrations) {
		t.Fatalf("older code on an upgraded file: %v", err)
	}
}
