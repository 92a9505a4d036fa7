package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/builderdev/builder/cache"
)

// A build cache in a registry is one OCI image manifest: its config (of
// CacheConfigType) maps step keys to entries, and its layers are the
// entries' layer blobs, each annotated with its diff ID. Any registry
// that stores OCI manifests with a custom config type holds it.
const (
	CacheConfigType types.MediaType = "application/vnd.builder.cache.config.v1+json"
	annDiffID                       = "dev.builder.diffid"
	// maxCacheConfig bounds the config an import reads.
	maxCacheConfig = 64 << 20
)

// cacheConfig is the config blob of a cache manifest.
type cacheConfig struct {
	// Recipe is cache.KeyRecipe of the builder that wrote it: keys of
	// another recipe never match, so such a cache is ignored whole.
	Recipe  string       `json:"recipe"`
	Entries []cacheEntry `json:"entries"`
}

type cacheEntry struct {
	Key     string     `json:"key"`
	Layer   int        `json:"layer"` // index in the manifest's layers; -1: none
	Config  v1.Config  `json:"config"`
	History v1.History `json:"history"`
}

// CacheImage turns steps into a cache image: its config and manifest
// are built here, its layers read from the store (or, for layers the
// store only knows a registry holds, fetched on the way).
func (c *Client) CacheImage(ctx context.Context, steps []cache.Step) (v1.Image, error) {
	cfg := cacheConfig{Recipe: cache.KeyRecipe}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	index := map[v1.Hash]int{}
	diffIDs := map[v1.Hash]v1.Hash{}
	// Held layers leave compressed (made now, once, in parallel; see
	// cache/held.go), as an image's layers do.
	var held []v1.Descriptor
	for _, s := range steps {
		if l := s.Entry.Layer; l != nil {
			held = append(held, l.Descriptor)
		}
	}
	out, err := c.store.CompressLayers(ctx, held, cache.Compression{})
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		e := cacheEntry{Key: s.Key.String(), Layer: -1, Config: s.Entry.Config, History: s.Entry.History}
		if l := s.Entry.Layer; l != nil {
			d := out[0]
			out = out[1:]
			i, ok := index[d.Digest]
			if !ok {
				i = len(m.Layers)
				index[d.Digest] = i
				diffIDs[d.Digest] = l.DiffID
				m.Layers = append(m.Layers, v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest,
					Size: d.Size, Annotations: map[string]string{annDiffID: l.DiffID.String()}})
			}
			e.Layer = i
		}
		cfg.Entries = append(cfg.Entries, e)
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	h, n, err := v1.SHA256(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, err
	}
	m.Config = v1.Descriptor{MediaType: CacheConfigType, Digest: h, Size: n}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&cacheImage{c: c, ctx: ctx, raw: raw, cfg: rawCfg, m: &m, diffIDs: diffIDs})
}

type cacheImage struct {
	c       *Client
	ctx     context.Context // the push's: a layer fetched on the way stops with it
	raw     []byte
	cfg     []byte
	m       *v1.Manifest
	diffIDs map[v1.Hash]v1.Hash
}

func (i *cacheImage) MediaType() (types.MediaType, error) { return i.m.MediaType, nil }
func (i *cacheImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *cacheImage) RawConfigFile() ([]byte, error)      { return i.cfg, nil }

func (i *cacheImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, d := range i.m.Layers {
		if d.Digest == h {
			return &storeLayer{c: i.c, ctx: i.ctx, desc: d, diffID: i.diffIDs[h]}, nil
		}
	}
	return nil, fmt.Errorf("layer %s: %w", h, cache.ErrNotFound)
}

// storeLayer is a layer blob of the store, fetched first from a registry
// known to hold it when the store lacks it.
type storeLayer struct {
	c      *Client
	ctx    context.Context
	desc   v1.Descriptor
	diffID v1.Hash
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storeLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *storeLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.c.store.OpenBlob(l.desc.Digest)
	if errors.Is(err, cache.ErrNotFound) {
		if err := l.c.FetchLayer(l.ctx, cache.Layer{Descriptor: l.desc, DiffID: l.diffID}); err != nil {
			return nil, err
		}
		rc, err = l.c.store.OpenBlob(l.desc.Digest)
	}
	return rc, err
}

// ImportCache reads the cache image at ref: one manifest and one config
// fetch. Its layers stay in the registry, recorded as held there, until
// a step has to run on one (FetchLayer) or a push mounts it.
func (c *Client) ImportCache(ctx context.Context, ref string) (map[cache.Key]cache.Entry, error) {
	out, err := c.importCache(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("importing cache %s: %w", ref, explain(err))
	}
	return out, nil
}

