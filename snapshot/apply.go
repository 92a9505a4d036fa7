package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// extractor writes the entries of a tar into a directory tree without
// ever leaving root. Every path is resolved by the kernel inside root
// (openIn), and every change is made with an *at call on the descriptor
// of the parent directory and the entry's last name, never by a path
// string: a symlink in the archive, absolute or full of "..", is stored
// as a symlink but never followed out, and nothing is written through a
// final symlink (O_NOFOLLOW, O_EXCL, AT_SYMLINK_NOFOLLOW).
type extractor struct {
	root  int    // everything stays inside this directory
	base  string // where archive paths start, relative to root
	layer bool   // an OCI layer: .wh. names are whiteouts
	buf   []byte
	// limit caps the bytes of file data written (< 0: none): a sparse
	// entry makes far more than the stream holds.
	limit, written int64
	// parent caches the last parent directory: tar entries come
	// directory by directory. Any removal invalidates it, since the
	// cached directory may have been inside what was removed.
	parent struct {
		path  string
		fd    int
		valid bool
	}
	dirs []dirTimes
}

// dirTimes are set once every entry is written, since writing into a
// directory changes its mtime.
type dirTimes struct {
	rel          string
	dev, ino     uint64
	atime, mtime time.Time
}

func newExtractor(root int, base string, layer bool, limit int64) *extractor {
	x := &extractor{root: root, base: base, layer: layer, limit: limit}
	x.parent.fd = -1
	return x
}

func (x *extractor) close() {
	if x.parent.fd >= 0 {
		unix.Close(x.parent.fd)
		x.parent.fd = -1
	}
}

func (x *extractor) run(ctx context.Context, r io.Reader) error {
	defer x.close()
	b := layerBuffers.Get().(*layerBuf)
	defer layerBuffers.Put(b)
	x.buf = b.copy
	tr := tar.NewReader(ctxReader{ctx, r})
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	return x.setDirTimes()
}

// ctxReader stops reading once ctx is done, so that cancelling a build
// also stops the unpacking of a big file, not only the next entry.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// cleanName turns an archive path into a clean path relative to the
// archive root. A leading "/" is dropped, as tar does; a path that climbs
// above the root is refused.
func cleanName(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("path %q climbs out of the archive root", name)
	}
	return p, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("entry for the archive root is not a directory")
		}
		return x.rootDir(hdr)
	}
	dir, base := path.Split(rel)
	dir = path.Join(x.base, dir)
	if x.layer {
		switch kind, target := classifyLayerName(base); kind {
		case opaqueName:
			return x.opaque(dir)
		case metaName:
			return nil
		case whiteoutOf:
			return x.whiteout(dir, target, hdr)
		}
	}
	pfd, err := x.parentDir(dir)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(pfd, base, path.Join(dir, base), hdr)
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(pfd, base, hdr, r)
	case tar.TypeSymlink:
		return x.symlink(pfd, base, hdr)
	case tar.TypeLink:
		return x.hardlink(pfd, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return x.node(pfd, base, hdr)
	case tar.TypeXGlobalHeader:
		return nil // archive-wide comments, such as git archive's commit id
	}
	return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
}

// parentDir returns a descriptor (owned by x, valid until the next call)
// of the directory rel inside root, creating missing directories.
func (x *extractor) parentDir(rel string) (int, error) {
	if x.parent.valid && x.parent.path == rel {
		return x.parent.fd, nil
	}
	x.close()
	x.parent.valid = false
	fd, err := x.mkdirAll(rel)
	if err != nil {
		return -1, err
	}
	x.parent.path, x.parent.fd, x.parent.valid = rel, fd, true
	return fd, nil
}

// mkdirAll opens directory rel inside root, creating what is missing
// with mode 0755 the way tar does for parents the archive does not list.
func (x *extractor) mkdirAll(rel string) (int, error) {
	// In a layer, a whiteout of the same layer may stand where a parent
	// belongs (".wh.d" then "d/f"): it is replaced, see mkdirIn.
	missing := func(err error) bool {
		return errors.Is(err, unix.ENOENT) || (x.layer && errors.Is(err, unix.ENOTDIR))
	}
	fd, err := openIn(x.root, rel, unix.O_PATH|unix.O_DIRECTORY)
	if !missing(err) {
		return fd, err
	}
	cur, err := openIn(x.root, ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	prefix := ""
	for _, c := range strings.Split(rel, "/") {
		prefix = path.Join(prefix, c)
		next, err := openIn(x.root, prefix, unix.O_PATH|unix.O_DIRECTORY)
		if missing(err) {
			next, err = x.mkdirIn(cur, c)
		}
		unix.Close(cur)
		if err != nil {
			return -1, fmt.Errorf("creating directory %s: %w", prefix, err)
		}
		cur = next
	}
	return cur, nil
}

// mkdirIn makes the directory name in parent and opens it. In a layer, a
// whiteout there is replaced and the new directory is opaque: the
// whiteout deleted the lower one, and this layer adds a new one.
func (x *extractor) mkdirIn(parent int, name string) (int, error) {
	opaque := false
	var st unix.Stat_t
	if x.layer && unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && isWhiteoutNode(&st) {
		if err := unix.Unlinkat(parent, name, 0); err != nil {
			return -1, err
		}
		opaque = true
	}
	if err := unix.Mkdirat(parent, name, 0o755); err != nil {
		return -1, err
	}
	// Made a moment ago as a directory by us, so following name is safe.
	if err := unix.Fchmodat(parent, name, 0o755, 0); err != nil { // whatever the umask
		return -1, err
	}
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if opaque {
		if err := markOpaque(fd); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("marking %s opaque: %w", name, err)
		}
	}
	return fd, nil
}

