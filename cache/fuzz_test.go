package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The fuzz targets feed the store what it reads from blobs and from
// index.json, as a hostile registry or a damaged store could give it.
// Each checks properties beyond "no panic": every digest the store
// accepts is one that blobPath takes, and an image Check calls complete is
// one the store can open whole.

// fuzzStore is a store holding one tagged image, keep:1.
func fuzzStore(f *testing.F) (*Store, ImageRecord, *v1.Manifest) {
	s := openTest(f)
	rec := putTestImage(f, s, map[string][]byte{"f": []byte("fuzz")}, "keep")
	if err := s.Tag("keep:1", rec.Manifest); err != nil {
		f.Fatal(err)
	}
	m, _, err := s.manifestInfo(rec.Manifest.Digest)
	if err != nil {
		f.Fatal(err)
	}
	return s, rec, m
}

// hostileManifests are seeds: sizes out of range, digests that are not
// sha256 or look like paths, an index, nothing at all.
func hostileManifests(m *v1.Manifest) []string {
	good, _ := json.Marshal(m)
	layer, cfg := m.Layers[0], m.Config
	var seeds []string
	for _, mut := range []func(*v1.Manifest){
		func(m *v1.Manifest) { m.Layers[0].Size = 1 << 62 },
		func(m *v1.Manifest) { m.Layers[0].Size = -1 },
		func(m *v1.Manifest) { m.Config.Size = 1 << 40 },
		func(m *v1.Manifest) { m.Config.Digest = v1.Hash{} },
		func(m *v1.Manifest) { m.Layers[0].Digest = v1.Hash{Algorithm: "sha256", Hex: "../../../etc/passwd"} },
		func(m *v1.Manifest) { m.Layers = append(m.Layers, layer) },
		func(m *v1.Manifest) { m.Layers = nil },
		func(m *v1.Manifest) { m.MediaType = types.OCIImageIndex },
		func(m *v1.Manifest) {
			m.Layers[0].URLs = []string{"http://127.0.0.1/x"}
			m.Layers[0].Digest = cfg.Digest
		},
	} {
		c := *m
		c.Layers = slices.Clone(m.Layers)
		mut(&c)
		data, _ := json.Marshal(c)
		seeds = append(seeds, string(data))
	}
	upper := strings.ToUpper(layer.Digest.Hex)
	return append(seeds, string(good), "", "null", "[]", "{}",
		strings.Replace(string(good), layer.Digest.Hex, upper, 1),
		strings.Replace(string(good), `"sha256:`, `"sha512:`, 1),
		`{"schemaVersion":2,"config":{"digest":"sha256:../../../../etc/passwd","size":1}}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"`+cfg.Digest.String()+`","size":1}]}`,
	)
}

func FuzzManifest(f *testing.F) {
	s, rec, m := fuzzStore(f)
	for _, seed := range hostileManifests(m) {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer dropNewBlobs(t, s, rec, m)
		h := putFuzzBlob(t, s, data)
		if m, _, err := s.manifestInfo(h); err == nil {
			for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
				if _, err := s.blobPath(d.Digest); err != nil || d.Size < 0 {
					t.Fatalf("manifestInfo accepted descriptor %+v: %v", d, err)
				}
			}
		}
		assertCheckAgreesWithImage(t, s, v1.Descriptor{Digest: h, Size: int64(len(data))})
	})
}

