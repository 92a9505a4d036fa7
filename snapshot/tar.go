package snapshot

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// copyBufferSize is the chunk in which file data is streamed into a layer:
// large enough that a big file costs few syscalls and little per-chunk
// overhead, small enough to never matter for memory.
const copyBufferSize = 1 << 20

// paxXattrPrefix is how PAX headers carry an extended attribute
// (the convention of star, GNU tar, containerd and docker).
const paxXattrPrefix = "SCHILY.xattr."

// layerWriter is the one tar writer for layers: every rule that makes two
// runs give the same bytes lives here.
type layerWriter struct {
	tw     *tar.Writer
	epoch  *time.Time
	buf    []byte
	xr     xattrReader
	linked map[fileKey]string // first name written for each multiply linked inode
	// descend writes what a directory holds, after the directory's own
	// entry: walk for one upper dir; the merged writer (squash.go) walks
	// only what a run of layers changed.
	descend func(abs, name string) error
	// linkKey says which entries are links of one another: the inode for
	// one upper dir; the merged writer also tells layers apart.
	linkKey func(name string, st *unix.Stat_t) fileKey
}

// inodeKey pairs the entries of one directory tree that share an inode.
func inodeKey(_ string, st *unix.Stat_t) fileKey { return fileKey{uint64(st.Dev), st.Ino} }

type fileKey struct{ dev, ino uint64 }

// layerBuffers holds the copy buffers and output buffers of finished
// layer writers and extractors: a layer of a few small files would
// otherwise cost more in allocating (and zeroing) 1-2 MiB than in writing
// or unpacking it (Unpack hashes every layer's tree; FuzzApply unpacks
// thousands of layers a second).
var layerBuffers = sync.Pool{New: func() any {
	return &layerBuf{copy: make([]byte, copyBufferSize), out: bufio.NewWriterSize(nil, copyBufferSize)}
}}

type layerBuf struct {
	copy []byte
	out  *bufio.Writer
}

func writeLayer(w io.Writer, dir string, opts WriteOptions) error {
	return withLayerWriter(w, opts, func(lw *layerWriter) error {
		lw.descend, lw.linkKey = lw.walk, inodeKey
		return lw.walk(dir, "")
	})
}

// withLayerWriter runs fill with a layer writer on w (pooled buffers, the
// options applied) and finishes the tar when fill succeeds.
func withLayerWriter(w io.Writer, opts WriteOptions, fill func(*layerWriter) error) error {
	b := layerBuffers.Get().(*layerBuf)
	defer layerBuffers.Put(b)
	b.out.Reset(w)
	defer b.out.Reset(nil) // do not keep w alive
	bw := b.out
	lw := &layerWriter{
		tw:     tar.NewWriter(bw),
		buf:    b.copy,
		linked: map[fileKey]string{},
	}
	if opts.SourceDateEpoch != nil {
		e := opts.SourceDateEpoch.Truncate(time.Second)
		lw.epoch = &e
	}
	if err := fill(lw); err != nil {
		return err
	}
	if err := lw.tw.Close(); err != nil {
		return fmt.Errorf("finishing layer tar: %w", err)
	}
	return bw.Flush()
}

// walk writes the entries of the directory abs (named rel in the layer)
// in byte order of their names, each directory followed by its contents.
func (lw *layerWriter) walk(abs, rel string) error {
	names, err := readNames(abs)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := lw.entry(abs+"/"+name, path.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %w", dir, err)
	}
	sort.Strings(names)
	return names, nil
}

func (lw *layerWriter) entry(abs, name string) error {
	var st unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil {
		return fmt.Errorf("stat %s: %w", abs, err)
	}
	xattrs, err := lw.xr.read(abs)
	if err != nil {
		return err
	}
	if err := checkFaithful(xattrs); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// Whiteouts first: every whiteout of an upper is a link to one inode,
	// and must not come out as a hardlink to the first of them.
	if isWhiteoutNode(&st) || isXWhiteout(&st, xattrs) {
		dir, base := path.Split(name)
		return lw.write(&tar.Header{Typeflag: tar.TypeReg, Name: dir + whiteoutName(base), ModTime: lw.time(st.Mtim)})
	}
	hdr := lw.header(name, &st, xattrs)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := lw.write(hdr); err != nil {
			return err
		}
		if isOpaqueDir(xattrs) {
			marker := &tar.Header{Typeflag: tar.TypeReg, Name: name + "/" + opaqueMarker, ModTime: hdr.ModTime}
			if err := lw.write(marker); err != nil {
				return err
			}
		}
		return lw.descend(abs, name)
	case unix.S_IFSOCK:
		return nil // a socket is only meaningful while its server runs
	}
	if st.Nlink > 1 {
		key := lw.linkKey(name, &st)
		if first, ok := lw.linked[key]; ok {
			return lw.write(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: first,
				Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime})
		}
		lw.linked[key] = name
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if err := lw.write(hdr); err != nil {
			return err
		}
		return lw.copyFile(abs, st.Size)
	case unix.S_IFLNK:
		target, err := os.Readlink(abs)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("%s: unknown file type %#o", name, st.Mode&unix.S_IFMT)
	}
	return lw.write(hdr)
}

// header holds what every entry shares: the permission bits including
// setuid, setgid and sticky, numeric owners only (names would depend on
// the host's /etc/passwd), the mtime in whole seconds, and the xattrs.
// No atime or ctime: they change on every read or chmod.
func (lw *layerWriter) header(name string, st *unix.Stat_t, xattrs []xattr) *tar.Header {
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: lw.time(st.Mtim),
	}
	for _, x := range xattrs {
		if !layerXattr(x.name) {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattrPrefix+x.name] = string(x.value)
	}
	return hdr
}

// time truncates to seconds (a tar without PAX has no more) and clamps
// to SOURCE_DATE_EPOCH.
func (lw *layerWriter) time(ts unix.Timespec) time.Time {
	t := time.Unix(ts.Sec, 0).UTC()
	if lw.epoch != nil && t.After(*lw.epoch) {
		return *lw.epoch
	}
	return t
}

// write leaves the format to archive/tar, which picks USTAR and switches
// to PAX only for what USTAR cannot hold (long names, xattrs, large ids).
func (lw *layerWriter) write(hdr *tar.Header) error {
	if err := lw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar header for %s: %w", hdr.Name, err)
	}
	return nil
}

func (lw *layerWriter) copyFile(abs string, size int64) error {
	fd, err := openNoatime(abs)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// Straight from the descriptor into the tar through our 1 MiB buffer:
	// an os.File would cost a poller registration per file, and io.Copy
	// a 32 KiB buffer.
	n, err := io.CopyBuffer(writerOnly{lw.tw}, io.LimitReader(fdReader(fd), size), lw.buf)
	if err != nil {
		return fmt.Errorf("copying %s: %w", abs, err)
	}
	if n != size {
		return fmt.Errorf("copying %s: file shrank from %d to %d bytes while being written", abs, size, n)
	}
	return nil
}

// openNoatime opens a file of the upper for reading without following a
// symlink and without updating its atime, which would dirty the inode of
// every file a layer holds (O_NOATIME needs ownership or CAP_FOWNER).
func openNoatime(path string) (int, error) {
	for _, flags := range []int{unix.O_NOATIME, 0} {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
		if errors.Is(err, unix.EPERM) && flags != 0 {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
	panic("unreachable")
}

// fdReader reads a descriptor with plain read(2) calls.
type fdReader int

func (f fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

type readerOnly struct{ io.Reader }

type writerOnly struct{ io.Writer }
