package fsutil

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// TestWriteAtomic: a write that fails leaves nothing under the final name
// (nor a temporary file), and one that succeeds is on disk when it
// returns: no page of it is dirty (cachestat(2)), so a crash cannot leave
// a half archive under the final name either.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		testutil.Missing(t, "the temporary directory is on tmpfs, where fsync cannot be observed: set TMPDIR to a disk")
	}
	dest := filepath.Join(dir, "app.tar")
	data := bytes.Repeat([]byte("archive "), 512<<10)

	broken := errors.New("disk on fire")
	err := WriteAtomic(dest, 0o644, func(w io.Writer) error {
		w.Write(data[:len(data)/2])
		return broken
	})
	if !errors.Is(err, broken) {
		t.Fatalf("WriteAtomic with a failing writer = %v, want its error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a failed write left %s behind", ents[0].Name())
	}

	if err := WriteAtomic(dest, 0o644, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); !bytes.Equal(got, data) {
		t.Errorf("the archive holds %d bytes, want %d", len(got), len(data))
	}
	var cs unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &cs, 0); err != nil {
		testutil.Missing(t, "cachestat(2) is not available: "+err.Error())
	}
	if cs.Dirty+cs.Writeback != 0 {
		t.Errorf("%d pages of the saved archive are not on disk when WriteAtomic returns", cs.Dirty+cs.Writeback)
	}
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o644 {
		t.Errorf("archive mode %v, want 0644", fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the write left %d files, want only the file", len(ents))
	}
}

// TestWriteAtomicDevice: a device or a FIFO is written in place, never
// replaced by a file (`builder save -o /dev/null` once turned the host's
// /dev/null into a regular file).
func TestWriteAtomicDevice(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		data, _ := os.ReadFile(fifo)
		got <- data
	}()
	if err := WriteAtomic(fifo, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, "through"); return err }); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("after the write the FIFO is %v (%v)", fi.Mode(), err) // its reader waits forever
	}
	if data := <-got; string(data) != "through" {
		t.Errorf("the FIFO's reader got %q", data)
	}
	if err := WriteAtomic(dir, 0o644, func(io.Writer) error { return nil }); err == nil {
		t.Error("writing over a directory succeeded")
	}
	// A link (/dev/stdout -> /proc/self/fd/1 when stdout is a file) is
	// written through, not replaced by a file.
	target, link := filepath.Join(dir, "target"), filepath.Join(dir, "link")
	if err := os.WriteFile(target, []byte("old content, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(link, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v (%v)", fi.Mode(), err)
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != "new" {
		t.Errorf("the link's target holds %q (%v), want \"new\"", data, err)
	}
}
