package registry_test

// Pulls from the real CNCF distribution registry (Debian's docker-registry)
// on loopback, checked with skopeo reading the store as an OCI layout. The
// in-process ggcr registry in registry_test.go covers the fast cases.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/registry"
)

// skopeoInspect is the part of `skopeo inspect` the tests compare.
type skopeoInspect struct {
	Digest       string
	Os           string
	Architecture string
	Layers       []string
}

func inspectStore(t *testing.T, root, name string) skopeoInspect {
	t.Helper()
	skopeo := testutil.RequireTool(t, "skopeo")
	out, err := exec.Command(skopeo, "inspect", "oci:"+root+":"+name).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("skopeo inspect oci:%s:%s: %v: %s", root, name, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got skopeoInspect
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.String())
	}
	return ds
}

// TestPullFromDistribution pulls an OCI image (the busybox base) and a
// Docker schema2 image from docker-registry and checks that each is tagged
// in the store under its reference, byte for byte as the registry holds
// it: with skopeo for the OCI image, with ggcr's validate for the Docker
// one.
//
// NOTE: skopeo 1.9's oci: transport (and so any tool on containers/image
// of that age) skips index.json entries whose media type is not OCI, so a
// Docker schema2 image pulled as it is cannot be named through oci:ROOT:
// with it. Converting it would change its digest.
func TestPullFromDistribution(t *testing.T) {
	host := testutil.StartRegistry(t)
	docker, err := random.Image(4096, 2) // ggcr's random images are Docker schema2
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		img       v1.Image
		mediaType types.MediaType
	}{
		{"oci", testutil.BusyboxImage(t), types.OCIManifestSchema1},
		{"docker", docker, types.DockerManifestSchema2},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := host + "/test/" + c.name + ":latest"
			testutil.PushImage(t, ref, c.img)
			root := t.TempDir()
			store, err := cache.Open(root)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			rec, err := registry.New(store, registry.Options{}).Pull(context.Background(), ref)
			if err != nil {
				t.Fatalf("Pull(%s): %v", ref, err)
			}
			want, _ := c.img.Digest()
			if rec.Manifest.Digest != want || rec.Manifest.MediaType != c.mediaType {
				t.Errorf("Pull(%s) = manifest %s (%s), want %s (%s)", ref, rec.Manifest.Digest, rec.Manifest.MediaType, want, c.mediaType)
			}
			stored, err := store.Image(rec.Manifest.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(stored); err != nil {
				t.Errorf("the stored image does not validate: %v", err)
			}
			if c.mediaType != types.OCIManifestSchema1 {
				return
			}
			got := inspectStore(t, root, ref)
			wantLayers := layerDigests(t, c.img)
			if got.Digest != want.String() || strings.Join(got.Layers, " ") != strings.Join(wantLayers, " ") {
				t.Errorf("skopeo inspect of the store = %+v, want digest %s, layers %v", got, want, wantLayers)
			}
			if got.Os != "linux" || got.Architecture != runtime.GOARCH {
				t.Errorf("skopeo inspect: platform %s/%s, want linux/%s", got.Os, got.Architecture, runtime.GOARCH)
			}
		})
	}
}

// TestPullByDigestFromDistribution pulls name@sha256:…: the image is
// stored and found by its digest, and no tag is made.
func TestPullByDigestFromDistribution(t *testing.T) {
	host := testutil.StartRegistry(t)
	img := testutil.BusyboxImage(t)
	testutil.PushImage(t, host+"/test/busybox:1", img)
	want, _ := img.Digest()
	store := openStore(t)
	ref := host + "/test/busybox@" + want.String()
	rec, err := registry.New(store, registry.Options{}).Pull(context.Background(), ref)
	if err != nil {
		t.Fatalf("Pull(%s): %v", ref, err)
	}
	if rec.Manifest.Digest != want {
		t.Errorf("Pull(%s) = %s, want %s", ref, rec.Manifest.Digest, want)
	}
	if images, err := store.Images(); err != nil || len(images) != 0 {
		t.Errorf("after a pull by digest, Images() = %v, %v; want no tags", images, err)
	}
}

// TestPullMissingBlobFromDistribution deletes a layer from the registry
// behind its manifest's back: the pull fails naming the reference, and
// nothing is tagged.
func TestPullMissingBlobFromDistribution(t *testing.T) {
	host := testutil.StartRegistry(t)
	img := testutil.BusyboxImage(t)
	ref := host + "/test/broken:latest"
	testutil.PushImage(t, ref, img)
	layer := layerDigests(t, img)[0]
	req, _ := http.NewRequest(http.MethodDelete, "http://"+host+"/v2/test/broken/blobs/"+layer, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting the layer from the registry: %s", resp.Status)
	}
	store := openStore(t)
	_, err = registry.New(store, registry.Options{}).Pull(context.Background(), ref)
	if err == nil || !strings.Contains(err.Error(), "pulling "+ref) {
		t.Fatalf("Pull of an image missing a layer = %v, want an error naming %s", err, ref)
	}
	if !strings.Contains(err.Error(), layer) {
		t.Errorf("Pull error %q does not name the missing layer %s", err, layer)
	}
	if _, err := store.Lookup(ref); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("image tagged after a failed pull: Lookup = %v", err)
	}
}
