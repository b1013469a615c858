package ds_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ds"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// groupOf builds a group of m members (public handshakes) on e: m0 adds
// the others in one commit.
func groupOf(b *testing.B, e *env, m int) []*user {
	b.Helper()
	us := []*user{e.login("m0")}
	us[0].createGroup(mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	var kps []*mls.KeyPackage
	for i := 1; i < m; i++ {
		u := e.login(fmt.Sprintf("m%d", i))
		kp, _ := u.keyPackage(mls.KeyPackageOptions{})
		u.publish(kp)
		k, err := us[0].fetchKP(u)
		if err != nil {
			b.Fatal(err)
		}
		kps = append(kps, k)
		us = append(us, u)
	}
	if m > 1 {
		us[0].commit(us[0].group.AddMembers(b.Context(), kps...))
		for _, u := range us[1:] {
			u.join()
		}
	}
	return us
}

// BenchmarkPostMessage: one member posts application messages to a group
// of 2, one RPC after the other, over loopback HTTP/1.1 (Connect protocol).
func BenchmarkPostMessage(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			e := newEnvB(b, be, ds.Options{Logger: quiet()})
			us := groupOf(b, e, 2)
			b.ResetTimer()
			for range b.N {
				if _, err := us[0].send("benchmark message"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkDelivery: the time from a member's PostMessage to the message's
// arrival on another member's Subscribe stream, p50 and p99.
func BenchmarkDelivery(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			e := newEnvB(b, be, ds.Options{Logger: quiet()})
			us := groupOf(b, e, 2)
			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			st, err := us[1].api.Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: us[0].group.GroupID(), AfterSeq: 1}))
			if err != nil {
				b.Fatal(err)
			}
			if !st.Receive() {
				b.Fatal(st.Err())
			}
			var mu sync.Mutex
			sent := make(map[uint64]time.Time, b.N)
			recv := make(map[uint64]time.Time, b.N)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for len(recv) < b.N && st.Receive() {
					t := time.Now()
					mu.Lock()
					recv[st.Msg().Seq] = t
					mu.Unlock()
				}
			}()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				seq, err := us[0].send("benchmark message")
				if err != nil {
					b.Fatal(err)
				}
				mu.Lock()
				sent[seq] = start
				mu.Unlock()
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				b.Fatalf("received %d of %d messages", len(recv), b.N)
			}
			b.StopTimer()
			lat := make([]time.Duration, 0, b.N)
			for seq, t0 := range sent {
				if t1, ok := recv[seq]; ok {
					lat = append(lat, t1.Sub(t0))
				}
			}
			if len(lat) != b.N {
				b.Fatalf("%d latencies for %d messages", len(lat), b.N)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPostCommit: a member of a group of M commits an update (the
// server validates it with its PublicGroup, checks the posted GroupInfo
// and tree, and appends), then merges it. Only the PostCommit round trip
// is timed.
func BenchmarkPostCommit(b *testing.B) {
	for _, be := range backends {
		for _, m := range []int{2, 16, 128} {
			b.Run(fmt.Sprintf("%s/M=%d", be.name, m), func(b *testing.B) {
				e := newEnvB(b, be, ds.Options{Logger: quiet()})
				us := groupOf(b, e, m)
				u := us[0]
				b.ResetTimer()
				for range b.N {
					// Only the PostCommit round trip is timed: making the
					// commit and merging it are the client's work.
					b.StopTimer()
					res, err := u.group.SelfUpdate(b.Context())
					if err != nil {
						b.Fatal(err)
					}
					req := u.commitRequest(u.group, res)
					b.StartTimer()
					if _, err := u.postCommit(req); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := u.group.MergePendingCommit(b.Context()); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}
