package sqlite

import (
	"testing"

	"github.com/mlskit/mls/storage/storagetest"
)

// BenchmarkStore measures Put+commit and Get; see storagetest.Bench. A
// commit costs an fsync (synchronous=FULL), so PutCommit depends mostly on
// the file system under t.TempDir.
func BenchmarkStore(b *testing.B) {
	storagetest.Bench(b, openTemp(b))
}
