package tree

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// checkEncoded compares the cached encoding of d with the encoding of its
// dense node list.
func checkEncoded(tb testing.TB, step string, d *Diff) {
	tb.Helper()
	want, err := message.Marshal(d.RatchetTree())
	if err != nil {
		tb.Fatal(err)
	}
	got, err := d.EncodeRatchetTree()
	if err != nil {
		tb.Fatalf("%s: EncodeRatchetTree: %v", step, err)
	}
	if !bytes.Equal(got, want) {
		tb.Fatalf("%s: EncodeRatchetTree gives %d bytes, differing from the %d of message.Marshal(RatchetTree())", step, len(got), len(want))
	}
}

// TestEncodeRatchetTree: the encoding built from the cache equals the
// plain encoding after adds, updates, removes that truncate the tree,
// removes and adds in one diff (truncated, then extended), diffs dropped
// without merging, with the cache patched and with it rebuilt at every
// merge (staleSlack 0 and tiny trees).
func TestEncodeRatchetTree(t *testing.T) {
	defer func(old int) { staleSlack = old }(staleSlack)
	for _, slack := range []int{256, 0} {
		staleSlack = slack
		rng := rand.New(rand.NewPCG(3, uint64(slack)))
		for _, leaves := range []int{1, 2, 5, 40, 1500} {
			for _, fill := range []float64{0.05, 0.5, 1} {
				tr := randomTree(t, rng, leaves, fill)
				checkEncoded(t, "built", tr.View())
				next := uint32(1 << 30)
				for range 40 {
					d := tr.Diff()
					switch rng.IntN(5) {
					case 0:
						for range 1 + rng.IntN(5) {
							next++
							if _, err := d.Add(keyedLeaf(next)); err != nil {
								t.Fatal(err)
							}
						}
					case 1, 2:
						// Remove the last leaves (truncating), sometimes
						// adding back in the same diff.
						for k := 0; k < 1+rng.IntN(3); k++ {
							last, ok := d.lastNonBlank()
							if !ok || !last.IsLeaf() || last == 0 {
								break
							}
							if err := d.Remove(last.Leaf()); err != nil {
								t.Fatal(err)
							}
						}
						if rng.IntN(2) == 0 {
							next++
							if _, err := d.Add(keyedLeaf(next)); err != nil {
								t.Fatal(err)
							}
						}
					case 3:
						i := LeafIndex(rng.IntN(int(d.NumLeaves())))
						if d.Leaf(i) != nil {
							next++
							if err := d.Update(i, keyedLeaf(next)); err != nil {
								t.Fatal(err)
							}
						}
					case 4:
						for range 1 + rng.IntN(3) {
							x := NodeIndex(rng.IntN(int(d.Width())))
							next++
							if x.IsLeaf() {
								d.set(x, node{leaf: keyedLeaf(next)})
							} else {
								d.set(x, node{parent: keyedParent(next)})
							}
						}
					}
					checkEncoded(t, "diff", d)
					if rng.IntN(4) == 0 {
						continue // dropped
					}
					if err := d.Merge(); err != nil {
						t.Fatal(err)
					}
					if rng.IntN(2) == 0 {
						checkEncoded(t, "merged", tr.View())
					}
				}
				checkEncoded(t, "end", tr.View())
			}
		}
	}
}

// TestEncodeRatchetTreeConcurrent: views of one tree export at once (the
// cache is built by one of them); run with -race.
func TestEncodeRatchetTreeConcurrent(t *testing.T) {
	tr := randomTree(t, rand.New(rand.NewPCG(5, 6)), 300, 0.7)
	want, err := message.Marshal(tr.RatchetTree())
	if err != nil {
		t.Fatal(err)
	}
	v := tr.View()
	var wg sync.WaitGroup
	errs := make([]bool, 4)
	for i := range errs {
		wg.Go(func() {
			got, err := v.EncodeRatchetTree()
			errs[i] = err != nil || !bytes.Equal(got, want)
		})
	}
	wg.Wait()
	for i, bad := range errs {
		if bad {
			t.Fatalf("goroutine %d: wrong encoding", i)
		}
	}
}
