package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
)

// commitHeld commits a one-file layer the way a RUN step does: the upper
// dir hashed (no blob) and renamed into the snapshot that holds it.
func commitHeld(t *testing.T, s *Store, name, content string) cache.Layer {
	t.Helper()
	ctx := context.Background()
	a, err := s.Snapshots().Prepare(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := os.WriteFile(filepath.Join(a.Upper(), name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := cache.HoldLayer(ctx, func(w io.Writer) error { return snapshot.WriteLayer(w, a.Upper(), snapshot.WriteOptions{}) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CommitLayer(snapshot.ID(l.DiffID.Hex), snapshot.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return l
}

func heldImage(t *testing.T, s *Store, comp cache.Compression) (cache.ImageRecord, cache.Layer) {
	t.Helper()
	l := commitHeld(t, s, "f", strings.Repeat("held layer\n", 1000))
	if s.Cache().HasBlob(l.Descriptor.Digest) {
		t.Fatal("a held layer has a blob")
	}
	cfg := &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.DiffID}}}
	rec, err := s.Cache().PutImage(cfg, []v1.Descriptor{l.Descriptor}, cache.FormatOCI, comp)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Cache().Tag("held:1", rec.Manifest); err != nil {
		t.Fatal(err)
	}
	return rec, l
}

// TestHeldLayerLeavesCompressed: a held layer leaves compressed as the
// image asks, its bytes decompress to the diff ID, and the compressed
// blob is made once.
func TestHeldLayerLeavesCompressed(t *testing.T) {
	for _, format := range []string{"gzip", "zstd", "none"} {
		t.Run(format, func(t *testing.T) {
			s := openTest(t)
			rec, l := heldImage(t, s, cache.Compression{Format: format})
			var first v1.Hash
			for round := range 2 {
				img, err := s.Cache().Outgoing(context.Background(), rec.Manifest.Digest)
				if err != nil {
					t.Fatal(err)
				}
				layers, err := img.Layers()
				if err != nil || len(layers) != 1 {
					t.Fatalf("layers: %v, %d", err, len(layers))
				}
				mt, _ := layers[0].MediaType()
				if want := map[string]string{"gzip": "gzip", "zstd": "zstd", "none": "layer.v1.tar"}[format]; !strings.HasSuffix(string(mt), want) {
					t.Errorf("round %d: media type %s, want *%s", round, mt, want)
				}
				d, _ := layers[0].Digest()
				if round == 0 {
					first = d
				} else if d != first {
					t.Errorf("second export made layer %s, the first %s: compressed again, differently", d, first)
				}
				rc, err := layers[0].Compressed()
				if err != nil {
					t.Fatal(err)
				}
				zr, err := cache.DecompressLayer(rc)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				if _, err := io.Copy(h, zr); err != nil {
					t.Fatal(err)
				}
				zr.Close()
				rc.Close()
				if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.DiffID.String() {
					t.Errorf("round %d: layer decompresses to %s, want the diff ID %s", round, got, l.DiffID)
				}
			}
			if blob := s.Cache().HasBlob(first); blob != (format != "none") {
				t.Errorf("store holds the compressed blob: %v; want %v", blob, format != "none")
			}
		})
	}
}

// TestPruneKeepsHeldLayers: prune --all removes the snapshots blobs can
// rebuild, never a held layer's of a tagged image (its only copy), and
// once the layer has a compressed blob, the snapshot may go: the layer
// is unpacked from the blob again.
func TestPruneKeepsHeldLayers(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	rec, l := heldImage(t, s, cache.Compression{})
	rebuildable := unpackLayer(t, s, "pulled")
	if _, err := s.Prune(ctx, cache.PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	id := snapshot.ID(l.DiffID.Hex)
	if !s.Snapshots().Exists(id) {
		t.Fatal("prune --all removed the snapshot that holds a tagged image's layer")
	}
	if s.Snapshots().Exists(rebuildable) {
		t.Error("prune --all kept a snapshot no image needs")
	}
	if f, err := s.Check(ctx, false); err != nil || len(f) != 0 {
		t.Errorf("check after prune: %+v, %v", f, err)
	}

	if _, err := s.Cache().Outgoing(ctx, rec.Manifest.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, cache.PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if s.Snapshots().Exists(id) {
		t.Error("prune --all kept a snapshot its compressed blob can rebuild")
	}
	if !s.Cache().HasLayer(l.Descriptor) {
		t.Fatal("the layer is gone with its snapshot, though its compressed blob was kept")
	}
	// Without the snapshot, the image still leaves whole: as stored, and
	// in another format, made from the gzip copy.
	if f, err := s.Check(ctx, false); err != nil || len(f) != 0 {
		t.Errorf("check without the snapshot: %+v, %v", f, err)
	}
	cfg := &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.DiffID}}}
	zrec, err := s.Cache().PutImage(cfg, []v1.Descriptor{l.Descriptor}, cache.FormatOCI, cache.Compression{Format: "zstd"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []v1.Hash{rec.Manifest.Digest, zrec.Manifest.Digest} {
		img, err := s.Cache().ImageAs(ctx, m)
		if err != nil {
			t.Fatalf("image %s without its snapshot: %v", m, err)
		}
		checkLayers(t, img, l.DiffID)
	}
	rc, err := s.Cache().OpenLayer(l.Descriptor)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshots().Unpack(ctx, id, rc); err != nil {
		t.Errorf("unpacking the layer from its compressed blob: %v", err)
	}
	rc.Close()
	if f, err := s.Check(ctx, false); err != nil || len(f) != 0 {
		t.Errorf("check at the end: %+v, %v", f, err)
	}
}

// BenchmarkFirstPushCompress is what a push adds for a held layer the
// store has not compressed yet: the bench's push workload's 4 MB random
// layer regenerated from its snapshot, checked, gzipped and stored.
//
//	go test -run '^$' -bench FirstPushCompress ./store
func BenchmarkFirstPushCompress(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "store"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 4_000_000)
	rand.Read(data)
	ctx := context.Background()
	a, err := s.Snapshots().Prepare(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if err := os.WriteFile(filepath.Join(a.Upper(), "b9"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	l, err := cache.HoldLayer(ctx, func(w io.Writer) error { return snapshot.WriteLayer(w, a.Upper(), snapshot.WriteOptions{}) }, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.CommitLayer(snapshot.ID(l.DiffID.Hex), snapshot.WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		d, err := s.Cache().Compressed(ctx, l.Descriptor, cache.Compression{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(filepath.Join(s.Root(), "blobs", "sha256", d.Digest.Hex))
		b.StartTimer()
	}
}

// checkLayers reads img's one layer and compares what it decompresses to
// with diffID.
func checkLayers(t *testing.T, img v1.Image, diffID v1.Hash) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %v, %d", err, len(layers))
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := cache.DecompressLayer(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	h := sha256.New()
	if _, err := io.Copy(h, zr); err != nil {
		t.Fatal(err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
		t.Errorf("layer decompresses to %s, want %s", got, diffID)
	}
	if m, err := img.Manifest(); err != nil || len(m.Annotations) != 0 {
		t.Errorf("the outgoing manifest carries the store's annotations %v (%v)", m.Annotations, err)
	}
}
