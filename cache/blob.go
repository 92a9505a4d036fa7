package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/internal/fsutil"
)

// blobPath is where a blob lives. The digest is checked first because it
// becomes a file name: a hash from a damaged manifest or a user's argument
// must not name a path outside blobs/.
func (s *Store) blobPath(h v1.Hash) (string, error) {
	if err := checkHash(h); err != nil {
		return "", err
	}
	return filepath.Join(s.root, blobsDir, h.Hex), nil
}

func checkHash(h v1.Hash) error {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return fmt.Errorf("unsupported digest %q", h.String())
	}
	for _, c := range []byte(h.Hex) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("malformed digest %q", h.String())
		}
	}
	return nil
}

// HasBlob reports whether the blob is present.
func (s *Store) HasBlob(h v1.Hash) bool {
	p, err := s.blobPath(h)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// OpenBlob opens a blob for reading; ErrNotFound if absent.
func (s *Store) OpenBlob(h v1.Hash) (io.ReadCloser, error) {
	p, err := s.blobPath(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	return f, err
}

// BlobSize returns a blob's size; ErrNotFound if absent.
func (s *Store) BlobSize(h v1.Hash) (int64, error) {
	p, err := s.blobPath(h)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// readBlob reads a small blob (manifest, config) whole.
func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	rc, err := s.OpenBlob(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := readAllLimited(rc, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", h, err)
	}
	return data, nil
}

// PutBlob stores r. If want is non-zero the content must hash to it, or
// nothing is stored. It returns the digest and size.
//
// A blob that is already present is not written again, and r is then not
// read at all. Two writers of the same blob (goroutines or processes)
// each write their own temporary file and rename it into place; the
// second rename replaces identical bytes, which readers cannot notice.
func (s *Store) PutBlob(r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	if want != (v1.Hash{}) {
		if err := checkHash(want); err != nil {
			return v1.Hash{}, 0, err
		}
		if size, err := s.BlobSize(want); err == nil {
			return want, size, nil
		}
	}
	f, err := s.tempFile("blob-*")
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Cleanup()
	return writeBlob(f, s.path(blobsDir), r, want)
}

// writeBlob is the one write-verify-rename of a blob, for the store and
// for layout exports: it streams r into the pending file f, hashing it,
// and commits f into dir (a blobs/sha256 directory) under its digest once
// that is want (any digest when want is zero).
func writeBlob(f *fsutil.PendingFile, dir string, r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	hw := newHashWriter(f)
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(hw, r, buf); err != nil {
		if want != (v1.Hash{}) {
			return v1.Hash{}, 0, fmt.Errorf("writing blob %s: %w", want, err)
		}
		return v1.Hash{}, 0, fmt.Errorf("writing blob: %w", err)
	}
	got := hw.digest()
	if err := commitBlob(f, dir, got, want); err != nil {
		return v1.Hash{}, 0, err
	}
	return got, hw.n, nil
}

// commitBlob renames the complete pending file f, whose content hashes to
// got, into dir under that digest, once got is want (any digest when want
// is zero) and f is on disk; then it fsyncs dir.
func commitBlob(f *fsutil.PendingFile, dir string, got, want v1.Hash) error {
	if want != (v1.Hash{}) && got != want {
		return fmt.Errorf("blob digest mismatch: want %s, got %s", want, got)
	}
	if err := f.Commit(filepath.Join(dir, got.Hex)); err != nil {
		return fmt.Errorf("storing blob %s: %w", got, err)
	}
	return nil
}

// hashWriter writes through to w while hashing and counting.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashWriter(w io.Writer) *hashWriter { return &hashWriter{w: w, h: sha256.New()} }

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

func (hw *hashWriter) digest() v1.Hash { return sha256Hash(hw.h) }

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

func sha256Of(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