func (c *Client) importCache(ctx context.Context, ref string) (map[cache.Key]cache.Entry, error) {
	r, err := ParseReference(ref, c.opts.Insecure)
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.opts.Keychain),
		remote.WithTransport(manifestLimit{c.transport()}),
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if m.Config.MediaType != CacheConfigType {
		return nil, fmt.Errorf("not a build cache (its config is %s, want %s)", m.Config.MediaType, CacheConfigType)
	}
	// ggcr reads a config of unknown size (-1) without a bound.
	if m.Config.Size < 0 || m.Config.Size > maxCacheConfig {
		return nil, fmt.Errorf("cache config of %d bytes is outside 0 to %d", m.Config.Size, maxCacheConfig)
	}
	raw, err := img.RawConfigFile() // ggcr checks it against the digest
	if err != nil {
		return nil, err
	}
	entries, err := parseCacheConfig(raw, m.Layers)
	if err != nil {
		return nil, err
	}
	var blobs []v1.Hash
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
	}
	if err := c.store.AddBlobSource(r.Context().Name(), blobs...); err != nil {
		return nil, fmt.Errorf("recording where the cache's layers are: %w", err)
	}
	return entries, nil
}

// parseCacheConfig maps a cache config's entries to the layers of its
// manifest. A config of another key recipe gives no entries.
func parseCacheConfig(raw []byte, layers []v1.Descriptor) (map[cache.Key]cache.Entry, error) {
	var cfg cacheConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("reading cache config: %w", err)
	}
	if cfg.Recipe != cache.KeyRecipe {
		return nil, fmt.Errorf("the cache was written with key recipe %q, this builder uses %q", cfg.Recipe, cache.KeyRecipe)
	}
	ls := make([]*cache.Layer, len(layers))
	for i, d := range layers {
		if err := cache.CheckLayerDescriptor(d); err != nil {
			return nil, fmt.Errorf("cache layer %d: %w", i, err)
		}
		diffID, err := v1.NewHash(d.Annotations[annDiffID])
		if err != nil {
			return nil, fmt.Errorf("cache layer %s: no valid diff ID annotation", d.Digest)
		}
		ls[i] = &cache.Layer{Descriptor: v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, DiffID: diffID}
	}
	out := make(map[cache.Key]cache.Entry, len(cfg.Entries))
	for _, e := range cfg.Entries {
		k, err := cache.ParseKey(e.Key)
		if err != nil {
			return nil, err
		}
		ent := cache.Entry{Config: e.Config, History: e.History}
		if e.Layer >= 0 {
			if e.Layer >= len(ls) {
				return nil, fmt.Errorf("cache entry %s names layer %d of %d", e.Key, e.Layer, len(ls))
			}
			ent.Layer = ls[e.Layer]
		}
		out[k] = ent
	}
	return out, nil
}

// StreamLayer hands fn the uncompressed stream of layer l, read from a
// repository known to hold it, without storing the blob: for flatten,
// whose source layers are needed once, as snapshots (issue 16: temporary
// disk at most the result's size). fn must check the stream against the
// diff ID, as snapshot.Store.Unpack does: that is what vouches for the
// content (the config, which lists it, is checked against the manifest);
// ggcr also checks the digest when the body reaches its end. A source
// that fails, fn's work included, gives the next one its turn.
func (c *Client) StreamLayer(ctx context.Context, l cache.Layer, fn func(io.Reader) error) error {
	return c.eachSource(l, func(src string, ref name.Digest) error {
		return c.streamFrom(ctx, src, ref, l, fn)
	})
}

func (c *Client) streamFrom(ctx context.Context, src string, ref name.Digest, l cache.Layer, fn func(io.Reader) error) error {
	return c.fromSource(ctx, ref, func(ctx context.Context, rl v1.Layer, alive func()) error {
		rc, err := rl.Compressed() // checks the digest at EOF
		if err != nil {
			return err
		}
		defer rc.Close()
		cr := &countingReader{r: rc, ctx: ctx, report: func(n int64) {
			alive()
			if c.opts.Progress != nil {
				c.opts.Progress(Progress{Ref: src, Digest: l.Descriptor.Digest, Complete: n, Total: l.Descriptor.Size})
			}
		}}
		zr, err := cache.DecompressLayer(cr)
		if err != nil {
			return err
		}
		defer zr.Close()
		return fn(zr)
	})
}

// FetchLayer downloads layer l into the store from a repository that a
// pull, a push or a cache import saw holding it, checked against its
// digest and diff ID as a pull checks it.
func (c *Client) FetchLayer(ctx context.Context, l cache.Layer) error {
	return c.eachSource(l, func(src string, ref name.Digest) error {
		return c.fetchFrom(ctx, src, ref, l)
	})
}

