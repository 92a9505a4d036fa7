package executor

import (
	"archive/tar"
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// TestStatInfoMode: a source's mode, from fstatat, reads as os.Lstat
// reads it, for every type and special bit a context can hold.
func TestStatInfoMode(t *testing.T) {
	dir := t.TempDir()
	mk := map[string]func(p string) error{
		"file": func(p string) error { return os.WriteFile(p, nil, 0o640) },
		"setuid": func(p string) error {
			os.WriteFile(p, nil, 0o644)
			return os.Chmod(p, 0o755|os.ModeSetuid|os.ModeSetgid)
		},
		"dir":    func(p string) error { return os.Mkdir(p, 0o750) },
		"sticky": func(p string) error { os.Mkdir(p, 0o755); return os.Chmod(p, 0o777|os.ModeSticky) },
		"link":   func(p string) error { return os.Symlink("file", p) },
		"fifo":   func(p string) error { return unix.Mkfifo(p, 0o600) },
		"socket": func(p string) error {
			l, err := net.Listen("unix", p)
			if err == nil {
				t.Cleanup(func() { l.Close() })
			}
			return err
		},
	}
	tree, err := openTree(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	for name, create := range mk {
		p := filepath.Join(dir, name)
		if err := create(p); err != nil {
			t.Fatal(err)
		}
		want, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := tree.lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Mode() != want.Mode() || got.Size() != want.Size() || !got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() {
			t.Errorf("%s: lookup gives %v %d %v, os.Lstat %v %d %v", name, got.Mode(), got.Size(), got.ModTime(), want.Mode(), want.Size(), want.ModTime())
		}
	}
}

// TestExtractArchiveChecksHash: ADD unpacks an archive only if its bytes
// are the ones whose hash went into the cache key, as COPY copies a file;
// an archive rewritten in place after it was hashed (same inode, same
// size) must not be unpacked under the old key.
func TestExtractArchiveChecksHash(t *testing.T) {
	testutil.RequireRoot(t) // the unpacked files are owned by root
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	tw.WriteHeader(&tar.Header{Name: "a", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("1"))
	tw.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.tar"), archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := openTree(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	s, err := resolveSource(tree, "t.tar", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.rel = "t.tar"
	for _, c := range []struct {
		name    string
		sum     v1.Hash
		changed bool
	}{
		{"hashed as it is", sumOf(archive.String()), false},
		{"hashed before a rewrite", sumOf("another archive"), true},
		{"COPY --from, no hash", v1.Hash{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c2 := &copier{root: t.TempDir(), maxArchive: 1 << 20}
			ok, err := c2.extractArchive(s.file(), c.sum, "/x")
			var changed *changedError
			if !ok || errors.As(err, &changed) != c.changed || (err != nil && !c.changed) {
				t.Errorf("extractArchive: %v, %v; want true and changed %v", ok, err, c.changed)
			}
			if err != nil && err.Error() != "t.tar changed while the build was reading it; build again" {
				t.Errorf("error %q", err)
			}
		})
	}
}
