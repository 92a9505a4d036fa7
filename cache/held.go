package cache

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/builderdev/builder/internal/fsutil"
)

// A held layer is one a build committed without writing it out: the
// snapshot named by its diff ID holds it, as docker's graph driver holds
// the layers it builds, and docker too makes the tar only for a push or a
// save. Its descriptor is an uncompressed OCI layer whose digest is the
// diff ID and whose size is the tar's length, and the store has no blob
// of that digest. A commit then costs one pass of the layer writer
// through sha256, instead of a compression and a write of the blob.
//
// When the layer leaves the machine (push, save, -o, --cache-to), the
// holder regenerates the tar from the snapshot (the layer writer is
// deterministic), the stream is checked against the diff ID, and it is
// compressed as the image asks; the compressed blob is kept, with a
// record from the diff ID to it, so that the next push does not compress
// again.

// LayerHolder gives the store access to the layers snapshots hold. The
// store package, which opens the cache and the snapshots together, sets
// it.
type LayerHolder interface {
	// HoldsLayer reports whether a snapshot a build committed holds
	// diffID and can give its tar again (an unpacked one cannot: its
	// files came from someone else's tar).
	HoldsLayer(diffID v1.Hash) bool
	// OpenHeldLayer regenerates the layer tar of diffID. The stream is
	// not checked: the store checks it.
	OpenHeldLayer(ctx context.Context, diffID v1.Hash) (io.ReadCloser, error)
}

// SetHolder sets where held layers are read from. Without one, only the
// compressed copies of held layers can be read.
func (s *Store) SetHolder(h LayerHolder) { s.holder = h }

// HoldLayer hashes the layer tar that write produces, without storing
// it: the caller's snapshot holds the layer. progress, if not nil, is
// called with the bytes written so far.
func HoldLayer(ctx context.Context, write func(io.Writer) error, progress func(int64)) (Layer, error) {
	w := &progressWriter{ctx: ctx, h: newHashWriter(io.Discard), progress: progress}
	if err := write(w); err != nil {
		return Layer{}, err
	}
	diffID := w.h.digest()
	return Layer{
		Descriptor: v1.Descriptor{MediaType: types.OCIUncompressedLayer, Digest: diffID, Size: w.h.n},
		DiffID:     diffID,
	}, nil
}

type progressWriter struct {
	ctx      context.Context
	h        *hashWriter
	progress func(int64)
	last     int64
}

func (w *progressWriter) Write(p []byte) (int, error) {
	n, _ := w.h.Write(p)
	if w.h.n-w.last >= 8<<20 {
		w.last = w.h.n
		if err := w.ctx.Err(); err != nil {
			return n, context.Cause(w.ctx)
		}
		if w.progress != nil {
			w.progress(w.h.n)
		}
	}
	return n, nil
}

// isHeld reports whether d is a held layer the store can give: no blob
// of its own, and a snapshot that makes its tar or a compressed copy.
func (s *Store) isHeld(d v1.Descriptor) bool {
	if !isUncompressed(d.MediaType) || s.HasBlob(d.Digest) {
		return false
	}
	if s.regenerable(d) {
		return true
	}
	_, ok := s.heldBlob(d)
	return ok
}

// regenerable: a committed snapshot can make d's tar.
func (s *Store) regenerable(d v1.Descriptor) bool {
	return s.holder != nil && s.holder.HoldsLayer(d.Digest)
}

func isUncompressed(mt types.MediaType) bool {
	c, err := layerCompression(mt)
	return err == nil && c == "none"
}

// HasLayer reports whether the store can give the bytes of layer d: its
// blob, the snapshot that holds it, or the compressed copy made of it
// when it left the machine.
func (s *Store) HasLayer(d v1.Descriptor) bool { return s.HasBlob(d.Digest) || s.isHeld(d) }

// snapshotOnly reports whether d's snapshot is its only copy: held, and
// never compressed.
func (s *Store) snapshotOnly(d v1.Descriptor) bool {
	if !s.regenerable(d) || s.HasBlob(d.Digest) {
		return false
	}
	_, ok := s.heldBlob(d)
	return !ok
}

// heldBlob returns a compressed copy of held layer d, if the store has
// one: a snapshot removed since (by prune --all, or by check --repair)
// is unpacked from it again.
func (s *Store) heldBlob(d v1.Descriptor) (v1.Descriptor, bool) {
	if !isUncompressed(d.MediaType) || checkHash(d.Digest) != nil {
		return v1.Descriptor{}, false
	}
	for _, format := range []string{"gzip", "zstd"} {
		if cd, ok := s.compressedRecord(d.Digest, format); ok {
			return cd, true
		}
	}
	return v1.Descriptor{}, false
}

