package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/internal/fsutil"
)

// PruneOptions select what Prune removes.
//
// Which step-cache entries go:
//   - only entries unused for longer than Until are considered (all of
//     them when Until is 0);
//   - with KeepStorage, the least recently used of those go until the
//     bytes of layers kept only by entries fit in KeepStorage;
//   - else, with All or Until, every considered entry goes;
//   - else (a plain prune) the dangling ones: entries whose layer no
//     tagged image uses. Entries without a layer cost nothing and stay.
//
// Entries that are damaged or whose layer blob is gone always go.
type PruneOptions struct {
	All         bool          // every cache entry, not only unused ones past their age
	KeepStorage int64         // remove LRU entries until what remains is at most this (bytes); 0: no budget
	Until       time.Duration // only entries unused for longer than this; 0: any age
	// Live, if set, is called with the diff IDs still referenced after
	// pruning, so that the caller can remove the snapshots of the rest,
	// and with those of them that are held (see held.go): their snapshot
	// is the layer's only copy.
	Live func(diffIDs, held map[v1.Hash]bool) error
	// Locked, if set, is called once the build lock is held, before
	// anything is removed: the caller measures the store there.
	Locked func()
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Entries   int
	Blobs     int
	Reclaimed int64
}

// stepFile is one step-cache entry as prune sees it.
type stepFile struct {
	path    string
	lastUse time.Time // the file's mtime, set by every hit
	size    int64
	layer   *Layer // nil: no layer
	broken  bool   // unreadable, or its layer blob is gone
}

// Prune removes step-cache entries (least recently used first), then the
// blobs that no tag and no remaining entry reference. It never removes
// what a tagged image needs. It takes the build lock exclusively.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	release, err := s.lock(ctx, true)
	if err != nil {
		return PruneReport{}, err
	}
	defer release()
	if opts.Locked != nil {
		opts.Locked()
	}
	var rep PruneReport
	tagged, err := s.taggedRefs()
	if err != nil {
		return rep, fmt.Errorf("pruning: %w", err)
	}
	steps, err := s.scanSteps()
	if err != nil {
		return rep, fmt.Errorf("pruning: %w", err)
	}
	blobs, err := s.scanBlobs()
	if err != nil {
		return rep, fmt.Errorf("pruning: %w", err)
	}
	remove := selectEntries(steps, tagged, blobs, opts, time.Now())
	live := map[v1.Hash]bool{}
	liveDiffs := maps.Clone(tagged.diffIDs)
	for i, st := range steps {
		if remove[i] {
			if err := os.Remove(st.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return rep, fmt.Errorf("pruning: %w", err)
			}
			rep.Entries++
			rep.Reclaimed += st.size
			continue
		}
		if st.layer != nil {
			live[st.layer.Descriptor.Digest] = true
			liveDiffs[st.layer.DiffID] = true
			if s.snapshotOnly(st.layer.Descriptor) {
				tagged.held[st.layer.DiffID] = true
			}
		}
	}
	// A held layer's compressed blob lives as long as the layer: the next
	// push would make the same bytes again.
	for diff, cbs := range s.compressedBlobs() {
		if liveDiffs[diff] {
			for _, h := range cbs {
				live[h] = true
			}
		}
	}
	for h, size := range blobs {
		if tagged.blobs[h] || live[h] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("pruning: %w", context.Cause(ctx))
		}
		p, _ := s.blobPath(h)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, fmt.Errorf("pruning: %w", err)
		}
		rep.Blobs++
		rep.Reclaimed += size
	}
	s.pruneRecords()
	s.pruneCompressed()
	s.pruneSources(tagged)
	s.pruneContexts(opts, time.Now())
	if opts.Live != nil {
		if err := opts.Live(liveDiffs, tagged.held); err != nil {
			return rep, fmt.Errorf("pruning: %w", err)
		}
	}
	return rep, nil
}

// layerBytes is what keeping layer d costs: its blob, or for a held
// layer (no blob) its tar's size, which its snapshot roughly takes.
func layerBytes(blobs map[v1.Hash]int64, d v1.Descriptor) int64 {
	if n, ok := blobs[d.Digest]; ok {
		return n
	}
	return d.Size
}

