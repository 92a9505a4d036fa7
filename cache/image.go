package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageRecord is an image in the store.
type ImageRecord struct {
	Name     string        // familiar name ("app:latest"), "" if untagged
	Manifest v1.Descriptor // the manifest blob
	ID       v1.Hash       // config digest: the image ID, as docker shows it
}

// PutImage writes cfg and a manifest listing layers, and returns the
// untagged record. The image is complete once PutImage returns.
//
// The stored manifest is always OCI, so that the store stays an OCI
// layout that skopeo and umoci read (both refuse Docker manifests in a
// layout). format is how the image leaves the machine: FormatDocker (what
// docker build makes; podman keeps HEALTHCHECK only from a Docker config)
// is noted in the manifest's annotations, and [Store.ImageAs] turns the
// image into Docker media types for a push. Layers of a base pulled with
// Docker media types are listed under their OCI equivalents (the bytes
// are the same), so that no manifest mixes the two.
//
// comp is how its held layers (see held.go) are compressed when the image
// leaves the machine; the zero value is gzip.
func (s *Store) PutImage(cfg *v1.ConfigFile, layers []v1.Descriptor, format Format, comp Compression) (ImageRecord, error) {
	if n := len(cfg.RootFS.DiffIDs); n != len(layers) {
		return ImageRecord{}, fmt.Errorf("writing image: config lists %d diff IDs for %d layers", n, len(layers))
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Layers:        make([]v1.Descriptor, len(layers)),
	}
	switch format {
	case FormatOCI:
	case FormatDocker:
		m.Annotations = map[string]string{annFormat: string(FormatDocker)}
	default:
		return ImageRecord{}, fmt.Errorf("unknown image format %q (want docker or oci)", format)
	}
	switch comp.Format {
	case "", "gzip":
	case "zstd", "none":
		if format == FormatDocker && comp.Format == "zstd" {
			return ImageRecord{}, errors.New("writing image: Docker media types have no zstd layer")
		}
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations[annCompression] = comp.Format
	default:
		return ImageRecord{}, fmt.Errorf("unknown layer compression %q (want gzip, zstd or none)", comp.Format)
	}
	for i, l := range layers {
		if !s.HasLayer(l) && !s.remoteBlob(l.Digest) {
			return ImageRecord{}, fmt.Errorf("writing image: layer %s: %w", l.Digest, ErrNotFound)
		}
		if format == FormatDocker {
			if _, err := dockerLayerType(l.MediaType); err != nil {
				return ImageRecord{}, fmt.Errorf("writing image: layer %s: %w", l.Digest, err)
			}
		}
		mt, _ := ociLayerType(l.MediaType)
		m.Layers[i] = v1.Descriptor{MediaType: mt, Digest: l.Digest, Size: l.Size, URLs: l.URLs, Annotations: l.Annotations}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return ImageRecord{}, fmt.Errorf("encoding image config: %w", err)
	}
	id, size, err := s.PutBlob(bytes.NewReader(raw), sha256Of(raw))
	if err != nil {
		return ImageRecord{}, fmt.Errorf("writing image config: %w", err)
	}
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: id, Size: size}
	raw, err = json.Marshal(m)
	if err != nil {
		return ImageRecord{}, fmt.Errorf("encoding manifest: %w", err)
	}
	md, msize, err := s.PutBlob(bytes.NewReader(raw), sha256Of(raw))
	if err != nil {
		return ImageRecord{}, fmt.Errorf("writing manifest: %w", err)
	}
	rec := ImageRecord{Manifest: v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: md, Size: msize}, ID: id}
	if err := s.recordImage(rec); err != nil {
		return ImageRecord{}, err
	}
	return rec, nil
}

// annFormat in a stored manifest says the image leaves the machine in
// Docker media types; annCompression how its held layers are compressed
// then, when not gzip.
const (
	annFormat      = "dev.builder.format"
	annCompression = "dev.builder.compression"
)

