package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
)

// layerMerger merges groups of consecutive layers of an image into one
// layer each (docs/layers.md): for a build's --max-layers and --squash,
// and for flatten.
type layerMerger struct {
	cache       *cache.Store
	snaps       *snapshot.Store
	compression cache.Compression
	epoch       *time.Time
	noCache     bool
	fetch       func(ctx context.Context, l cache.Layer) error
	stream      StreamLayer // if set, layers the store lacks are unpacked from it, not fetched
}

// StreamLayer hands fn the uncompressed stream of a layer the store
// lacks, from a registry, storing no blob (registry.Client.StreamLayer).
type StreamLayer func(ctx context.Context, l cache.Layer, fn func(io.Reader) error) error

// mergeImage merges the groups of layers and rewrites hist to match
// (mergeHistory). It first makes sure every layer up to the last group
// is unpacked, so that a missing or damaged layer fails before anything
// is written.
func (m *layerMerger) mergeImage(ctx context.Context, layers []cache.Layer, hist []v1.History, groups []mergeGroup) ([]cache.Layer, []v1.History, [][2]int, error) {
	newHist, steps, err := mergeHistory(hist, len(layers), groups)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(groups) == 0 {
		return layers, newHist, nil, nil
	}
	if err := ensureLayersStreaming(ctx, m.cache, m.snaps, layers[:groups[len(groups)-1].end], m.fetch, m.stream); err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("%w (builder check --repair removes a damaged layer; pulling or building the image again restores it)", err)
		}
		return nil, nil, nil, err
	}
	out := make([]cache.Layer, 0, len(layers))
	next := 0
	for _, g := range groups {
		out = append(out, layers[next:g.start]...)
		l, err := m.mergeGroup(ctx, layers[:g.start], layers[g.start:g.end])
		if err != nil {
			return nil, nil, nil, fmt.Errorf("merging layers %d-%d: %w", g.start+1, g.end, err)
		}
		out = append(out, l)
		next = g.end
	}
	return append(out, layers[next:]...), newHist, steps, nil
}

// mergeGroup returns the layer that holds run merged over below: the
// one recorded for the same layers if there is one, else a new one.
func (m *layerMerger) mergeGroup(ctx context.Context, below, run []cache.Layer) (cache.Layer, error) {
	kb := keyMerge(below, run)
	addEpoch(kb, m.epoch)
	addCompression(kb, m.compression)
	key := kb.Sum()
	if !m.noCache {
		if e, err := m.cache.LookupStep(key); err == nil && e.Layer != nil && m.cache.HasBlob(e.Layer.Descriptor.Digest) {
			return *e.Layer, nil
		}
	}
	lower, ids := chainOf(below), chainOf(run)
	opts := snapshot.WriteOptions{SourceDateEpoch: m.epoch}
	layer, err := m.importLayer(ctx, func(w io.Writer) error {
		return m.snaps.WriteMerged(ctx, w, lower, ids, opts)
	})
	if err != nil {
		return cache.Layer{}, err
	}
	if err := m.cache.RecordStep(key, cache.Entry{Layer: &layer}); err != nil {
		return cache.Layer{}, fmt.Errorf("recording merged layer: %w", err)
	}
	return layer, nil
}

// importLayer stores the layer tar that write produces as a blob, the
// returned layer. It is the one place a merged layer enters the store.
// No snapshot is made of it: the merge only reads the layers below it,
// a later FROM of the image unpacks it on use, and flatten's result then
// takes on disk only its blob (issue 16: temporary disk at most the
// result's size).
func (m *layerMerger) importLayer(ctx context.Context, write func(io.Writer) error) (cache.Layer, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	layer, err := m.cache.PutLayer(ctx, pr, m.compression, nil)
	pr.CloseWithError(errors.New("layer write stopped")) // unblocks the writer if PutLayer gave up
	return layer, err
}

func chainOf(layers []cache.Layer) []snapshot.ID {
	ids := make([]snapshot.ID, len(layers))
	for i, l := range layers {
		ids[i] = snapshot.ID(l.DiffID.Hex)
	}
	return ids
}

// ensureLayers makes sure every layer is unpacked as a snapshot; layers
// that came from the cache or a registry are unpacked here, once, from
// their blobs (fetched first with fetch when the store lacks one).
func ensureLayers(ctx context.Context, c *cache.Store, s *snapshot.Store, layers []cache.Layer, fetch func(context.Context, cache.Layer) error) error {
	return ensureLayersStreaming(ctx, c, s, layers, fetch, nil)
}

// ensureLayersStreaming is ensureLayers that, given stream, unpacks a
// layer the store lacks straight from its registry, storing no blob.
func ensureLayersStreaming(ctx context.Context, c *cache.Store, s *snapshot.Store, layers []cache.Layer,
	fetch func(context.Context, cache.Layer) error, stream StreamLayer) error {
	for _, l := range layers {
		id := snapshot.ID(l.DiffID.Hex)
		if s.Exists(id) {
			continue
		}
		if stream != nil && !c.HasLayer(l.Descriptor) {
			err := stream(ctx, l, func(r io.Reader) error { return s.Unpack(ctx, id, r) })
			if err != nil {
				return fmt.Errorf("unpacking layer %s: %w", l.Descriptor.Digest, err)
			}
			continue
		}
		rc, err := c.OpenLayer(l.Descriptor)
		if errors.Is(err, cache.ErrNotFound) && fetch != nil {
			// A layer known only to a registry (a --cache-from hit): fetched
			// now that a step has to run on it.
			if err = fetch(ctx, l); err == nil {
				rc, err = c.OpenLayer(l.Descriptor)
			}
		}
		if err != nil {
			return fmt.Errorf("opening layer %s: %w", l.Descriptor.Digest, err)
		}
		err = s.Unpack(ctx, id, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("unpacking layer %s: %w", l.Descriptor.Digest, err)
		}
	}
	return nil
}

// limitLayers applies --squash, --squash-all and --max-layers to the
// target's state once its last step is done, and reports what it merged.
func (b *build) limitLayers(ctx context.Context, st *imageState) error {
	max := maxLayers(b.opts.MaxLayers)
	groups := planLayers(st.baseLayers, len(st.layers)-st.baseLayers, max, b.opts.Squash)
	if len(groups) == 0 {
		return nil
	}
	m := &layerMerger{cache: b.cache, snaps: b.snaps, compression: b.opts.Compression,
		epoch: b.opts.SourceDateEpoch, noCache: b.opts.NoCache, fetch: b.opts.FetchLayer}
	before := len(st.layers)
	layers, hist, steps, err := m.mergeImage(ctx, st.layers, st.cfg.History, groups)
	if err != nil {
		return err
	}
	st.layers, st.cfg.History = layers, hist
	b.opts.Reporter.Report(Event{Kind: LayersMerged, Time: time.Now(), Merge: &MergeReport{
		Before: before, After: len(layers), Limit: max, Squash: b.opts.Squash, Steps: steps}})
	return nil
}

// maxLayers is the limit an Options.MaxLayers value means.
func maxLayers(n int) int {
	switch {
	case n == 0:
		return DefaultMaxLayers
	case n < 0:
		return int(^uint(0) >> 1)
	}
	return n
}
