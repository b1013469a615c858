package framing

import "sync"

// maxScratch is the largest buffer kept for reuse: a commit of a fresh
// tree of 100,000 members is about 8 MB, and a larger buffer is left to
// the garbage collector rather than held by the pool.
const maxScratch = 16 << 20

// scratchPool holds encoding buffers for values that are only hashed or
// MACed and never kept: a commit with an UpdatePath in a fresh tree is
// O(N) bytes (RFC 9420, Section 7.6), and growing a fresh slice to that
// size on every encoding allocates several times the message.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// getScratch returns an empty buffer from the pool.
func getScratch() *[]byte {
	p := scratchPool.Get().(*[]byte)
	*p = (*p)[:0]
	return p
}

// putScratch returns b, the buffer last grown from p, to the pool. The
// caller must not use b afterwards.
func putScratch(p *[]byte, b []byte) {
	if cap(b) > maxScratch {
		return
	}
	*p = b[:0]
	scratchPool.Put(p)
}
