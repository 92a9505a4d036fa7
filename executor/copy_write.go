package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/fsutil"
)

// copyInto copies the sources into the rootfs mounted at root, whose
// upper dir is upper. Directories, and files that replace something the
// image has, are made through the mount, which gets whiteouts, copy-up and
// symlinks in the image right. Files new to the image are only recorded:
// finishDeferred writes them into the upper dir once it is unmounted,
// without overlay's cost per file (a COPY of 20,000 files spent most of
// its time there).
func copyInto(ctx context.Context, root, upper string, o copyOpts, srcs []*source) (*copier, error) {
	uid, gid := 0, 0
	if o.chown != "" {
		var err error
		if uid, gid, err = lookupChown(root, o.chown); err != nil {
			return nil, err
		}
	}
	c := &copier{root: root, upper: upper, uid: uid, gid: gid, chmod: o.chmod, maxArchive: o.maxArchive,
		keepOwner: !o.inCtx && o.chown == "",
		inUpper:   map[string]bool{}, pending: map[string]int{}, leaders: map[fileID]int{}}
	for _, s := range srcs {
		if err := s.walk(o.ignore); err != nil {
			return nil, err
		}
		if err := c.copySource(ctx, o, s); err != nil {
			return nil, err
		}
	}
	return c, nil
}

type copier struct {
	root, upper string
	uid, gid    int
	keepOwner   bool // COPY --from without --chown: files keep their owners
	chmod       chmodFunc
	deferred    []deferredFile
	pending     map[string]int  // rel → index in deferred, for files not yet written
	dirs        []dirTime       // directory times to set last
	inUpper     map[string]bool // dirs known to exist in the upper dir
	reuse       string          // a previous result of this COPY to link unchanged files from
	leaders     map[fileID]int  // source inode → index in deferred of its first copy
	maxArchive  int64           // copyOpts.maxArchive
}

// fileID identifies a source inode, to keep hardlinks among the sources.
type fileID struct{ dev, ino uint64 }

// linkedID returns the source file's inode when it has other links.
func linkedID(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*unix.Stat_t)
	if !ok || st.Nlink < 2 {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}

// deferredFile is a regular file to write straight into the upper dir.
type deferredFile struct {
	rel     string // relative to the rootfs
	src     srcFile
	fi      os.FileInfo // src.fi
	mode    os.FileMode
	sum     v1.Hash // content hash the cache key used; zero for COPY --from
	dropped bool    // a later source replaced it
	// leader is the index in deferred of an earlier copy of the same source
	// inode, to hardlink to as docker keeps hardlinks among the sources; -1
	// when there is none.
	leader int
}

type dirTime struct {
	rel string
	mt  time.Time
}

func (c *copier) copySource(ctx context.Context, o copyOpts, s *source) error {
	destIsDir := strings.HasSuffix(o.dest, "/")
	dest := path.Clean(o.dest)
	if o.parents {
		// The source keeps its path below the destination directory.
		dest, destIsDir = path.Join(dest, path.Dir(s.keep)), true
		if s.fi.IsDir() {
			dest = path.Join(dest, path.Base(s.keep))
		}
	}
	if s.fi.IsDir() {
		existed := false
		if p, err := securejoin.SecureJoin(c.root, dest); err == nil {
			_, err := os.Lstat(p)
			existed = err == nil
		}
		dir, err := mkdirAllIn(c.root, dest, 0o755, c.uid, c.gid)
		if err != nil {
			return fmt.Errorf("creating %s: %w", dest, err)
		}
		if !existed {
			// A directory the COPY creates takes its source's time, as
			// BuildKit does, so the layer does not depend on the clock.
			c.dirs = append(c.dirs, dirTime{rel: c.rel(dir), mt: s.fi.ModTime()})
		}
		return c.copyEntries(ctx, dir, s)
	}
	if o.add && o.unpack && s.fi.Mode().IsRegular() {
		if ok, err := c.extractArchive(s.file(), s.sum, dest); ok || err != nil {
			return err
		}
	}
	// A file lands inside dest when dest is (or names) a directory.
	target := dest
	if !destIsDir {
		if p, err := securejoin.SecureJoin(c.root, dest); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				destIsDir = true
			}
		}
	}
	if destIsDir {
		target = path.Join(dest, path.Base(s.rel))
		if s.rel == "." {
			target = dest
		}
	}
	parent, err := mkdirAllIn(c.root, path.Dir(target), 0o755, c.uid, c.gid)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path.Dir(target), err)
	}
	return c.copyEntry(filepath.Join(parent, path.Base(target)), s.file(), s.sum)
}

