package ds

import (
	"sync"
	"time"
)

// limiter is a token bucket per key (an authenticated identity, or a remote
// address before authentication): each bucket holds at most burst tokens,
// gains rate tokens per second, and a request spends one (RFC 9750,
// Section 8.1.3, DoS Protection: no anonymous or single client floods the
// DS). Buckets live in memory, so with several replicas a client gets the
// rate at each of them.
type limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	now     func() time.Time
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the map; beyond it, full (idle) buckets are dropped.
const maxBuckets = 1 << 16

func newLimiter(rate, burst float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: burst, now: now, buckets: make(map[string]*bucket)}
}

// allow spends a token of key's bucket, or reports false when it is empty.
func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.dropIdle(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// dropIdle deletes the buckets that have refilled completely: forgetting
// them changes nothing, since a new bucket starts full. If none has, the
// whole map goes (a flood of distinct keys must not grow it without bound).
func (l *limiter) dropIdle(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets)
	}
}