func (s *Store) compressedRecord(diffID v1.Hash, format string) (v1.Descriptor, bool) {
	data, err := readSmallFile(filepath.Join(s.root, compressedDir, diffID.Hex+"."+format), 1<<16)
	var cd v1.Descriptor
	if err != nil || json.Unmarshal(data, &cd) != nil || checkHash(cd.Digest) != nil {
		return v1.Descriptor{}, false
	}
	// The size check also catches a blob a power loss left short: held
	// layers' copies can be made again, so they are not worth an fsync
	// more than the blob's own.
	if n, err := s.BlobSize(cd.Digest); err != nil || n != cd.Size {
		return v1.Descriptor{}, false
	}
	return cd, true
}

// openTar opens the uncompressed tar of held layer d, from its snapshot
// or its compressed copy, unchecked.
func (s *Store) openTar(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	if s.regenerable(d) {
		rc, err := s.holder.OpenHeldLayer(ctx, d.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		return rc, nil
	}
	if cd, ok := s.heldBlob(d); ok {
		f, err := s.OpenBlob(cd.Digest)
		if err != nil {
			return nil, err
		}
		zr, err := DecompressLayer(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		return &layerReader{Reader: zr, close: func() { zr.Close(); f.Close() }}, nil
	}
	return nil, fmt.Errorf("layer %s: %w: neither the snapshot that held it nor a compressed copy is in the store (build the image again with --no-cache, or pull it)", d.Digest, ErrNotFound)
}

// openHeld opens held layer d's tar, checked against its digest and size
// as it is read: a snapshot changed after its commit fails the read,
// naming the layer, before the last byte leaves.
func (s *Store) openHeld(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	rc, err := s.openTar(ctx, d)
	if err != nil {
		return nil, err
	}
	return &checkedReader{rc: rc, want: d, h: sha256.New()}, nil
}

// checkedReader passes a regenerated layer through, and turns its end
// into an error if the bytes are not the layer's.
type checkedReader struct {
	rc   io.ReadCloser
	want v1.Descriptor
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (r *checkedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if r.n > r.want.Size {
		return n, r.mismatch("more than")
	}
	if err == io.EOF {
		got := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", r.h.Sum(nil))}
		if r.n != r.want.Size || got != r.want.Digest {
			return n, r.mismatch(fmt.Sprintf("%d bytes hashing to %s, not", r.n, got))
		}
	}
	return n, err
}

func (r *checkedReader) mismatch(what string) error {
	return &ChangedLayerError{Layer: r.want.Digest, Problem: fmt.Sprintf("its snapshot now gives %s the %d bytes committed", what, r.want.Size)}
}

func (r *checkedReader) Close() error { return r.rc.Close() }

// ChangedLayerError: a held layer's snapshot no longer gives the layer.
type ChangedLayerError struct {
	Layer   v1.Hash
	Problem string
}

func (e *ChangedLayerError) Error() string {
	return fmt.Sprintf("layer %s: %s: the snapshot was changed after the build (run builder check --repair, then build again)", e.Layer, e.Problem)
}

// compressedDir holds, per held layer and format, the descriptor of its
// compressed blob: <diff ID hex>.<format>.
const compressedDir = "compressed"

// Compressed returns the descriptor under which layer d leaves the
// machine in format c: d itself unless d is held; for a held layer, its
// compressed blob, made now (and kept) if the store has none in that
// format yet, from the snapshot or from a copy in another format. With
// format "none" a held layer leaves as it is, its tar made on the way.
// Two callers asking at once for the same layer share one compression.
func (s *Store) Compressed(ctx context.Context, d v1.Descriptor, c Compression) (v1.Descriptor, error) {
	if c.Format == "" {
		c.Format = "gzip"
	}
	if c.Format == "none" || !s.isHeld(d) {
		return d, nil
	}
	if cd, ok := s.compressedRecord(d.Digest, c.Format); ok {
		return cd, nil
	}
	v, err, _ := s.compressing.Do(d.Digest.Hex+"."+c.Format, func() (any, error) {
		return s.compress(ctx, d, c)
	})
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v.(v1.Descriptor), nil
}

func (s *Store) compress(ctx context.Context, d v1.Descriptor, c Compression) (v1.Descriptor, error) {
	if cd, ok := s.compressedRecord(d.Digest, c.Format); ok { // made by the caller before us
		return cd, nil
	}
	rc, err := s.openTar(ctx, d)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer rc.Close()
	// The diff ID PutLayer computes anyway is the check, made before the
	// blob is committed: a checkedReader would hash the stream twice.
	l, err := s.putLayer(ctx, rc, c, nil, func(diffID v1.Hash, n int64) error {
		if diffID != d.Digest || n != d.Size {
			return &ChangedLayerError{Layer: d.Digest, Problem: fmt.Sprintf("its snapshot now gives %d bytes hashing to %s, not the %d bytes committed", n, diffID, d.Size)}
		}
		return nil
	})
	var changed *ChangedLayerError
	if errors.As(err, &changed) {
		return v1.Descriptor{}, changed // it names the layer; the wrapping would repeat it
	}
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("compressing layer %s: %w", d.Digest, err)
	}
	data, err := json.Marshal(l.Descriptor)
	if err != nil {
		return v1.Descriptor{}, err
	}
	rec := filepath.Join(s.root, compressedDir, d.Digest.Hex+"."+c.Format)
	if err := os.MkdirAll(filepath.Dir(rec), 0o755); err != nil {
		return v1.Descriptor{}, err
	}
	if err := s.writeSmall(rec, data); err != nil {
		return v1.Descriptor{}, fmt.Errorf("recording compressed layer %s: %w", d.Digest, err)
	}
	return l.Descriptor, nil
}

// CompressLayers is Compressed for each of layers, up to one layer per
// CPU at a time (each compression is itself parallel across blocks).
func (s *Store) CompressLayers(ctx context.Context, layers []v1.Descriptor, c Compression) ([]v1.Descriptor, error) {
	out := slices.Clone(layers)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU())
	for i, l := range layers {
		if !s.isHeld(l) {
			continue
		}
		g.Go(func() error {
			d, err := s.Compressed(gctx, l, c)
			out[i] = d
			return err
		})
	}
	return out, g.Wait()
}

// compressedBlobs returns the blobs the compressed records name, by the
// diff ID they were made from.
func (s *Store) compressedBlobs() map[v1.Hash][]v1.Hash {
	ents, _ := os.ReadDir(filepath.Join(s.root, compressedDir))
	out := map[v1.Hash][]v1.Hash{}
	for _, e := range ents {
		hexPart, _, ok := strings.Cut(e.Name(), ".")
		diff := v1.Hash{Algorithm: "sha256", Hex: hexPart}
		if !ok || checkHash(diff) != nil {
			continue
		}
		data, err := readSmallFile(filepath.Join(s.root, compressedDir, e.Name()), 1<<16)
		var cd v1.Descriptor
		if err != nil || json.Unmarshal(data, &cd) != nil || checkHash(cd.Digest) != nil {
			continue
		}
		out[diff] = append(out[diff], cd.Digest)
	}
	return out
}

// pruneCompressed removes the records whose blob is gone.
func (s *Store) pruneCompressed() {
	ents, _ := os.ReadDir(filepath.Join(s.root, compressedDir))
	for _, e := range ents {
		p := filepath.Join(s.root, compressedDir, e.Name())
		data, err := readSmallFile(p, 1<<16)
		var cd v1.Descriptor
		if err != nil || json.Unmarshal(data, &cd) != nil || checkHash(cd.Digest) != nil || !s.HasBlob(cd.Digest) {
			os.Remove(p) // a record left behind costs one failed lookup
		}
	}
}

// sizesDir records the uncompressed size of pulled layers, by diff ID:
// the pull's diff ID check counts it, and `images` shows sizes as docker
// does, uncompressed.
const sizesDir = "sizes"

// RecordLayerSize notes that the layer diffID is n bytes uncompressed. A
// lost record only makes `images` fall back to the compressed size, so
// it is written as every small record is.
func (s *Store) RecordLayerSize(diffID v1.Hash, n int64) {
	if checkHash(diffID) != nil {
		return
	}
	p := filepath.Join(s.root, sizesDir, diffID.Hex)
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		fsutil.WriteFileAtomic(p, []byte(strconv.FormatInt(n, 10)), 0o644)
	}
}

// UncompressedSize is the size of layer d's tar, diffID its diff ID: a
// held layer's descriptor says it, a pulled layer's was recorded by its
// pull; else (a layer never downloaded) the compressed size is all there
// is.
func (s *Store) UncompressedSize(d v1.Descriptor, diffID v1.Hash) int64 {
	if isUncompressed(d.MediaType) {
		return d.Size
	}
	if checkHash(diffID) == nil {
		if data, err := readSmallFile(filepath.Join(s.root, sizesDir, diffID.Hex), 32); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && n >= 0 {
				return n
			}
		}
	}
	return d.Size
}
