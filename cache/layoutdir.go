package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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

func (l *LayoutDir) blobPath(h v1.Hash) (string, error) {
	if err := checkHash(h); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, blobsDir, h.Hex), nil
}

// ReadBlob reads a small blob whole, at most max bytes, checked against
// its digest.
func (l *LayoutDir) ReadBlob(h v1.Hash, max int64) ([]byte, error) {
	p, err := l.blobPath(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
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

// CopyBlob copies blob h into s, verified against its digest.
func (l *LayoutDir) CopyBlob(s *Store, h v1.Hash) error {
	p, err := l.blobPath(h)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	_, _, err = s.PutBlob(f, h)
	return err
}