// selectEntries decides which entries go (see PruneOptions).
func selectEntries(steps []stepFile, tagged *refs, blobs map[v1.Hash]int64, opts PruneOptions, now time.Time) []bool {
	remove := make([]bool, len(steps))
	var candidates []int
	for i, st := range steps {
		switch {
		case st.broken:
			remove[i] = true
		case opts.Until <= 0 || now.Sub(st.lastUse) > opts.Until:
			candidates = append(candidates, i)
		}
	}
	switch {
	case opts.KeepStorage > 0:
		// Bytes kept only by entries, and how many entries keep each layer.
		users := map[v1.Hash]int{}
		var total int64
		for i, st := range steps {
			if remove[i] || st.layer == nil || tagged.blobs[st.layer.Descriptor.Digest] {
				continue
			}
			d := st.layer.Descriptor.Digest
			if users[d] == 0 {
				total += layerBytes(blobs, st.layer.Descriptor)
			}
			users[d]++
		}
		slices.SortStableFunc(candidates, func(a, b int) int { return steps[a].lastUse.Compare(steps[b].lastUse) })
		for _, i := range candidates {
			if total <= opts.KeepStorage {
				break
			}
			remove[i] = true
			if l := steps[i].layer; l != nil && !tagged.blobs[l.Descriptor.Digest] {
				if users[l.Descriptor.Digest]--; users[l.Descriptor.Digest] == 0 {
					total -= layerBytes(blobs, l.Descriptor)
				}
			}
		}
	case opts.All || opts.Until > 0:
		for _, i := range candidates {
			remove[i] = true
		}
	default:
		for _, i := range candidates {
			if l := steps[i].layer; l != nil && !tagged.blobs[l.Descriptor.Digest] {
				remove[i] = true
			}
		}
	}
	return remove
}

// scanSteps reads every step-cache entry.
func (s *Store) scanSteps() ([]stepFile, error) {
	dirs, err := os.ReadDir(filepath.Join(s.root, stepsDir))
	if err != nil {
		return nil, err
	}
	var steps []stepFile
	for _, d := range dirs {
		dir := filepath.Join(s.root, stepsDir, d.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // not a directory
		}
		for _, e := range ents {
			steps = append(steps, s.readStepFile(filepath.Join(dir, e.Name())))
		}
	}
	return steps, nil
}

func (s *Store) readStepFile(p string) stepFile {
	st := stepFile{path: p, broken: true}
	fi, err := os.Stat(p)
	if err != nil {
		return st
	}
	st.lastUse, st.size = fi.ModTime(), fi.Size()
	data, err := os.ReadFile(p)
	if err != nil {
		return st
	}
	var ef entryFile
	if json.Unmarshal(data, &ef) != nil || ef.Version != entryVersion {
		return st
	}
	if ef.Layer == nil {
		st.broken = false
		return st
	}
	st.layer = ef.Layer
	st.broken = !s.HasLayer(ef.Layer.Descriptor)
	return st
}

// scanBlobs returns every blob and its size.
func (s *Store) scanBlobs() (map[v1.Hash]int64, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, blobsDir))
	if err != nil {
		return nil, err
	}
	blobs := make(map[v1.Hash]int64, len(ents))
	for _, e := range ents {
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if checkHash(h) != nil {
			continue // not ours to judge
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		blobs[h] = fi.Size()
	}
	return blobs, nil
}

// refs is what the tagged images need.
type refs struct {
	blobs     map[v1.Hash]bool // manifests, configs, layers
	diffIDs   map[v1.Hash]bool
	held      map[v1.Hash]bool // layers only a snapshot holds, no blob (see held.go)
	heldSize  map[v1.Hash]int64
	manifests int // distinct tagged manifests
}

// taggedRefs collects every blob the tagged images reference, following
// image indexes down to their manifests. A tagged image that cannot be
// read stops prune: guessing could delete what it needs.
//
// Descriptors without a name count too: another tool may have added them
// to index.json, and they are as visible to OCI readers as tags.
func (s *Store) taggedRefs() (*refs, error) {
	idx, err := readIndex(s.path(indexFile))
	if err != nil {
		return nil, err
	}
	ds := idx.Manifests
	r := &refs{blobs: map[v1.Hash]bool{}, diffIDs: map[v1.Hash]bool{}, held: map[v1.Hash]bool{}, heldSize: map[v1.Hash]int64{}}
	for _, d := range ds {
		if r.blobs[d.Digest] {
			continue
		}
		r.manifests++
		if err := s.markManifest(d.Digest, r, 0); err != nil {
			return nil, fmt.Errorf("image %s in index.json is damaged (untag it to prune): %w", indexName(d), err)
		}
	}
	return r, nil
}

func indexName(d v1.Descriptor) string {
	if n := d.Annotations[annRefName]; n != "" {
		return n
	}
	return d.Digest.String()
}

