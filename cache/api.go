package cache

import (
	"context"
	"errors"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// --- garbage collection ---

// PruneOptions select what Prune removes.
type PruneOptions struct {
	All         bool          // every cache entry, not only unused ones past their age
	KeepStorage int64         // remove LRU entries until what remains is at most this (bytes); 0: no budget
	Until       time.Duration // only entries unused for longer than this; 0: any age
	// Live, if set, is called with the diff IDs still referenced after
	// pruning, so that the caller can remove the snapshots of the rest.
	Live func(diffIDs map[v1.Hash]bool) error
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Entries   int
	Blobs     int
	Reclaimed int64
}

// Prune removes step-cache entries (least recently used first), then the
// blobs that no tag and no remaining entry reference. It never removes
// what a tagged image needs. It takes the build lock exclusively.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	return PruneReport{}, errors.New("cache: not implemented")
}

// Usage is what the store holds.
type Usage struct {
	Images, ImagesSize   int64 // tagged images and the bytes of their blobs
	Entries, EntriesSize int64 // step-cache entries and the bytes of layers only they keep
	Blobs, BlobsSize     int64
	Reclaimable          int64 // bytes Prune --all would free
}

// Usage reports what the store holds.
func (s *Store) Usage() (Usage, error) { return Usage{}, errors.New("cache: not implemented") }
