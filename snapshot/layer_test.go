package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// richTree makes a tree with every kind of entry a layer can hold.
func richTree(t testing.TB, root string) *tree {
	tr := newTree(t, root)
	tr.dir("empty", 0o700).
		dir("etc", 0o750).chown("etc", 1000, 1000).
		file("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644).
		file("bin/ping", "ELF pretend", 0o755|os.ModeSetuid).
		xattr("bin/ping", "security.capability", capNetRaw).
		file("bin/sg", "setgid", 0o755).chown("bin/sg", 0, 50).chmod("bin/sg", 0o2755).
		dir("tmp", 0o777|os.ModeSticky).
		file("with space/ünïcødé 名前.txt", "unicode\n", 0o640).
		file("bytes/not-utf8-\xff\xfe", "latin1 name", 0o644).
		file("long/"+strings.Repeat("n", 120)+"/"+strings.Repeat("m", 200), "long name", 0o644).
		symlink("long/link", strings.Repeat("../", 40)+"target").
		file("data/a", strings.Repeat("hardlinked\n", 100), 0o600).
		link("data/b", "data/a").
		link("data/c", "data/a").
		symlink("data/rel", "../etc/passwd").
		symlink("data/abs", "/etc/passwd").
		symlink("data/dangling", "nowhere").
		mknod("dev/null", unix.S_IFCHR|0o666, 1, 3).
		mknod("dev/loop0", unix.S_IFBLK|0o660, 7, 0).
		mknod("dev/fifo", unix.S_IFIFO|0o644, 0, 0).
		file("user/xattr", "x", 0o644).xattr("user/xattr", "user.note", "hello\x00world").
		file("big", strings.Repeat("0123456789abcdef", 1<<16), 0o644).
		dir("opq", 0o755).xattr("opq", xattrOpaque, "y").
		file("opq/kept", "k", 0o644).
		dir("gone", 0o755).
		whiteout("gone/a").
		whiteout("removed")
	tr.check(os.Link(tr.p("removed"), tr.p("gone/b"))) // whiteouts share one inode in a real upper
	tr.chown("data/a", 123, 456).chown("data/rel", 7, 8)
	return tr.times(t0)
}

func TestWriteLayerRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	richTree(t, src)
	var layer bytes.Buffer
	if err := WriteLayer(&layer, src, WriteOptions{}); err != nil {
		t.Fatalf("WriteLayer: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if err := Apply(context.Background(), bytes.NewReader(layer.Bytes()), dst); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want, got := manifest(t, src), manifest(t, dst)
	if d := diffLines(want, got); d != "" {
		t.Errorf("tree after WriteLayer+Apply differs:\n%s", d)
	}
	// The whiteouts must have come out as .wh. entries, not as a hardlink
	// to the first whiteout.
	entries := strings.Join(tarEntries(t, layer.Bytes()), "\n")
	for _, want := range []string{".wh.removed 0 0 0000", "gone/.wh.b 0 0 0000", "opq/.wh..wh..opq 0 0 0000", "data/b 1 0 0600 -> data/a"} {
		if !strings.Contains(entries, want) {
			t.Errorf("layer lacks %q; entries:\n%s", want, entries)
		}
	}
	if strings.Contains(entries, "trusted.overlay") {
		t.Errorf("layer carries overlay xattrs:\n%s", entries)
	}
}

func TestWriteLayerHeaders(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	richTree(t, src)
	late := time.Now().Add(time.Hour).Truncate(time.Second)
	newTree(t, src).file("new", "fresh", 0o644)
	tr := newTree(t, src)
	tr.check(os.Chtimes(tr.p("new"), late, late))
	epoch := t0.Add(-time.Hour)

	tests := []struct {
		name  string
		opts  WriteOptions
		limit time.Time
	}{
		{"no epoch", WriteOptions{}, late},
		{"epoch", WriteOptions{SourceDateEpoch: &epoch}, epoch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a, b bytes.Buffer
			if err := WriteLayer(&a, src, tc.opts); err != nil {
				t.Fatal(err)
			}
			if err := WriteLayer(&b, src, tc.opts); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("two runs gave different bytes (%d and %d)", a.Len(), b.Len())
			}
			var names []string
			r := tar.NewReader(bytes.NewReader(a.Bytes()))
			for {
				h, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, h.Name)
				if h.ModTime.After(tc.limit) {
					t.Errorf("%s: mtime %v after %v", h.Name, h.ModTime, tc.limit)
				}
				if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
					t.Errorf("%s: unstable header fields: %+v", h.Name, h)
				}
				if len(h.PAXRecords) == 0 && h.Format != tar.FormatUSTAR && len(h.Name) < 100 {
					t.Errorf("%s: format %v, want USTAR when nothing needs PAX", h.Name, h.Format)
				}
			}
			if names[0] == "./" || names[0] == "/" || names[0] == "" {
				t.Errorf("layer has an entry for the root: %q", names[0])
			}
			if tc.opts.SourceDateEpoch == nil && !slices.Contains(names, "new") {
				t.Errorf("missing entry new in %v", names)
			}
		})
	}
}

