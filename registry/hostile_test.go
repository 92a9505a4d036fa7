package registry_test

// Hostile images pulled from the real distribution registry: each must
// fail with a clear error and leave nothing tagged.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/registry"
)

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedKeys(files) {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

func gzipOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdOf(t *testing.T, data []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(data, nil)
}

func diffIDOf(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// blobImage is an image of the given layer blobs, as they are, whose
// config claims diffIDs: what a hostile registry may serve.
func blobImage(t *testing.T, mt types.MediaType, blobs [][]byte, diffIDs []v1.Hash) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, b := range blobs {
		layers = append(layers, static.NewLayer(b, mt))
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.RootFS.DiffIDs = diffIDs
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// rawManifest pushes a manifest's bytes as they are.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// editManifest pushes img to ref, then pushes its manifest again changed
// by edit to the tag ref+"-edited" (the blobs are already there).
func editManifest(t *testing.T, ref string, img v1.Image, edit func(m map[string]any)) string {
	t.Helper()
	testutil.PushImage(t, ref, img)
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	raw, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	edited := ref + "-edited"
	r, err := testutil.ParseReference(edited)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, rawManifest{raw, mt}, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("pushing the edited manifest: %v", err)
	}
	return edited
}

func TestPullHostileFromDistribution(t *testing.T) {
	host := testutil.StartRegistry(t)
	legitTar := tarOf(t, map[string]string{"etc/motd": "legit"})
	evilTar := tarOf(t, map[string]string{"etc/motd": "evil"})
	legit := blobImage(t, types.DockerLayer, [][]byte{gzipOf(t, legitTar)}, []v1.Hash{diffIDOf(legitTar)})
	bomb := tarOf(t, map[string]string{"zeros": string(make([]byte, 8<<20))})
	// A valid gzip header, then a deflate block of the reserved type.
	badGzip := append(gzipOf(t, nil)[:10], 0xff, 0xff, 0xff, 0xff)

	for _, c := range []struct {
		name    string
		push    func(t *testing.T, ref string) string // pushes to ref, returns what to pull
		limit   int64
		wantErr string
	}{
		{"gzip layer", func(t *testing.T, ref string) string {
			testutil.PushImage(t, ref, legit)
			return ref
		}, 0, ""},
		{"zstd layer", func(t *testing.T, ref string) string {
			testutil.PushImage(t, ref, blobImage(t, types.OCILayerZStd, [][]byte{zstdOf(t, legitTar)}, []v1.Hash{diffIDOf(legitTar)}))
			return ref
		}, 0, ""},
		{"uncompressed layer", func(t *testing.T, ref string) string {
			testutil.PushImage(t, ref, blobImage(t, types.OCIUncompressedLayer, [][]byte{legitTar}, []v1.Hash{diffIDOf(legitTar)}))
			return ref
		}, 0, ""},
		{"lying diff ID", func(t *testing.T, ref string) string {
			testutil.PushImage(t, ref, blobImage(t, types.DockerLayer, [][]byte{gzipOf(t, evilTar)}, []v1.Hash{diffIDOf(legitTar)}))
			return ref
		}, 0, "layer content does not match its diff ID " + diffIDOf(legitTar).String() + ": got " + diffIDOf(evilTar).String()},
		{"more diff IDs than layers", func(t *testing.T, ref string) string {
			testutil.PushImage(t, ref, blobImage(t, types.DockerLayer, [][]byte{gzipOf(t, legitTar)}, []v1.Hash{diffIDOf(legitTar), diffIDOf(evilTar)}))
			return ref
		}, 0, "the config lists 2 diff IDs for the manifest's 1 layers"},
		{"layer size smaller than the blob", func(t *testing.T, ref string) string {
			return editManifest(t, ref, legit, func(m map[string]any) { layerOf(m)["size"] = layerSize(m) - 1 })
		}, 0, "does not match expected size"},
		{"layer size larger than the blob", func(t *testing.T, ref string) string {
			return editManifest(t, ref, legit, func(m map[string]any) { layerOf(m)["size"] = layerSize(m) + 100 })
		}, 0, "does not match expected size"},
		// The registry itself refuses to store such a manifest ("request
		// body too large"): a proxy in front of it serves one.
		{"manifest over 4 MiB", func(t *testing.T, ref string) string {
			return bigManifest(t, ref, legit, true)
		}, 0, "bytes is larger than the limit of 4 MiB"},
		{"manifest over 4 MiB without a length", func(t *testing.T, ref string) string {
			return bigManifest(t, ref, legit, false)
		}, 0, "manifest is larger than the limit of 4 MiB"},
		{"invalid gzip", func(t *testing.T, ref string) string {
			testutil.PushImage(t, ref, blobImage(t, types.DockerLayer, [][]byte{badGzip}, []v1.Hash{diffIDOf(nil)}))
			return ref
		}, 0, "decompressing: flate: corrupt input"},
		{"decompression bomb", func(t *testing.T, ref string) string {
			testutil.PushImage(t, ref, blobImage(t, types.DockerLayer, [][]byte{gzipOf(t, bomb)}, []v1.Hash{diffIDOf(bomb)}))
			return ref
		}, 1 << 20, "uncompressed (raise it with BUILDER_MAX_LAYER_SIZE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := c.push(t, host+"/hostile/"+strings.ToLower(strings.ReplaceAll(c.name, " ", "-"))+":1")
			store := openStore(t)
			_, err := registry.New(store, registry.Options{MaxLayerSize: c.limit}).Pull(context.Background(), ref)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Pull(%s): %v", ref, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "pulling "+ref) {
				t.Fatalf("Pull(%s) = %v, want an error naming it and containing %q", ref, err, c.wantErr)
			}
			t.Logf("%s: %v", c.name, err)
			if _, err := store.Lookup(ref); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("image tagged after a failed pull: Lookup = %v", err)
			}
		})
	}
}

