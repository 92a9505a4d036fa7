package executor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// srcTree is the directory COPY and ADD read their sources from, the
// build context or a --from stage's mounted rootfs, open once. Every read
// of it goes through a descriptor opened beneath that root without
// following any symlink, and checked to be the file the build resolved:
// a context changed under the build (a directory swapped for a link to a
// host directory, a file for a link or a FIFO) is noticed, never followed
// out of the tree nor waited on.
type srcTree struct {
	fd        int  // O_PATH directory
	inContext bool // the build context: links out of it are refused
	// doublestar lets "**" in a glob match any number of directories,
	// as COPY --parents patterns do in BuildKit (its other wildcards
	// match one component).
	doublestar bool
}

func openTree(dir string, inContext bool) (*srcTree, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &srcTree{fd: fd, inContext: inContext}, nil
}

func (t *srcTree) Close() error { return unix.Close(t.fd) }

// where names the tree in messages.
func (t *srcTree) where() string {
	if t.inContext {
		return "build context"
	}
	return "source image"
}

// open opens rel, a slash path the build resolved (no symlink on the
// way), beneath the root. A symlink anywhere on the way fails (ELOOP),
// except as the last component with O_PATH, which opens the link itself.
func (t *srcTree) open(rel string, flags int) (int, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(t.fd, rel, how)
		// EAGAIN: a rename elsewhere raced with the lookup (KERNEL.md §6).
		if (errors.Is(err, unix.EAGAIN) && i < 64) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// lookup is lstat of rel beneath the root, and the target when it is a
// symlink: what resolving a source sees, taken from one descriptor.
func (t *srcTree) lookup(rel string) (*statInfo, string, error) {
	fd, err := t.open(rel, unix.O_PATH)
	if err != nil {
		return nil, "", err
	}
	defer unix.Close(fd)
	fi := &statInfo{name: path.Base(rel)}
	if err := unix.Fstat(fd, &fi.st); err != nil {
		return nil, "", err
	}
	if fi.st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return fi, "", nil
	}
	target, err := readlinkFd(fd, fi.st.Size)
	return fi, target, err
}

// list returns the names in the directory rel, sorted.
func (t *srcTree) list(rel string) ([]string, error) {
	fd, err := t.open(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readNames(fd, make([]byte, 32<<10))
}

// readNames lists the open directory fd, sorted as os.ReadDir sorts.
func readNames(fd int, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	slices.Sort(names)
	return names, nil
}

// readlinkFd reads the target of the symlink open (O_PATH) as fd.
func readlinkFd(fd int, size int64) (string, error) {
	n := max(int(size)+1, 128)
	for {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if got < len(buf) {
			return string(buf[:got]), nil
		}
		n *= 2
	}
}

// srcFile is a file of a source tree as the build resolved it.
type srcFile struct {
	tree *srcTree
	path string // slash, beneath the tree's root, no symlink on the way
	name string // the source as the Dockerfile names it, for messages
	fi   os.FileInfo
}

// changedError says that a source is no longer what the build resolved,
// hashed or listed: the build read a context that was being changed.
type changedError struct{ name string }

func (e *changedError) Error() string {
	return e.name + " changed while the build was reading it; build again"
}

// openErr turns the error of opening what the build resolved into one
// that names the source as the Dockerfile does, never the host path: a
// symlink, a missing or non-directory component, or a socket where the
// build saw something else means that the tree changed.
func openErr(op, name string, err error) error {
	for _, e := range []error{unix.ELOOP, unix.ENOTDIR, unix.ENOENT, unix.EXDEV, unix.ENXIO, unix.EAGAIN} {
		if errors.Is(err, e) {
			return &changedError{name}
		}
	}
	return &os.PathError{Op: op, Path: name, Err: err}
}

// sameFile reports whether st is the file fi described: device, inode
// and type.
func sameFile(st *unix.Stat_t, fi os.FileInfo) bool {
	want, ok := fi.Sys().(*unix.Stat_t)
	return ok && st.Dev == want.Dev && st.Ino == want.Ino && st.Mode&unix.S_IFMT == want.Mode&unix.S_IFMT
}

// open opens the regular file f for reading. O_NONBLOCK keeps a FIFO put
// in its place from blocking the open; fstat then tells it, or any other
// file put there, from the file the build resolved.
func (f srcFile) open() (int, error) {
	fd, err := f.tree.open(f.path, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return -1, openErr("open", f.name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "stat", Path: f.name, Err: err}
	}
	if !sameFile(&st, f.fi) || st.Size != f.fi.Size() {
		unix.Close(fd)
		return -1, &changedError{f.name}
	}
	return fd, nil
}

// readlink returns the target of the symlink f, read from the link the
// build resolved.
func (f srcFile) readlink() (string, error) {
	fd, err := f.tree.open(f.path, unix.O_PATH)
	if err != nil {
		return "", openErr("readlink", f.name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", &os.PathError{Op: "readlink", Path: f.name, Err: err}
	}
	if !sameFile(&st, f.fi) {
		return "", &changedError{f.name}
	}
	target, err := readlinkFd(fd, st.Size)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: f.name, Err: err}
	}
	return target, nil
}

// fileReader reads an open source file up to the size the build
// resolved it with, no further: the hash and the copy read the same
// bytes, and a file that became shorter has changed. A regular file
// ignores the O_NONBLOCK it was opened with.
type fileReader struct {
	fd   int
	left int64
	name string
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for {
		n, err := unix.Read(r.fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: r.name, Err: err}
		}
		if n == 0 {
			return 0, &changedError{r.name}
		}
		r.left -= int64(n)
		return n, nil
	}
}

// statInfo is an os.FileInfo from fstat or fstatat; Sys is its
// *unix.Stat_t.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s *statInfo) Sys() any           { return &s.st }

// Mode converts as os.Lstat does.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// errSocket is the error for a socket named as a source.
func errSocket(rel, where string) error {
	return &sourceError{rel, fmt.Sprintf("stat %s: no such file in %s (a socket cannot be copied)", rel, where)}
}
