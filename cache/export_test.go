package cache

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/builderdev/builder/internal/testutil"
)

// exportImage makes a stored image of two layers, the first repeated, as
// a squash-free build of `COPY a`, `RUN true`, `COPY a` can produce.
func exportImage(t *testing.T, s *Store) v1.Image {
	t.Helper()
	var descs []v1.Descriptor
	var diffs []v1.Hash
	for _, files := range []map[string][]byte{
		{"etc/motd": []byte("hello\n"), "bin/tool": bytes.Repeat([]byte{0xfe}, 100000)},
		{"var/x": []byte("second")},
		{"etc/motd": []byte("hello\n"), "bin/tool": bytes.Repeat([]byte{0xfe}, 100000)},
	} {
		l, err := s.PutLayer(context.Background(), bytes.NewReader(testTar(t, files)), Compression{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, l.Descriptor)
		diffs = append(diffs, l.DiffID)
	}
	cfg := &v1.ConfigFile{
		Architecture: runtime.GOARCH, OS: "linux",
		Created: v1.Time{Time: time.Unix(1700000000, 0).UTC()},
		Config:  v1.Config{Cmd: []string{"/bin/tool"}},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: diffs},
		History: []v1.History{{CreatedBy: "COPY a"}, {CreatedBy: "RUN true"}, {CreatedBy: "COPY a"}},
	}
	rec, err := s.PutImage(cfg, descs, FormatOCI, Compression{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Image(rec.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func exportFile(t *testing.T, img v1.Image, name string, f Format) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Export(out, img, name, f); err != nil {
		t.Fatalf("Export(%q, %s): %v", name, f, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func skopeoInspect(t *testing.T, ref string) map[string]any {
	t.Helper()
	skopeo := testutil.RequireTool(t, "skopeo")
	out, err := exec.Command(skopeo, "inspect", ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	return v
}

func TestExportSkopeo(t *testing.T) {
	s := openTest(t)
	img := exportImage(t, s)
	digest, _ := img.Digest()
	tests := []struct {
		format Format
		name   string
		ref    func(p string) string
	}{
		{FormatDocker, "app:1", func(p string) string { return "docker-archive:" + p }},
		{FormatDocker, "", func(p string) string { return "docker-archive:" + p }},
		{FormatOCI, "app:1", func(p string) string { return "oci-archive:" + p }},
		{FormatOCI, "app:1", func(p string) string { return "oci-archive:" + p + ":app:1" }},
		{FormatOCI, "", func(p string) string { return "oci-archive:" + p }},
		// The docker format is an OCI layout too.
		{FormatDocker, "localhost:5000/x", func(p string) string { return "oci-archive:" + p + ":localhost:5000/x:latest" }},
	}
	for _, tc := range tests {
		t.Run(string(tc.format)+"-"+tc.name, func(t *testing.T) {
			p := exportFile(t, img, tc.name, tc.format)
			v := skopeoInspect(t, tc.ref(p))
			if layers, _ := v["Layers"].([]any); len(layers) != 3 {
				t.Errorf("skopeo sees %d layers, want 3", len(layers))
			}
			if tc.format == FormatOCI && v["Digest"] != digest.String() {
				t.Errorf("skopeo Digest = %v, want %s", v["Digest"], digest)
			}
		})
	}
}

// TestExportDockerTarball reads the docker archive with ggcr's own reader
// and checks the tag and every layer's diff ID.
func TestExportDockerTarball(t *testing.T) {
	s := openTest(t)
	img := exportImage(t, s)
	p := exportFile(t, img, "docker.io/library/app:2", FormatDocker)
	tag, err := nameTag("app:2")
	if err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(p, &tag)
	if err != nil {
		t.Fatalf("tarball.ImageFromPath: %v", err)
	}
	want, _ := img.ConfigName()
	if got, err := back.ConfigName(); err != nil || got != want {
		t.Errorf("ConfigName = %s, %v; want %s", got, err, want)
	}
	ls, err := back.Layers()
	if err != nil || len(ls) != 3 {
		t.Fatalf("Layers = %d, %v", len(ls), err)
	}
	for _, l := range ls {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := l.Uncompressed()
		got, _, _ := v1.SHA256(rc)
		rc.Close()
		if got != d {
			t.Errorf("layer content hashes to %s, diff ID %s", got, d)
		}
	}
}

func TestExportStreams(t *testing.T) {
	s := openTest(t)
	img := exportImage(t, s)
	var buf bytes.Buffer
	if err := Export(&buf, img, "", FormatOCI); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	// config, 2 distinct layers, manifest, plus the layout files and dirs.
	if len(names) != 8 || names[0] != "oci-layout" || names[len(names)-1] != "index.json" {
		t.Errorf("archive entries = %v", names)
	}
	if err := Export(io.Discard, img, "", "zip"); err == nil {
		t.Error("Export with format zip succeeded")
	}
	if err := Export(io.Discard, img, "Bad:Name", FormatOCI); err == nil {
		t.Error("Export with an invalid name succeeded")
	}
}

func TestPodmanLoad(t *testing.T) {
	testutil.RequireRoot(t)
	podman := testutil.RequireTool(t, "podman")
	s := openTest(t)
	img := exportImage(t, s)
	id, _ := img.ConfigName()
	for _, name := range []string{"app:1", ""} {
		t.Run("name="+name, func(t *testing.T) {
			p := exportFile(t, img, name, FormatDocker)
			root, runroot := t.TempDir(), t.TempDir()
			args := []string{"--root", root, "--runroot", runroot, "--storage-driver", "vfs"}
			out, err := exec.Command(podman, append(args, "load", "-i", p)...).CombinedOutput()
			if err != nil {
				t.Fatalf("podman load: %v\n%s", err, out)
			}
			out, err = exec.Command(podman, append(args, "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")...).CombinedOutput()
			if err != nil {
				t.Fatalf("podman images: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), id.Hex) {
				t.Errorf("podman images = %q, want ID %s", out, id.Hex)
			}
			// A familiar name means Docker Hub, to podman as to docker.
			if name != "" && !strings.Contains(string(out), "docker.io/library/app:1") {
				t.Errorf("podman images = %q, want docker.io/library/app:1", out)
			}
		})
	}
}

func TestExportLayout(t *testing.T) {
	s := openTest(t)
	img := exportImage(t, s)
	other := putTestImage(t, s, map[string][]byte{"o": []byte("other")}, "other")
	otherImg, err := s.Image(other.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	for _, step := range []struct {
		img  v1.Image
		name string
	}{{otherImg, "app:1"}, {img, "app:1"}, {otherImg, "other:2"}, {img, ""}} {
		if err := ExportLayout(dir, step.img, step.name); err != nil {
			t.Fatalf("ExportLayout(%s): %v", step.name, err)
		}
	}
	idx, err := readIndex(filepath.Join(dir, indexFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 3 {
		t.Errorf("index has %d manifests, want 3 (app:1 replaced, other:2, one unnamed)", len(idx.Manifests))
	}
	digest, _ := img.Digest()
	v := skopeoInspect(t, "oci:"+dir+":app:1")
	if v["Digest"] != digest.String() {
		t.Errorf("oci:DIR:app:1 is %v, want %s", v["Digest"], digest)
	}

	umoci := testutil.RequireTool(t, "umoci")
	bundle := filepath.Join(t.TempDir(), "bundle")
	args := []string{"unpack", "--image", dir + ":app:1", bundle}
	if os.Geteuid() != 0 {
		args = append(args[:1], append([]string{"--rootless"}, args[1:]...)...)
	}
	out, err := exec.Command(umoci, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(bundle, "rootfs/etc/motd"))
	if err != nil || string(got) != "hello\n" {
		t.Errorf("unpacked /etc/motd = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(bundle, "rootfs/var/x")); err != nil {
		t.Errorf("second layer not unpacked: %v", err)
	}
}

func nameTag(s string) (name.Tag, error) { return name.NewTag(s) }
