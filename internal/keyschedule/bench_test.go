package keyschedule

import (
	"testing"

	"github.com/mlskit/mls/ciphersuite"
)

// BenchmarkEpoch measures one full key schedule step, init_secret to
// EpochSecrets, without PSKs.
func BenchmarkEpoch(b *testing.B) {
	for _, id := range []ciphersuite.ID{1, 5} {
		b.Run(id.String(), func(b *testing.B) {
			s := suite(b, id)
			init, _ := NewInitSecret(s, seq(s.HashSize(), 1))
			commit := seq(s.HashSize(), 2)
			b.ReportAllocs()
			for b.Loop() {
				j, _ := init.Joiner(commit, testGroupContext)
				m, _ := j.Intermediate(nil)
				if _, err := m.Epoch(testGroupContext); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