func FuzzConfig(f *testing.F) {
	s, rec, m := fuzzStore(f)
	good, err := s.readBlob(rec.ID)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, seed := range []string{"", "{}", "null", `{"rootfs":{"diff_ids":[""]}}`,
		`{"rootfs":{"diff_ids":["sha256:../../x"]}}`, `{"rootfs":{"diff_ids":[]}}`,
		strings.Replace(string(good), `"sha256:`, `"md5:`, 1),
		`{"history":[{"empty_layer":true},{"empty_layer":true}],"rootfs":{"diff_ids":null}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer dropNewBlobs(t, s, rec, m)
		mm := *m
		mm.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: putFuzzBlob(t, s, data), Size: int64(len(data))}
		raw, _ := json.Marshal(mm)
		h := putFuzzBlob(t, s, raw)
		if cf, err := parseConfig(data); err == nil {
			for _, d := range cf.RootFS.DiffIDs {
				if checkHash(d) != nil {
					t.Fatalf("parseConfig accepted diff ID %q", d)
				}
			}
		}
		assertCheckAgreesWithImage(t, s, v1.Descriptor{Digest: h, Size: int64(len(raw))})
	})
}

// putFuzzBlob stores data as a blob without PutBlob's fsyncs: an
// execution must take microseconds, not milliseconds, or the fuzzer
// spends its time minimizing each new input (up to a minute each, during
// which it reports 0 executions per second).
func putFuzzBlob(t *testing.T, s *Store, data []byte) v1.Hash {
	h := sha256Of(data)
	if err := os.WriteFile(s.path(blobsDir+"/"+h.Hex), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// dropNewBlobs removes the blobs an iteration added, so that the store
// keeps only keep:1 and Check stays cheap.
func dropNewBlobs(t *testing.T, s *Store, rec ImageRecord, m *v1.Manifest) {
	keep := map[string]bool{rec.Manifest.Digest.Hex: true, m.Config.Digest.Hex: true, m.Layers[0].Digest.Hex: true}
	ents, err := os.ReadDir(s.path(blobsDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			os.Remove(s.path(blobsDir + "/" + e.Name()))
		}
	}
}

// assertCheckAgreesWithImage: if Check judges the image d names complete,
// the store opens it, its config, and every layer with its diff ID.
func assertCheckAgreesWithImage(t *testing.T, s *Store, d v1.Descriptor) {
	t.Helper()
	c := &checker{s: s, blobs: map[v1.Hash]blobState{}, images: map[v1.Hash]verdict{}}
	if err := c.checkBlobs(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, verr := c.image(d, 0)
	err := openWhole(s, d.Digest)
	if verr == nil && err != nil {
		t.Fatalf("Check calls the image complete, but: %v", err)
	}
}

func openWhole(s *Store, h v1.Hash) error {
	img, err := s.Image(h)
	if err != nil {
		return err
	}
	if _, err := img.ConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.DiffID()
		if err != nil {
			return err
		}
		if checkHash(d) != nil {
			return fmt.Errorf("diff ID %q", d)
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		rc.Close()
	}
	return nil
}

func FuzzIndex(f *testing.F) {
	s, rec, _ := fuzzStore(f)
	good, err := os.ReadFile(s.path(indexFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	d := rec.Manifest.Digest.String()
	for _, seed := range []string{"", "{}", `{"manifests":null}`, `{"manifests":[{}]}`,
		strings.Replace(string(good), d, "sha256:../../../etc/passwd", 1),
		strings.Replace(string(good), d, rec.ID.String(), 1), // a config where a manifest belongs
		strings.Replace(string(good), `"size":`, `"size":-`, 1),
		`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + d + `","size":1,"annotations":{"org.opencontainers.image.ref.name":"x:1"}}]}`,
	} {
		f.Add([]byte(seed))
	}
	blobs := listTree(f, s.path(blobsDir))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(s.path(indexFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		recs, _ := s.Images()
		for _, r := range recs {
			if err := openWhole(s, r.Manifest.Digest); err != nil {
				t.Fatalf("Images lists %s, which does not open: %v", r.Name, err)
			}
		}
		s.Lookup("keep:1")
		s.Usage()
		if _, err := s.Check(context.Background(), false); err != nil {
			t.Fatalf("Check: %v (a bad index.json is a finding, not an error)", err)
		}
		if after := listTree(t, s.path(blobsDir)); !slices.Equal(blobs, after) {
			t.Fatalf("Check(false) changed the blobs: %q, want %q", after, blobs)
		}
	})
}
