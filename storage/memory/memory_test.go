package memory

import (
	"testing"

	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return New() })
}
