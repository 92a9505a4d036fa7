package executor

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
)

// extractArchive unpacks src into dest when it is a tar archive, plain or
// compressed with gzip, bzip2, xz or zstd, as ADD does with local archives
// (BuildKit detects the compression by content, as here, not by name). It
// reports false, with nothing written, when src is not one. With a sum,
// the archive is read to its end and checked against it, as a copied file
// is: what is unpacked is what the cache key describes.
func (c *copier) extractArchive(src srcFile, sum v1.Hash, dest string) (bool, error) {
	fd, err := src.open()
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	h := sha256.New()
	raw := io.TeeReader(&fileReader{fd: fd, left: src.fi.Size(), name: src.name}, h)
	r, err := cache.Decompress(raw, cache.ArchiveCodecs)
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
		if changed := (*changedError)(nil); errors.As(err, &changed) {
			return true, changed
		}
		return true, fmt.Errorf("extracting %s: %w", src.name, err)
	}
	if sum.Hex == "" {
		return true, nil
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		if changed := (*changedError)(nil); errors.As(err, &changed) {
			return true, changed
		}
		return true, fmt.Errorf("extracting %s: %w", src.name, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum.Hex {
		return true, &changedError{src.name}
	}
	return true, nil
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
