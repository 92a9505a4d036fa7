package registry_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/registry"
)

// layerTar is a tar of one file of n random bytes from seed.
func layerTar(t *testing.T, name string, n int, seed uint64) []byte {
	t.Helper()
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	return buf.Bytes()
}

// storeImage puts an image of the given layer tars into the store.
func storeImage(t *testing.T, s *cache.Store, tars [][]byte) v1.Image {
	t.Helper()
	cfg := &v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers"}}
	var descs []v1.Descriptor
	for _, tb := range tars {
		l, err := s.PutLayer(context.Background(), bytes.NewReader(tb), cache.Compression{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, l.Descriptor)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
	}
	rec, err := s.PutImage(cfg, descs, cache.FormatOCI, cache.Compression{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Image(rec.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// tenLayers is ten 1 MiB random layers; the last depends on last.
func tenLayers(t *testing.T, last uint64) [][]byte {
	var tars [][]byte
	for i := range 9 {
		tars = append(tars, layerTar(t, fmt.Sprintf("f%d", i), 1<<20, uint64(i+1)))
	}
	return append(tars, layerTar(t, "last", 1<<20, last))
}

func blobSize(t *testing.T, l v1.Layer) int64 {
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkRemote reads ref back from the registry and compares digests.
func checkRemote(t *testing.T, ref string, want v1.Image) {
	t.Helper()
	r, err := registry.ParseReference(ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(r)
	if err != nil {
		t.Fatalf("reading back %s: %v", ref, err)
	}
	gd, _ := got.Digest()
	wd, _ := want.Digest()
	if gd != wd {
		t.Fatalf("%s is %s, want %s", ref, gd, wd)
	}
	ls, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Compressed() // verifies the digest as it reads
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(rc); err != nil {
			t.Fatalf("layer of %s: %v", ref, err)
		}
		rc.Close()
	}
}

func TestPushOnlyMissingBlobs(t *testing.T) {
	reg := testutil.StartRegistry(t)
	proxy := testutil.StartProxy(t, reg)
	s := openStore(t)
	client := registry.New(s, registry.Options{})
	ctx := context.Background()

	img1 := storeImage(t, s, tenLayers(t, 100))
	ref := proxy.Addr + "/app:1"
	rep, err := client.Push(ctx, img1, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Uploaded != 10 || rep.Present != 0 || rep.Mounted != 0 {
		t.Errorf("first push: %+v, want 10 uploaded", rep)
	}
	checkRemote(t, ref, img1)

	img2 := storeImage(t, s, tenLayers(t, 200))
	ls, _ := img2.Layers()
	last := blobSize(t, ls[9])
	rawCfg, _ := img2.RawConfigFile()
	rawMan, _ := img2.RawManifest()
	want := last + int64(len(rawCfg)) + int64(len(rawMan))
	proxy.Reset()
	rep, err = client.Push(ctx, img2, proxy.Addr+"/app:2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Uploaded != 1 || rep.Present != 9 || rep.Bytes != last {
		t.Errorf("second push: %+v, want 1 uploaded (%d bytes), 9 present", rep, last)
	}
	if got := proxy.Sent(); got < want || float64(got) > 1.05*float64(want) {
		t.Errorf("second push sent %d bytes, want the last layer, config and manifest: %d (+5%%)", got, want)
	}
	checkRemote(t, proxy.Addr+"/app:2", img2)

	// Another repository of the same registry: mounted, not uploaded.
	proxy.Reset()
	rep, err = client.Push(ctx, img2, proxy.Addr+"/other/app:2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mounted != 10 || rep.Uploaded != 0 {
		t.Errorf("push to a second repository: %+v, want 10 mounted", rep)
	}
	if got := proxy.Sent(); got > int64(len(rawCfg)+len(rawMan)) {
		t.Errorf("push to a second repository sent %d bytes; only the config and manifest (%d) may move", got, len(rawCfg)+len(rawMan))
	}
	checkRemote(t, proxy.Addr+"/other/app:2", img2)
}

// TestPushFaults: the registry is unavailable twice, rate-limits with a
// Retry-After, resets a connection in the middle of a blob, stalls a
// response and fails a commit after storing the blob. The push succeeds,
// waits as told, and sends no stored blob twice.
func TestPushFaults(t *testing.T) {
	reg := testutil.StartRegistry(t)
	proxy := testutil.StartProxy(t, reg)
	s := openStore(t)
	client := registry.New(s, registry.Options{ResponseTimeout: 2 * time.Second})
	img := storeImage(t, s, tenLayers(t, 300))
	ls, _ := img.Layers()

	var n503, n429, nReset, nStall, nCommit atomic.Int32
	var retryAt atomic.Int64 // when the 429 was answered
	var waited atomic.Int64  // how long the client waited before asking again
	var committed = map[string]bool{}
	var commitFailed string
	var mu sync.Mutex // the proxy serves requests in parallel
	proxy.SetFault(func(r *http.Request) testutil.Fault {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodHead && n503.Load() < 2:
			n503.Add(1)
			return testutil.Fault{Status: http.StatusServiceUnavailable}
		// The manifest goes last and alone, so the next PUT of it is the
		// retry of the one refused.
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && n429.Load() < 1:
			n429.Add(1)
			retryAt.Store(time.Now().UnixNano())
			return testutil.Fault{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"2"}}}
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/"):
			waited.Store(time.Now().UnixNano() - retryAt.Load())
		case r.Method == http.MethodPatch && nReset.Load() < 1:
			nReset.Add(1)
			return testutil.Fault{ResetAfter: 100 << 10}
		case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") && nStall.Load() < 1:
			nStall.Add(1)
			return testutil.Fault{Stall: 5 * time.Second}
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && nCommit.Load() < 1:
			nCommit.Add(1)
			commitFailed = r.URL.Query().Get("digest")
			return testutil.Fault{Status: http.StatusInternalServerError, Upstream: true}
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/"):
			d := r.URL.Query().Get("digest")
			if committed[d] {
				t.Errorf("blob %s committed twice", d)
			}
			committed[d] = true
		}
		return testutil.Fault{}
	})
	start := time.Now()
	rep, err := client.Push(context.Background(), img, proxy.Addr+"/app:faults", nil)
	if err != nil {
		t.Fatalf("push through faults: %v", err)
	}
	t.Logf("push took %v: %+v", time.Since(start), rep)
	if w := time.Duration(waited.Load()); w < 2*time.Second {
		t.Errorf("asked again %v after Retry-After: 2", w)
	}
	for name, n := range map[string]int32{"503": n503.Load(), "429": n429.Load(), "reset": nReset.Load(), "stall": nStall.Load(), "commit": nCommit.Load()} {
		if n == 0 {
			t.Errorf("fault %s was never injected", name)
		}
	}
	if committed[commitFailed] {
		t.Errorf("blob %s was sent again after its commit failed with the blob stored", commitFailed)
	}
	_ = ls
	checkRemote(t, proxy.Addr+"/app:faults", img)
}

// TestPushInterrupted: a push that fails half way (the registry refuses
// the eighth upload for good) leaves what it sent; the next push sends
// only the rest.
func TestPushInterrupted(t *testing.T) {
	reg := testutil.StartRegistry(t)
	proxy := testutil.StartProxy(t, reg)
	s := openStore(t)
	client := registry.New(s, registry.Options{})
	img := storeImage(t, s, tenLayers(t, 400))
	var patches atomic.Int32
	proxy.SetFault(func(r *http.Request) testutil.Fault {
		if r.Method == http.MethodPatch && patches.Add(1) > 7 {
			return testutil.Fault{Status: http.StatusForbidden} // not retried
		}
		return testutil.Fault{}
	})
	ref := proxy.Addr + "/app:int"
	if _, err := client.Push(context.Background(), img, ref, nil); err == nil {
		t.Fatal("the push went through a registry refusing uploads")
	}
	ls, _ := img.Layers()
	proxy.SetFault(nil)
	// The cancelled uploads of the first push may still be draining
	// through the proxy: wait until it is quiet before counting.
	for last := int64(-1); proxy.Sent() != last; time.Sleep(200 * time.Millisecond) {
		last = proxy.Sent()
	}
	proxy.Reset()
	rep, err := client.Push(context.Background(), img, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Present < 1 || rep.Uploaded+rep.Present != 10 {
		t.Errorf("second push: %+v, want the layers the first one stored present", rep)
	}
	rawCfg, _ := img.RawConfigFile()
	rawMan, _ := img.RawManifest()
	want := rep.Bytes + int64(len(rawCfg)+len(rawMan))
	if got := proxy.Sent(); got > want {
		t.Errorf("second push sent %d bytes; the missing layers, config and manifest are %d", got, want)
	}
	if rep.Bytes >= int64(10*blobSize(t, ls[0]))-1000 {
		t.Errorf("second push sent %d layer bytes: everything again", rep.Bytes)
	}
	checkRemote(t, ref, img)
}

// TestFetchLayerStalled: a source that answers and then stops sending a
// layer is given up after the idle timeout, and the next source that
// holds the blob serves it.
func TestFetchLayerStalled(t *testing.T) {
	reg := testutil.StartRegistry(t)
	proxy := testutil.StartProxy(t, reg)
	src := openStore(t)
	img := storeImage(t, src, tenLayers(t, 500)[:1])
	// The same repository, reached through the stalling proxy and directly.
	if _, err := registry.New(src, registry.Options{}).Push(context.Background(), img, reg+"/app:1", nil); err != nil {
		t.Fatal(err)
	}
	proxy.SetFault(func(r *http.Request) testutil.Fault {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			return testutil.Fault{StallBodyAfter: 1000}
		}
		return testutil.Fault{}
	})
	dst := openStore(t)
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	size, _ := ls[0].Size()
	diffID, _ := ls[0].DiffID()
	mt, _ := ls[0].MediaType()
	if err := dst.AddBlobSource(reg+"/app", d); err != nil { // tried second
		t.Fatal(err)
	}
	if err := dst.AddBlobSource(proxy.Addr+"/app", d); err != nil { // tried first
		t.Fatal(err)
	}
	start := time.Now()
	err := registry.New(dst, registry.Options{IdleTimeout: time.Second}).FetchLayer(context.Background(),
		cache.Layer{Descriptor: v1.Descriptor{MediaType: mt, Digest: d, Size: size}, DiffID: diffID})
	if err != nil {
		t.Fatalf("FetchLayer: %v", err)
	}
	if took := time.Since(start); took < time.Second || took > 20*time.Second {
		t.Errorf("FetchLayer took %v; the stalled source should cost about the 1 s idle timeout", took)
	}
	if !dst.HasBlob(d) {
		t.Error("the layer is not in the store")
	}
	stalled := false
	for _, l := range proxy.Log() {
		stalled = stalled || strings.HasPrefix(l, "GET ") && strings.Contains(l, "/blobs/")
	}
	if !stalled {
		t.Error("the stalling source was never tried")
	}
}
