package executor_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
)

// TestDeepDockerfile builds 150 tiny RUN steps, more than Docker's 125
// layers, and hands the image to podman. Without a limit the overlay
// driver of containers-storage refuses it ("max depth exceeded", as
// moby's layer store does); with the default --max-layers, the builder
// merges layers and both podman drivers run it.
func TestDeepDockerfile(t *testing.T) {
	const steps = 150
	e := newEnv(t)
	var df strings.Builder
	df.WriteString("FROM busybox:test\n")
	for i := 1; i <= steps; i++ {
		fmt.Fprintf(&df, "RUN echo %d > /f%d\n", i, i)
	}
	for _, tc := range []struct {
		name      string
		maxLayers int
		layers    int
	}{
		{"unlimited", -1, steps + 1},
		{"default limit", 0, executor.DefaultMaxLayers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, err := e.build(t, t.TempDir(), df.String(), &buildOpts{maxLayers: tc.maxLayers})
			if err != nil {
				t.Fatalf("building %d steps: %v", steps, err)
			}
			t.Logf("%d RUN steps built in %v", steps, time.Since(start))
			if n := len(res.Config.RootFS.DiffIDs); n != tc.layers {
				t.Fatalf("image has %d layers, want %d", n, tc.layers)
			}
			archive := exportArchive(t, e, res.Image, "deep:150")

			if tc.maxLayers < 0 { // vfs has no depth limit; the overlay driver below runs the merged one
				start = time.Now()
				p := newPodman(t)
				p.load(t, archive)
				out := p.run(t, "deep:150", "sh", "-c", "ls / | grep -c '^f'; cat /f1 /f150")
				t.Logf("podman (vfs) load and run: %v", time.Since(start))
				if out != "150\n1\n150\n" {
					t.Errorf("podman (vfs) run printed %q, want 150 files, then 1 and 150", out)
				}
			}

			start = time.Now()
			po := newPodmanOverlay(t)
			po.load(t, archive)
			out, err := po.runErr("deep:150", "sh", "-c", "ls / | grep -c '^f'; cat /f1 /f150")
			t.Logf("podman (overlay) load and run: %v", time.Since(start))
			switch {
			case err == nil && out == "150\n1\n150\n":
				t.Logf("podman (overlay driver) runs a %d-layer image", tc.layers)
			case err != nil && tc.maxLayers < 0 && strings.Contains(stderrOf(err), "max depth exceeded"):
				t.Logf("podman (overlay driver) refuses a %d-layer image: %s", tc.layers, strings.TrimSpace(stderrOf(err)))
			default:
				t.Errorf("podman (overlay driver) run: %q, %v\n%s", out, err, stderrOf(err))
			}
		})
	}
}

// newPodmanOverlay is newPodman with containers-storage's overlay driver.
// That driver bind-mounts its own directory in the host namespace and
// leaves it mounted; the cleanup detaches what is left under the temp dir.
func newPodmanOverlay(t *testing.T) *podman {
	t.Helper()
	p := newPodman(t)
	var dir string
	for i, a := range p.global {
		if a == "--storage-driver" {
			p.global[i+1] = "overlay"
		}
		if a == "--root" {
			dir = filepath.Dir(p.global[i+1])
		}
	}
	// Registered after newPodman's RemoveAll, so it runs before it.
	t.Cleanup(func() { detachMountsUnder(t, dir) })
	return p
}

// detachMountsUnder lazily unmounts every mount at or below dir, deepest
// first. dir is a temp dir of the test's own.
func detachMountsUnder(t *testing.T, dir string) {
	t.Helper()
	for _, m := range mountsBelow(t, dir) {
		if err := unmount(m); err != nil {
			t.Errorf("detaching %s: %v", m, err)
		}
	}
}

// deepLayer describes layer i of a chain of n made by makeDeepBase: every
// layer adds /layers/<i>; a few fixed depths overwrite, delete and make
// opaque, so that merged chain bottoms are checked for more than adds.
func deepLayer(i, n int) map[string]string {
	files := map[string]string{"layers/" + strconv.Itoa(i): strconv.Itoa(i)}
	switch i {
	case 0:
		for k, v := range map[string]string{"bottom": "bottom", "gone": "x", "gone2": "x", "over": "0", "opq/a": "a"} {
			files[k] = v
		}
	case 10:
		files["over"] = "10"
	case 100:
		files[".wh.gone2"] = ""
	case 200:
		files["opq/.wh..wh..opq"], files["opq/b"] = "", "b"
	case 270:
		files[".wh.gone"] = ""
	case n - 1:
		files["top"] = "top"
	}
	return files
}

