package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlskit/mls/ds"
)

// Bench runs the Store benchmarks on the backend that open opens (a fresh
// database per call). Each reports ops/s besides ns/op.
func Bench(b *testing.B, open func(b *testing.B) ds.Store) {
	b.Run("Append", func(b *testing.B) {
		s := open(b)
		g := newGroup(b, s)
		e := entryFor(b, g.ID, 0, ds.KindApplication)
		b.ResetTimer()
		for b.Loop() {
			if _, err := s.Append(b.Context(), e); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	for _, groups := range []int{1, 8} {
		b.Run(fmt.Sprintf("AppendParallel/groups=%d", groups), func(b *testing.B) {
			s := open(b)
			ids := make([][]byte, groups)
			for i := range ids {
				ids[i] = newGroup(b, s).ID
			}
			var next atomic.Int64
			b.SetParallelism(2)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				e := entryFor(b, ids[int(next.Add(1))%groups], 0, ds.KindApplication)
				for pb.Next() {
					if _, err := s.Append(b.Context(), e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
		})
	}
	b.Run("AppendCommit", func(b *testing.B) {
		s := open(b)
		g := newGroup(b, s)
		c := commitFor(b, g.ID, 0, []byte("joiner"))
		b.ResetTimer()
		for b.Loop() {
			if _, err := s.AppendCommit(b.Context(), c); err != nil {
				b.Fatal(err)
			}
			c.Epoch++
			c.NewState.Epoch++
		}
		report(b)
	})
	b.Run("TakeKeyPackage", func(b *testing.B) {
		s := open(b)
		id := []byte("bench")
		const batch = 1000
		var kps []ds.KeyPackage
		for range batch {
			kps = append(kps, kp(b, id, 1, false, base.Add(time.Hour)))
		}
		// Refill outside the timer whenever a batch is used up.
		left := 0
		b.ResetTimer()
		for b.Loop() {
			if left == 0 {
				b.StopTimer()
				for i := range kps {
					kps[i].Ref = rnd(b, 32)
				}
				if err := s.PutKeyPackages(b.Context(), kps); err != nil {
					b.Fatal(err)
				}
				left = batch
				b.StartTimer()
			}
			if _, err := s.TakeKeyPackage(b.Context(), id, 1, base); err != nil {
				b.Fatal(err)
			}
			left--
		}
		report(b)
	})
	b.Run("Entries100", func(b *testing.B) {
		s := open(b)
		g := newGroup(b, s)
		for range 1000 {
			if _, err := s.Append(b.Context(), entryFor(b, g.ID, 0, ds.KindApplication)); err != nil {
				b.Fatal(err)
			}
		}
		var after uint64
		b.ResetTimer()
		for b.Loop() {
			es, err := s.Entries(b.Context(), g.ID, after, 100)
			if err != nil || len(es) != 100 {
				b.Fatalf("Entries = %d, %v", len(es), err)
			}
			after = (after + 100) % 900
		}
		report(b)
	})
}

func report(b *testing.B) {
	if e := b.Elapsed(); e > 0 {
		b.ReportMetric(float64(b.N)/e.Seconds(), "ops/s")
	}
}
