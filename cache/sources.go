package cache

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/internal/fsutil"
)

// maxSources bounds how many repositories are remembered per blob: a
// push needs one that still holds it, and the newest is the likeliest.
const maxSources = 8

// BlobSources returns the repositories (registry/repository) that a pull
// or a push saw holding blob h, newest first. They are hints for
// cross-repository mounts: a registry may since have lost the blob, so a
// refused mount falls back to an upload.
func (s *Store) BlobSources(h v1.Hash) []string {
	if checkHash(h) != nil {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(s.root, sourcesDir, h.Hex))
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// AddBlobSource records that repo holds each of the blobs. Two processes
// recording the same blob at once may lose one of the two lines; a lost
// hint costs an upload, never a wrong image, so there is no lock.
func (s *Store) AddBlobSource(repo string, blobs ...v1.Hash) error {
	if repo == "" || strings.ContainsAny(repo, "\n\r") {
		return errors.New("invalid repository name for a blob source")
	}
	for _, h := range blobs {
		if err := checkHash(h); err != nil {
			return err
		}
		list := []string{repo}
		for _, r := range s.BlobSources(h) {
			if r != repo && len(list) < maxSources {
				list = append(list, r)
			}
		}
		p := filepath.Join(s.root, sourcesDir, h.Hex)
		err := fsutil.WriteAtomic(p, 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, strings.Join(list, "\n")+"\n")
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// remoteBlob reports whether blob h, absent from the store, is known to
// a registry. A build on a --cache-from hit lists such a layer in its
// image without downloading it: a push mounts it from there, and a step
// or an export that needs its bytes fetches it first.
func (s *Store) remoteBlob(h v1.Hash) bool { return len(s.BlobSources(h)) > 0 }

// pruneSources forgets the sources of blobs the store no longer holds.
// Those of the layers a tagged image lists without holding them stay.
func (s *Store) pruneSources(tagged *refs) {
	ents, _ := os.ReadDir(filepath.Join(s.root, sourcesDir))
	for _, e := range ents {
		if h := (v1.Hash{Algorithm: "sha256", Hex: e.Name()}); !s.HasBlob(h) && !tagged.blobs[h] {
			os.Remove(filepath.Join(s.root, sourcesDir, e.Name()))
		}
	}
}
