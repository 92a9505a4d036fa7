package testutil_test

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/builderdev/builder/internal/testutil"
)

func TestBusyboxTar(t *testing.T) {
	path := testutil.BusyboxTar(t)
	if again := testutil.BusyboxTar(t); again != path {
		t.Errorf("BusyboxTar() = %s, then %s; want one tar per test binary", path, again)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	got := map[string]*tar.Header{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: owner %d:%d (%q:%q), want 0:0 without names", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		if !hdr.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %s, want the epoch", hdr.Name, hdr.ModTime)
		}
		names = append(names, hdr.Name)
		got[hdr.Name] = hdr
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries are not sorted: %v", names)
	}
	for _, c := range []struct {
		name     string
		typeflag byte
		mode     int64
		link     string
	}{
		{"bin/busybox", tar.TypeReg, 0o755, ""},
		{"bin/sh", tar.TypeSymlink, 0o777, "busybox"},
		{"etc/passwd", tar.TypeReg, 0o644, ""},
		{"etc/group", tar.TypeReg, 0o644, ""},
		{"tmp/", tar.TypeDir, 0o1777, ""},
	} {
		h := got[c.name]
		switch {
		case h == nil:
			t.Errorf("%s missing from the tar", c.name)
		case h.Typeflag != c.typeflag || h.Mode&0o7777 != c.mode || h.Linkname != c.link:
			t.Errorf("%s: type %c mode %o link %q, want %c %o %q", c.name, h.Typeflag, h.Mode&0o7777, h.Linkname, c.typeflag, c.mode, c.link)
		}
	}
}

func TestBusyboxImage(t *testing.T) {
	img := testutil.BusyboxImage(t)
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if want := []string{"PATH=" + testutil.BusyboxPath}; !slices.Equal(cfg.Config.Env, want) {
		t.Errorf("Env = %q, want %q", cfg.Config.Env, want)
	}
	if !slices.Equal(cfg.Config.Cmd, []string{"sh"}) {
		t.Errorf("Cmd = %q, want [sh]", cfg.Config.Cmd)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("Layers() = %d layers, %v; want 1", len(layers), err)
	}
	// The layer's diff ID is the digest of BusyboxTar itself.
	raw, err := os.ReadFile(testutil.BusyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if diffID, _ := layers[0].DiffID(); diffID.Hex != hex.EncodeToString(sum[:]) {
		t.Errorf("layer diff ID %s, want the tar's sha256:%x", diffID, sum)
	}
}

// TestRegistry pushes the busybox image to a real distribution registry
// and reads it back with skopeo, then checks that the registry is gone
// once its test has ended.
func TestRegistry(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo")
	img := testutil.BusyboxImage(t)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var host string
	t.Run("push", func(t *testing.T) {
		host = testutil.StartRegistry(t)
		ref := host + "/test/busybox:latest"
		testutil.PushImage(t, ref, img)
		out, err := exec.Command(skopeo, "inspect", "--tls-verify=false", "docker://"+ref).Output()
		if err != nil {
			t.Fatalf("skopeo inspect: %v", stderr(err))
		}
		var got struct {
			Digest       string
			Os           string
			Architecture string
			Layers       []string
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if got.Digest != want.String() || got.Os != "linux" || got.Architecture != runtime.GOARCH || len(got.Layers) != 1 {
			t.Errorf("skopeo inspect = %+v, want digest %s, linux/%s, one layer", got, want, runtime.GOARCH)
		}
	})
	if host == "" {
		return
	}
	resp, err := http.Get("http://" + host + "/v2/")
	if err == nil {
		resp.Body.Close()
		t.Errorf("registry on %s still answers after its test ended", host)
	}
}

func TestStartRegistryTwice(t *testing.T) {
	a, b := testutil.StartRegistry(t), testutil.StartRegistry(t)
	if a == b {
		t.Fatalf("two registries on one address %s", a)
	}
	// Each has its own storage: an image pushed to one is unknown to the
	// other.
	testutil.PushImage(t, a+"/only/here:1", testutil.BusyboxImage(t))
	resp, err := http.Get("http://" + b + "/v2/only/here/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("second registry answered %s for an image pushed to the first, want 404", resp.Status)
	}
}

func TestParseReference(t *testing.T) {
	for _, c := range []struct {
		ref, scheme string
	}{
		{"127.0.0.1:5000/x:1", "http"},
		{"127.1.2.3:5000/x", "http"},
		{"localhost:5000/x", "http"},
		{"[::1]:5000/x", "http"},
		{"registry.example.com/x", "https"},
		{"busybox", "https"},
	} {
		r, err := testutil.ParseReference(c.ref)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", c.ref, err)
			continue
		}
		if got := r.Context().Scheme(); got != c.scheme {
			t.Errorf("ParseReference(%q) scheme = %s, want %s", c.ref, got, c.scheme)
		}
	}
}

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return err.Error() + ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return err.Error()
}