// clear removes whatever is at name in parent, a directory with all it
// holds.
func (x *extractor) clear(parent int, name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	// The cached parent may be inside what goes away.
	x.parent.valid = false
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return removeAllAt(parent, name)
	}
	return unix.Unlinkat(parent, name, 0)
}

func (x *extractor) rootDir(hdr *tar.Header) error {
	fd, err := openIn(x.root, x.base, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return x.dirAttrs(fd, x.base, hdr)
}

// create runs mk, and if name exists, clears it and runs mk again.
// Trying first saves a stat per entry in the common case, a fresh tree.
func (x *extractor) create(parent int, name string, mk func() error) error {
	err := mk()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := x.clear(parent, name); err != nil {
		return err
	}
	return mk()
}

func (x *extractor) dir(parent int, name, rel string, hdr *tar.Header) error {
	opaque := false
	err := unix.Mkdirat(parent, name, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			// A directory that replaces a whiteout of the same layer is a
			// new directory: nothing of the lower one may show through.
			opaque = x.layer && isWhiteoutNode(&st)
			x.parent.valid = false
			if err = unix.Unlinkat(parent, name, 0); err == nil {
				err = unix.Mkdirat(parent, name, 0o700)
			}
		}
	}
	if err != nil {
		return err
	}
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if opaque {
		if err := markOpaque(fd); err != nil {
			return fmt.Errorf("marking %s opaque: %w", rel, err)
		}
	}
	return x.dirAttrs(fd, rel, hdr)
}

func (x *extractor) dirAttrs(fd int, rel string, hdr *tar.Header) error {
	if err := x.fdAttrs(fd, hdr); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	x.dirs = append(x.dirs, dirTimes{rel: rel, dev: uint64(st.Dev), ino: st.Ino, atime: atime(hdr), mtime: hdr.ModTime})
	return nil
}

