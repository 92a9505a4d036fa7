package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/internal/fsutil"
)

const (
	// annRefName holds the familiar name, which is what `skopeo inspect
	// oci:ROOT:app:latest` and umoci match against.
	annRefName = "org.opencontainers.image.ref.name"
	// annImageName is containerd's fully qualified name.
	annImageName = "io.containerd.image.name"
)

// Tag points name at the manifest, replacing any earlier image of that
// name. name is normalised with NormalizeName.
func (s *Store) Tag(nm string, manifest v1.Descriptor) error {
	ref, err := parseName(nm)
	if err != nil {
		return err
	}
	if _, ok := ref.(name.Digest); ok {
		return fmt.Errorf("tagging %s: a digest reference cannot be a tag", nm)
	}
	m, raw, err := s.manifestInfo(manifest.Digest)
	if err != nil {
		return fmt.Errorf("tagging %s: %w", nm, err)
	}
	short := familiar(ref)
	desc := v1.Descriptor{MediaType: m.MediaType, Digest: manifest.Digest, Size: int64(len(raw))}
	if err := s.recordImage(ImageRecord{Manifest: desc, ID: m.Config.Digest}); err != nil {
		return err
	}
	desc.Annotations = map[string]string{annRefName: short, annImageName: fullName(ref)}
	err = s.updateIndex(func(ds []v1.Descriptor) ([]v1.Descriptor, bool) {
		for _, d := range ds {
			if d.Annotations[annRefName] == short && d.Digest == desc.Digest && d.MediaType == desc.MediaType &&
				d.Size == desc.Size && d.Annotations[annImageName] == desc.Annotations[annImageName] {
				return ds, false // already so: rewriting index.json would cost two fsyncs
			}
		}
		ds = slices.DeleteFunc(ds, func(d v1.Descriptor) bool { return d.Annotations[annRefName] == short })
		ds = append(ds, desc)
		slices.SortStableFunc(ds, func(a, b v1.Descriptor) int {
			return strings.Compare(a.Annotations[annRefName], b.Annotations[annRefName])
		})
		return ds, true
	})
	if err != nil {
		return fmt.Errorf("tagging %s: %w", nm, err)
	}
	return nil
}

// Untag removes a name; ErrNotFound if it is not there.
func (s *Store) Untag(nm string) error {
	short, err := NormalizeName(nm)
	if err != nil {
		return err
	}
	found := false
	err = s.updateIndex(func(ds []v1.Descriptor) ([]v1.Descriptor, bool) {
		n := len(ds)
		ds = slices.DeleteFunc(ds, func(d v1.Descriptor) bool { return d.Annotations[annRefName] == short })
		found = len(ds) < n
		return ds, found
	})
	if err != nil {
		return fmt.Errorf("untagging %s: %w", nm, err)
	}
	if !found {
		return fmt.Errorf("image %s: %w", nm, ErrNotFound)
	}
	return nil
}

// updateIndex rewrites index.json with fn's result under the index lock,
// so that concurrent taggers (goroutines or processes) never lose each
// other's tags. Readers need no lock: the file is replaced by rename.
func (s *Store) updateIndex(fn func([]v1.Descriptor) ([]v1.Descriptor, bool)) error {
	l, err := fsutil.Acquire(s.path(indexLockFile), true)
	if err != nil {
		return fmt.Errorf("locking index: %w", err)
	}
	defer l.Release()
	idx, err := readIndex(s.path(indexFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var ds []v1.Descriptor
	if idx != nil {
		ds = idx.Manifests
	}
	ds, changed := fn(ds)
	if !changed {
		return nil
	}
	return writeIndex(s.path(indexFile), ds)
}

// tags returns the named descriptors of index.json.
func (s *Store) tags() ([]v1.Descriptor, error) {
	idx, err := readIndex(s.path(indexFile))
	if err != nil {
		return nil, err
	}
	var ds []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations[annRefName] != "" {
			ds = append(ds, d)
		}
	}
	return ds, nil
}

// record turns a tagged descriptor into an ImageRecord.
func (s *Store) record(d v1.Descriptor) (ImageRecord, error) {
	m, _, err := s.manifestInfo(d.Digest)
	if err != nil {
		return ImageRecord{}, err
	}
	return ImageRecord{
		Name:     d.Annotations[annRefName],
		Manifest: v1.Descriptor{MediaType: m.MediaType, Digest: d.Digest, Size: d.Size},
		ID:       m.Config.Digest,
	}, nil
}

// Images lists the tagged images, sorted by name. A tag whose manifest
// cannot be read is left out; Lookup of that name reports why.
func (s *Store) Images() ([]ImageRecord, error) {
	ds, err := s.tags()
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	var recs []ImageRecord
	for _, d := range ds {
		if rec, err := s.record(d); err == nil {
			recs = append(recs, rec)
		}
	}
	slices.SortFunc(recs, func(a, b ImageRecord) int { return strings.Compare(a.Name, b.Name) })
	return recs, nil
}

// Lookup finds an image by name, by ID or unique ID prefix (with or without
// "sha256:"), or by manifest digest ("sha256:…" or "name@sha256:…").
//
// A bare hex string that is also a valid name ("cafe") is tried as a name
// first, as docker does.
func (s *Store) Lookup(ref string) (ImageRecord, error) {
	rec, err := s.lookup(ref)
	if err != nil {
		return ImageRecord{}, fmt.Errorf("image %s: %w", ref, err)
	}
	return rec, nil
}

func (s *Store) lookup(ref string) (ImageRecord, error) {
	if hx, prefixed, ok := idLike(ref); ok {
		if len(hx) == 64 {
			h := v1.Hash{Algorithm: "sha256", Hex: hx}
			if rec, err := s.byID(h); err == nil {
				return rec, nil
			}
			return s.byManifest(h, "")
		}
		if !prefixed {
			if rec, err := s.byName(ref); !errors.Is(err, ErrNotFound) {
				return rec, err
			}
		}
		return s.byIDPrefix(hx)
	}
	if strings.Contains(ref, "@") {
		d, err := name.NewDigest(ref)
		if err != nil {
			return ImageRecord{}, fmt.Errorf("invalid reference: %w", err)
		}
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return ImageRecord{}, err
		}
		repo, _, _ := strings.Cut(familiar(d), "@")
		return s.byManifest(h, repo)
	}
	return s.byName(ref)
}

