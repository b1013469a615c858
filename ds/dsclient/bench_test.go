package dsclient

import (
	"context"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ds"
)

// BenchmarkSendSync: one member sends a message and another reads it, over
// mlsd on SQLite on loopback (Connect over HTTP/1.1); members' state in
// SQLite files. One op = Send + Sync of one message.
func BenchmarkSendSync(b *testing.B) {
	url := startServer(b, ds.Options{})
	ms := group(b, url, "alice", "bob")
	ctx := context.Background()
	if _, err := ms[1].c.Sync(ctx, ms[1].g, nil); err != nil { // past the Welcome's commit
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ms[0].c.Send(ctx, ms[0].g, []byte("benchmark message"), nil); err != nil {
			b.Fatal(err)
		}
		if n, err := ms[1].c.Sync(ctx, ms[1].g, nil); err != nil || n != 1 {
			b.Fatalf("Sync = %d, %v", n, err)
		}
	}
}

// BenchmarkCommitSync: one member commits a self-update and another
// merges it. One op = Commit + Sync.
func BenchmarkCommitSync(b *testing.B) {
	url := startServer(b, ds.Options{})
	ms := group(b, url, "alice", "bob")
	ctx := context.Background()
	if _, err := ms[1].c.Sync(ctx, ms[1].g, nil); err != nil { // past the Welcome's commit
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ms[0].c.Commit(ctx, ms[0].g, (*mls.Group).SelfUpdate, nil); err != nil {
			b.Fatal(err)
		}
		if n, err := ms[1].c.Sync(ctx, ms[1].g, nil); err != nil || n != 1 {
			b.Fatalf("Sync = %d, %v", n, err)
		}
	}
}
