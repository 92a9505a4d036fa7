package registry

import (
	"bytes"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
)

// Load stores img, read from an archive or a layout (builder load), as a
// pull stores a pulled image: the config, then each layer the store
// lacks, checked against its diff ID as it is written, then the manifest,
// and names on it. Layers the store holds already are not read.
func (c *Client) Load(ctx context.Context, img v1.Image, names []string, progress func(Progress)) (cache.ImageRecord, error) {
	release, err := c.store.BuildLock(ctx)
	if err != nil {
		return cache.ImageRecord{}, fmt.Errorf("waiting for the store: %w", err)
	}
	defer release()
	lazy := c.opts.LazyLayers
	c.opts.LazyLayers = false // an archive is read once: every layer now
	err = c.fetchBlobs(ctx, "", img, progress)
	c.opts.LazyLayers = lazy
	if err != nil {
		return cache.ImageRecord{}, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return cache.ImageRecord{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return cache.ImageRecord{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return cache.ImageRecord{}, err
	}
	if _, _, err := c.store.PutBlob(bytes.NewReader(raw), digest); err != nil {
		return cache.ImageRecord{}, fmt.Errorf("storing manifest: %w", err)
	}
	md := v1.Descriptor{MediaType: mt, Digest: digest, Size: int64(len(raw))}
	for _, n := range names {
		if err := c.store.Tag(n, md); err != nil {
			return cache.ImageRecord{}, fmt.Errorf("tagging %s: %w", n, err)
		}
	}
	return c.store.Lookup(digest.String())
}