// copyEntries copies a directory source's walked entries below dir. Each
// entry's parent is the target of its parent entry, which copyEntry made a
// real directory, so no path is resolved twice and no symlink in the image
// is followed.
func (c *copier) copyEntries(ctx context.Context, dir string, s *source) error {
	targets := map[string]string{".": dir}
	for i := range s.entries {
		e := &s.entries[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		parent, ok := targets[path.Dir(e.rel)]
		if !ok {
			return fmt.Errorf("internal: no parent for %s", e.rel)
		}
		target := filepath.Join(parent, path.Base(e.rel))
		if err := c.copyEntry(target, s.entryFile(e), e.sum); err != nil {
			return err
		}
		if e.fi.IsDir() {
			targets[e.rel] = target
			c.dirs = append(c.dirs, dirTime{rel: c.rel(target), mt: e.fi.ModTime()})
		}
	}
	return nil
}

// rel is target's path relative to the mounted root.
func (c *copier) rel(target string) string {
	r, err := filepath.Rel(c.root, target)
	if err != nil {
		return target
	}
	return r
}

// copyEntry creates target (a path inside the mounted root whose parent
// exists) as a copy of the file src. A later source replaces what an
// earlier one put at the same path, as docker does.
func (c *copier) copyEntry(target string, src srcFile, sum v1.Hash) error {
	fi := src.fi
	mode := fi.Mode()
	if c.chmod != nil && mode&fs.ModeSymlink == 0 {
		mode = c.chmod(mode)
	}
	rel := c.rel(target)
	if i, ok := c.pending[rel]; ok {
		if mode.IsRegular() {
			c.deferred[i] = c.deferredFile(rel, src, mode, sum, i)
			return nil
		}
		c.deferred[i].dropped = true
		delete(c.pending, rel)
	}
	existing, err := os.Lstat(target)
	exists := err == nil
	switch {
	case fi.IsDir():
		if exists && existing.IsDir() {
			return nil // merge into what the image has, keeping its metadata
		}
		if exists {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		if err := os.Mkdir(target, 0o700); err != nil {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		link, err := src.readlink()
		if err != nil {
			return err
		}
		if exists {
			if err := c.removeForReplace(target, existing); err != nil {
				return err
			}
		}
		if err := os.Symlink(link, target); err != nil {
			return err
		}
		return c.finish(target, fi, mode, true)
	case mode.IsRegular():
		if !exists {
			if err := c.ensureInUpper(filepath.Dir(target)); err != nil {
				return err
			}
			c.pending[rel] = len(c.deferred)
			c.deferred = append(c.deferred, c.deferredFile(rel, src, mode, sum, len(c.deferred)))
			return nil
		}
		if err := c.removeForReplace(target, existing); err != nil {
			return err
		}
		if err := copyFile(src, sum, func(r io.Reader, h hash.Hash) (int64, error) {
			return fsutil.CopyFile(target, r, h)
		}); err != nil {
			return err
		}
	case mode&fs.ModeNamedPipe != 0:
		if exists {
			if err := c.removeForReplace(target, existing); err != nil {
				return err
			}
		}
		if err := mkfifo(target); err != nil {
			return err
		}
	case mode&fs.ModeSocket != 0:
		return nil // sockets cannot be copied; docker skips them too
	default:
		return fmt.Errorf("%s: unsupported file type %s", src.name, mode.Type())
	}
	return c.finish(target, fi, mode, false)
}

// deferredFile records a file new to the image, to be written at index i
// of deferred, linked to an earlier copy of the same source inode if any.
func (c *copier) deferredFile(rel string, src srcFile, mode os.FileMode, sum v1.Hash, i int) deferredFile {
	d := deferredFile{rel: rel, src: src, fi: src.fi, mode: mode, sum: sum, leader: -1}
	if id, ok := linkedID(src.fi); ok {
		if l, seen := c.leaders[id]; seen && l != i {
			d.leader = l
		} else {
			c.leaders[id] = i
		}
	}
	return d
}

// ensureInUpper makes sure the directory at merged path dir exists in the
// upper dir, copying it up (with its ancestors) when only a lower layer
// has it: a chown to its own owner is enough for overlay to copy it up.
func (c *copier) ensureInUpper(dir string) error {
	rel := c.rel(dir)
	if c.inUpper[rel] {
		return nil
	}
	up := filepath.Join(c.upper, rel)
	if fi, err := os.Lstat(up); err == nil && fi.IsDir() {
		c.inUpper[rel] = true
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if err := os.Lchown(dir, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("copying up %s: %w", rel, err)
	}
	if fi, err := os.Lstat(up); err != nil || !fi.IsDir() {
		return fmt.Errorf("copying up %s: not in the upper dir after chown", rel)
	}
	c.inUpper[rel] = true
	return nil
}

// finishDeferred writes the recorded files into the upper dir, with up to
// workers at once (0: one per CPU), then sets directory times, which the
// writes would otherwise change. The end of ctx stops the writes.
func (c *copier) finishDeferred(ctx context.Context, workers int) error {
	prev := -1
	if c.reuse != "" {
		if fd, err := unix.Open(c.reuse, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			prev = fd
			defer unix.Close(fd)
		}
	}
	// A file whose leader is still a copy of the same inode is linked to
	// it once the leaders are written; any other is written now.
	linked := func(d deferredFile) bool {
		if d.leader < 0 {
			return false
		}
		l := c.deferred[d.leader]
		a, _ := linkedID(l.fi)
		b, _ := linkedID(d.fi)
		return !l.dropped && l.leader < 0 && a == b
	}
	// Each inode of the previous result is linked to one path at most:
	// two sources that are separate files now must not become one inode
	// because they were links last time. Followers link to their leader.
	var claimMu sync.Mutex
	claimed := map[uint64]bool{}
	claim := func(ino uint64) bool {
		claimMu.Lock()
		defer claimMu.Unlock()
		if claimed[ino] {
			return false
		}
		claimed[ino] = true
		return true
	}
	err := forEach(ctx, len(c.deferred), workers, func(ctx context.Context, i int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := c.deferred[i]
		if d.dropped || linked(d) {
			return nil
		}
		uid, gid := c.owner(d.fi)
		if prev >= 0 && d.linkFrom(ctx, prev, c.upper, uid, gid, claim) {
			return nil
		}
		return d.write(c.upper, uid, gid)
	})
	if err != nil {
		return err
	}
	for _, d := range c.deferred {
		if !d.dropped && linked(d) {
			if err := os.Link(filepath.Join(c.upper, c.deferred[d.leader].rel), filepath.Join(c.upper, d.rel)); err != nil {
				return fmt.Errorf("linking %s: %w", d.src.name, err)
			}
		}
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		p := filepath.Join(c.upper, d.rel)
		if _, err := os.Lstat(p); err == nil {
			os.Chtimes(p, d.mt, d.mt)
		}
	}
	return nil
}

// linkFrom hardlinks the file from the same path in a previous result of
// the COPY (the directory open as prev) when that file is exactly what
// write would make: same owner, mode, time and size, and content with the
// hash the cache key used, and claim agrees that no other path of this
// COPY took that inode. The path resolves beneath prev without following
// any symlink, so nothing outside the store can be linked. It reports
// whether it linked.
func (d deferredFile) linkFrom(ctx context.Context, prev int, upper string, uid, gid int, claim func(ino uint64) bool) bool {
	if d.sum.Hex == "" {
		return false
	}
	fd, err := unix.Openat2(prev, d.rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), d.rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != unixPerm(d.mode) ||
		int(st.Uid) != uid || int(st.Gid) != gid || st.Size != d.fi.Size() ||
		st.Mtim.Nano() != d.fi.ModTime().UnixNano() {
		return false
	}
	if sum, _, err := fsutil.HashReader(ctx, f); err != nil || sum != d.sum.Hex {
		return false
	}
	if !claim(st.Ino) {
		return false
	}
	return unix.Linkat(fd, "", unix.AT_FDCWD, filepath.Join(upper, d.rel), unix.AT_EMPTY_PATH) == nil
}

// write copies the file into the upper dir, checking that the bytes it
// copies are the ones the cache key was computed from.
func (d deferredFile) write(upper string, uid, gid int) error {
	p := filepath.Join(upper, d.rel)
	out, err := fsutil.CreateNew(p)
	if err != nil {
		return err
	}
	if err := copyFile(d.src, d.sum, func(r io.Reader, h hash.Hash) (int64, error) {
		return fsutil.CopyData(out, r, h)
	}); err != nil {
		out.Close()
		return err
	}
	// Owner before mode: a chown clears the setuid bits.
	if err := out.Chown(uid, gid); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(d.mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(p, d.fi.ModTime(), d.fi.ModTime())
}

// copyFile copies the regular file f with copy (fsutil.CopyData or
// fsutil.CopyFile), reading the file the build resolved as far as the
// size it had then. With a sum, it hashes what it copies and fails if the
// file changed after its hash went into the cache key: the layer would
// otherwise be cached under a key that does not describe it.
func copyFile(f srcFile, sum v1.Hash, copy func(r io.Reader, h hash.Hash) (int64, error)) error {
	fd, err := f.open()
	if err != nil {
		return err
	}
	if sum.Hex == "" {
		// COPY --from reads a committed snapshot, with nothing to check:
		// as an *os.File, the kernel copies it (copy_file_range).
		in := os.NewFile(uintptr(fd), f.name)
		defer in.Close()
		n, err := copy(io.LimitReader(in, f.fi.Size()), nil)
		if err != nil {
			return fmt.Errorf("copying %s: %w", f.name, err)
		}
		if n != f.fi.Size() {
			return &changedError{f.name}
		}
		return nil
	}
	defer unix.Close(fd)
	h := sha256.New()
	_, err = copy(&fileReader{fd: fd, left: f.fi.Size(), name: f.name}, h)
	if changed := (*changedError)(nil); errors.As(err, &changed) {
		return err
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", f.name, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum.Hex {
		return &changedError{f.name}
	}
	return nil
}

func unixPerm(m os.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		p |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		p |= unix.S_ISVTX
	}
	return p
}

// removeForReplace removes what a source replaces. A directory is not
// replaced by a non-directory, as with BuildKit; the error names the path
// inside the image, never the mount on the host.
func (c *copier) removeForReplace(target string, existing os.FileInfo) error {
	if existing.IsDir() {
		return fmt.Errorf("cannot replace directory /%s with a file", c.rel(target))
	}
	return os.Remove(target)
}

// finish sets owner, mode and times, in that order: a chown clears the
// setuid bits, so the mode must come after it.
func (c *copier) finish(target string, fi os.FileInfo, mode os.FileMode, symlink bool) error {
	uid, gid := c.owner(fi)
	if err := os.Lchown(target, uid, gid); err != nil {
		return err
	}
	if symlink {
		return lutimes(target, fi.ModTime())
	}
	if err := os.Chmod(target, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(target, fi.ModTime(), fi.ModTime())
}

// owner is who a copied file belongs to: --chown's user; else root for a
// file of the build context, and for COPY --from the owner the file has
// in its stage or image, as docker keeps it.
func (c *copier) owner(fi os.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*unix.Stat_t); ok && c.keepOwner {
		return int(st.Uid), int(st.Gid)
	}
	return c.uid, c.gid
}
