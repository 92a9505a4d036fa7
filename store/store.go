// Package store is the local store as one thing: the cache (blobs,
// images, tags, step entries) and the unpacked snapshots that share one
// root directory, opened together in the right order, with the lock that
// keeps builds and prunes apart, and prune, usage and check over both.
//
// It owns what needs both halves and nothing else: the cache and
// snapshot packages keep their own formats, and callers reach them
// through [Store.Cache] and [Store.Snapshots]. Locking is here so that no
// caller takes a lock itself: [Store.Build] runs work under the shared
// build lock, [Store.Prune] and a repairing [Store.Check] take it
// exclusively.
package store

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
)

// Options configure Open.
type Options struct {
	// MaxLayerSize caps one layer's uncompressed size (snapshot.Options).
	MaxLayerSize int64
}

// Store is the cache and the snapshots of one root.
type Store struct {
	root  string
	cache *cache.Store
	snaps *snapshot.Store
}

// Open opens the store at root, creating it (mode 0700) if needed.
//
// The snapshots open first: that detaches mounts a killed process left
// under the root, which must be gone before the cache removes the dead
// sessions they sit in (removing them would delete through the mount).
func Open(root string, opts Options) (*Store, error) {
	return open(root, opts, cache.Open)
}

// OpenForCheck is Open that leaves the cache's leftovers of dead
// processes for Check to report instead of removing them.
func OpenForCheck(root string, opts Options) (*Store, error) {
	return open(root, opts, cache.OpenForCheck)
}

func open(root string, opts Options, openCache func(string) (*cache.Store, error)) (*Store, error) {
	snaps, err := snapshot.OpenOptions(root, snapshot.Options{MaxLayerSize: opts.MaxLayerSize})
	if err != nil {
		return nil, fmt.Errorf("opening snapshots in %s: %w", root, err)
	}
	c, err := openCache(root)
	if err != nil {
		snaps.Close()
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	c.SetHolder(heldLayers{snaps})
	return &Store{root: c.Root(), cache: c, snaps: snaps}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Cache is the blobs, images, tags and step entries.
func (s *Store) Cache() *cache.Store { return s.cache }

// Snapshots is the unpacked layers.
func (s *Store) Snapshots() *snapshot.Store { return s.snaps }

// Close removes this process's temporary directories.
func (s *Store) Close() error {
	err := s.snaps.Close()
	if cerr := s.cache.Close(); err == nil {
		err = cerr
	}
	return err
}

// Build runs fn under the shared build lock: builds and pulls run side by
// side, and a prune waits until fn returns, so it never removes what fn
// has written but not yet tagged. Everything from the first blob written
// to the last tag or export belongs inside one fn.
func (s *Store) Build(ctx context.Context, fn func() error) error {
	release, err := s.cache.BuildLock(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the store: %w", err)
	}
	defer release()
	return fn()
}

// heldLayers lets the cache read the layers that committed snapshots
// hold (see cache/held.go).
type heldLayers struct{ snaps *snapshot.Store }

func (h heldLayers) HoldsLayer(diffID v1.Hash) bool {
	return h.snaps.GivesLayer(snapshot.ID(diffID.Hex))
}

func (h heldLayers) OpenHeldLayer(_ context.Context, diffID v1.Hash) (io.ReadCloser, error) {
	return h.snaps.OpenLayer(snapshot.ID(diffID.Hex))
}
