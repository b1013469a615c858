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

// groupOf builds a group of m members (public handshakes) on e.
func groupOf(b *testing.B, e *env, m int) []*user {
	b.Helper()
	us := []*user{e.login("m0")}
	us[0].createGroup(mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	for i := 1; i < m; i++ {
		u := e.login(fmt.Sprintf("m%d", i))
		kp, _ := u.keyPackage(mls.KeyPackageOptions{})
		u.publish(kp)
		us[0].add(u)
		for _, o := range us[1:] {
			o.process(o.fetch(uint64(i - 1)).Messages)
		}
		us = append(us, u)
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
// and tree, and appends), then merges it.
func BenchmarkPostCommit(b *testing.B) {
	for _, be := range backends {
		for _, m := range []int{2, 8} {
			b.Run(fmt.Sprintf("%s/M=%d", be.name, m), func(b *testing.B) {
				e := newEnvB(b, be, ds.Options{Logger: quiet()})
				us := groupOf(b, e, m)
				b.ResetTimer()
				for range b.N {
					us[0].commit(us[0].group.SelfUpdate(b.Context()))
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			})
		}
	}
}
