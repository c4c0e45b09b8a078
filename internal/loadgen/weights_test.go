package loadgen

import (
	"testing"

	"github.com/fcaudit/fcaudit/fc"
)

// TestTypeWeightsCoverFC: every fc type is in the mix once, with a weight,
// so a type added to fc is load-tested too.
func TestTypeWeightsCoverFC(t *testing.T) {
	weights := map[string]int{}
	for _, tw := range typeWeights {
		if _, dup := weights[tw.typ]; dup || tw.weight <= 0 {
			t.Errorf("%s: weight %d, listed twice: %v", tw.typ, tw.weight, dup)
		}
		weights[tw.typ] = tw.weight
	}
	for _, typ := range fc.Types() {
		if _, ok := weights[typ]; !ok {
			t.Errorf("%s has no weight", typ)
		}
		delete(weights, typ)
	}
	for typ := range weights {
		t.Errorf("%s has a weight but is not an fc type", typ)
	}
}