func (s *Store) markManifest(h v1.Hash, r *refs, depth int) error {
	if depth > 4 {
		return errors.New("image indexes nested too deep")
	}
	r.blobs[h] = true
	raw, err := s.readBlob(h)
	if err != nil {
		return err
	}
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("reading manifest %s: %w", h, err)
	}
	for _, c := range m.Manifests {
		if s.HasBlob(c.Digest) { // an index may list platforms never pulled
			if err := s.markManifest(c.Digest, r, depth+1); err != nil {
				return err
			}
		}
	}
	for _, l := range m.Layers {
		r.blobs[l.Digest] = true
		if s.snapshotOnly(l) {
			r.held[l.Digest] = true
			r.heldSize[l.Digest] = l.Size
		}
	}
	if m.Config == nil {
		return nil
	}
	r.blobs[m.Config.Digest] = true
	cfg, err := s.readBlob(m.Config.Digest)
	if err != nil {
		return err
	}
	cf, err := parseConfig(cfg)
	if err != nil {
		return fmt.Errorf("reading config %s: %w", m.Config.Digest, err)
	}
	for _, d := range cf.RootFS.DiffIDs {
		r.diffIDs[d] = true
	}
	return nil
}

// pruneRecords removes the ID records of images whose manifest is gone.
func (s *Store) pruneRecords() {
	ents, _ := os.ReadDir(filepath.Join(s.root, imagesDir))
	for _, e := range ents {
		id := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if _, err := s.imageByID(id); errors.Is(err, ErrNotFound) {
			os.Remove(filepath.Join(s.root, imagesDir, e.Name()))
		}
	}
}

// pruneContexts removes remembered context hashes: all of them with All,
// those unsaved for longer than Until otherwise. They are only hints.
func (s *Store) pruneContexts(opts PruneOptions, now time.Time) {
	if !opts.All && opts.Until <= 0 {
		return
	}
	ents, _ := os.ReadDir(filepath.Join(s.root, contextsDir))
	for _, e := range ents {
		fi, err := e.Info()
		if err == nil && (opts.Until <= 0 || now.Sub(fi.ModTime()) > opts.Until) {
			os.Remove(filepath.Join(s.root, contextsDir, e.Name()))
		}
	}
}

// Usage is what the store holds.
type Usage struct {
	Images, ImagesSize   int64 // tagged images and the bytes of their layers (a held one at its tar's size) and blobs
	Entries, EntriesSize int64 // step-cache entries and the bytes of layers only they keep
	Blobs, BlobsSize     int64
	Reclaimable          int64 // bytes of the cache Prune --all would free (snapshots are the caller's)
	// ReclaimableOnDisk is Reclaimable as du counts it: the blocks the
	// files take, which for small files (step entries) is far more
	// than their length.
	ReclaimableOnDisk int64
	// Kept are the diff IDs whose snapshots Prune --all keeps: the
	// layers of tagged images that only a snapshot holds.
	Kept map[v1.Hash]bool
}

// onDisk is the blocks the file at p takes, 0 if it is gone.
func (s *Store) onDisk(p string, err error) int64 {
	if err != nil {
		return 0
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return 0
	}
	return fsutil.DiskSize(fi)
}

// Usage reports what the store holds.
func (s *Store) Usage() (Usage, error) {
	tagged, err := s.taggedRefs()
	if err != nil {
		return Usage{}, fmt.Errorf("measuring store: %w", err)
	}
	steps, err := s.scanSteps()
	if err != nil {
		return Usage{}, fmt.Errorf("measuring store: %w", err)
	}
	blobs, err := s.scanBlobs()
	if err != nil {
		return Usage{}, fmt.Errorf("measuring store: %w", err)
	}
	u := Usage{Images: int64(tagged.manifests), Blobs: int64(len(blobs))}
	for diff, cbs := range s.compressedBlobs() {
		if tagged.diffIDs[diff] { // kept by prune --all, as the image is
			for _, h := range cbs {
				tagged.blobs[h] = true
			}
		}
	}
	for h, size := range blobs {
		u.BlobsSize += size
		if tagged.blobs[h] {
			u.ImagesSize += size
		} else {
			u.Reclaimable += size
			u.ReclaimableOnDisk += s.onDisk(s.blobPath(h))
		}
	}
	for _, n := range tagged.heldSize { // no blob: counted at the size of their tar
		u.ImagesSize += n
	}
	u.Kept = tagged.held
	counted := map[v1.Hash]bool{}
	for _, st := range steps {
		u.ReclaimableOnDisk += s.onDisk(st.path, nil)
		if st.broken {
			u.Reclaimable += st.size
			continue
		}
		u.Entries++
		u.Reclaimable += st.size
		if st.layer == nil {
			continue
		}
		d := st.layer.Descriptor.Digest
		if !tagged.blobs[d] && !counted[d] {
			counted[d] = true
			u.EntriesSize += layerBytes(blobs, st.layer.Descriptor)
		}
	}
	return u, nil
}