// makeDeepBase writes an n-layer image straight into the store with
// cache.PutLayer and PutImage, and tags it.
func makeDeepBase(t *testing.T, store *cache.Store, n int, tag string) {
	t.Helper()
	cfg := &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"}}
	cfg.Config.Env = []string{"PATH=" + testutil.BusyboxPath}
	var descs []v1.Descriptor
	// The busybox layer goes at the bottom, so RUN has a shell.
	bb, err := os.Open(testutil.BusyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := store.PutLayer(context.Background(), bb, cache.Compression{}, nil)
	bb.Close()
	if err != nil {
		t.Fatal(err)
	}
	descs, cfg.RootFS.DiffIDs = append(descs, l.Descriptor), append(cfg.RootFS.DiffIDs, l.DiffID)
	for i := 0; i < n-1; i++ {
		l, err := store.PutLayer(context.Background(), bytes.NewReader(tarOf(t, deepLayer(i, n-1))), cache.Compression{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		descs, cfg.RootFS.DiffIDs = append(descs, l.Descriptor), append(cfg.RootFS.DiffIDs, l.DiffID)
	}
	for range descs {
		cfg.History = append(cfg.History, v1.History{CreatedBy: "deep layer", Created: v1.Time{Time: time.Unix(0, 0)}})
	}
	rec, err := store.PutImage(cfg, descs, cache.FormatOCI, cache.Compression{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(tag, rec.Manifest); err != nil {
		t.Fatal(err)
	}
}

// tarOf makes a layer tar of files (parents added, sorted by name).
func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var names []string
	dirs := map[string]bool{}
	for name := range files {
		names = append(names, name)
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	for d := range dirs {
		names = append(names, d)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(files[name])), ModTime: time.Unix(0, 0)}
		if strings.HasSuffix(name, "/") {
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDeepBase runs RUN steps on bases of 499 to 600 layers: around the
// kernel's 500 lowers (one taken by the stub) and past it, where the
// snapshot package merges the chain's bottom. The step must see the
// bottom and top layers, and the overwrites, whiteouts and opaque
// directory buried in the merged part.
func TestDeepBase(t *testing.T) {
	e := newEnv(t)
	// The fixture's files have no newline: cat runs them together.
	script := "{ cat /bottom /top /over; test ! -e /gone && test ! -e /gone2 && echo gone; ls /opq; ls /layers | wc -l; } > /seen; cat /seen"
	for _, n := range []int{499, 500, 501, 600} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			tag := fmt.Sprintf("deep:%d", n)
			makeDeepBase(t, e.store, n, tag)
			// The second RUN mounts a chain one deeper than the first.
			df := "FROM " + tag + "\nRUN " + script + "\nRUN echo more > /more && cat /bottom /top /more\n"
			// No --max-layers: this is about mounting deep chains.
			out, res, err := e.runOutputOpts(t, df, &buildOpts{maxLayers: -1})
			if err != nil {
				t.Fatalf("RUN on a %d-layer base: %v\n%s", n, err, out)
			}
			want := fmt.Sprintf("bottomtop10gone\nb\n%d\nbottomtopmore", n-1)
			if out != want {
				t.Errorf("RUN on a %d-layer base printed\n%s\nwant\n%s", n, out, want)
			}
			if got := len(res.Config.RootFS.DiffIDs); got != n+2 {
				t.Errorf("image has %d layers, want %d", got, n+2)
			}
			// Every case's second RUN mounts at least 500 layers and so needs
			// a merged bottom. Layers 0-249 are the same in every case: one
			// merged bottom serves them all.
			flats, _ := filepath.Glob(filepath.Join(e.root, "snapshots", "flat-*"))
			if len(flats) != 1 {
				t.Errorf("%d merged bottoms in the store, want 1: %q", len(flats), flats)
			}
		})
	}
}
