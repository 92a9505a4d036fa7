package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/builderdev/builder/internal/fsutil"
)

// cacheMountsDir holds the directories of RUN --mount=type=cache, one per
// id (and per instance, for sharing=private), which persist between
// builds. They are no part of any layer or cache key: prune removes them
// all, usage counts them.
const cacheMountsDir = "cachemounts"

// CacheMount is a held cache-mount directory: Dir is bound into the RUN
// step, Release lets the next holder have it.
type CacheMount struct {
	Dir     string
	Created bool // made now: the caller fills it (from=, mode, uid, gid)
	lock    *fsutil.Lock
}

// Release drops the holder's lock on the directory.
func (m *CacheMount) Release() error { return m.lock.Release() }

// Sharing modes of a cache mount, as BuildKit's.
const (
	SharingShared  = "shared"  // every step at once
	SharingLocked  = "locked"  // one step at a time; the others wait
	SharingPrivate = "private" // one step at a time; the others get another instance
)

// CacheMount returns the directory of the cache mount id, held as
// sharing says. The caller must be inside Build (prune never runs then).
func (s *Store) CacheMount(id, sharing string) (*CacheMount, error) {
	sum := sha256.Sum256([]byte(id))
	base := filepath.Join(s.root, cacheMountsDir, hex.EncodeToString(sum[:16]))
	if err := os.MkdirAll(filepath.Dir(base), 0o700); err != nil {
		return nil, err
	}
	for n := 0; ; n++ {
		dir := base
		if n > 0 {
			dir += "-" + strconv.Itoa(n)
		}
		var l *fsutil.Lock
		var err error
		switch sharing {
		case SharingShared, "":
			l, err = fsutil.Acquire(dir+".lock", false)
		case SharingLocked:
			l, err = fsutil.Acquire(dir+".lock", true)
		case SharingPrivate:
			var ok bool
			if l, ok, err = fsutil.TryAcquire(dir+".lock", true); err == nil && !ok {
				continue // held: the next instance
			}
		default:
			return nil, fmt.Errorf("unknown cache mount sharing %q (use shared, private or locked)", sharing)
		}
		if err != nil {
			return nil, fmt.Errorf("locking cache mount %s: %w", id, err)
		}
		created := false
		if err := os.Mkdir(dir, 0o755); err == nil {
			created = true
		} else if !errors.Is(err, fs.ErrExist) {
			l.Release()
			return nil, err
		}
		return &CacheMount{Dir: dir, Created: created, lock: l}, nil
	}
}

// cacheMountUsage counts the cache-mount directories and their size.
func (s *Store) cacheMountUsage() (int, int64, error) {
	dir := filepath.Join(s.root, cacheMountsDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	// In blocks, as du counts and prune's report measures.
	size, err := fsutil.DiskUsage(dir)
	return n, size, err
}

// PruneCacheMounts removes every RUN --mount=type=cache directory and
// nothing else (prune --filter type=exec.cachemount), under the
// exclusive build lock, so that no step is using one.
func (s *Store) PruneCacheMounts(ctx context.Context) (PruneReport, error) {
	release, err := s.cache.ExclusiveLock(ctx)
	if err != nil {
		return PruneReport{}, fmt.Errorf("waiting for the store: %w", err)
	}
	defer release()
	_, size, err := s.cacheMountUsage()
	if err != nil {
		return PruneReport{}, err
	}
	n, err := s.pruneCacheMounts()
	if err != nil {
		return PruneReport{}, err
	}
	rep := PruneReport{CacheMounts: n}
	rep.Reclaimed = size
	return rep, nil
}

// pruneCacheMounts removes every cache mount; the caller holds the build
// lock exclusively, so no step is using one.
func (s *Store) pruneCacheMounts() (int, error) {
	n, _, err := s.cacheMountUsage()
	if err != nil {
		return 0, err
	}
	if err := os.RemoveAll(filepath.Join(s.root, cacheMountsDir)); err != nil {
		return 0, fmt.Errorf("removing cache mounts: %w", err)
	}
	return n, nil
}
