package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/internal/testutil"
)

// copyPath copies the file at the host path src to out as a COPY
// copies a source: src's directory is the tree, and src must be a regular
// file in it.
func copyPath(out *os.File, name, src string, sum v1.Hash) error {
	t, err := openTree(filepath.Dir(src), true)
	if err != nil {
		return err
	}
	defer t.Close()
	s, err := resolveSource(t, filepath.Base(src), nil)
	if err != nil {
		return err
	}
	if !s.fi.Mode().IsRegular() {
		return &os.PathError{Op: "open", Path: name, Err: unix.ELOOP}
	}
	return copyFile(srcFile{tree: t, path: s.ctxRel, name: name, fi: s.fi}, sum, func(r io.Reader, h hash.Hash) (int64, error) {
		return fsutil.CopyData(out, r, h)
	})
}

func sumOf(s string) v1.Hash {
	h := sha256.Sum256([]byte(s))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h[:])}
}

// TestCopyFileDetectsChange: a file whose bytes no longer match the
// hash its cache key used must not be copied silently.
func TestCopyFileDetectsChange(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("new content"), 0o644)
	for _, c := range []struct {
		sum     v1.Hash
		wantErr bool
	}{
		{sumOf("new content"), false},
		{sumOf("old content"), true},
		{v1.Hash{}, false}, // COPY --from: no hash to check
	} {
		out, err := os.Create(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		err = copyPath(out, "src", src, c.sum)
		out.Close()
		os.Remove(filepath.Join(dir, "out"))
		if (err != nil) != c.wantErr {
			t.Errorf("copyFile with sum %q: err = %v, want error %v", c.sum.Hex, err, c.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "changed while the build was reading it") {
			t.Errorf("error %q does not say what happened", err)
		}
	}
	// A symlink in the context is never followed when copying.
	os.Symlink("/etc/hostname", filepath.Join(dir, "link"))
	out, _ := os.Create(filepath.Join(dir, "out2"))
	defer out.Close()
	if err := copyPath(out, "link", filepath.Join(dir, "link"), v1.Hash{}); err == nil {
		t.Error("copyFile followed a symlink")
	}
}

// TestLinkFromNeverLeavesTheSnapshot: a previous COPY result may hold a
// symlink pointing at the host; reusing a file below it must not link the
// host's file into the store.
func TestLinkFromNeverLeavesTheSnapshot(t *testing.T) {
	testutil.RequireRoot(t) // linkat with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("s"), 0o644)
	mt := time.Unix(1000, 0)
	os.Chtimes(secret, mt, mt)
	os.Chown(secret, 0, 0)

	prev, upper := t.TempDir(), t.TempDir()
	os.Symlink(outside, filepath.Join(prev, "sub"))
	os.MkdirAll(filepath.Join(upper, "sub"), 0o755)
	os.MkdirAll(filepath.Join(prev, "real"), 0o755)
	good := filepath.Join(prev, "real", "f")
	os.WriteFile(good, []byte("s"), 0o644)
	os.Chtimes(good, mt, mt)
	os.MkdirAll(filepath.Join(upper, "real"), 0o755)

	fi, _ := os.Stat(secret)
	fd, err := unix.Open(prev, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	d := deferredFile{rel: "sub/secret", fi: fi, mode: 0o644, sum: sumOf("s")}
	if d.linkFrom(context.Background(), fd, upper, 0, 0, func(uint64) bool { return true }) {
		t.Error("linked a file through a symlink in the previous snapshot")
	}
	var st syscall.Stat_t
	syscall.Stat(secret, &st)
	if st.Nlink != 1 {
		t.Errorf("host file has %d links", st.Nlink)
	}
	// The same file inside the snapshot is linked; with another hash it
	// is not.
	d.rel = "real/f"
	if !d.linkFrom(context.Background(), fd, upper, 0, 0, func(uint64) bool { return true }) {
		t.Error("did not link an identical file")
	}
	d.rel, d.sum = "real/f", sumOf("other")
	os.Remove(filepath.Join(upper, "real/f"))
	if d.linkFrom(context.Background(), fd, upper, 0, 0, func(uint64) bool { return true }) {
		t.Error("linked a file whose content hash differs")
	}
}
