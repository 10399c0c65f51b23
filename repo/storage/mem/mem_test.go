package mem_test

import (
	"testing"

	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/storage/mem"
	"github.com/costor/costor/repo/storage/storagetest"
)

func TestSuite(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Storage { return mem.New() })
}
