package console

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// Processes starting together race to create the session key; the losers
// read the winner's file, which must never be seen empty or half written.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	dir := t.TempDir()
	for round := range 50 {
		path := filepath.Join(dir, fmt.Sprint(round), "console.key")
		keys := make([][]byte, 8)
		errs := make([]error, len(keys))
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() { keys[i], errs[i] = loadOrCreateKey(path) })
		}
		wg.Wait()
		for i := range keys {
			if errs[i] != nil {
				t.Fatalf("round %d, caller %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("round %d: callers got different keys", round)
			}
		}
	}
}
