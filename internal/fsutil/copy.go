package fsutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// bufs recycles the buffers of CopyData and HashReader: a COPY copies and
// hashes thousands of files, and a fresh buffer for each kept the garbage
// collector busy.
var bufs = sync.Pool{New: func() any { return new([256 << 10]byte) }}

// CreateNew creates the regular file path for writing, with mode 0600
// until its owner and mode are set: never through a symlink, and never
// over anything already there.
func CreateNew(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
}

// CopyData copies what src yields to out and returns how many bytes it
// copied. Without a hash, out.ReadFrom copies, which the kernel does
// (copy_file_range) when src is an *os.File or an [io.LimitedReader] of
// one. With h, the data goes through a pooled buffer and into h too, so
// that what is hashed is what is written.
func CopyData(out *os.File, src io.Reader, h hash.Hash) (int64, error) {
	if h == nil {
		return out.ReadFrom(src)
	}
	buf := bufs.Get().(*[256 << 10]byte)
	defer bufs.Put(buf)
	return io.CopyBuffer(io.MultiWriter(out, h), src, buf[:])
}

// CopyFile creates dst as CreateNew does and copies src into it as
// CopyData does. On error, what was written stays for the caller to
// remove (it is usually inside a directory that is thrown away whole).
func CopyFile(dst string, src io.Reader, h hash.Hash) (int64, error) {
	out, err := CreateNew(dst)
	if err != nil {
		return 0, err
	}
	n, err := CopyData(out, src, h)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// HashReader returns the SHA-256 of what r yields, in hex, and its length.
// It checks ctx between reads, so that hashing gigabytes stops soon after
// ctx is done.
func HashReader(ctx context.Context, r io.Reader) (string, int64, error) {
	h := sha256.New()
	buf := bufs.Get().(*[256 << 10]byte)
	defer bufs.Put(buf)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", n, err
		}
		k, err := r.Read(buf[:])
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), n, nil
		}
		if err != nil {
			return "", n, err
		}
	}
}
