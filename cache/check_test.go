package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// checkFixture is a store holding two tagged images: keep:1, which no
// case damages and which must survive every repair, and bad:1, which a
// case may damage.
type checkFixture struct {
	s         *Store
	keep, bad ImageRecord
	badLayer  v1.Hash
}

func newCheckFixture(t *testing.T) *checkFixture {
	s := openTest(t)
	f := &checkFixture{s: s}
	f.keep = putTestImage(t, s, map[string][]byte{"keep": []byte("kept")}, "keep")
	f.bad = putTestImage(t, s, map[string][]byte{"bad": []byte("to be damaged")}, "bad")
	for name, rec := range map[string]ImageRecord{"keep:1": f.keep, "bad:1": f.bad} {
		if err := s.Tag(name, rec.Manifest); err != nil {
			t.Fatal(err)
		}
	}
	m, _, err := s.manifestInfo(f.bad.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	f.badLayer = m.Layers[0].Digest
	return f
}

func (f *checkFixture) blob(h v1.Hash) string {
	p, _ := f.s.blobPath(h)
	return p
}

// want is one expected finding: the subject exactly, the problem as a
// regular expression.
type want struct{ subject, problem string }

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, f *checkFixture) []want
	}{
		{"clean", func(t *testing.T, f *checkFixture) []want { return nil }},
		{"corrupt blob", func(t *testing.T, f *checkFixture) []want {
			writeFile(t, f.blob(f.badLayer), "not the layer")
			return []want{
				{"blob " + f.badLayer.String(), "^content hashes to " + sha256Of([]byte("not the layer")).String() + "$"},
				{"tag bad:1", "^layer " + f.badLayer.String() + " is damaged$"},
				{"image record " + f.bad.ID.String(), "^layer " + f.badLayer.String() + " is damaged$"},
			}
		}},
		{"layer blob of a tagged image missing", func(t *testing.T, f *checkFixture) []want {
			remove(t, f.blob(f.badLayer))
			return []want{
				{"tag bad:1", "^layer " + f.badLayer.String() + " is missing$"},
				{"image record " + f.bad.ID.String(), "is missing$"},
			}
		}},
		{"config blob missing", func(t *testing.T, f *checkFixture) []want {
			remove(t, f.blob(f.bad.ID))
			return []want{
				{"tag bad:1", "^config " + f.bad.ID.String() + " is missing$"},
				{"image record " + f.bad.ID.String(), "^config .* is missing$"},
			}
		}},
		{"step entry to a missing blob", func(t *testing.T, f *checkFixture) []want {
			l, err := f.s.PutLayer(context.Background(), bytes.NewReader(testTar(t, map[string][]byte{"x": []byte("x")})), Compression{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			k := NewKeyBuilder().Sum()
			if err := f.s.RecordStep(k, Entry{Layer: &l}); err != nil {
				t.Fatal(err)
			}
			remove(t, f.blob(l.Descriptor.Digest))
			return []want{{"step entry " + k.String(), "^layer " + l.Descriptor.Digest.String() + " is missing$"}}
		}},
		{"damaged step entry", func(t *testing.T, f *checkFixture) []want {
			k := NewKeyBuilder().Sum()
			if err := f.s.RecordStep(k, Entry{History: v1.History{CreatedBy: "x"}}); err != nil {
				t.Fatal(err)
			}
			writeFile(t, f.s.stepPath(k), `{"v":1,`)
			return []want{{"step entry " + k.String(), "^unreadable: "}}
		}},
		{"image record to nothing", func(t *testing.T, f *checkFixture) []want {
			id := sha256Of([]byte("no such image"))
			missing := sha256Of([]byte("no such manifest"))
			data, _ := json.Marshal(v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: missing, Size: 10})
			writeFile(t, f.s.imageRecordPath(id), string(data))
			return []want{{"image record " + id.String(), "^manifest " + missing.String() + " is missing$"}}
		}},
		{"image record of another image", func(t *testing.T, f *checkFixture) []want {
			id := sha256Of([]byte("another image"))
			data, err := os.ReadFile(f.s.imageRecordPath(f.keep.ID))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, f.s.imageRecordPath(id), string(data))
			return []want{{"image record " + id.String(), "is of image " + f.keep.ID.String() + "$"}}
		}},
		{"untagged image missing its manifest", func(t *testing.T, f *checkFixture) []want {
			rec := putTestImage(t, f.s, map[string][]byte{"u": []byte("untagged")}, "untagged")
			remove(t, f.blob(rec.Manifest.Digest))
			return []want{{"image record " + rec.ID.String(), "^manifest .* is missing$"}}
		}},
		{"layer size lies", func(t *testing.T, f *checkFixture) []want {
			m, _, err := f.s.manifestInfo(f.bad.Manifest.Digest)
			if err != nil {
				t.Fatal(err)
			}
			m.Layers[0].Size++
			raw, _ := json.Marshal(m)
			h, size, err := f.s.PutBlob(bytes.NewReader(raw), sha256Of(raw))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.s.Tag("liar:1", v1.Descriptor{Digest: h, Size: size}); err != nil {
				t.Fatal(err)
			}
			return []want{
				{"tag liar:1", "^layer " + f.badLayer.String() + " has \\d+ bytes, its descriptor says \\d+$"},
				// Tag recorded the ID too, over bad:1's record.
				{"image record " + f.bad.ID.String(), "its descriptor says"},
			}
		}},
		{"dead session", func(t *testing.T, f *checkFixture) []want {
			dead := filepath.Join(f.s.Root(), tmpDir, "s-1-0-dead")
			writeFile(t, filepath.Join(dead, ".session.lock"), "") // a lock nobody holds
			writeFile(t, filepath.Join(dead, "layer-1"), "half a layer")
			return []want{{"tmp/s-1-0-dead", "^session of a process that is gone$"}}
		}},
		{"stale index.json temporary file", func(t *testing.T, f *checkFixture) []want {
			p := filepath.Join(f.s.Root(), ".index.json.tmp-1")
			writeFile(t, p, "{")
			past := time.Now().Add(-time.Hour)
			os.Chtimes(p, past, past)
			return []want{{".index.json.tmp-1", "died"}}
		}},
		{"strays", func(t *testing.T, f *checkFixture) []want {
			writeFile(t, filepath.Join(f.s.Root(), blobsDir, "../sha256/x"), "x")
			writeFile(t, filepath.Join(f.s.Root(), stepsDir, "zz", "y"), "y")
			writeFile(t, filepath.Join(f.s.Root(), imagesDir, "z"), "z")
			return []want{
				{"blobs/sha256/x", "^not named by a sha256 digest$"},
				{"images/z", "^not an image record$"},
				{"steps/zz", "^not a step-cache directory$"},
			}
		}},
		{"damaged context hashes", func(t *testing.T, f *checkFixture) []want {
			name := strings.Repeat("c", 64)
			writeFile(t, filepath.Join(f.s.Root(), contextsDir, name), ctxMagic+"garbage")
			return []want{{"context hashes " + name, "^damaged$"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCheckFixture(t)
			wants := tt.damage(t, f)
			before := listTree(t, f.s.Root())
			got, err := f.s.Check(context.Background(), false)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			matchFindings(t, "Check(false)", got, wants, false)
			if after := listTree(t, f.s.Root()); !slices.Equal(before, after) {
				t.Errorf("Check(false) changed the store:\nbefore %q\nafter  %q", before, after)
			}
			got, err = f.s.Check(context.Background(), true)
			if err != nil {
				t.Fatalf("Check(repair): %v", err)
			}
			matchFindings(t, "Check(true)", got, wants, true)
			got, err = f.s.Check(context.Background(), false)
			if err != nil || len(got) != 0 {
				t.Errorf("Check after repair = %v, %v; want no findings", got, err)
			}
			assertComplete(t, f.s, "keep:1", f.keep)
		})
	}
}

// matchFindings checks that got holds exactly the wanted findings, in any
// order, each Repaired as repaired says.
func matchFindings(t *testing.T, call string, got []Finding, wants []want, repaired bool) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range wants {
		found := false
		for i, g := range got {
			if !used[i] && g.Subject == w.subject && regexp.MustCompile(w.problem).MatchString(g.Problem) {
				used[i], found = true, true
				if g.Repaired != repaired {
					t.Errorf("%s: %s: %s: Repaired = %v, want %v", call, g.Subject, g.Problem, g.Repaired, repaired)
				}
				break
			}
		}
		if !found {
			t.Errorf("%s: no finding %s: /%s/", call, w.subject, w.problem)
		}
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("%s: unexpected finding %s: %s", call, g.Subject, g.Problem)
		}
	}
}

