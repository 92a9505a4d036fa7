package cache

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestOpenCreatesLayout(t *testing.T) {
	s := openTest(t)
	for _, p := range []string{layoutFile, indexFile, blobsDir, stepsDir, contextsDir} {
		if _, err := os.Stat(filepath.Join(s.Root(), p)); err != nil {
			t.Errorf("Open did not create %s: %v", p, err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(s.Root(), layoutFile))
	if string(data) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", data)
	}
	idx, err := readIndex(filepath.Join(s.Root(), indexFile))
	if err != nil || len(idx.Manifests) != 0 || idx.SchemaVersion != 2 {
		t.Errorf("index.json = %+v, %v; want an empty index", idx, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), tmpDir)); err != nil {
		t.Errorf("no tmp dir: %v", err)
	}
	// A store that is only opened creates no session.
	ents, _ := os.ReadDir(filepath.Join(s.Root(), tmpDir))
	if len(ents) != 0 {
		t.Errorf("Open created %d entries under tmp/, want none until a write", len(ents))
	}
}

func TestPutBlob(t *testing.T) {
	s := openTest(t)
	content := []byte("hello blob")
	want := sha256Of(content)
	tests := []struct {
		name    string
		want    v1.Hash
		wantErr bool
	}{
		{"no digest given", v1.Hash{}, false},
		{"right digest", want, false},
		{"again (idempotent)", want, false},
		{"wrong digest", sha256Of([]byte("other")), true},
		{"bad algorithm", v1.Hash{Algorithm: "md5", Hex: "abc"}, true},
		{"path in digest", v1.Hash{Algorithm: "sha256", Hex: "../../../../etc/passwd" + strings.Repeat("0", 42)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := s.PutBlob(bytes.NewReader(content), tc.want)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("PutBlob(%v) succeeded, want an error", tc.want)
				}
				return
			}
			if err != nil || h != want || n != int64(len(content)) {
				t.Fatalf("PutBlob = %s, %d, %v; want %s, %d", h, n, err, want, len(content))
			}
		})
	}
	if !s.HasBlob(want) {
		t.Error("HasBlob = false after PutBlob")
	}
	if n, err := s.BlobSize(want); err != nil || n != int64(len(content)) {
		t.Errorf("BlobSize = %d, %v", n, err)
	}
	rc, err := s.OpenBlob(want)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Errorf("OpenBlob read %q", got)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), blobsDir))
	if len(ents) != 1 {
		t.Errorf("blobs/sha256 has %d files, want 1", len(ents))
	}
}

func TestPutBlobMismatchStoresNothing(t *testing.T) {
	s := openTest(t)
	wrong := sha256Of([]byte("something else"))
	if _, _, err := s.PutBlob(strings.NewReader("content"), wrong); err == nil {
		t.Fatal("PutBlob with a wrong digest succeeded")
	}
	assertNoBlobs(t, s)
	if s.HasBlob(wrong) || s.HasBlob(sha256Of([]byte("content"))) {
		t.Error("a blob is present after a digest mismatch")
	}
	assertSessionEmpty(t, s)
}

func TestPutBlobReadError(t *testing.T) {
	s := openTest(t)
	r := io.MultiReader(strings.NewReader("partial"), errReader{})
	if _, _, err := s.PutBlob(r, v1.Hash{}); err == nil {
		t.Fatal("PutBlob of a failing reader succeeded")
	}
	assertNoBlobs(t, s)
	assertSessionEmpty(t, s)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestMissingBlob(t *testing.T) {
	s := openTest(t)
	h := sha256Of([]byte("absent"))
	if s.HasBlob(h) {
		t.Error("HasBlob of an absent blob = true")
	}
	if _, err := s.OpenBlob(h); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBlob of an absent blob: %v, want ErrNotFound", err)
	}
	if _, err := s.BlobSize(h); !errors.Is(err, ErrNotFound) {
		t.Errorf("BlobSize of an absent blob: %v, want ErrNotFound", err)
	}
}

// assertSessionEmpty checks that failed writes cleaned up after themselves.
func assertSessionEmpty(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	sess := s.sess
	s.mu.Unlock()
	if sess == nil {
		return
	}
	ents, _ := os.ReadDir(sess.Dir())
	for _, e := range ents {
		if e.Name() != ".session.lock" {
			t.Errorf("leftover temporary file %s", e.Name())
		}
	}
}

func TestBlobMode(t *testing.T) {
	s := openTest(t)
	h, _, err := s.PutBlob(strings.NewReader("readable"), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.blobPath(h)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("blob mode = %v, %v; want 0644", fi.Mode(), err)
	}
}
