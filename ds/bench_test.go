package ds_test

import (
	"context"
	"fmt"
	"slices"
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
// arrival on another member's Subscribe stream, p50 and p99, one message
// at a time (the next is sent once the last arrived: no queueing).
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
			arrived := make(chan uint64, 1)
			go func() {
				defer close(arrived)
				for st.Receive() {
					if st.Msg().Seq > 0 {
						arrived <- st.Msg().Seq
					}
				}
			}()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				seq, err := us[0].send("benchmark message")
				if err != nil {
					b.Fatal(err)
				}
				select {
				case got := <-arrived:
					if got != seq {
						b.Fatalf("received seq %d; sent %d", got, seq)
					}
				case <-time.After(10 * time.Second):
					b.Fatalf("seq %d not delivered within 10 s", seq)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
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
