package executor

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/snapshot"
)

// extractArchive unpacks src into dest when it is a tar archive, plain or
// compressed with gzip, bzip2, xz or zstd, as ADD does with local archives
// (BuildKit detects the compression by content, as here, not by name). It
// reports false, with nothing written, when src is not one.
func (c *copier) extractArchive(src, name, dest string) (bool, error) {
	f, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, err := decompress(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return false, nil // broken compression: copy the file as it is
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(512)
	if !isTarHeader(head) {
		return false, nil
	}
	if _, err := mkdirAllIn(c.root, dest, 0o755, 0, 0); err != nil {
		return true, fmt.Errorf("creating %s: %w", dest, err)
	}
	if err := snapshot.ExtractLimit(br, c.root, dest, c.maxArchive); err != nil {
		return true, fmt.Errorf("extracting %s: %w", name, err)
	}
	return true, nil
}

// decompress returns a reader of the decompressed stream: gzip, bzip2, xz
// and zstd are recognised by their magic numbers, anything else is read
// as it is.
func decompress(br *bufio.Reader) (io.ReadCloser, error) {
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case bytes.HasPrefix(magic, []byte("BZh")):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		r, err := xz.NewReader(br)
		return io.NopCloser(r), err
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		// One goroutine: a Decoder's default is one per core, kept until
		// Close. The window cap is the one docker's decompressor has (the
		// library default, written out), so archives made with
		// `zstd --long=29` unpack, and a hostile frame cannot ask for more.
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(512<<20))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// isTarHeader checks a 512-byte block for a tar header: a ustar magic, or
// a valid header checksum for old v7 archives.
func isTarHeader(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	if bytes.Equal(b[257:262], []byte("ustar")) {
		return true
	}
	_, err := tar.NewReader(bytes.NewReader(b)).Next()
	return err == nil
}

func mkfifo(p string) error { return unix.Mkfifo(p, 0o600) }

func lutimes(p string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}
