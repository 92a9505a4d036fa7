package cache

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// putTestImage stores a one-layer image holding files and returns it.
func putTestImage(t testing.TB, s *Store, files map[string][]byte, cmd string) ImageRecord {
	t.Helper()
	l, err := s.PutLayer(context.Background(), bytes.NewReader(testTar(t, files)), Compression{}, nil)
	if err != nil {
		t.Fatalf("PutLayer: %v", err)
	}
	cfg := &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: time.Unix(1700000000, 0).UTC()},
		Config:       v1.Config{Cmd: []string{cmd}, Env: []string{"PATH=/bin"}},
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.DiffID}},
		History:      []v1.History{{CreatedBy: cmd}},
	}
	rec, err := s.PutImage(cfg, []v1.Descriptor{l.Descriptor}, FormatOCI, Compression{})
	if err != nil {
		t.Fatalf("PutImage: %v", err)
	}
	return rec
}

func TestNormalizeName(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
		errText  string // a part of the error, when it matters
	}{
		{in: "app", want: "app:latest"},
		{in: "app:1", want: "app:1"},
		{in: "library/app", want: "app:latest"},
		{in: "docker.io/library/app", want: "app:latest"},
		{in: "docker.io/library/app:1", want: "app:1"},
		{in: "index.docker.io/library/app:1", want: "app:1"},
		{in: "docker.io/user/app", want: "user/app:latest"},
		{in: "user/app:v2", want: "user/app:v2"},
		{in: "docker.io/library/a/b", want: "library/a/b:latest"},
		{in: "localhost:5000/x", want: "localhost:5000/x:latest"},
		{in: "localhost/x", want: "localhost/x:latest"},
		{in: "127.0.0.1:5000/x:1", want: "127.0.0.1:5000/x:1"},
		{in: "ghcr.io/org/app:1.2", want: "ghcr.io/org/app:1.2"},
		{in: "app@sha256:" + strings.Repeat("a", 64), want: "app@sha256:" + strings.Repeat("a", 64)},
		{in: "App", wantErr: true, errText: "repository name (App) must be lowercase"},
		{in: "MyApp:1", wantErr: true, errText: "repository name (MyApp) must be lowercase"},
		{in: "docker.io/User/app", wantErr: true, errText: "repository name (User/app) must be lowercase"},
		{in: "Registry.Example.com:5000/app", want: "Registry.Example.com:5000/app:latest"},
		{in: "", wantErr: true},
		{in: "app:", wantErr: true},
		{in: " app", wantErr: true},
		{in: "app:bad tag", wantErr: true},
		{in: "app@sha256:abc", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeName(tc.in)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("NormalizeName(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.errText)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestPutImageAndImage(t *testing.T) {
	s := openTest(t)
	rec := putTestImage(t, s, map[string][]byte{"etc/hello": []byte("hi")}, "one")
	if rec.Name != "" || rec.Manifest.MediaType != types.OCIManifestSchema1 {
		t.Errorf("PutImage = %+v", rec)
	}
	img, err := s.Image(rec.Manifest.Digest)
	if err != nil {
		t.Fatalf("Image: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("validate.Image: %v", err)
	}
	id, err := img.ConfigName()
	if err != nil || id != rec.ID {
		t.Errorf("ConfigName = %s, %v; want the record's ID %s", id, err, rec.ID)
	}
	d, _ := img.Digest()
	if d != rec.Manifest.Digest {
		t.Errorf("Digest = %s, want %s", d, rec.Manifest.Digest)
	}
	m, _ := img.Manifest()
	if m.Config.MediaType != types.OCIConfigJSON || m.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest media types: config %s, manifest %s", m.Config.MediaType, m.MediaType)
	}
	// The image is found by ID although it has no tag.
	got, err := s.Lookup(rec.ID.String())
	if err != nil || got.Manifest.Digest != rec.Manifest.Digest {
		t.Errorf("Lookup(ID) of an untagged image = %+v, %v", got, err)
	}
}

func TestPutImageChecks(t *testing.T) {
	s := openTest(t)
	missing := v1.Descriptor{MediaType: types.OCILayer, Digest: sha256Of([]byte("nope")), Size: 4}
	cfg := &v1.ConfigFile{RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{sha256Of(nil)}}}
	if _, err := s.PutImage(cfg, []v1.Descriptor{missing}, FormatOCI, Compression{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutImage with a missing layer: %v, want ErrNotFound", err)
	}
	if _, err := s.PutImage(cfg, nil, FormatOCI, Compression{}); err == nil {
		t.Error("PutImage with 1 diff ID and no layers succeeded")
	}
}

// TestImageDockerManifest checks that a pulled Docker schema 2 image is
// read as stored, media types included.
func TestImageDockerManifest(t *testing.T) {
	s := openTest(t)
	data := testTar(t, map[string][]byte{"f": []byte("x")})
	l, err := s.PutLayer(context.Background(), bytes.NewReader(data), Compression{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + l.DiffID.String() + `"]},"config":{}}`)
	cd, cn, err := s.PutBlob(bytes.NewReader(cfg), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	man := `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":` + itoa(cn) + `,"digest":"` + cd.String() + `"},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":` + itoa(l.Descriptor.Size) + `,"digest":"` + l.Descriptor.Digest.String() + `"}]}`
	md, mn, err := s.PutBlob(strings.NewReader(man), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("busybox", v1.Descriptor{Digest: md, Size: mn}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Lookup("docker.io/library/busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Manifest.MediaType != types.DockerManifestSchema2 || rec.ID != cd {
		t.Errorf("Lookup = %+v, want a Docker manifest with ID %s", rec, cd)
	}
	img, err := s.Image(md)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("validate.Image: %v", err)
	}
	if mt, _ := img.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("MediaType = %s", mt)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestImageFormats: the stored manifest is OCI in both formats (so the
// store stays a layout skopeo reads); a Docker-format image leaves as a
// Docker schema 2 manifest with no OCI type left in it, the same config
// and blobs; a zstd layer cannot be Docker.
func TestImageFormats(t *testing.T) {
	s := openTest(t)
	l, err := s.PutLayer(context.Background(), bytes.NewReader(testTar(t, map[string][]byte{"f": []byte("x")})), Compression{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.DiffID}},
		Config: v1.Config{Healthcheck: &v1.HealthConfig{Test: []string{"CMD", "true"}}}}
	// A base layer pulled with a Docker type is listed under the OCI one.
	pulled := l.Descriptor
	pulled.MediaType = types.DockerLayer
	for _, tc := range []struct {
		format           Format
		manifest, config types.MediaType
		layer            types.MediaType
		annotated        bool
	}{
		{FormatOCI, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer, false},
		{FormatDocker, types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer, true},
	} {
		rec, err := s.PutImage(cfg, []v1.Descriptor{pulled}, tc.format, Compression{})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.Image(rec.Manifest.Digest)
		if err != nil {
			t.Fatal(err)
		}
		sm, _ := stored.Manifest()
		if sm.MediaType != types.OCIManifestSchema1 || sm.Layers[0].MediaType != types.OCILayer {
			t.Errorf("%s: stored manifest %s with layer %s, want OCI", tc.format, sm.MediaType, sm.Layers[0].MediaType)
		}
		if got := sm.Annotations[annFormat] != ""; got != tc.annotated {
			t.Errorf("%s: format annotation present = %v", tc.format, got)
		}
		out, err := s.ImageAs(context.Background(), rec.Manifest.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(out); err != nil {
			t.Errorf("%s: %v", tc.format, err)
		}
		m, _ := out.Manifest()
		if m.MediaType != tc.manifest || m.Config.MediaType != tc.config || m.Layers[0].MediaType != tc.layer || len(m.Annotations) != 0 && tc.annotated {
			t.Errorf("%s: leaves as %s / %s / %s %v", tc.format, m.MediaType, m.Config.MediaType, m.Layers[0].MediaType, m.Annotations)
		}
		if id, _ := out.ConfigName(); id != rec.ID {
			t.Errorf("%s: image ID %s, want %s", tc.format, id, rec.ID)
		}
	}
	zl := l.Descriptor
	zl.MediaType = types.OCILayerZStd
	if _, err := s.PutImage(cfg, []v1.Descriptor{zl}, FormatDocker, Compression{}); err == nil || !strings.Contains(err.Error(), "--format oci") {
		t.Errorf("a zstd layer in Docker format: %v, want an error that says --format oci", err)
	}
}