func (x *extractor) file(parent int, name string, hdr *tar.Header, r io.Reader) error {
	if x.limit >= 0 && hdr.Size > x.limit-x.written {
		return &SizeLimitError{Limit: x.limit}
	}
	x.written += hdr.Size
	fd := -1
	err := x.create(parent, name, func() (err error) {
		fd, err = unix.Openat(parent, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := io.CopyBuffer(writerOnly{f}, readerOnly{r}, x.buf); err != nil {
		return err
	}
	if err := x.fdAttrs(fd, hdr); err != nil {
		return err
	}
	return setTimes(parent, name, hdr)
}

func (x *extractor) symlink(parent int, name string, hdr *tar.Header) error {
	if err := x.create(parent, name, func() error { return unix.Symlinkat(hdr.Linkname, parent, name) }); err != nil {
		return err
	}
	return x.atAttrs(parent, name, hdr, true)
}

func (x *extractor) node(parent int, name string, hdr *tar.Header) error {
	typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := x.create(parent, name, func() error { return unix.Mknodat(parent, name, typ|0o600, int(dev)) }); err != nil {
		return err
	}
	return x.atAttrs(parent, name, hdr, false)
}

// hardlink links name to an earlier entry. The target's directory is
// resolved inside root and the link is made to the name in it, never
// following a final symlink, so the inode linked is always one inside
// root.
func (x *extractor) hardlink(parent int, name string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if target == "." {
		return errors.New("hardlink to the archive root")
	}
	tdir, tbase := path.Split(target)
	tparent, err := openIn(x.root, path.Join(x.base, tdir), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", hdr.Linkname, err)
	}
	defer unix.Close(tparent)
	var tst, st unix.Stat_t
	if err := unix.Fstatat(tparent, tbase, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hardlink target %s: %w", hdr.Linkname, err)
	}
	if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hardlink target %s is a directory", hdr.Linkname)
	}
	if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == tst.Dev && st.Ino == tst.Ino {
		return nil // already that file
	}
	return x.create(parent, name, func() error { return unix.Linkat(tparent, tbase, parent, name, 0) })
}

// whiteout records in overlay form that target is deleted. A whiteout
// hides only what lower layers hold (OCI image spec, "Whiteouts"): an
// entry of this layer already at target stays, and a directory there
// becomes opaque instead.
func (x *extractor) whiteout(dir, target string, hdr *tar.Header) error {
	if target == "" || target == "." || target == ".." {
		return fmt.Errorf("invalid whiteout %q", hdr.Name)
	}
	parent, err := x.parentDir(dir)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	err = unix.Fstatat(parent, target, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		fd, err := unix.Openat(parent, target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := markOpaque(fd); err != nil {
			return fmt.Errorf("marking %s opaque: %w", target, err)
		}
		return nil
	case err == nil:
		return nil // a file of this layer hides the lower one by itself
	case !errors.Is(err, unix.ENOENT):
		return err
	}
	if err := makeWhiteout(parent, target); err != nil {
		return fmt.Errorf("making whiteout: %w", err)
	}
	return setTimes(parent, target, hdr)
}

// opaque marks dir as hiding everything below it in lower layers.
func (x *extractor) opaque(dir string) error {
	pfd, err := x.mkdirAll(dir)
	if err != nil {
		return err
	}
	unix.Close(pfd)
	fd, err := openIn(x.root, dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := markOpaque(fd); err != nil {
		return fmt.Errorf("marking %s opaque: %w", dir, err)
	}
	return nil
}

// fdAttrs sets owner, mode and xattrs through an open descriptor. The
// order matters: chown clears setuid/setgid and security.capability, so
// the mode and the xattrs come after it.
func (x *extractor) fdAttrs(fd int, hdr *tar.Header) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for _, xa := range tarXattrs(hdr) {
		if err := unix.Fsetxattr(fd, xa.name, xa.value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("setting xattr %s: %w", xa.name, err)
		}
	}
	return nil
}

// atAttrs is fdAttrs for what cannot be opened safely (symlinks, device
// nodes, fifos): calls relative to the parent that do not follow name.
func (x *extractor) atAttrs(parent int, name string, hdr *tar.Header, symlink bool) error {
	if err := unix.Fchownat(parent, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if !symlink {
		// name was made a moment ago as a node of this type by us, so
		// following it (fchmodat has no working NOFOLLOW) is safe.
		if err := unix.Fchmodat(parent, name, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if xattrs := tarXattrs(hdr); len(xattrs) > 0 {
		p := fdPath(parent) + "/" + name
		for _, xa := range xattrs {
			err := unix.Lsetxattr(p, xa.name, xa.value, 0)
			// The kernel keeps user.* xattrs to files and directories
			// (EPERM on others): such an entry cannot exist anywhere, so
			// the xattr is dropped, as other unpackers do.
			if err != nil && !errors.Is(err, unix.ENOTSUP) && !(errors.Is(err, unix.EPERM) && strings.HasPrefix(xa.name, "user.")) {
				return fmt.Errorf("setting xattr %s: %w", xa.name, err)
			}
		}
	}
	return setTimes(parent, name, hdr)
}

// tarXattrs returns the entry's xattrs, without overlay's own: from a
// tar they would be forged bookkeeping (a fake opaque or redirect).
func tarXattrs(hdr *tar.Header) []xattr {
	var out []xattr
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok || name == "" || !layerXattr(name) {
			continue
		}
		out = append(out, xattr{name: name, value: []byte(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func atime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

func timespecs(atime, mtime time.Time) []unix.Timespec {
	return []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
}

func setTimes(parent int, name string, hdr *tar.Header) error {
	if err := unix.UtimesNanoAt(parent, name, timespecs(atime(hdr), hdr.ModTime), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// setDirTimes sets the directories' times last. A directory that a later
// entry replaced (the inode differs) is skipped.
func (x *extractor) setDirTimes() error {
	for _, d := range x.dirs {
		fd, err := openIn(x.root, d.rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil && uint64(st.Dev) == d.dev && st.Ino == d.ino {
			err = unix.UtimesNanoAt(unix.AT_FDCWD, fdPath(fd), timespecs(d.atime, d.mtime), 0)
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("setting times of %s: %w", d.rel, err)
		}
	}
	return nil
}

func applyLayer(ctx context.Context, r *layerStream, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err == nil {
		// A layer without a "./" entry leaves its root as made here, and
		// a snapshot's root becomes the merged "/": never the umask's.
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrExist) {
		return err
	}
	root, err := openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	return newExtractor(root, ".", true, r.limit).run(ctx, r)
}

func extractArchive(r *layerStream, root, dest string) error {
	rfd, err := openDir(root)
	if err != nil {
		return err
	}
	defer unix.Close(rfd)
	dfd, err := openIn(rfd, dest, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("opening destination %s: %w", dest, err)
	}
	base, err := relInside(rfd, dfd)
	unix.Close(dfd)
	if err != nil {
		return fmt.Errorf("locating destination %s: %w", dest, err)
	}
	return newExtractor(rfd, base, false, r.limit).run(context.Background(), r)
}