// eachSource tries get on each repository known to hold layer l, newest
// first, until one succeeds.
func (c *Client) eachSource(l cache.Layer, get func(src string, ref name.Digest) error) error {
	srcs := c.store.BlobSources(l.Descriptor.Digest)
	if len(srcs) == 0 {
		return fmt.Errorf("layer %s: %w, and no registry is known to hold it (pull its image again, or build with --no-cache)", l.Descriptor.Digest, cache.ErrNotFound)
	}
	var errs []error
	for _, src := range srcs {
		opts := []name.Option{}
		if repo, err := name.NewRepository(src); err == nil && PlainHTTP(repo.RegistryStr(), c.opts.Insecure) {
			opts = append(opts, name.Insecure)
		}
		ref, err := name.NewDigest(src+"@"+l.Descriptor.Digest.String(), opts...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = get(src, ref)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", src, explain(err)))
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("fetching layer %s: %s: %w", l.Descriptor.Digest, strings.Join(msgs, "; "), cache.ErrNotFound)
}

// fetchFrom fetches l from one source into the store.
func (c *Client) fetchFrom(ctx context.Context, src string, ref name.Digest, l cache.Layer) error {
	return c.fromSource(ctx, ref, func(ctx context.Context, rl v1.Layer, alive func()) error {
		return c.fetchLayer(ctx, src, &sizedLayer{Layer: rl, size: l.Descriptor.Size}, l.DiffID, func(p Progress) {
			alive()
			if c.opts.Progress != nil {
				c.opts.Progress(p)
			}
		})
	})
}

// fromSource hands use the layer ref of one source, and gives up when
// its body stops arriving for IdleTimeout (use calls alive as bytes
// arrive), so that the next source gets its turn.
func (c *Client) fromSource(ctx context.Context, ref name.Digest, use func(ctx context.Context, rl v1.Layer, alive func()) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := fmt.Errorf("no data for %v", c.opts.IdleTimeout)
	idle := time.AfterFunc(c.opts.IdleTimeout, func() { cancel(stalled) })
	defer idle.Stop()
	rl, err := remote.Layer(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(c.opts.Keychain),
		remote.WithTransport(c.transport()))
	if err != nil {
		return err
	}
	err = use(ctx, rl, func() { idle.Reset(c.opts.IdleTimeout) })
	if err != nil && context.Cause(ctx) == stalled {
		return stalled
	}
	return err
}

// sizedLayer gives a remote layer the size its descriptor states, so
// that fetching it does not ask the registry first.
type sizedLayer struct {
	v1.Layer
	size int64
}

func (l *sizedLayer) Size() (int64, error) { return l.size, nil }

// PushCache pushes the cache image of steps to ref, as Push pushes an
// image: only the blobs the registry lacks, mounted when it can.
func (c *Client) PushCache(ctx context.Context, ref string, steps []cache.Step, progress func(PushProgress)) (PushReport, error) {
	img, err := c.CacheImage(ctx, steps)
	if err != nil {
		return PushReport{}, fmt.Errorf("exporting cache to %s: %w", ref, err)
	}
	rep, err := c.push(ctx, img, ref, progress)
	if err != nil {
		return rep, fmt.Errorf("exporting cache to %s: %w", ref, explain(err))
	}
	return rep, nil
}

// cacheDirName is the name the cache image has in a local cache
// directory (an OCI image layout).
const cacheDirName = "cache:latest"

// ExportCacheDir writes the cache image of steps into dir, an OCI image
// layout that a CI system can keep between runs.
func (c *Client) ExportCacheDir(ctx context.Context, dir string, steps []cache.Step) error {
	img, err := c.CacheImage(ctx, steps)
	if err == nil {
		err = cache.ExportLayout(dir, img, cacheDirName)
	}
	if err != nil {
		return fmt.Errorf("exporting cache to %s: %w", dir, err)
	}
	return nil
}

// ImportCacheDir reads the cache image in dir (written by
// ExportCacheDir) and copies the layers it holds into the store, each
// checked against its digest and the diff ID the cache gives it.
func (c *Client) ImportCacheDir(dir string) (map[cache.Key]cache.Entry, error) {
	out, err := c.importCacheDir(dir)
	if err != nil {
		return nil, fmt.Errorf("importing cache from %s: %w", dir, err)
	}
	return out, nil
}

func (c *Client) importCacheDir(dir string) (map[cache.Key]cache.Entry, error) {
	src, err := cache.OpenLayoutDir(dir)
	if err != nil {
		return nil, err
	}
	md, err := src.Find(cacheDirName)
	if err != nil {
		return nil, err
	}
	raw, err := src.ReadBlob(md.Digest, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("reading the cache manifest: %w", err)
	}
	if m.Config.MediaType != CacheConfigType {
		return nil, fmt.Errorf("not a build cache (its config is %s, want %s)", m.Config.MediaType, CacheConfigType)
	}
	rawCfg, err := src.ReadBlob(m.Config.Digest, maxCacheConfig)
	if err != nil {
		return nil, err
	}
	entries, err := parseCacheConfig(rawCfg, m.Layers)
	if err != nil {
		return nil, err
	}
	// Each layer the entries name is checked against the diff ID they
	// claim for it: a local directory is read anyway, and the check is
	// what a pull does.
	checked := map[v1.Hash]bool{}
	for _, e := range entries {
		l := e.Layer
		if l == nil || checked[l.Descriptor.Digest] {
			continue
		}
		checked[l.Descriptor.Digest] = true
		if !c.store.HasBlob(l.Descriptor.Digest) {
			if err := src.CopyBlob(c.store, l.Descriptor); err != nil {
				return nil, err
			}
		}
		if err := c.checkStored(l.Descriptor.Digest, l.DiffID); err != nil {
			return nil, err
		}
	}
	return entries, nil
}
