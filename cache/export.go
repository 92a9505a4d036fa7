package cache

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/builderdev/builder/internal/fsutil"
)

// Format is the kind of an image's manifest (its media types), and of
// an exported archive.
type Format string

const (
	FormatOCI    Format = "oci"    // OCI media types; an OCI image layout in a tar (oci-archive)
	FormatDocker Format = "docker" // Docker media types; a `docker load` / `podman load` tar
)

// blob is one blob of an image to export, opened only when it is copied.
type blob struct {
	desc v1.Descriptor
	open func() (io.ReadCloser, error)
}

// exported is what an export writes: img's blobs, config first and
// manifest last, each digest once.
type exported struct {
	blobs    []blob
	manifest v1.Descriptor
	config   v1.Hash
	layers   []v1.Hash // in manifest order, repeats included
}

func imageBlobs(img v1.Image) (*exported, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if err := checkHash(m.Config.Digest); err != nil {
		return nil, err
	}
	bytesBlob := func(d v1.Descriptor, data []byte) blob {
		return blob{desc: d, open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
	}
	e := &exported{blobs: []blob{bytesBlob(m.Config, cfg)}, config: m.Config.Digest}
	seen := map[v1.Hash]bool{m.Config.Digest: true}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading layers: %w", err)
	}
	if len(layers) != len(m.Layers) {
		return nil, fmt.Errorf("image has %d layers, its manifest %d", len(layers), len(m.Layers))
	}
	for i, l := range layers {
		d := m.Layers[i]
		if err := checkHash(d.Digest); err != nil {
			return nil, err
		}
		e.layers = append(e.layers, d.Digest)
		if !seen[d.Digest] {
			seen[d.Digest] = true
			e.blobs = append(e.blobs, blob{desc: d, open: l.Compressed})
		}
	}
	e.manifest = v1.Descriptor{MediaType: mt, Digest: sha256Of(raw), Size: int64(len(raw))}
	e.blobs = append(e.blobs, bytesBlob(e.manifest, raw))
	return e, nil
}

// exportNames returns the ref.name annotation and docker RepoTag for name.
func exportNames(nm string) (map[string]string, []string, error) {
	if nm == "" {
		return nil, nil, nil
	}
	ref, err := parseName(nm)
	if err != nil {
		return nil, nil, err
	}
	ann := map[string]string{annRefName: familiar(ref), annImageName: fullName(ref)}
	if _, ok := ref.(name.Tag); ok {
		return ann, []string{familiar(ref)}, nil
	}
	return ann, nil, nil
}

// Export writes img as an archive of the given format to w. name
// ("app:latest") is recorded in the archive; it may be empty.
//
// Both formats hold an OCI image layout (oci-layout, index.json,
// blobs/sha256/…); the docker format adds the manifest.json that `docker
// load` and `podman load` read, pointing at the same blobs, as Docker 25
// itself writes. Blobs are streamed, never held in memory.
func Export(w io.Writer, img v1.Image, name string, format Format) error {
	if format != FormatOCI && format != FormatDocker {
		return fmt.Errorf("unknown export format %q (want oci or docker)", format)
	}
	ann, repoTags, err := exportNames(name)
	if err != nil {
		return err
	}
	e, err := imageBlobs(img)
	if err != nil {
		return fmt.Errorf("exporting image: %w", err)
	}
	tw := tar.NewWriter(w)
	if err := writeTarFile(tw, layoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	for _, b := range e.blobs {
		if err := writeTarBlob(tw, b); err != nil {
			return fmt.Errorf("exporting image: %w", err)
		}
	}
	md := e.manifest
	md.Annotations = ann
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{md}})
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, indexFile, index); err != nil {
		return err
	}
	if format == FormatDocker {
		if err := writeDockerManifest(tw, e, repoTags); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeDockerManifest(tw *tar.Writer, e *exported, repoTags []string) error {
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	me := entry{Config: blobName(e.config), RepoTags: repoTags, Layers: []string{}}
	if me.RepoTags == nil {
		me.RepoTags = []string{}
	}
	for _, l := range e.layers {
		me.Layers = append(me.Layers, blobName(l))
	}
	data, err := json.Marshal([]entry{me})
	if err != nil {
		return err
	}
	return writeTarFile(tw, "manifest.json", data)
}

func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

func writeTarFile(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(tarHeader(name, int64(len(data)))); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func tarHeader(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
}

func writeTarBlob(tw *tar.Writer, b blob) error {
	rc, err := b.open()
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", b.desc.Digest, err)
	}
	defer rc.Close()
	if err := tw.WriteHeader(tarHeader(blobName(b.desc.Digest), b.desc.Size)); err != nil {
		return err
	}
	n, err := io.Copy(tw, rc)
	if err == nil && n != b.desc.Size {
		err = fmt.Errorf("has %d bytes, its descriptor says %d", n, b.desc.Size)
	}
	if err != nil {
		return fmt.Errorf("copying blob %s: %w", b.desc.Digest, err)
	}
	return nil
}

// ExportLayout writes img into an OCI image layout directory (created or
// added to), tagged name. An earlier image of the same name loses the
// name; blobs already present are kept. Each blob is written to a
// temporary file, verified against its digest and renamed into place.
func ExportLayout(dir string, img v1.Image, name string) error {
	ann, _, err := exportNames(name)
	if err != nil {
		return err
	}
	e, err := imageBlobs(img)
	if err != nil {
		return fmt.Errorf("exporting image: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, blobsDir), 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, layoutFile)); errors.Is(err, os.ErrNotExist) {
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, layoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			return err
		}
	}
	for _, b := range e.blobs {
		if err := writeLayoutBlob(dir, b); err != nil {
			return fmt.Errorf("exporting image to %s: %w", dir, err)
		}
	}
	var ds []v1.Descriptor
	idx, err := readIndex(filepath.Join(dir, indexFile))
	switch {
	case err == nil:
		ds = idx.Manifests
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	md := e.manifest
	md.Annotations = ann
	ds = slices.DeleteFunc(ds, func(d v1.Descriptor) bool {
		if ann != nil {
			return d.Annotations[annRefName] == ann[annRefName]
		}
		return d.Digest == md.Digest && d.Annotations[annRefName] == ""
	})
	ds = append(ds, md)
	slices.SortStableFunc(ds, func(a, b v1.Descriptor) int {
		return strings.Compare(a.Annotations[annRefName], b.Annotations[annRefName])
	})
	return writeIndex(filepath.Join(dir, indexFile), ds)
}

func writeLayoutBlob(dir string, b blob) error {
	blobs := filepath.Join(dir, blobsDir)
	dst := filepath.Join(blobs, b.desc.Digest.Hex)
	if fi, err := os.Stat(dst); err == nil && fi.Size() == b.desc.Size {
		return nil
	}
	rc, err := b.open()
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", b.desc.Digest, err)
	}
	defer rc.Close()
	f, err := fsutil.CreatePending(blobs, ".tmp-"+b.desc.Digest.Hex[:12]+"-*", 0o644)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	_, _, err = writeBlob(f, blobs, rc, b.desc.Digest)
	return err
}
