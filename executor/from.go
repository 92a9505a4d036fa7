package executor

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
)

// from makes the starting state of a stage and its FROM key, which is the
// base's manifest digest (or the base stage's key, or "scratch").
func (b *build) from(ctx context.Context, sc *stepCtx, s *parser.Stage) (*imageState, error) {
	platform := b.opts.Platform
	if s.Platform != "" {
		p, err := v1.ParsePlatform(s.Platform)
		if err != nil {
			return nil, fmt.Errorf("invalid --platform %q: %w", s.Platform, err)
		}
		platform = *p
	}
	switch s.Base.Kind {
	case parser.BaseStage:
		base, err := b.waitStage(ctx, s.Base.Stage)
		if err != nil {
			return nil, err
		}
		return base.clone(), nil
	case parser.BaseScratch:
		st := &imageState{cfg: emptyConfig(platform)}
		st.fsKey = keyScratch(platform).Sum()
		st.lastKey = st.fsKey
		return st, nil
	}
	sc.report(Event{Kind: StepStarted})
	progress := func(label string, current, total int64) {
		sc.report(Event{Kind: StepProgress, Label: label, Current: current, Total: total})
	}
	return b.fromImage(ctx, s.Base.Image, platform, progress)
}

// emptyConfig is the config of FROM scratch: like BuildKit's, it carries
// the default PATH so that images built from nothing still find programs.
func emptyConfig(p v1.Platform) v1.ConfigFile {
	return v1.ConfigFile{
		OS:           p.OS,
		Architecture: p.Architecture,
		Variant:      p.Variant,
		Config:       v1.Config{Env: []string{defaultPath}},
	}
}

// fromImage resolves ref to an image whose blobs are in the store.
func (b *build) fromImage(ctx context.Context, ref string, platform v1.Platform, progress func(string, int64, int64)) (*imageState, error) {
	if b.opts.Resolver == nil {
		return nil, fmt.Errorf("no resolver for image %s", ref)
	}
	var rec cache.ImageRecord
	var err error
	if pr, ok := b.opts.Resolver.(ProgressResolver); ok && progress != nil {
		rec, err = pr.ResolveWithProgress(ctx, ref, platform, progress)
	} else {
		rec, err = b.opts.Resolver.Resolve(ctx, ref, platform)
	}
	if err != nil {
		return nil, err
	}
	st, err := b.imageState(rec)
	if err != nil {
		return nil, fmt.Errorf("reading image %s: %w", ref, err)
	}
	st.fsKey = keyImage(rec.ID).Sum()
	st.lastKey = st.fsKey
	st.baseLayers = len(st.layers)
	return st, nil
}

// imageState loads a stored image's config and layers.
func (b *build) imageState(rec cache.ImageRecord) (*imageState, error) {
	return loadImageState(b.cache, rec)
}

func loadImageState(c *cache.Store, rec cache.ImageRecord) (*imageState, error) {
	img, err := c.Image(rec.Manifest.Digest)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest has %d layers but config lists %d diff IDs", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	st := &imageState{cfg: *cloneConfigFile(cfg)}
	st.cfg.RootFS = v1.RootFS{}
	for i, d := range m.Layers {
		if d.MediaType == "" {
			d.MediaType = types.OCILayer
		}
		st.layers = append(st.layers, cache.Layer{Descriptor: d, DiffID: cfg.RootFS.DiffIDs[i]})
	}
	return st, nil
}
