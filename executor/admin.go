package executor

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
	return &resolver{store: store, client: client, policy: policy}
}

type resolver struct {
	store  *cache.Store
	client *registry.Client
	policy PullPolicy
}

func (r *resolver) Resolve(ctx context.Context, ref string, platform v1.Platform) (cache.ImageRecord, error) {
	return r.ResolveWithProgress(ctx, ref, platform, nil)
}

// ProgressResolver is a Resolver that can report the bytes it downloads;
// FROM shows them as the step's progress.
type ProgressResolver interface {
	ResolveWithProgress(ctx context.Context, ref string, platform v1.Platform, progress func(label string, current, total int64)) (cache.ImageRecord, error)
}

func (r *resolver) ResolveWithProgress(ctx context.Context, ref string, platform v1.Platform, progress func(label string, current, total int64)) (cache.ImageRecord, error) {
	if r.policy != PullAlways {
		rec, err := r.store.Lookup(ref)
		switch {
		case err == nil:
			have, perr := r.platformOf(rec)
			if perr != nil {
				return cache.ImageRecord{}, perr
			}
			if platformMatches(have, platform) {
				return rec, nil
			}
			if r.policy == PullNever || r.client == nil {
				return cache.ImageRecord{}, fmt.Errorf("local image %s is for %s, not %s", ref, have, platform.String())
			}
		case !errors.Is(err, cache.ErrNotFound):
			return cache.ImageRecord{}, err
		case r.policy == PullNever || r.client == nil:
			return cache.ImageRecord{}, fmt.Errorf("image %s not found in the local store", ref)
		}
	}
	if r.client == nil {
		return cache.ImageRecord{}, fmt.Errorf("image %s: no registry client", ref)
	}
	var report func(registry.Progress)
	if progress != nil {
		report = func(p registry.Progress) {
			if !p.Cached {
				progress(p.Digest.String(), p.Complete, p.Total)
			}
		}
	}
	return r.client.PullPlatform(ctx, ref, platform, report)
}

// PruneReport says what Prune removed.
type PruneReport struct {
	cache.PruneReport
	Snapshots int
}

// platformOf reads the platform a stored image is for.
func (r *resolver) platformOf(rec cache.ImageRecord) (v1.Platform, error) {
	img, err := r.store.Image(rec.Manifest.Digest)
	if err != nil {
		return v1.Platform{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, err
	}
	return v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, nil
}

// platformMatches reports whether an image for have can serve want. An
// image that does not say its platform is taken as it is, as docker does.
func platformMatches(have, want v1.Platform) bool {
	if have.OS == "" && have.Architecture == "" {
		return true
	}
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	return want.Variant == "" || have.Variant == "" || have.Variant == want.Variant
}

// Prune removes step-cache entries and unreferenced blobs as cache.Prune
// does, then the snapshots no remaining image or entry needs (all of them
// with opts.All, since snapshots can be rebuilt from blobs).
func Prune(ctx context.Context, store *cache.Store, snaps *snapshot.Store, opts cache.PruneOptions) (PruneReport, error) {
	var removed int
	opts.Live = func(live map[v1.Hash]bool) error {
		ids, err := snaps.List()
		if err != nil {
			return err
		}
		keep := map[snapshot.ID]bool{}
		for h := range live {
			keep[snapshot.ID(h.Hex)] = true
		}
		for _, id := range ids {
			if opts.All || !keep[id] {
				if err := snaps.Remove(id); err != nil {
					return fmt.Errorf("removing snapshot %s: %w", id, err)
				}
				removed++
			}
		}
		return nil
	}
	rep, err := store.Prune(ctx, opts)
	return PruneReport{PruneReport: rep, Snapshots: removed}, err
}

// DiskUsage is what the store holds, snapshots included.
type DiskUsage struct {
	cache.Usage
	Snapshots     int
	SnapshotsSize int64
}

// Usage reports the store's disk usage.
func Usage(store *cache.Store, snaps *snapshot.Store) (DiskUsage, error) {
	u, err := store.Usage()
	if err != nil {
		return DiskUsage{}, err
	}
	n, size, err := snaps.Usage()
	if err != nil {
		return DiskUsage{}, err
	}
	return DiskUsage{Usage: u, Snapshots: n, SnapshotsSize: size}, nil
}
