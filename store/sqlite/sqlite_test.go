package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/storetest"
)

func openTest(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if opts.PollInterval == 0 {
		opts.PollInterval = 10 * time.Millisecond
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close %s: %v", path, err)
		}
	})
	return s
}

func backend() storetest.Backend {
	return storetest.Backend{
		New: func(t testing.TB) store.Store {
			return openTest(t, filepath.Join(t.TempDir(), "data", FileName), Options{})
		},
		Second: func(t testing.TB, s store.Store) store.Store {
			return openTest(t, s.(*Store).path, Options{})
		},
		Features: storetest.Features{ContiguousPositions: true},
	}
}

func TestContract(t *testing.T) { storetest.Run(t, backend()) }

func BenchmarkStore(b *testing.B) { storetest.Bench(b, backend()) }
