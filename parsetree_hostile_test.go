package mls_test

import (
	"errors"
	"testing"

	"github.com/mlskit/mls"
)

// A ratchet tree padded with blank nodes beyond DefaultMaxTreeLeaves is
// refused by ParseRatchetTree before it allocates a slot per node, in the
// bare form and as a ratchet_tree extension (RFC 9420, Section 12.4.3.3).
func TestParseRatchetTreeBlankPadding(t *testing.T) {
	const blanks = 8 << 20 // 8 MiB of blank nodes: 8,388,608 nodes, 4,194,304 leaves
	body := make([]byte, blanks)
	// The last node must be non-blank for a well-formed tree; a blank one
	// here still must not matter, the count is refused first.
	bare := append(quicVarint(len(body)), body...)
	ext := append(append([]byte{0, 2}, quicVarint(len(bare))...), bare...)
	for name, in := range map[string][]byte{"bare": bare, "extension": ext} {
		var err error
		allocs := testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				_, err = mls.ParseRatchetTree(in)
			}
		})
		if !errors.Is(err, mls.ErrMalformed) {
			t.Fatalf("%s: ParseRatchetTree of %d blank nodes: %v, want ErrMalformed", name, blanks, err)
		}
		// The input is 8 MiB; a slot per node would be 64 MiB and more.
		if per := allocs.AllocedBytesPerOp(); per > 16<<20 {
			t.Fatalf("%s: ParseRatchetTree allocated %d bytes for a %d-byte hostile tree", name, per, len(in))
		}
	}
}
