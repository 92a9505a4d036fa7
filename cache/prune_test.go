package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/internal/testutil"
)

// pruneFixture is a store holding:
//
//	tagged   app:latest, one layer (LT)
//	shared   entry whose layer is LT                 used 90 min ago
//	old      entry with its own layer L2 (3000 B)     used 2 h ago
//	recent   entry with its own layer L3 (5000 B)     used now
//	meta     entry without a layer                    used 90 min ago
//	broken   entry whose layer blob is gone
//	untagged an image from PutImage with layer LU, never tagged
type pruneFixture struct {
	s                         *Store
	tagged, untagged          ImageRecord
	shared, old, recent, meta Key
	broken                    Key
	l2, l3                    Layer
}

func newPruneFixture(t *testing.T) *pruneFixture {
	t.Helper()
	f := &pruneFixture{s: openTest(t)}
	s := f.s
	f.tagged = putTestImage(t, s, map[string][]byte{"app": []byte("tagged")}, "tagged")
	if err := s.Tag("app", f.tagged.Manifest); err != nil {
		t.Fatal(err)
	}
	f.untagged = putTestImage(t, s, map[string][]byte{"u": []byte("untagged")}, "untagged")
	timg, _ := s.Image(f.tagged.Manifest.Digest)
	tl, _ := timg.Layers()
	tDiff, _ := tl[0].DiffID()
	tDigest, _ := tl[0].Digest()
	tSize, _ := tl[0].Size()
	lt := Layer{Descriptor: v1.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: tDigest, Size: tSize}, DiffID: tDiff}
	f.l2 = putNoiseLayer(t, s, 2, 3000)
	f.l3 = putNoiseLayer(t, s, 3, 5000)
	lgone := putNoiseLayer(t, s, 4, 100)

	key := func(n string) Key { kb := NewKeyBuilder(); kb.AddString("n", n); return kb.Sum() }
	f.shared, f.old, f.recent, f.meta, f.broken = key("shared"), key("old"), key("recent"), key("meta"), key("broken")
	record := func(k Key, l *Layer, age time.Duration) {
		if err := s.RecordStep(k, Entry{Layer: l}); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		os.Chtimes(s.stepPath(k), when, when)
	}
	record(f.shared, &lt, 90*time.Minute)
	record(f.old, &f.l2, 2*time.Hour)
	record(f.recent, &f.l3, 0)
	record(f.meta, nil, 90*time.Minute)
	record(f.broken, &lgone, 0)
	p, _ := s.blobPath(lgone.Descriptor.Digest)
	os.Remove(p)
	return f
}

