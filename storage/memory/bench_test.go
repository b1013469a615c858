package memory

import (
	"testing"

	"github.com/mlskit/mls/storage/storagetest"
)

func BenchmarkStore(b *testing.B) {
	storagetest.Bench(b, New())
}