// ImageAs opens a stored image as it leaves the machine: its held layers
// compressed (made now, in parallel, if the store has no compressed blob
// yet: see held.go), and a manifest built with FormatDocker as a Docker
// schema 2 manifest with a Docker config and Docker layer types. The
// image ID does not change; the manifest digest may.
func (s *Store) ImageAs(ctx context.Context, manifest v1.Hash) (v1.Image, error) {
	m, raw, err := s.outgoing(ctx, manifest)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", manifest, err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Annotations[annFormat] != string(FormatDocker) {
		return partial.CompressedToImage(&storeImage{s: s, manifest: raw, m: m})
	}
	d := *m
	d.MediaType = types.DockerManifestSchema2
	d.Annotations = nil // Docker manifests have none
	d.Config.MediaType = types.DockerConfigJSON
	d.Layers = make([]v1.Descriptor, len(m.Layers))
	for i, l := range m.Layers {
		mt, err := dockerLayerType(l.MediaType)
		if err != nil {
			return nil, fmt.Errorf("opening image %s: layer %s: %w", manifest, l.Digest, err)
		}
		d.Layers[i] = v1.Descriptor{MediaType: mt, Digest: l.Digest, Size: l.Size, URLs: l.URLs}
	}
	raw, err = json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&storeImage{s: s, manifest: raw, m: &d})
}

// Outgoing opens a stored image with its held layers compressed, in OCI
// media types as stored: what an export to an OCI layout writes.
func (s *Store) Outgoing(ctx context.Context, manifest v1.Hash) (v1.Image, error) {
	m, raw, err := s.outgoing(ctx, manifest)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", manifest, err)
	}
	return partial.CompressedToImage(&storeImage{s: s, manifest: raw, m: m})
}

// outgoing returns the stored manifest with each held layer replaced by
// its compressed blob, and without the store's own annotations.
func (s *Store) outgoing(ctx context.Context, manifest v1.Hash) (*v1.Manifest, []byte, error) {
	m, raw, err := s.manifestInfo(manifest)
	if err != nil || m.MediaType != types.OCIManifestSchema1 {
		return m, raw, err
	}
	_, hasComp := m.Annotations[annCompression]
	held := slices.ContainsFunc(m.Layers, s.isHeld)
	if !held && !hasComp {
		return m, raw, nil
	}
	out := *m
	out.Layers, err = s.CompressLayers(ctx, m.Layers, Compression{Format: m.Annotations[annCompression]})
	if err != nil {
		return nil, nil, err
	}
	for i, l := range out.Layers {
		mt, err := ociLayerType(l.MediaType)
		if err != nil {
			return nil, nil, err
		}
		out.Layers[i] = v1.Descriptor{MediaType: mt, Digest: l.Digest, Size: l.Size, URLs: l.URLs, Annotations: m.Layers[i].Annotations}
	}
	out.Annotations = maps.Clone(m.Annotations)
	delete(out.Annotations, annCompression)
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	raw, err = json.Marshal(out)
	if err != nil {
		return nil, nil, err
	}
	return &out, raw, nil
}

// ociLayerType and dockerLayerType give a layer the media type of the
// manifest's format: one manifest never mixes Docker and OCI types, which
// strict registries and readers refuse.
func ociLayerType(mt types.MediaType) (types.MediaType, error) {
	switch mt {
	case "", types.DockerLayer:
		return types.OCILayer, nil
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer, nil
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer, nil
	}
	return mt, nil
}

func dockerLayerType(mt types.MediaType) (types.MediaType, error) {
	switch mt {
	case "", types.OCILayer, types.DockerLayer:
		return types.DockerLayer, nil
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		return types.DockerUncompressedLayer, nil
	case types.OCIRestrictedLayer, types.DockerForeignLayer:
		return types.DockerForeignLayer, nil
	case types.OCILayerZStd:
		return "", errors.New("a zstd layer has no Docker media type: build with --format oci")
	}
	return "", fmt.Errorf("layer media type %q has no Docker equivalent: build with --format oci", mt)
}

