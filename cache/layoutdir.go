package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// LayoutDir is an OCI image layout directory outside the store, such as
// one ExportLayout wrote, read without trusting it: digests are checked
// before they become paths, sizes are bounded, and blobs are verified as
// they are copied.
type LayoutDir struct {
	dir string
	idx *v1.IndexManifest
}

// OpenLayoutDir reads dir's index.
func OpenLayoutDir(dir string) (*LayoutDir, error) {
	if fi, err := os.Lstat(filepath.Join(dir, indexFile)); err == nil && (!fi.Mode().IsRegular() || fi.Size() > maxManifestSize) {
		return nil, fmt.Errorf("%s is not a regular file of at most %d bytes", filepath.Join(dir, indexFile), maxManifestSize)
	}
	idx, err := readIndex(filepath.Join(dir, indexFile))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, indexFile), err)
	}
	return &LayoutDir{dir: dir, idx: idx}, nil
}

// Find returns the manifest named nm (its ref.name annotation).
func (l *LayoutDir) Find(nm string) (v1.Descriptor, error) {
	for _, d := range l.idx.Manifests {
		if d.Annotations[annRefName] == nm {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image named %q in %s: %w", nm, l.dir, ErrNotFound)
}

// open opens blob h, which must be a regular file (not a symlink to
// /dev/zero, not a FIFO that never ends).
func (l *LayoutDir) open(h v1.Hash) (*os.File, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(l.dir, blobsDir, h.Hex), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("blob %s in %s is not a regular file", h, l.dir)
	}
	return f, nil
}

// ReadBlob reads a small blob whole, at most max bytes, checked against
// its digest.
func (l *LayoutDir) ReadBlob(h v1.Hash, max int64) ([]byte, error) {
	f, err := l.open(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("blob %s is over %d bytes", h, max)
	}
	if got := sha256Of(data); got != h {
		return nil, fmt.Errorf("blob %s: its content hashes to %s", h, got)
	}
	return data, nil
}

// CopyBlob copies the blob d describes into s, verified against its
// digest and size; no more than its size is read.
func (l *LayoutDir) CopyBlob(s *Store, d v1.Descriptor) error {
	f, err := l.open(d.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	_, n, err := s.PutBlob(io.LimitReader(f, d.Size+1), d.Digest)
	if err == nil && n != d.Size {
		err = fmt.Errorf("blob %s has %d bytes, its descriptor says %d", d.Digest, n, d.Size)
	}
	return err
}
