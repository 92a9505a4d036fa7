package executor

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/store"
)

// FlattenOptions configure Flatten.
type FlattenOptions struct {
	// MaxLayers is how many layers the result may have; 0 means 1, a
	// flat image.
	MaxLayers   int
	Compression cache.Compression
	// Format is the result's media types when it leaves the machine, as
	// Options.Format.
	Format   cache.Format
	Reporter Reporter // default Discard
	// FetchLayer brings a layer the store lists but lacks, as in Options.
	FetchLayer func(ctx context.Context, l cache.Layer) error
	// StreamLayer, if set, is used instead of FetchLayer for the layers
	// that are merged: they are unpacked from the registry, their blobs
	// never stored, so that flatten's temporary disk is their snapshots.
	StreamLayer StreamLayer
}

// Flatten stores a copy of the stored image rec with at most MaxLayers
// layers: the same filesystem and config, and every history entry, those
// whose layers were merged marked empty_layer, plus one entry per merged
// layer (docs/layers.md). The whole image is planned as one list, with
// no base to keep. An image that already fits comes back as it is. Every
// layer is unpacked and checked against its diff ID before anything is
// written, so a missing or damaged layer fails naming its digest and
// leaves no image. The caller holds the store's build lock.
func Flatten(ctx context.Context, st *store.Store, rec cache.ImageRecord, o FlattenOptions) (cache.ImageRecord, *v1.ConfigFile, error) {
	c := st.Cache()
	if o.Reporter == nil {
		o.Reporter = Discard
	}
	max := o.MaxLayers
	if max == 0 {
		max = 1
	}
	img, err := loadImageState(c, rec)
	if err != nil {
		return cache.ImageRecord{}, nil, fmt.Errorf("reading image %s: %w", rec.ID, err)
	}
	groups := planLayers(0, len(img.layers), max, SquashNone)
	if len(groups) == 0 {
		return rec, img.config(), nil
	}
	m := &layerMerger{cache: c, snaps: st.Snapshots(), compression: o.Compression, fetch: o.FetchLayer, stream: o.StreamLayer}
	before := len(img.layers)
	layers, hist, steps, err := m.mergeImage(ctx, img.layers, img.cfg.History, groups)
	if err != nil {
		name := rec.Name
		if name == "" {
			name = rec.ID.String()
		}
		return cache.ImageRecord{}, nil, fmt.Errorf("flattening %s: %w", name, err)
	}
	img.layers, img.cfg.History = layers, hist
	cfg := img.config()
	descs := make([]v1.Descriptor, len(layers))
	for i, l := range layers {
		descs[i] = l.Descriptor
	}
	format := o.Format
	if format == "" {
		format = cache.FormatDocker
		if o.Compression.Format == "zstd" {
			format = cache.FormatOCI
		}
	}
	out, err := c.PutImage(cfg, descs, format, o.Compression)
	if err != nil {
		return cache.ImageRecord{}, nil, fmt.Errorf("writing image: %w", err)
	}
	o.Reporter.Report(Event{Kind: LayersMerged, Time: time.Now(), Merge: &MergeReport{
		Before: before, After: len(layers), Limit: max, Steps: steps}})
	return out, cfg, nil
}
