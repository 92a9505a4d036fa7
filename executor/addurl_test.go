package executor_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileServer serves files from memory on loopback, with an ETag, a
// Last-Modified or neither per path, and counts the GETs and HEADs.
type fileServer struct {
	mu    sync.Mutex
	files map[string]servedFile
	gets  map[string]int
	heads map[string]int
	*httptest.Server
}

type servedFile struct {
	body, etag string
	modified   time.Time
}

func newFileServer(t *testing.T) *fileServer {
	s := &fileServer{files: map[string]servedFile{}, gets: map[string]int{}, heads: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f, ok := s.files[r.URL.Path]
		if r.Method == http.MethodHead {
			s.heads[r.URL.Path]++
		} else {
			s.gets[r.URL.Path]++
		}
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if f.etag != "" {
			w.Header().Set("ETag", f.etag)
		}
		if !f.modified.IsZero() {
			w.Header().Set("Last-Modified", f.modified.UTC().Format(http.TimeFormat))
		}
		if r.Method != http.MethodHead {
			w.Write([]byte(f.body))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *fileServer) set(p string, f servedFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[p] = f
}

func (s *fileServer) count(p string) (gets, heads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[p], s.heads[p]
}

// TestAddURL: ADD of a URL against a loopback server. With --checksum
// the file is fetched once and a rebuild asks nothing; without, the
// server's ETag (else Last-Modified) decides, with one HEAD, whether to
// fetch again. The file is 0600 unless --chmod, has the Last-Modified
// time, and an archive is not unpacked.
func TestAddURL(t *testing.T) {
	e := newEnv(t)
	srv := newFileServer(t)
	modified := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	srv.set("/pinned.txt", servedFile{body: "pinned\n"})
	srv.set("/etag.txt", servedFile{body: "etag one\n", etag: `"v1"`})
	srv.set("/lm.txt", servedFile{body: "lm one\n", modified: modified})
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	tw.WriteHeader(&tar.Header{Name: "inside", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	srv.set("/archive.tar", servedFile{body: tarball.String()})
	sum := sha256.Sum256([]byte("pinned\n"))
	checksum := "sha256:" + hex.EncodeToString(sum[:])

	df := "FROM busybox:test\n" +
		"ADD --checksum=" + checksum + " " + srv.URL + "/pinned.txt /pinned\n" +
		"ADD " + srv.URL + "/etag.txt /dl/\n" +
		"ADD --chmod=644 " + srv.URL + "/lm.txt /dl/lm\n" +
		"ADD " + srv.URL + "/archive.tar /dl/\n"
	ctxDir := t.TempDir()
	build := func() string {
		t.Helper()
		res, err := e.build(t, ctxDir, df, nil)
		if err != nil {
			t.Fatal(err)
		}
		return imageFiles(t, e, res)
	}
	rootfs := build()
	for p, want := range map[string]string{"pinned": "pinned\n", "dl/etag.txt": "etag one\n", "dl/lm": "lm one\n", "dl/archive.tar": tarball.String()} {
		if got := readImageFile(t, rootfs, p); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	for p, want := range map[string]os.FileMode{"pinned": 0o600, "dl/etag.txt": 0o600, "dl/lm": 0o644} {
		if fi, err := os.Stat(filepath.Join(rootfs, p)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("/%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "dl/lm")); err != nil || !fi.ModTime().Equal(modified) {
		t.Errorf("/dl/lm modified %v, want the Last-Modified %v", fi.ModTime(), modified)
	}
	for _, p := range []string{"/pinned.txt", "/etag.txt", "/lm.txt"} {
		if gets, _ := srv.count(p); gets != 1 {
			t.Errorf("%s fetched %d times by the first build, want 1", p, gets)
		}
	}

	// Unchanged: nothing is fetched again; the pinned file is not even asked for.
	build()
	for p, want := range map[string][2]int{"/pinned.txt": {1, 0}, "/etag.txt": {1, 2}, "/lm.txt": {1, 2}} {
		if gets, heads := srv.count(p); gets != want[0] || heads != want[1] {
			t.Errorf("%s after a rebuild: %d GETs and %d HEADs, want %d and %d", p, gets, heads, want[0], want[1])
		}
	}

	// A new ETag or Last-Modified fetches again.
	srv.set("/etag.txt", servedFile{body: "etag two\n", etag: `"v2"`})
	srv.set("/lm.txt", servedFile{body: "lm two\n", modified: modified.Add(time.Hour)})
	rootfs = build()
	if got := readImageFile(t, rootfs, "dl/etag.txt"); got != "etag two\n" {
		t.Errorf("after a new ETag: %q", got)
	}
	if got := readImageFile(t, rootfs, "dl/lm"); got != "lm two\n" {
		t.Errorf("after a new Last-Modified: %q", got)
	}

	// URLs and context files in one ADD.
	writeFiles(t, ctxDir, map[string]string{"local.txt": "local\n"})
	res, err := e.build(t, ctxDir, "FROM busybox:test\nADD local.txt "+srv.URL+"/pinned.txt /mixed/\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs = imageFiles(t, e, res)
	for p, want := range map[string]string{"mixed/local.txt": "local\n", "mixed/pinned.txt": "pinned\n"} {
		if got := readImageFile(t, rootfs, p); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}

	// A wrong checksum fails the step and names both digests.
	bad := "sha256:" + strings.Repeat("0", 64)
	_, err = e.build(t, ctxDir, "FROM busybox:test\nADD --checksum="+bad+" "+srv.URL+"/etag.txt /x\n", nil)
	if err == nil || !strings.Contains(err.Error(), "not --checksum="+bad) {
		t.Errorf("a wrong checksum: %v", err)
	}
}
