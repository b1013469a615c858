package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the environment variable with the DSN of a PostgreSQL
// server on which the tests may CREATE DATABASE.
const PostgresEnv = "MLSD_TEST_POSTGRES"

// RequirePostgres returns $MLSD_TEST_POSTGRES. When it is unset, t is
// skipped with a message saying how to set it, except under CI=true, where
// that is a failure.
func RequirePostgres(t *testing.T) string {
	t.Helper()
	return requirePostgres(t)
}

func requirePostgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(PostgresEnv)
	if admin == "" {
		const how = PostgresEnv + " is not set: the PostgreSQL tests need a server. Set it to the DSN of a role that may CREATE DATABASE, " +
			"e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable (.ci/run starts a throwaway server and sets it)"
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and " + how)
		}
		t.Skip(how)
	}
	return admin
}

// PostgresDSN returns the DSN of a fresh, empty database for t on the
// server of $MLSD_TEST_POSTGRES, and drops the database when t ends. When
// the variable is unset the test is skipped with a message saying how to
// enable it, except under CI=true, where that is a failure.
func PostgresDSN(t *testing.T) string {
	t.Helper()
	return postgresDSN(t)
}

// PostgresBenchDSN is PostgresDSN for a benchmark.
func PostgresBenchDSN(b *testing.B) string {
	b.Helper()
	return postgresDSN(b)
}

func postgresDSN(t testing.TB) string {
	t.Helper()
	admin := requirePostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("%s: connect: %v", PostgresEnv, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "mlsd_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("%s: create database: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("%s: connect to drop %s: %v", PostgresEnv, name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("%s: drop database %s: %v", PostgresEnv, name, err)
		}
	})
	return withDatabase(t, admin, name)
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(t testing.TB, dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s: %v", PostgresEnv, err)
		}
		u.Path = "/" + name
		return u.String()
	}
	// key=value form: a later key wins.
	return dsn + " dbname=" + name
}