// recordImage remembers which manifest an image ID belongs to, in
// images/<config hex>, so that untagged images can be found by ID.
func (s *Store) recordImage(rec ImageRecord) error {
	data, err := json.Marshal(rec.Manifest)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(s.imageRecordPath(rec.ID)); err == nil && bytes.Equal(old, data) {
		return nil // a rebuild of an unchanged image writes nothing
	}
	if err := s.writeSmall(s.imageRecordPath(rec.ID), data); err != nil {
		return fmt.Errorf("recording image %s: %w", rec.ID, err)
	}
	return nil
}

func (s *Store) imageRecordPath(id v1.Hash) string {
	return filepath.Join(s.root, imagesDir, id.Hex)
}

// imageByID reads the record of an image ID written by PutImage or Tag.
// A record whose manifest blob has gone (pruned) counts as absent.
func (s *Store) imageByID(id v1.Hash) (ImageRecord, error) {
	if err := checkHash(id); err != nil {
		return ImageRecord{}, err
	}
	data, err := os.ReadFile(s.imageRecordPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return ImageRecord{}, ErrNotFound
	}
	if err != nil {
		return ImageRecord{}, err
	}
	var d v1.Descriptor
	if err := json.Unmarshal(data, &d); err != nil || !s.HasBlob(d.Digest) {
		return ImageRecord{}, ErrNotFound
	}
	return ImageRecord{Manifest: d, ID: id}, nil
}

// maxManifestSize is the limit registries put on manifests. A larger blob
// is a layer, and is not read whole just to find that out.
const maxManifestSize = 4 << 20

// maxConfigSize bounds what is read whole as an image config.
const maxConfigSize = 64 << 20

// manifestInfo reads a manifest blob: its media type and config digest.
func (s *Store) manifestInfo(h v1.Hash) (*v1.Manifest, []byte, error) {
	size, err := s.BlobSize(h)
	if err != nil {
		return nil, nil, err
	}
	if size > maxManifestSize {
		return nil, nil, fmt.Errorf("blob %s is too large for a manifest", h)
	}
	raw, err := s.readBlob(h)
	if err != nil {
		return nil, nil, err
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("reading manifest %s: %w", h, err)
	}
	return m, raw, nil
}

// parseManifest decodes an image manifest and checks what the store will
// do with it: every digest becomes a file name under blobs/ and every
// size a read limit, so neither may be hostile.
func parseManifest(raw []byte) (*v1.Manifest, error) {
	if len(raw) > maxManifestSize {
		return nil, fmt.Errorf("%d bytes is too large for a manifest", len(raw))
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if m.MediaType == "" {
		m.MediaType = types.OCIManifestSchema1
	}
	if !m.MediaType.IsImage() {
		return nil, fmt.Errorf("a %s is not an image manifest", m.MediaType)
	}
	if err := checkDescriptor(m.Config, maxConfigSize); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l, math.MaxInt64); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
	}
	return m, nil
}

func checkDescriptor(d v1.Descriptor, maxSize int64) error {
	if err := checkHash(d.Digest); err != nil {
		return err
	}
	if d.Size < 0 || d.Size > maxSize {
		return fmt.Errorf("%s: size %d out of range", d.Digest, d.Size)
	}
	return nil
}

// CheckLayerDescriptor rejects a layer descriptor that came from outside
// (a cache config, say) and that the store could not use: a malformed
// digest, a size out of range, a media type that is not a layer's.
func CheckLayerDescriptor(d v1.Descriptor) error {
	if err := checkDescriptor(d, maxLayerBlobSize); err != nil {
		return err
	}
	if _, err := layerCompression(d.MediaType); err != nil {
		return err
	}
	return nil
}

