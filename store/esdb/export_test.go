package esdb

import "context"

// ExtendFromCopy runs one tree extension from the adapter's copy of the
// tree without reading the tree stream first: what a replica that lost the
// race to another one does.
func (s *Store) ExtendFromCopy(ctx context.Context) (more bool, err error) {
	s.tl.mu.Lock()
	defer s.tl.mu.Unlock()
	return s.buildStepLocked(ctx, treeChunk)
}