// putNoiseLayer stores an uncompressed layer of n incompressible bytes.
func putNoiseLayer(t *testing.T, s *Store, seed byte, n int) Layer {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		seed = seed*167 + 13
		data[i] = seed ^ byte(i>>3)
	}
	l, err := s.PutLayer(context.Background(), bytes.NewReader(data), Compression{Format: "none"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPrune(t *testing.T) {
	tests := []struct {
		name string
		opts PruneOptions
		kept []string // entries left, by fixture field name
	}{
		{"plain removes dangling entries", PruneOptions{}, []string{"shared", "meta"}},
		{"all", PruneOptions{All: true}, nil},
		{"until 1h", PruneOptions{Until: time.Hour}, []string{"recent"}},
		{"until 100m", PruneOptions{Until: 100 * time.Minute}, []string{"shared", "recent", "meta"}},
		{"keep storage fits L3", PruneOptions{KeepStorage: 5000}, []string{"shared", "recent", "meta"}},
		{"keep storage fits both", PruneOptions{KeepStorage: 8000}, []string{"shared", "old", "recent", "meta"}},
		{"keep storage 1 byte", PruneOptions{KeepStorage: 1}, nil},
		{"keep storage among old ones", PruneOptions{KeepStorage: 1, Until: time.Hour}, []string{"recent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newPruneFixture(t)
			var live map[v1.Hash]bool
			tc.opts.Live = func(d, _ map[v1.Hash]bool) error { live = d; return nil }
			rep, err := f.s.Prune(context.Background(), tc.opts)
			if err != nil {
				t.Fatalf("Prune: %v", err)
			}
			entries := map[string]Key{"shared": f.shared, "old": f.old, "recent": f.recent, "meta": f.meta}
			var kept []string
			for _, n := range []string{"shared", "old", "recent", "meta"} {
				if _, err := os.Stat(f.s.stepPath(entries[n])); err == nil {
					kept = append(kept, n)
				}
			}
			if fmt.Sprint(kept) != fmt.Sprint(tc.kept) {
				t.Errorf("entries kept = %v, want %v", kept, tc.kept)
			}
			if _, err := os.Stat(f.s.stepPath(f.broken)); err == nil {
				t.Error("the broken entry survived")
			}
			if rep.Entries != 5-len(tc.kept) {
				t.Errorf("report says %d entries removed, want %d", rep.Entries, 5-len(tc.kept))
			}
			// Blobs: the tagged image's stay; an entry's layer stays with it.
			if f.s.HasBlob(f.untagged.Manifest.Digest) || f.s.HasBlob(f.untagged.ID) {
				t.Error("the untagged image's blobs survived")
			}
			for _, l := range []struct {
				name  string
				layer Layer
			}{{"old", f.l2}, {"recent", f.l3}} {
				want := contains(tc.kept, l.name)
				if got := f.s.HasBlob(l.layer.Descriptor.Digest); got != want {
					t.Errorf("layer of %s present = %v, want %v", l.name, got, want)
				}
				if live[l.layer.DiffID] != want {
					t.Errorf("Live[%s layer] = %v, want %v", l.name, live[l.layer.DiffID], want)
				}
			}
			checkTaggedIntact(t, f)
			if _, err := f.s.Lookup(f.untagged.ID.String()); !errors.Is(err, ErrNotFound) {
				t.Errorf("Lookup of the pruned untagged image: %v, want ErrNotFound", err)
			}
			if rep.Blobs == 0 || rep.Reclaimed == 0 {
				t.Errorf("report = %+v, want blobs reclaimed", rep)
			}
			// A second prune finds nothing more.
			rep, err = f.s.Prune(context.Background(), tc.opts)
			if err != nil || rep.Entries != 0 || rep.Blobs != 0 {
				t.Errorf("second Prune = %+v, %v; want nothing removed", rep, err)
			}
		})
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// checkTaggedIntact: the tagged image is whole and readable by skopeo.
func checkTaggedIntact(t *testing.T, f *pruneFixture) {
	t.Helper()
	rec, err := f.s.Lookup("app")
	if err != nil {
		t.Fatalf("Lookup(app) after prune: %v", err)
	}
	img, err := f.s.Image(rec.Manifest.Digest)
	if err != nil {
		t.Fatalf("Image after prune: %v", err)
	}
	p := exportFile(t, img, "app:latest", FormatDocker)
	if testutil.InCI() || hasTool("skopeo") {
		skopeoInspect(t, "docker-archive:"+p)
		skopeoInspect(t, "oci:"+f.s.Root()+":app:latest")
	}
	if _, err := f.s.LookupStep(f.shared); err != nil && !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupStep(shared): %v", err)
	}
}

func hasTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func TestUsage(t *testing.T) {
	f := newPruneFixture(t)
	u, err := f.s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	size := func(h v1.Hash) int64 { n, _ := f.s.BlobSize(h); return n }
	var all int64
	ents, _ := os.ReadDir(filepath.Join(f.s.Root(), blobsDir))
	for _, e := range ents {
		fi, _ := e.Info()
		all += fi.Size()
	}
	timg, _ := f.s.Image(f.tagged.Manifest.Digest)
	tl, _ := timg.Layers()
	tsz, _ := tl[0].Size()
	wantImages := size(f.tagged.Manifest.Digest) + size(f.tagged.ID) + tsz
	if u.Images != 1 || u.ImagesSize != wantImages {
		t.Errorf("Images = %d, %d B; want 1, %d B", u.Images, u.ImagesSize, wantImages)
	}
	if u.Entries != 4 || u.EntriesSize != 3000+5000 {
		t.Errorf("Entries = %d, %d B; want 4, 8000 B", u.Entries, u.EntriesSize)
	}
	if u.Blobs != int64(len(ents)) || u.BlobsSize != all {
		t.Errorf("Blobs = %d, %d B; want %d, %d B", u.Blobs, u.BlobsSize, len(ents), all)
	}
	if u.Reclaimable < all-wantImages {
		t.Errorf("Reclaimable = %d, want at least %d", u.Reclaimable, all-wantImages)
	}
	rep, err := f.s.Prune(context.Background(), PruneOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reclaimed != u.Reclaimable {
		t.Errorf("Prune --all reclaimed %d, Usage promised %d", rep.Reclaimed, u.Reclaimable)
	}
	after, _ := f.s.Usage()
	if after.Reclaimable != 0 || after.Entries != 0 || after.BlobsSize != wantImages {
		t.Errorf("Usage after prune --all = %+v", after)
	}
}

func TestBuildLock(t *testing.T) {
	s := openTest(t)
	rel1, err := s.BuildLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rel2, err := other.BuildLock(context.Background())
	if err != nil {
		t.Fatalf("a second build could not share the lock: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := other.Prune(ctx, PruneOptions{All: true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Prune during builds: %v, want it to wait until its context ends", err)
	}
	rel1()
	rel2()
	if _, err := other.Prune(context.Background(), PruneOptions{All: true}); err != nil {
		t.Errorf("Prune after the builds: %v", err)
	}
}

func TestPruneRefusesDamagedTag(t *testing.T) {
	s := openTest(t)
	rec := putTestImage(t, s, map[string][]byte{"a": []byte("a")}, "a")
	if err := s.Tag("app", rec.Manifest); err != nil {
		t.Fatal(err)
	}
	p, _ := s.blobPath(rec.ID)
	os.Remove(p)
	if _, err := s.Prune(context.Background(), PruneOptions{All: true}); err == nil {
		t.Error("Prune with a damaged tagged image succeeded")
	}
	if !s.HasBlob(rec.Manifest.Digest) {
		t.Error("Prune removed blobs of a damaged tagged image")
	}
}

// TestPruneKeepsUnnamedIndexEntries: index.json entries without a name
// (added by another OCI tool) are protected like tags.
func TestPruneKeepsUnnamedIndexEntries(t *testing.T) {
	s := openTest(t)
	rec := putTestImage(t, s, map[string][]byte{"a": []byte("a")}, "a")
	err := s.updateIndex(func(ds []v1.Descriptor) ([]v1.Descriptor, bool) { return append(ds, rec.Manifest), true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(context.Background(), PruneOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(rec.Manifest.Digest); err != nil {
		t.Errorf("Prune removed an image listed in index.json without a name: %v", err)
	}
}