// maxLayerBlobSize bounds a layer blob's size as a descriptor states it.
const maxLayerBlobSize = 1 << 40

// parseConfig decodes an image config whose diff IDs name snapshot
// directories, so each must be a well-formed digest.
func parseConfig(raw []byte) (*v1.ConfigFile, error) {
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	for i, d := range cf.RootFS.DiffIDs {
		if err := checkHash(d); err != nil {
			return nil, fmt.Errorf("diff ID %d: %w", i+1, err)
		}
	}
	return cf, nil
}

// Image opens a stored image by manifest digest. OCI and Docker schema 2
// manifests are both read as they are stored.
func (s *Store) Image(manifest v1.Hash) (v1.Image, error) {
	m, raw, err := s.manifestInfo(manifest)
	if err != nil {
		return nil, fmt.Errorf("opening image %s: %w", manifest, err)
	}
	return partial.CompressedToImage(&storeImage{s: s, manifest: raw, m: m})
}

// storeImage is the store's v1.Image: ggcr's partial package fills in
// everything from the raw manifest and blob access.
type storeImage struct {
	s        *Store
	manifest []byte
	m        *v1.Manifest

	mu  sync.Mutex // ggcr reads layers from several goroutines
	cfg *v1.ConfigFile
	raw []byte
}

var _ partial.CompressedImageCore = (*storeImage)(nil)

func (i *storeImage) MediaType() (types.MediaType, error) { return i.m.MediaType, nil }
func (i *storeImage) RawManifest() ([]byte, error)        { return i.manifest, nil }

func (i *storeImage) RawConfigFile() ([]byte, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.raw == nil {
		data, err := i.s.readBlob(i.m.Config.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading image config: %w", err)
		}
		i.raw = data
	}
	return i.raw, nil
}

// configFile parses the config once, for the layers' DiffID calls.
func (i *storeImage) configFile() (*v1.ConfigFile, error) {
	raw, err := i.RawConfigFile()
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cfg == nil {
		cf, err := parseConfig(raw)
		if err != nil {
			return nil, fmt.Errorf("reading image config: %w", err)
		}
		i.cfg = cf
	}
	return i.cfg, nil
}

func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &storeBlob{img: i, desc: i.m.Config, index: -1}, nil
	}
	for n, d := range i.m.Layers {
		if d.Digest == h {
			return &storeBlob{img: i, desc: d, index: n}, nil
		}
	}
	return nil, fmt.Errorf("layer %s: %w", h, ErrNotFound)
}

// storeBlob is one layer (or the config) of a storeImage. It knows its
// diff ID from the config, so exporting never decompresses a layer just
// to hash it.
type storeBlob struct {
	img   *storeImage
	desc  v1.Descriptor
	index int // position in the manifest's layers; -1 for the config
}

func (b *storeBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *storeBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *storeBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *storeBlob) Descriptor() (*v1.Descriptor, error) { return &b.desc, nil }
func (b *storeBlob) Exists() (bool, error)               { return b.img.s.HasLayer(b.desc), nil }

// Compressed gives the blob, or a held layer that leaves uncompressed
// (compression "none") regenerated from its snapshot.
func (b *storeBlob) Compressed() (io.ReadCloser, error) {
	if b.index >= 0 && b.img.s.isHeld(b.desc) {
		return b.img.s.openHeld(context.Background(), b.desc)
	}
	return b.img.s.OpenBlob(b.desc.Digest)
}

func (b *storeBlob) DiffID() (v1.Hash, error) {
	if b.index < 0 {
		return b.desc.Digest, nil
	}
	cf, err := b.img.configFile()
	if err != nil {
		return v1.Hash{}, err
	}
	if b.index >= len(cf.RootFS.DiffIDs) {
		return v1.Hash{}, fmt.Errorf("config lists %d diff IDs, layer %d has none", len(cf.RootFS.DiffIDs), b.index)
	}
	return cf.RootFS.DiffIDs[b.index], nil
}