// bigManifest pushes img to ref and returns the same reference through a
// proxy of the registry that serves ref's manifest with 5 MiB of
// annotations, with its Content-Length or chunked.
func bigManifest(t *testing.T, ref string, img v1.Image, withLength bool) string {
	t.Helper()
	testutil.PushImage(t, ref, img)
	raw, _ := img.RawManifest()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["annotations"] = map[string]string{"padding": strings.Repeat("x", 5<<20)}
	big, _ := json.Marshal(m)
	mt, _ := img.MediaType()
	host, rest, _ := strings.Cut(ref, "/")
	repo, tag, _ := strings.Cut(rest, ":")
	target := &url.URL{Scheme: "http", Host: host}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/"+repo+"/manifests/"+tag {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", string(mt))
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
			return
		}
		for b := big; len(b) > 0; b = b[min(len(b), 64<<10):] {
			w.Write(b[:min(len(b), 64<<10)])
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://") + "/" + rest
}

func layerOf(m map[string]any) map[string]any {
	return m["layers"].([]any)[0].(map[string]any)
}

func layerSize(m map[string]any) int64 { return int64(layerOf(m)["size"].(float64)) }

// TestPullSizeLimitError: the limit is a typed error naming the layer.
func TestPullSizeLimitError(t *testing.T) {
	host := serve(t, nil)
	bomb := tarOf(t, map[string]string{"zeros": string(make([]byte, 2<<20))})
	img := blobImage(t, types.DockerLayer, [][]byte{gzipOf(t, bomb)}, []v1.Hash{diffIDOf(bomb)})
	ref := host + "/bomb:1"
	push(t, ref, img)
	_, err := registry.New(openStore(t), registry.Options{MaxLayerSize: 1 << 20}).Pull(context.Background(), ref)
	var se *registry.LayerSizeError
	layers, _ := img.Layers()
	digest, _ := layers[0].Digest()
	if !errors.As(err, &se) || se.Limit != 1<<20 || se.Digest != digest {
		t.Fatalf("Pull over the limit = %v, want a LayerSizeError for %s of 1 MiB", err, digest)
	}
	if _, err := registry.New(openStore(t), registry.Options{MaxLayerSize: 4 << 20}).Pull(context.Background(), ref); err != nil {
		t.Errorf("Pull under a larger limit: %v", err)
	}
}

// storeFirst is a transport that, when a layer blob is requested, stores
// that blob in the store itself first: another process that pulled the
// same layer a moment earlier. The pull's PutBlob then reads nothing.
type storeFirst struct {
	store *cache.Store
	blobs map[string][]byte // by digest
}

func (s storeFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	for d, b := range s.blobs {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+d) {
			if _, _, err := s.store.PutBlob(bytes.NewReader(b), v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(d, "sha256:")}); err != nil {
				return nil, err
			}
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestPullBlobStoredMeanwhile: a layer that another process stores while
// this pull downloads it is checked from the store, so an honest image
// passes and a lying one does not.
func TestPullBlobStoredMeanwhile(t *testing.T) {
	host := serve(t, nil)
	legitTar, evilTar := tarOf(t, map[string]string{"a": "legit"}), tarOf(t, map[string]string{"a": "evil"})
	for _, c := range []struct {
		name    string
		blob    []byte
		wantErr string
	}{
		{"honest", gzipOf(t, legitTar), ""},
		{"lying", gzipOf(t, evilTar), "layer content does not match its diff ID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := blobImage(t, types.DockerLayer, [][]byte{c.blob}, []v1.Hash{diffIDOf(legitTar)})
			ref := host + "/meanwhile/" + c.name + ":1"
			push(t, ref, img)
			store := openStore(t)
			tr := storeFirst{store: store, blobs: map[string][]byte{diffIDOf(c.blob).String(): c.blob}}
			_, err := registry.New(store, registry.Options{Transport: tr}).Pull(context.Background(), ref)
			if c.wantErr == "" && err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("Pull = %v, want an error containing %q", err, c.wantErr)
			}
		})
	}
}