// idLike reports whether ref looks like an image ID or a prefix of one:
// at least 4 lowercase hex digits, "sha256:" optional.
func idLike(ref string) (hx string, prefixed, ok bool) {
	hx, prefixed = strings.CutPrefix(ref, "sha256:")
	if len(hx) < 4 || len(hx) > 64 {
		return "", false, false
	}
	for _, c := range []byte(hx) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false, false
		}
	}
	return hx, prefixed, true
}

func (s *Store) byName(ref string) (ImageRecord, error) {
	short, err := NormalizeName(ref)
	if err != nil {
		return ImageRecord{}, err
	}
	ds, err := s.tags()
	if err != nil {
		return ImageRecord{}, err
	}
	for _, d := range ds {
		if d.Annotations[annRefName] == short {
			return s.record(d)
		}
	}
	return ImageRecord{}, ErrNotFound
}

// byID finds an image by config digest: a tagged one first (so the record
// carries a name), else the record PutImage or Tag left.
func (s *Store) byID(id v1.Hash) (ImageRecord, error) {
	ds, err := s.tags()
	if err != nil {
		return ImageRecord{}, err
	}
	for _, d := range ds {
		if rec, err := s.record(d); err == nil && rec.ID == id {
			return rec, nil
		}
	}
	return s.imageByID(id)
}

// byManifest finds an image by manifest digest, preferring a tag of repo
// ("app" for "app@sha256:…") for the record's name.
func (s *Store) byManifest(h v1.Hash, repo string) (ImageRecord, error) {
	ds, err := s.tags()
	if err != nil {
		return ImageRecord{}, err
	}
	var named *ImageRecord
	for _, d := range ds {
		if d.Digest != h {
			continue
		}
		rec, err := s.record(d)
		if err != nil {
			continue
		}
		if named == nil || repo != "" && strings.HasPrefix(rec.Name, repo+":") {
			named = &rec
		}
	}
	if named != nil {
		return *named, nil
	}
	m, raw, err := s.manifestInfo(h)
	if err != nil {
		// Absent, or some other blob (a layer, a config): no image has
		// this manifest digest.
		return ImageRecord{}, ErrNotFound
	}
	return ImageRecord{
		Manifest: v1.Descriptor{MediaType: m.MediaType, Digest: h, Size: int64(len(raw))},
		ID:       m.Config.Digest,
	}, nil
}

func (s *Store) byIDPrefix(prefix string) (ImageRecord, error) {
	ids := map[v1.Hash]bool{}
	ents, err := os.ReadDir(filepath.Join(s.root, imagesDir))
	if err != nil {
		return ImageRecord{}, err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			id := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
			if _, err := s.imageByID(id); err == nil {
				ids[id] = true
			}
		}
	}
	if recs, err := s.Images(); err == nil {
		for _, rec := range recs {
			if strings.HasPrefix(rec.ID.Hex, prefix) {
				ids[rec.ID] = true
			}
		}
	}
	switch len(ids) {
	case 0:
		return ImageRecord{}, ErrNotFound
	case 1:
		for id := range ids {
			return s.byID(id)
		}
	}
	return ImageRecord{}, fmt.Errorf("ID prefix %s is ambiguous: %d images match", prefix, len(ids))
}
