package registry_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/registry"
)

// serve starts go-containerregistry's in-process registry on loopback and
// returns its host:port.
func serve(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(nilLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T) *cache.Store {
	t.Helper()
	s, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPullOnlyMissingBlobs(t *testing.T) {
	host := serve(t, nil)
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/lib/app:1"
	push(t, ref, img)

	store := openStore(t)
	var mu sync.Mutex
	var downloaded, cachedBlobs int
	client := registry.New(store, registry.Options{Progress: func(p registry.Progress) {
		if !p.Done {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if p.Cached {
			cachedBlobs++
		} else {
			downloaded++
		}
	}})
	rec, err := client.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if rec.Manifest.Digest != want {
		t.Errorf("pulled manifest %s, want %s", rec.Manifest.Digest, want)
	}
	if downloaded != 3 || cachedBlobs != 0 {
		t.Errorf("first pull: downloaded %d, cached %d; want 3, 0", downloaded, cachedBlobs)
	}
	if got, err := store.Lookup(ref); err != nil || got.Manifest.Digest != want {
		t.Errorf("Lookup(%s) = %v, %v", ref, got, err)
	}
	downloaded, cachedBlobs = 0, 0
	if _, err := client.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	if downloaded != 0 || cachedBlobs != 3 {
		t.Errorf("second pull: downloaded %d, cached %d; want 0, 3", downloaded, cachedBlobs)
	}
	// The stored image reads back whole.
	stored, err := store.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := stored.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, rc)
		rc.Close()
	}
}

// TestPullRejectsCorruptBlob serves a layer with one byte changed: the
// pull fails and nothing is tagged.
func TestPullRejectsCorruptBlob(t *testing.T) {
	img, _ := random.Image(2048, 1)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	host := serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				if len(body) > 10 {
					body[10] ^= 0xff
				}
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ref := host + "/corrupt:1"
	push(t, ref, img)
	store := openStore(t)
	_, err := registry.New(store, registry.Options{}).Pull(context.Background(), ref)
	if err == nil {
		t.Fatal("pull of a corrupted layer succeeded")
	}
	if !strings.Contains(err.Error(), "pulling "+ref) {
		t.Errorf("error %q does not name the reference", err)
	}
	if _, err := store.Lookup(ref); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("image tagged after a failed pull: %v", err)
	}
	if store.HasBlob(ld) {
		t.Error("corrupted layer stored")
	}
}

func TestPullPicksPlatform(t *testing.T) {
	host := serve(t, nil)
	amd, _ := random.Image(512, 1)
	arm, _ := random.Image(512, 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	r, _ := name.ParseReference(host+"/multi:1", name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		platform v1.Platform
		want     v1.Image
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, amd},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, arm},
	} {
		store := openStore(t)
		rec, err := registry.New(store, registry.Options{Platform: &c.platform}).Pull(context.Background(), host+"/multi:1")
		if err != nil {
			t.Fatalf("%s: %v", c.platform, err)
		}
		if want, _ := c.want.Digest(); rec.Manifest.Digest != want {
			t.Errorf("%s: pulled %s, want %s", c.platform, rec.Manifest.Digest, want)
		}
	}
	store := openStore(t)
	_, err := registry.New(store, registry.Options{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}).Pull(context.Background(), host+"/multi:1")
	if err == nil || !strings.Contains(err.Error(), "linux/amd64") || !strings.Contains(err.Error(), "s390x") {
		t.Errorf("pull for a missing platform: %v, want an error listing the platforms", err)
	}
}

func TestPullNotFound(t *testing.T) {
	host := serve(t, nil)
	_, err := registry.New(openStore(t), registry.Options{}).Pull(context.Background(), host+"/nothing:here")
	var nf *registry.NotFoundError
	if !errors.As(err, &nf) || err.Error() != host+"/nothing:here: no such repository" {
		t.Errorf("pull of a missing image: %v, want %s/nothing:here: no such repository", err, host)
	}
}

// TestPullUnreachable: a registry nothing answers for is named once,
// with the reason, however many schemes the transport tried.
func TestPullUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = registry.New(openStore(t), registry.Options{}).Pull(context.Background(), host+"/app:1")
	var ue *registry.UnreachableError
	want := "pulling " + host + "/app:1: the registry " + host + " could not be reached (connect: connection refused)"
	if !errors.As(err, &ue) || err.Error() != want {
		t.Errorf("pull from a closed port: %v, want %s", err, want)
	}
}

func TestParseReference(t *testing.T) {
	for _, c := range []struct {
		in, want string
		scheme   string
	}{
		{"alpine", "index.docker.io/library/alpine:latest", "https"},
		{"user/app:1", "index.docker.io/user/app:1", "https"},
		{"127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "http"},
		{"localhost:5000/x:2", "localhost:5000/x:2", "http"},
		{"[::1]:5000/x", "[::1]:5000/x:latest", "http"},
		{"insecure.example:5000/x", "insecure.example:5000/x:latest", "http"},
		{"ghcr.io/o/x:1", "ghcr.io/o/x:1", "https"},
	} {
		r, err := registry.ParseReference(c.in, []string{"insecure.example:5000"})
		if err != nil {
			t.Errorf("ParseReference(%q): %v", c.in, err)
			continue
		}
		if r.Name() != c.want || r.Context().Scheme() != c.scheme {
			t.Errorf("ParseReference(%q) = %s (%s), want %s (%s)", c.in, r.Name(), r.Context().Scheme(), c.want, c.scheme)
		}
	}
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }
