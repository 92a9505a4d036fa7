package cache

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/internal/testutil"
)

func TestTagAndImages(t *testing.T) {
	s := openTest(t)
	a := putTestImage(t, s, map[string][]byte{"a": []byte("a")}, "a")
	b := putTestImage(t, s, map[string][]byte{"b": []byte("b")}, "b")
	for _, tc := range []struct {
		name string
		rec  ImageRecord
	}{{"app", a}, {"docker.io/library/other:1", a}, {"localhost:5000/x", b}, {"app", b}} {
		if err := s.Tag(tc.name, tc.rec.Manifest); err != nil {
			t.Fatalf("Tag(%s): %v", tc.name, err)
		}
	}
	imgs, err := s.Images()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range imgs {
		got = append(got, r.Name+"="+r.ID.Hex[:8])
	}
	want := []string{"app:latest=" + b.ID.Hex[:8], "localhost:5000/x:latest=" + b.ID.Hex[:8], "other:1=" + a.ID.Hex[:8]}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Images = %v, want %v (re-tagging app replaces its entry)", got, want)
	}
	idx, err := readIndex(filepath.Join(s.Root(), indexFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 3 {
		t.Errorf("index.json has %d entries, want 3", len(idx.Manifests))
	}
	for _, d := range idx.Manifests {
		if d.Annotations[annRefName] == "app:latest" && d.Annotations[annImageName] != "docker.io/library/app:latest" {
			t.Errorf("containerd name = %q", d.Annotations[annImageName])
		}
	}
	if err := s.Untag("docker.io/library/app"); err != nil {
		t.Errorf("Untag: %v", err)
	}
	if err := s.Untag("app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Untag: %v, want ErrNotFound", err)
	}
	if _, err := s.Lookup("app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after Untag: %v, want ErrNotFound", err)
	}
	if err := s.Tag("x@sha256:"+a.Manifest.Digest.Hex, a.Manifest); err == nil {
		t.Error("Tag with a digest reference succeeded")
	}
	if err := s.Tag("y", v1.Descriptor{Digest: a.ID}); err == nil {
		t.Error("Tag of a config blob succeeded")
	}
}

func TestLookup(t *testing.T) {
	s := openTest(t)
	a := putTestImage(t, s, map[string][]byte{"a": []byte("a")}, "a")
	b := putTestImage(t, s, map[string][]byte{"b": []byte("b")}, "b")
	s.Tag("app:1", a.Manifest)
	s.Tag("localhost:5000/x", b.Manifest)
	// Find two more image IDs sharing a 4-digit prefix, for ambiguity.
	var twins [2]ImageRecord
	seen := map[string]ImageRecord{}
	for i := 0; ; i++ {
		r := putTestImage(t, s, map[string][]byte{"n": []byte{byte(i), byte(i >> 8)}}, "n")
		p := r.ID.Hex[:4]
		if o, ok := seen[p]; ok && p != a.ID.Hex[:4] && p != b.ID.Hex[:4] {
			twins = [2]ImageRecord{o, r}
			break
		}
		seen[p] = r
	}
	// A tag that looks like an ID prefix.
	s.Tag(b.ID.Hex[:6], twins[0].Manifest)
	alias := b.ID.Hex[:6] + ":latest"

	aImg, _ := s.Image(a.Manifest.Digest)
	aLayers, _ := aImg.Layers()
	aLayer, _ := aLayers[0].Digest()
	tests := []struct {
		ref      string
		want     ImageRecord
		wantName string
		wantErr  error // nil: success; errAny: some error
	}{
		{ref: "app:1", want: a, wantName: "app:1"},
		{ref: "docker.io/library/app:1", want: a, wantName: "app:1"},
		{ref: "localhost:5000/x:latest", want: b, wantName: "localhost:5000/x:latest"},
		{ref: "localhost:5000/x", want: b, wantName: "localhost:5000/x:latest"},
		{ref: a.ID.String(), want: a, wantName: "app:1"},
		{ref: a.ID.Hex, want: a, wantName: "app:1"},
		{ref: a.ID.Hex[:12], want: a, wantName: "app:1"},
		{ref: "sha256:" + a.ID.Hex[:5], want: a, wantName: "app:1"},
		{ref: a.Manifest.Digest.String(), want: a, wantName: "app:1"},
		{ref: "app@" + a.Manifest.Digest.String(), want: a, wantName: "app:1"},
		{ref: twins[0].ID.Hex[:12], want: twins[0], wantName: alias},
		{ref: twins[1].ID.String(), want: twins[1]},
		{ref: twins[1].Manifest.Digest.String(), want: twins[1]},
		// The name wins over the ID prefix it also is.
		{ref: b.ID.Hex[:6], want: twins[0], wantName: alias},
		{ref: "sha256:" + b.ID.Hex[:6], want: b, wantName: "localhost:5000/x:latest"},
		{ref: twins[0].ID.Hex[:4], wantErr: errAny},
		{ref: "app", wantErr: ErrNotFound},
		{ref: "nothere:1", wantErr: ErrNotFound},
		{ref: "sha256:" + strings.Repeat("0", 64), wantErr: ErrNotFound},
		{ref: aLayer.String(), wantErr: ErrNotFound},
		{ref: "Bad/Name", wantErr: errAny},
		{ref: "app@sha256:123", wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := s.Lookup(tc.ref)
			switch {
			case tc.wantErr == errAny:
				if err == nil {
					t.Errorf("Lookup(%q) = %+v, want an error", tc.ref, got)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Lookup(%q) = %+v, %v; want %v", tc.ref, got, err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("Lookup(%q): %v", tc.ref, err)
			case got.ID != tc.want.ID || got.Manifest.Digest != tc.want.Manifest.Digest || got.Name != tc.wantName:
				t.Errorf("Lookup(%q) = %s %s %q, want %s %s %q", tc.ref, got.ID.Hex[:8], got.Manifest.Digest.Hex[:8], got.Name,
					tc.want.ID.Hex[:8], tc.want.Manifest.Digest.Hex[:8], tc.wantName)
			}
		})
	}
}

var errAny = errors.New("any error")

// TestSkopeoReadsStore checks the promise of the store layout: any OCI
// tool reads a tagged image straight from the root.
func TestSkopeoReadsStore(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo")
	s := openTest(t)
	rec := putTestImage(t, s, map[string][]byte{"etc/motd": []byte("hello")}, "run")
	if err := s.Tag("app", rec.Manifest); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("localhost:5000/team/app:2", rec.Manifest); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"app:latest", "localhost:5000/team/app:2"} {
		out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+s.Root()+":"+ref).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect oci:ROOT:%s: %v\n%s", ref, err, out)
		}
		if sha256Of(out) != rec.Manifest.Digest {
			t.Errorf("skopeo read manifest %s, want %s", sha256Of(out), rec.Manifest.Digest)
		}
		out, err = exec.Command(skopeo, "inspect", "--config", "oci:"+s.Root()+":"+ref).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"run"`) {
			t.Errorf("skopeo inspect --config: %v\n%s", err, out)
		}
	}
	// skopeo must have left the store as it was.
	if _, err := os.Stat(filepath.Join(s.Root(), indexFile)); err != nil {
		t.Fatal(err)
	}
}

// TestRetagUnchangedWritesNothing: a rebuild that gives the same image
// must not rewrite index.json (two fsyncs) or the image record.
func TestRetagUnchangedWritesNothing(t *testing.T) {
	s := openTest(t)
	rec := putTestImage(t, s, map[string][]byte{"a": []byte("a")}, "a")
	if err := s.Tag("app", rec.Manifest); err != nil {
		t.Fatal(err)
	}
	idx1, _ := os.Stat(filepath.Join(s.Root(), indexFile))
	rec1, _ := os.Stat(s.imageRecordPath(rec.ID))
	again := putTestImage(t, s, map[string][]byte{"a": []byte("a")}, "a")
	if again.Manifest.Digest != rec.Manifest.Digest {
		t.Fatalf("same inputs gave manifests %s and %s", rec.Manifest.Digest, again.Manifest.Digest)
	}
	if err := s.Tag("docker.io/library/app:latest", again.Manifest); err != nil {
		t.Fatal(err)
	}
	idx2, _ := os.Stat(filepath.Join(s.Root(), indexFile))
	rec2, _ := os.Stat(s.imageRecordPath(rec.ID))
	if !os.SameFile(idx1, idx2) {
		t.Error("re-tagging with the same image rewrote index.json")
	}
	if !os.SameFile(rec1, rec2) {
		t.Error("storing the same image again rewrote its record")
	}
}
