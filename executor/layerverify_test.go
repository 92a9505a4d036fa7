package executor_test

// Regression tests for issue 13, hole 2: an image whose config claims
// another image's diff ID, with other bytes in its layer, must not become
// the snapshot the honest image then uses.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/snapshot"
)

// markerImage is the busybox base plus a gzip layer holding /marker with
// content.
func markerImage(t *testing.T, content string) v1.Image {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "marker", Mode: 0o644, Size: int64(len(content))})
	tw.Write([]byte(content))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(testutil.BusyboxImage(t), struct{ v1.Layer }{layer})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// legitAndEvil returns an honest image and one whose top layer holds
// other bytes while its config claims the honest layer's diff ID.
func legitAndEvil(t *testing.T) (legit, evil v1.Image, diffID v1.Hash) {
	t.Helper()
	legit = markerImage(t, "legit")
	lcfg, err := legit.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	diffID = lcfg.RootFS.DiffIDs[1]
	evil = markerImage(t, "evil")
	ecfg, err := evil.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	ecfg = ecfg.DeepCopy()
	ecfg.RootFS.DiffIDs[1] = diffID
	if evil, err = mutate.ConfigFile(evil, ecfg); err != nil {
		t.Fatal(err)
	}
	return legit, evil, diffID
}

const seeLegit = "RUN test \"$(cat /marker)\" = legit\n"

// checkSnapshot reads /marker from the snapshot of the layer diffID.
func checkSnapshot(t *testing.T, root string, diffID v1.Hash) {
	t.Helper()
	snaps, err := snapshot.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer snaps.Close()
	data, err := os.ReadFile(filepath.Join(snaps.Dir(snapshot.ID(diffID.Hex)), "marker"))
	if err != nil || string(data) != "legit" {
		t.Errorf("snapshot %s holds marker %q, %v; want the honest layer's", diffID.Hex[:12], data, err)
	}
}

// TestLyingDiffIDFromRegistry is the reproduction: in a fresh store, FROM
// evil, then FROM legit, both pulled from a real registry.
func TestLyingDiffIDFromRegistry(t *testing.T) {
	testutil.RequireRoot(t)
	legit, evil, diffID := legitAndEvil(t)
	addr := testutil.StartRegistry(t)
	testutil.PushImage(t, addr+"/test/legit:1", legit)
	testutil.PushImage(t, addr+"/test/evil:1", evil)
	root, ctxDir := t.TempDir(), t.TempDir()

	_, err := buildPulling(t, root, ctxDir, "FROM "+addr+"/test/evil:1\nRUN cat /marker\n", http.DefaultTransport)
	want := "layer content does not match its diff ID " + diffID.String()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("FROM evil = %v, want an error containing %q", err, want)
	}
	if _, err := buildPulling(t, root, ctxDir, "FROM "+addr+"/test/legit:1\n"+seeLegit, http.DefaultTransport); err != nil {
		t.Fatalf("FROM legit after FROM evil: %v", err)
	}
	checkSnapshot(t, root, diffID)
}

// TestLyingDiffIDInStore: an image that reached the store without the
// pull's check (put there directly) is caught when its layer is
// unpacked, and the honest image's build sees its own layer.
func TestLyingDiffIDInStore(t *testing.T) {
	testutil.RequireRoot(t)
	legit, evil, diffID := legitAndEvil(t)
	root, ctxDir := t.TempDir(), t.TempDir()
	store, err := cache.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	storeImage(t, store, "evil:1", evil)
	storeImage(t, store, "legit:1", legit)
	store.Close()

	_, err = buildPulling(t, root, ctxDir, "FROM evil:1\nRUN cat /marker\n", http.DefaultTransport)
	want := "layer content does not match its diff ID sha256:" + diffID.Hex
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("FROM evil = %v, want an error containing %q", err, want)
	}
	if _, err := buildPulling(t, root, ctxDir, "FROM legit:1\n"+seeLegit, http.DefaultTransport); err != nil {
		t.Fatalf("FROM legit after FROM evil: %v", err)
	}
	checkSnapshot(t, root, diffID)
}

// storeImage writes img's blobs and config into store as they are and
// tags it name.
func storeImage(t *testing.T, store *cache.Store, name string, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var descs []v1.Descriptor
	for _, l := range layers {
		d, _ := l.Digest()
		size, _ := l.Size()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = store.PutBlob(rc, d)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, v1.Descriptor{MediaType: types.OCILayer, Digest: d, Size: size})
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := store.PutImage(cfg, descs, cache.FormatOCI, cache.Compression{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(name, rec.Manifest); err != nil {
		t.Fatal(err)
	}
}
