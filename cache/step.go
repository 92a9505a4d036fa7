package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Entry is what a step produced, enough to reuse it without running it.
type Entry struct {
	Layer   *Layer     // nil when the step made no layer
	Config  v1.Config  // the image's container config after the step
	History v1.History // the step's history entry
}

// Step is one step of a build as the cache knows it: its key and what it
// produced.
type Step struct {
	Key   Key
	Entry Entry
}

// entryVersion is written into each entry file; a file of another
// version is ignored like a missing one.
const entryVersion = 1

type entryFile struct {
	Version int `json:"v"`
	Entry
}

func (s *Store) stepPath(k Key) string {
	hx := k.String()
	return filepath.Join(s.root, stepsDir, hx[:2], hx)
}

// LookupStep returns the entry recorded for k, or ErrNotFound. A hit
// records the time of use, for pruning least recently used entries first.
// An entry whose layer is missing (no blob, no snapshot) counts as absent.
//
// The entry file's mtime is its last use: touching it is one syscall and
// needs no lock, and prune sorts on it.
func (s *Store) LookupStep(k Key) (Entry, error) {
	p := s.stepPath(k)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, fmt.Errorf("reading cache entry %s: %w", k, err)
	}
	var ef entryFile
	if err := json.Unmarshal(data, &ef); err != nil || ef.Version != entryVersion {
		// A damaged or foreign entry is a miss; the step's rerun replaces it.
		return Entry{}, ErrNotFound
	}
	if ef.Layer != nil && !s.HasLayer(ef.Layer.Descriptor) {
		return Entry{}, ErrNotFound
	}
	now := time.Now()
	os.Chtimes(p, now, now) // a read-only store still serves hits
	return ef.Entry, nil
}

// RecordStep records e under k, replacing any earlier entry. The entry
// becomes visible to every process at once, complete, by rename.
func (s *Store) RecordStep(k Key, e Entry) error {
	if e.Layer != nil && !s.HasLayer(e.Layer.Descriptor) {
		return fmt.Errorf("recording cache entry %s: layer %s: %w", k, e.Layer.Descriptor.Digest, ErrNotFound)
	}
	data, err := json.Marshal(entryFile{Version: entryVersion, Entry: e})
	if err != nil {
		return fmt.Errorf("encoding cache entry %s: %w", k, err)
	}
	if err := s.writeSmall(s.stepPath(k), data); err != nil {
		return fmt.Errorf("recording cache entry %s: %w", k, err)
	}
	return nil
}