// TestWriteLayerOverlayStep runs a real step on an overlay mount and
// checks the layer entry by entry.
func TestWriteLayerOverlayStep(t *testing.T) {
	testutil.RequireRoot(t)
	bb := testutil.RequireTool(t, "/bin/busybox")
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lower := newTree(t, filepath.Join(t.TempDir(), "lower")).
		file("a", "a", 0o644).
		file("d/old1", "1", 0o644).file("d/old2", "2", 0o644).
		file("e/f", "f", 0o644).
		file("h1", "one\n", 0o644).link("h2", "h1").
		file("m", "mode", 0o644).
		file("keep/k", "k", 0o644).
		times(t0)
	var base bytes.Buffer
	if err := WriteLayer(&base, lower.root, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := s.Prepare(context.Background(), []ID{unpackT(t, s, base.Bytes())})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	script := "rm a && rm -rf d && mkdir d && echo new > d/x && mv e e2 && chmod 600 m && echo changed >> h1 && rm keep/k && touch keep/new"
	err = Private(func() error {
		mnt := filepath.Join(t.TempDir(), "mnt")
		if err := os.Mkdir(mnt, 0o755); err != nil {
			return err
		}
		if err := a.Mount.MountAt(mnt); err != nil {
			return err
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		// redirect_dir=off: a directory rename is refused, mv copies.
		if err := os.Rename(filepath.Join(mnt, "e"), filepath.Join(mnt, "e-renamed")); !errors.Is(err, unix.EXDEV) {
			t.Errorf("rename of a lower dir: %v, want EXDEV (redirect_dir must be off)", err)
		}
		cmd := exec.Command(bb, "sh", "-c", script)
		cmd.Dir = mnt
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("step: %v\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	if err := WriteLayer(&layer, a.Upper(), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		".wh.a 0 0 0000",
		"d/ 5 0 0755",
		"d/.wh..wh..opq 0 0 0000",
		"d/x 0 4 0644",
		".wh.e 0 0 0000",
		"e2/ 5 0 0755",
		"e2/f 0 1 0644",
		"h1 0 12 0644",
		"keep/ 5 0 0755",
		"keep/.wh.k 0 0 0000",
		"keep/new 0 0 0644",
		"m 0 4 0600",
	}
	got := tarEntries(t, layer.Bytes())
	if !slices.Equal(got, want) {
		t.Errorf("layer of the step:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The committed upper is the next snapshot, read back through a view.
	if err := a.Commit("step"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Upper()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upper still there after Commit: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(s.Dir("step"), "h1")); err != nil || string(data) != "one\nchanged\n" {
		t.Errorf("committed h1 = %q, %v", data, err)
	}
}

// TestWriteLayerUnfaithful: an upper written with redirect_dir or
// metacopy on would lose data in a layer, so WriteLayer refuses it.
func TestWriteLayerUnfaithful(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct{ name, xattr string }{
		{"redirected dir", xattrRedirect},
		{"metacopy file", xattrMetacopy},
		{"rootless redirect", "user.overlay.redirect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t, filepath.Join(t.TempDir(), "upper")).file("ok", "fine", 0o644).dir("sub", 0o755).file("sub/x", "", 0o644)
			target := "sub"
			if tc.xattr == xattrMetacopy {
				target = "sub/x"
			}
			tr.xattr(target, tc.xattr, "")
			err := WriteLayer(io.Discard, tr.root, WriteOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.xattr) || !strings.Contains(err.Error(), target) {
				t.Errorf("WriteLayer = %v, want an error naming %s and %s", err, target, tc.xattr)
			}
		})
	}
}
