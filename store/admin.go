package store

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/snapshot"
)

// PruneReport says what Prune removed.
type PruneReport struct {
	cache.PruneReport
	Snapshots   int
	CacheMounts int // RUN --mount=type=cache directories removed
}

// Prune removes step-cache entries and unreferenced blobs as cache.Prune
// does (under the exclusive build lock, which it takes), then the
// snapshots no remaining image or entry needs; with opts.All, also those
// that blobs can rebuild (all but the held layers'). Every cache mount
// goes too, as BuildKit's prune removes unused exec.cachemount records.
func (s *Store) Prune(ctx context.Context, opts cache.PruneOptions) (PruneReport, error) {
	var removed, mounts int
	opts.Live = func(live, held map[v1.Hash]bool) error {
		// Called under the exclusive build lock: no step holds a mount.
		var err error
		if mounts, err = s.pruneCacheMounts(); err != nil {
			return err
		}
		ids, err := s.snaps.List()
		if err != nil {
			return err
		}
		keep := map[snapshot.ID]bool{}
		for h := range live {
			keep[snapshot.ID(h.Hex)] = true
		}
		for _, id := range ids {
			// --all removes what blobs can rebuild; a held layer's
			// snapshot is its only copy.
			if opts.All && !held[v1.Hash{Algorithm: "sha256", Hex: string(id)}] || !keep[id] {
				if err := s.snaps.Remove(id); err != nil {
					return fmt.Errorf("removing snapshot %s: %w", id, err)
				}
				removed++
			}
		}
		return nil
	}
	// What was reclaimed is measured as du measures it, under the lock,
	// not added up: file lengths are not the blocks they free, and the
	// snapshots' share used to be left out.
	var before, after int64
	var merr error
	// Without tmp/: it holds this process's own session, gone at Close,
	// and nothing of anyone else's at rest.
	opts.Locked = func() { before, merr = fsutil.DiskUsage(s.root, "tmp") }
	live := opts.Live
	opts.Live = func(ids, held map[v1.Hash]bool) error {
		if err := live(ids, held); err != nil {
			return err
		}
		var err error
		if after, err = fsutil.DiskUsage(s.root, "tmp"); err != nil {
			merr = err
		}
		return nil
	}
	rep, err := s.cache.Prune(ctx, opts)
	if err == nil && merr == nil {
		rep.Reclaimed = max(before-after, 0)
	}
	return PruneReport{PruneReport: rep, Snapshots: removed, CacheMounts: mounts}, err
}

// Usage is what the store holds, snapshots included.
type Usage struct {
	cache.Usage
	Snapshots     int
	SnapshotsSize int64
	// CacheMounts are RUN --mount=type=cache directories, which prune
	// removes.
	CacheMounts     int
	CacheMountsSize int64
}

// Usage measures the store; Reclaimable covers the snapshots too.
func (s *Store) Usage() (Usage, error) {
	u, err := s.cache.Usage()
	if err != nil {
		return Usage{}, err
	}
	sizes, err := s.snaps.Sizes()
	if err != nil {
		return Usage{}, err
	}
	mounts, msize, err := s.cacheMountUsage()
	if err != nil {
		return Usage{}, err
	}
	out := Usage{Usage: u, Snapshots: len(sizes), CacheMounts: mounts, CacheMountsSize: msize}
	// Prune --all removes the cache mounts and every snapshot but those
	// that are a tagged image's only copy of a layer; counted in blocks,
	// as du and Prune's report count.
	out.Reclaimable = u.ReclaimableOnDisk + msize
	for id, n := range sizes {
		out.SnapshotsSize += n
		if !u.Kept[v1.Hash{Algorithm: "sha256", Hex: string(id)}] {
			out.Reclaimable += n
		}
	}
	return out, nil
}

// Finding is one problem Check found: what, and whether it was removed.
type Finding struct {
	Subject, Problem string
	Repaired         bool
}

// Check verifies the snapshots, then the cache (see their Check). A plain
// check shares the build lock, so it runs beside builds but never sees a
// prune half done; a repair holds it alone, so that nothing a build has
// written and not yet tagged is judged. Snapshots come first: their
// repair detaches stale mounts, which must be gone before the cache's
// repair removes the sessions they are in.
func (s *Store) Check(ctx context.Context, repair bool) ([]Finding, error) {
	lock := s.cache.BuildLock
	if repair {
		lock = s.cache.ExclusiveLock
	}
	release, err := lock(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var out []Finding
	sf, err := s.snaps.Check(ctx, repair)
	for _, f := range sf {
		out = append(out, Finding{f.Subject, f.Problem, f.Repaired})
	}
	if err != nil {
		return out, fmt.Errorf("checking snapshots: %w", err)
	}
	cf, err := s.cache.Check(ctx, repair)
	for _, f := range cf {
		out = append(out, Finding{f.Subject, f.Problem, f.Repaired})
	}
	return out, err
}
