package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/registry"
)

// TestLayersLeaveWhole: what leaves the machine, pushed or exported in
// either format, decompresses to tars whose sha256 are the config's diff
// IDs. (Root: builds run containers.)
func TestLayersLeaveWhole(t *testing.T) {
	testutil.RequireRoot(t)
	busybox := testutil.RequireTool(t, "busybox")
	reg := testutil.StartRegistry(t)
	ctx := busyboxContext(t, busybox, "RUN head -c 3000000 /dev/urandom > /r && yes text | head -c 3000000 > /t\n")
	for _, format := range []string{"docker", "oci"} {
		t.Run(format, func(t *testing.T) {
			ref := reg + "/leave:" + format
			out := filepath.Join(t.TempDir(), "layout")
			env := testEnv("BUILDER_ROOT="+t.TempDir(), "CI=true")
			code, _, stderr := runWith(env, "build", "-q", "--format", format, "-t", ref, "--push",
				"-o", "type=oci-layout,dest="+out, ctx)
			if code != 0 {
				t.Fatalf("build: %s", stderr)
			}
			r, err := registry.ParseReference(ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			pushed, err := remote.Image(r)
			if err != nil {
				t.Fatal(err)
			}
			checkDiffIDs(t, "pushed", pushed)
			idx, err := layout.ImageIndexFromPath(out)
			if err != nil {
				t.Fatal(err)
			}
			m, err := idx.IndexManifest()
			if err != nil || len(m.Manifests) != 1 {
				t.Fatalf("exported layout: %v, %d manifests", err, len(m.Manifests))
			}
			exported, err := idx.Image(m.Manifests[0].Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkDiffIDs(t, "exported", exported)
		})
	}
}

// TestPushTamperedSnapshot: a build holds its layers in snapshots and
// makes their tars again at push; a snapshot changed after its commit
// must stop the push, naming the layer, before the registry gets it.
// (Root: builds run containers.)
func TestPushTamperedSnapshot(t *testing.T) {
	testutil.RequireRoot(t)
	busybox := testutil.RequireTool(t, "busybox")
	reg := testutil.StartRegistry(t)
	ctx := busyboxContext(t, busybox, "RUN echo original > /f\n")
	root := t.TempDir()
	env := testEnv("BUILDER_ROOT="+root, "CI=true")
	if code, _, stderr := runWith(env, "build", "-q", "-t", "app", ctx); code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	code, stdout, stderr := runWith(env, "inspect", "app")
	if code != 0 {
		t.Fatalf("inspect: %s", stderr)
	}
	var info []struct {
		RootFS struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(stdout), &info); err != nil || len(info) != 1 || len(info[0].RootFS.Layers) != 3 {
		t.Fatalf("inspect: %v: %s", err, stdout)
	}
	top := info[0].RootFS.Layers[2]
	f := filepath.Join(root, "snapshots", strings.TrimPrefix(top, "sha256:"), "fs", "f")
	if err := os.WriteFile(f, []byte("changed!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runWith(env, "push", "app", reg+"/app:1")
	if code != 1 || !strings.Contains(stderr, top) || !strings.Contains(stderr, "changed") {
		t.Fatalf("push of a tampered snapshot: exit %d, want 1 and an error naming layer %s:\n%s", code, top, stderr)
	}
	r, err := registry.ParseReference(reg+"/app:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(r); err == nil {
		t.Errorf("the registry has %s/app:1 after a failed push", reg)
	}
}

// checkDiffIDs decompresses every layer blob of img, sniffing the
// compression as the store does, and compares its sha256 with the
// config's diff ID.
func checkDiffIDs(t *testing.T, what string, img v1.Image) {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) || len(layers) < 3 {
		t.Fatalf("%s: %d layers, %d diff IDs", what, len(layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range layers {
		if mt, err := l.MediaType(); err != nil || !strings.Contains(string(mt), "gzip") {
			t.Errorf("%s layer %d has media type %q (%v), want a gzip layer: held layers leave compressed", what, i, mt, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		zr, err := cache.DecompressLayer(rc)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, zr); err != nil {
			t.Fatalf("%s layer %d: %v", what, i, err)
		}
		zr.Close()
		rc.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != cfg.RootFS.DiffIDs[i].String() {
			t.Errorf("%s layer %d decompresses to %s, the config says %s", what, i, got, cfg.RootFS.DiffIDs[i])
		}
	}
}

// busyboxContext makes a build context holding busybox and a Dockerfile
// that installs it FROM scratch, then runs steps.
func busyboxContext(t testing.TB, busybox, steps string) string {
	t.Helper()
	ctx := t.TempDir()
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	df := "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n" + steps
	for name, content := range map[string]string{"busybox": string(data), "Dockerfile": df} {
		if err := os.WriteFile(filepath.Join(ctx, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return ctx
}
