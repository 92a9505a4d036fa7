package executor

import (
	"context"
	"errors"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/registry"
	"github.com/builderdev/builder/snapshot"
)

// PullPolicy says when FROM consults a registry.
type PullPolicy int

const (
	PullMissing PullPolicy = iota // use the local image if there is one (docker build's default)
	PullAlways                    // always check the registry (--pull)
	PullNever                     // never contact a registry
)

// NewResolver returns the Resolver that FROM uses: the local store first
// (unless policy is PullAlways), then client.
func NewResolver(store *cache.Store, client *registry.Client, policy PullPolicy) Resolver {
	return nil
}

// Prune removes step-cache entries and unreferenced blobs as cache.Prune
// does, then the snapshots no remaining image or entry needs (all of them
// with opts.All, since snapshots can be rebuilt from blobs).
func Prune(ctx context.Context, store *cache.Store, snaps *snapshot.Store, opts cache.PruneOptions) (cache.PruneReport, error) {
	return cache.PruneReport{}, errors.New("executor: not implemented")
}

// DiskUsage is what the store holds, snapshots included.
type DiskUsage struct {
	cache.Usage
	Snapshots     int
	SnapshotsSize int64
}

// Usage reports the store's disk usage.
func Usage(store *cache.Store, snaps *snapshot.Store) (DiskUsage, error) {
	return DiskUsage{}, errors.New("executor: not implemented")
}
