package checkpoint_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fcaudit/fcaudit/translog/checkpoint"
)

// Processes starting together on one data directory race to create the
// signing key; the losers read the winner's file, which must never be seen
// empty or half written.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	dir := t.TempDir()
	for round := range 50 {
		path := filepath.Join(dir, fmt.Sprint(round), checkpoint.DefaultKeyFile)
		keys := make([]string, 8)
		errs := make([]error, len(keys))
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := checkpoint.LoadOrCreateKey(path, "fcaudit/race", true)
				keys[i], errs[i] = k.VerifierKey, err
			})
		}
		wg.Wait()
		for i := range keys {
			if errs[i] != nil {
				t.Fatalf("round %d, caller %d: %v", round, i, errs[i])
			}
			if keys[i] != keys[0] {
				t.Fatalf("round %d: callers got different keys: %q and %q", round, keys[0], keys[i])
			}
		}
	}
}
