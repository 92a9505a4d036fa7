package fsutil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// diskDir is a temporary directory on a file system with a page cache
// that fsync cleans: on tmpfs every page stays dirty whatever is synced.
func diskDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		testutil.Missing(t, "the temporary directory is on tmpfs, where fsync cannot be observed: set TMPDIR to a disk")
	}
	return dir
}

// unsynced returns how many pages of the file at p are dirty or under
// writeback (cachestat(2), Linux 6.5): none once it was fsynced.
func unsynced(t *testing.T, p string) uint64 {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cs unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &cs, 0); err != nil {
		testutil.Missing(t, "cachestat(2) is not available: "+err.Error())
	}
	return cs.Dirty + cs.Writeback
}

func TestPendingFileCommit(t *testing.T) {
	dir := diskDir(t)
	dst := filepath.Join(dir, "out")
	data := bytes.Repeat([]byte("x"), 4<<20)
	for _, old := range []bool{false, true} {
		if old {
			os.WriteFile(dst, []byte("old"), 0o600)
		}
		f, err := CreatePending(dir, ".out.tmp-*", 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		// Until the commit, dst is what it was.
		got, err := os.ReadFile(dst)
		if old && string(got) != "old" || !old && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("before Commit, dst holds %d bytes (%v), want what it held", len(got), err)
		}
		if err := f.Commit(dst); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		f.Cleanup() // after a commit: a no-op
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Errorf("after Commit, dst holds %d bytes, want %d", len(got), len(data))
		}
		if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("dst mode %v (%v), want 0644", fi.Mode(), err)
		}
		if n := unsynced(t, dst); n != 0 {
			t.Errorf("after Commit, %d pages of dst are not on disk", n)
		}
		assertOnly(t, dir, "out")
	}
}

// TestPendingFileCleanup: a pending file that is not committed leaves
// nothing, and the final name keeps what it had.
func TestPendingFileCleanup(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	os.WriteFile(dst, []byte("old"), 0o644)
	f, err := CreatePending(dir, ".out.tmp-*", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	f.Cleanup()
	if got, _ := os.ReadFile(dst); string(got) != "old" {
		t.Errorf("dst holds %q after Cleanup, want %q", got, "old")
	}
	assertOnly(t, dir, "out")
}

// TestPendingFileCommitAgain: a commit that failed at the rename can be
// retried once the directory exists, and a second commit is refused.
func TestPendingFileCommitAgain(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "sub", "out")
	f, err := CreatePending(dir, "tmp-*", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Cleanup()
	f.Write([]byte("data"))
	if err := f.CommitNoDirSync(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Commit into a missing directory = %v, want ErrNotExist", err)
	}
	os.Mkdir(filepath.Dir(dst), 0o755)
	if err := f.CommitNoDirSync(dst); err != nil {
		t.Fatalf("Commit again: %v", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "data" {
		t.Errorf("dst holds %q, want %q", got, "data")
	}
	if err := f.Commit(dst); err == nil {
		t.Error("a second Commit after a successful one succeeded")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := diskDir(t)
	p := filepath.Join(dir, "index.json")
	for _, data := range []string{"first", "second"} {
		if err := WriteFileAtomic(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != data {
			t.Errorf("WriteFileAtomic wrote %q, want %q", got, data)
		}
		if n := unsynced(t, p); n != 0 {
			t.Errorf("%d pages not on disk after WriteFileAtomic", n)
		}
	}
	assertOnly(t, dir, "index.json")
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want only %v", dir, got, names)
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	data := bytes.Repeat([]byte("0123456789"), 100<<10)
	os.WriteFile(src, data, 0o644)
	sum := sha256.Sum256(data)
	for _, c := range []struct {
		name   string
		hash   bool
		reader func(f *os.File) io.Reader
	}{
		{"kernel copy", false, func(f *os.File) io.Reader { return f }},
		{"limited kernel copy", false, func(f *os.File) io.Reader { return io.LimitReader(f, int64(len(data))) }},
		{"hashed", true, func(f *os.File) io.Reader { return struct{ io.Reader }{f} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			dst := filepath.Join(t.TempDir(), "dst")
			h := sha256.New()
			if !c.hash {
				h = nil
			}
			n, err := CopyFile(dst, c.reader(in), h)
			if err != nil || n != int64(len(data)) {
				t.Fatalf("CopyFile = %d, %v; want %d bytes", n, err, len(data))
			}
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Errorf("dst holds %d bytes, not the source's %d", len(got), len(data))
			}
			if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
				t.Errorf("dst mode %v, want 0600", fi.Mode())
			}
			if h != nil && !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Error("the hash is not the hash of what was copied")
			}
			if _, err := CopyFile(dst, bytes.NewReader(nil), nil); !errors.Is(err, os.ErrExist) {
				t.Errorf("CopyFile over an existing file = %v, want ErrExist", err)
			}
		})
	}
	// A symlink in the final place is not followed.
	link := filepath.Join(dir, "link")
	os.Symlink(filepath.Join(dir, "target"), link)
	if _, err := CopyFile(link, bytes.NewReader(data), nil); err == nil {
		t.Error("CopyFile wrote through a symlink")
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); err == nil {
		t.Error("CopyFile created the symlink's target")
	}
}

func TestHashReader(t *testing.T) {
	data := bytes.Repeat([]byte("abc"), 300<<10) // several buffers
	sum := sha256.Sum256(data)
	got, n, err := HashReader(context.Background(), bytes.NewReader(data))
	if err != nil || got != hex.EncodeToString(sum[:]) || n != int64(len(data)) {
		t.Errorf("HashReader = %s, %d, %v; want %x, %d", got, n, err, sum, len(data))
	}
	// Cancelled after the first read: it stops there.
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfterRead{r: bytes.NewReader(data), cancel: cancel}
	if _, _, err := HashReader(ctx, r); !errors.Is(err, context.Canceled) {
		t.Errorf("HashReader on a cancelled ctx = %v, want context.Canceled", err)
	}
	if r.reads != 1 {
		t.Errorf("HashReader read %d times after its ctx was cancelled at the first, want 1", r.reads)
	}
}

type cancelAfterRead struct {
	r      io.Reader
	cancel func()
	reads  int
}

func (c *cancelAfterRead) Read(p []byte) (int, error) {
	c.reads++
	c.cancel()
	return c.r.Read(p)
}
