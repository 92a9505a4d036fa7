package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tree builds test directory trees; every helper fails the test on error.
type tree struct {
	t    testing.TB
	root string
}

func newTree(t testing.TB, root string) *tree {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return &tree{t: t, root: root}
}

func (tr *tree) p(name string) string { return filepath.Join(tr.root, name) }

// parent makes sure the directory of name exists and returns the path.
func (tr *tree) parent(name string) string {
	tr.t.Helper()
	tr.check(os.MkdirAll(filepath.Dir(tr.p(name)), 0o755))
	return tr.p(name)
}

func (tr *tree) check(err error) {
	tr.t.Helper()
	if err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *tree) dir(name string, mode os.FileMode) *tree {
	tr.t.Helper()
	tr.check(os.MkdirAll(tr.p(name), 0o755))
	tr.check(os.Chmod(tr.p(name), mode))
	return tr
}

func (tr *tree) file(name, content string, mode os.FileMode) *tree {
	tr.t.Helper()
	tr.check(os.WriteFile(tr.parent(name), []byte(content), 0o600))
	tr.check(unix.Chmod(tr.p(name), uint32(mode&os.ModePerm)|modeBits(mode)))
	return tr
}

func modeBits(m os.FileMode) uint32 {
	var b uint32
	if m&os.ModeSetuid != 0 {
		b |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		b |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		b |= unix.S_ISVTX
	}
	return b
}

func (tr *tree) symlink(name, target string) *tree {
	tr.t.Helper()
	tr.check(os.Symlink(target, tr.parent(name)))
	return tr
}

func (tr *tree) link(name, target string) *tree {
	tr.t.Helper()
	tr.check(os.Link(tr.p(target), tr.parent(name)))
	return tr
}

func (tr *tree) mknod(name string, mode uint32, major, minor uint32) *tree {
	tr.t.Helper()
	tr.check(unix.Mknod(tr.parent(name), mode, int(unix.Mkdev(major, minor))))
	tr.check(unix.Chmod(tr.p(name), mode&0o7777)) // umask
	return tr
}

func (tr *tree) whiteout(name string) *tree { return tr.mknod(name, unix.S_IFCHR, 0, 0) }

func (tr *tree) chmod(name string, mode uint32) *tree {
	tr.t.Helper()
	tr.check(unix.Chmod(tr.p(name), mode))
	return tr
}

func (tr *tree) chown(name string, uid, gid int) *tree {
	tr.t.Helper()
	tr.check(os.Lchown(tr.p(name), uid, gid))
	return tr
}

func (tr *tree) xattr(name, key, value string) *tree {
	tr.t.Helper()
	tr.check(unix.Lsetxattr(tr.p(name), key, []byte(value), 0))
	return tr
}

// capNetRaw is a VFS v2 security.capability value granting cap_net_raw+ep.
var capNetRaw = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// times sets the mtime (and atime) of every entry below root to t, so
// trees compare equal after a trip through tar's whole seconds.
func (tr *tree) times(t time.Time) *tree {
	tr.t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	var dirs []string
	tr.check(filepath.WalkDir(tr.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
	for i := len(dirs) - 1; i >= 0; i-- {
		tr.check(unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	return tr
}

// manifest describes a tree, one line per entry below root in sorted
// order: type, mode, owner, size, content digest or link target, device
// numbers, xattrs (overlay's opaque kept, its other bookkeeping not),
// mtime, and which entries share an inode. Whiteouts are listed as such:
// their inode sharing is an overlay detail.
func manifest(t testing.TB, root string) []string {
	t.Helper()
	var lines []string
	groups := map[fileKey]string{}
	xr := &xattrReader{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if isWhiteoutNode(&st) {
			lines = append(lines, fmt.Sprintf("%s whiteout %d:%d", rel, st.Uid, st.Gid))
			return nil
		}
		line := fmt.Sprintf("%s %s %04o %d:%d mtime=%d", rel, typeName(st.Mode), st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Sec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += fmt.Sprintf(" size=%d sha=%s", len(data), hex.EncodeToString(sum[:6]))
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" dev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		xattrs, err := xr.read(p)
		if err != nil {
			return err
		}
		for _, x := range xattrs {
			if isOverlayXattr(x.name) && x.name != xattrOpaque {
				continue
			}
			line += fmt.Sprintf(" %s=%q", x.name, x.value)
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := fileKey{uint64(st.Dev), st.Ino}
			if first, ok := groups[k]; ok {
				line += " link=" + first
			} else {
				groups[k] = rel
			}
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("manifest of %s: %v", root, err)
	}
	return lines
}

func typeName(mode uint32) string {
	return map[uint32]string{unix.S_IFREG: "file", unix.S_IFDIR: "dir", unix.S_IFLNK: "symlink",
		unix.S_IFCHR: "char", unix.S_IFBLK: "block", unix.S_IFIFO: "fifo", unix.S_IFSOCK: "socket"}[mode&unix.S_IFMT]
}

func diffLines(want, got []string) string {
	w := map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	g := map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	var b strings.Builder
	for _, l := range want {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range got {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// entry is one tar entry of a hand-made archive.
type entry struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body: body}
}

func dirEntry(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func symlinkEntry(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func linkEntry(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing %s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarEntries lists a tar as "name type size mode" lines plus its PAX
// records, in archive order.
func tarEntries(t testing.TB, data []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%s %c %d %04o", h.Name, h.Typeflag, h.Size, h.Mode)
		if h.Typeflag == tar.TypeLink || h.Typeflag == tar.TypeSymlink {
			line += " -> " + h.Linkname
		}
		var keys []string
		for k := range h.PAXRecords {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line += " " + k
		}
		out = append(out, line)
	}
}

// fingerprint returns a fingerprint of everything below dir (names,
// types, sizes, modes, mtimes, link counts) to prove that it did not change.
func fingerprint(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %o %d %d %d %d:%d\n", p, st.Mode, st.Size, st.Mtim.Nano(), st.Nlink, st.Uid, st.Gid)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "  %x\n", sha256.Sum256(data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// layerIDOf is the snapshot id of a layer tar: the hex of its diff ID.
func layerIDOf(data []byte) ID {
	sum := sha256.Sum256(data)
	return ID(hex.EncodeToString(sum[:]))
}

// unpackT unpacks data as the snapshot its diff ID names and returns the id.
func unpackT(t testing.TB, s *Store, data []byte) ID {
	t.Helper()
	id := layerIDOf(data)
	if err := s.Unpack(context.Background(), id, bytes.NewReader(data)); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	return id
}