// assertComplete checks that name still names rec and that the image is
// whole: every blob there and matching its digest.
func assertComplete(t *testing.T, s *Store, name string, rec ImageRecord) {
	t.Helper()
	got, err := s.Lookup(name)
	if err != nil || got.ID != rec.ID {
		t.Fatalf("Lookup(%s) = %v, %v; want image %s", name, got.ID, err, rec.ID)
	}
	img, err := s.Image(got.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("image %s after repair: %v", name, err)
	}
	if _, err := s.byID(rec.ID); err != nil {
		t.Errorf("record of %s after repair: %v", name, err)
	}
}

func TestCheckUnreadableIndex(t *testing.T) {
	f := newCheckFixture(t)
	writeFile(t, f.s.path(indexFile), "{not json")
	for _, repair := range []bool{false, true} {
		got, err := f.s.Check(context.Background(), repair)
		if err != nil {
			t.Fatal(err)
		}
		matchFindings(t, "Check", got, []want{{"index.json", "no tag can be read"}}, false)
		if data, _ := os.ReadFile(f.s.path(indexFile)); string(data) != "{not json" {
			t.Errorf("Check(%v) rewrote index.json: %q", repair, data)
		}
	}
}

// TestCheckRepairKeepsMovedTag: a tag moved to a complete image between
// Check's judgement and its repair stays.
func TestCheckRepairKeepsMovedTag(t *testing.T) {
	f := newCheckFixture(t)
	idx, err := readIndex(f.s.path(indexFile))
	if err != nil {
		t.Fatal(err)
	}
	var judged []v1.Descriptor // bad:1 as Check read it
	for _, d := range idx.Manifests {
		if d.Annotations[annRefName] == "bad:1" {
			judged = append(judged, d)
		}
	}
	if err := f.s.Tag("bad:1", f.keep.Manifest); err != nil {
		t.Fatal(err)
	}
	if err := f.s.removeIndexEntries(judged); err != nil {
		t.Fatal(err)
	}
	assertComplete(t, f.s, "bad:1", f.keep)
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

// listTree lists every path under root with its size, for "nothing
// changed" checks.
func listTree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fmt.Sprintf("%s %v %d", rel, fi.Mode(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
