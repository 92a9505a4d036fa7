package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// markerName is the file beside fs/ in every snapshot directory that says
// what the snapshot is. It is written before the directory is renamed
// into place, so a published snapshot without one was made by an older
// version (or by hand), and [Store.Check] reports it.
const markerName = "snapshot.json"

const markerVersion = 1

// Where a snapshot came from.
const (
	originUnpack = "unpack" // a layer tar, verified against its diff ID
	originCommit = "commit" // an upper directory
	originMerge  = "merge"  // a merged chain bottom (flat-…)
)

// marker is the content of snapshot.json.
type marker struct {
	Version int    `json:"version"`
	ID      ID     `json:"id"`
	Origin  string `json:"origin"`
	// DiffID is the layer's diff ID ("sha256:<hex>") when the snapshot is
	// one layer: checked against the stream (unpack) or computed by the
	// layer writer from the upper (commit).
	DiffID string `json:"diffID,omitempty"`
	// Tree, when set, is what WriteLayer gives for fs/ with these
	// options: Check recomputes it. For a committed layer it is the diff
	// ID itself.
	Tree *treeDigest `json:"tree,omitempty"`
	// Chain lists the layers a merged snapshot holds, bottom first.
	Chain []ID `json:"chain,omitempty"`
}

type treeDigest struct {
	Digest string `json:"digest"`
	// SourceDateEpoch is WriteOptions.SourceDateEpoch in Unix seconds
	// (the layer writer keeps no more).
	SourceDateEpoch *int64 `json:"sourceDateEpoch,omitempty"`
}

func (d *treeDigest) options() WriteOptions {
	if d.SourceDateEpoch == nil {
		return WriteOptions{}
	}
	t := time.Unix(*d.SourceDateEpoch, 0).UTC()
	return WriteOptions{SourceDateEpoch: &t}
}

func newTreeDigest(hex string, opts WriteOptions) *treeDigest {
	d := &treeDigest{Digest: "sha256:" + hex}
	if opts.SourceDateEpoch != nil {
		sec := opts.SourceDateEpoch.Unix()
		d.SourceDateEpoch = &sec
	}
	return d
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// layerID checks that id can name a layer: the hex of a sha256 diff ID.
func layerID(id ID) error {
	if !hex64.MatchString(string(id)) {
		return fmt.Errorf("snapshot id %q is not the hex of a sha256 diff ID", id)
	}
	return nil
}

// writeMarker writes dir/snapshot.json. Like the snapshot's files it is
// not fsynced: a snapshot is a cache, and a torn marker makes Check
// remove the snapshot, which is then made again.
func writeMarker(dir string, m marker) error {
	m.Version = markerVersion
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, markerName), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing snapshot marker: %w", err)
	}
	return nil
}

// errNoMarker means a snapshot directory has no snapshot.json.
var errNoMarker = errors.New("no marker")

func readMarker(dir string) (marker, error) {
	data, err := os.ReadFile(filepath.Join(dir, markerName))
	if errors.Is(err, os.ErrNotExist) {
		return marker{}, errNoMarker
	}
	if err != nil {
		return marker{}, err
	}
	var m marker
	if err := json.Unmarshal(data, &m); err != nil {
		return marker{}, fmt.Errorf("unreadable marker: %w", err)
	}
	if m.Version != markerVersion {
		return marker{}, fmt.Errorf("marker version %d, want %d", m.Version, markerVersion)
	}
	return m, nil
}

// hashTree returns the hex sha256 of the layer WriteLayer makes of dir.
func hashTree(dir string, opts WriteOptions) (string, error) {
	h := sha256.New()
	if err := writeLayer(h, dir, opts); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// openLayer: see [Store.OpenLayer].
func (s *Store) openLayer(id ID) (io.ReadCloser, error) {
	if err := layerID(id); err != nil {
		return nil, err
	}
	m, err := readMarker(s.idDir(id))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	if m.Origin != originCommit || m.Tree == nil {
		return nil, fmt.Errorf("snapshot %s was not committed as a layer by a build: it cannot give its layer tar", id)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeLayer(pw, s.dir(id), m.Tree.options()))
	}()
	return pr, nil
}

// givesLayer: see [Store.GivesLayer].
func (s *Store) givesLayer(id ID) bool {
	if layerID(id) != nil || !s.exists(id) {
		return false
	}
	m, err := readMarker(s.idDir(id))
	return err == nil && m.Origin == originCommit && m.Tree != nil
}
