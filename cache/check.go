package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/builderdev/builder/internal/fsutil"
)

// Finding is one problem [Store.Check] found.
type Finding struct {
	Subject  string // what is damaged: "blob sha256:…", "tag app:latest", "session tmp/s-…"
	Problem  string // what is wrong with it
	Repaired bool   // Check removed the subject
}

// Check verifies the whole store: every blob against its digest; every
// tag in index.json and every image record in images/ names a complete
// image (manifest, config and every layer present, sound and of the size
// their descriptors say); every step-cache entry's layer blob is there and
// sound; remembered context hashes decode; no session of a dead process
// and no temporary file of a dead writer is left. Blobs nothing refers to
// are not problems: they are Prune's business, and so are step entries of
// another entry version.
//
// With repair, Check removes what it finds broken, and only that: a
// damaged blob (which also lets a later pull or build write it again: a
// blob that is present is never rewritten), a tag or image record whose
// image is incomplete, an entry whose layer is gone, a dead session. A
// complete image is never touched, tagged or not. Blobs are judged first,
// so that the images and entries that need a damaged blob are judged
// broken whether or not it has been removed yet. An unreadable index.json
// is reported and left alone: guessing would lose tags.
//
// Check takes no lock. Its caller holds [Store.BuildLock] for a check, so
// that a running prune cannot show half-removed images, and
// [Store.ExclusiveLock] for a repair, so that nothing a running build has
// written but not yet tagged is judged. A store should be opened with
// [OpenForCheck], which leaves dead sessions for Check to report.
func (s *Store) Check(ctx context.Context, repair bool) ([]Finding, error) {
	c := &checker{s: s, repair: repair, blobs: map[v1.Hash]blobState{}, images: map[v1.Hash]verdict{}}
	if err := c.checkBlobs(ctx); err != nil {
		return c.findings, err
	}
	for _, step := range []func() error{c.checkLayout, c.checkTags, c.checkRecords, c.checkSteps, c.checkContexts, c.checkTemps} {
		if err := ctx.Err(); err != nil {
			return c.findings, fmt.Errorf("checking store: %w", context.Cause(ctx))
		}
		if err := step(); err != nil {
			return c.findings, fmt.Errorf("checking store: %w", err)
		}
	}
	return c.findings, nil
}

type checker struct {
	s        *Store
	repair   bool
	blobs    map[v1.Hash]blobState // every file of blobs/sha256 named by a digest
	images   map[v1.Hash]verdict   // manifests already judged
	findings []Finding
}

type blobState struct {
	size int64
	bad  string // "" if the content matches the name, else "damaged" or "unreadable"
}

type verdict struct {
	config v1.Hash // of an image manifest; zero for an index
	err    error
}

// report records a finding; with repair it calls remove (when there is a
// way to repair) and says whether that worked.
func (c *checker) report(subject, problem string, remove func() error) {
	f := Finding{Subject: subject, Problem: problem}
	if c.repair && remove != nil {
		if err := remove(); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.Problem += fmt.Sprintf("; removing it: %v", err)
		} else {
			f.Repaired = true
		}
	}
	c.findings = append(c.findings, f)
}

func removeFile(p string) func() error { return func() error { return os.Remove(p) } }
func removeTree(p string) func() error { return func() error { return fsutil.RemoveAll(p) } }

// checkBlobs hashes every blob, several at a time: on a large store this
// is nearly all of Check's time, and reading is what it waits for.
func (c *checker) checkBlobs(ctx context.Context) error {
	dir := filepath.Join(c.s.root, blobsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("checking blobs: %w", err)
	}
	var todo []v1.Hash
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		switch {
		case checkHash(h) != nil:
			c.report(filepath.Join(blobsDir, e.Name()), "not named by a sha256 digest", removeTree(p))
		case !e.Type().IsRegular():
			c.report("blob "+h.String(), "not a regular file", removeTree(p))
		default:
			todo = append(todo, h)
		}
	}
	type result struct {
		got  v1.Hash
		size int64
		err  error
	}
	results := make([]result, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, h := range todo {
		g.Go(func() error {
			p, _ := c.s.blobPath(h)
			got, size, err := hashFile(gctx, p)
			if gctx.Err() != nil {
				return context.Cause(gctx)
			}
			results[i] = result{got, size, err}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("checking blobs: %w", err)
	}
	for i, h := range todo {
		r := results[i]
		p, _ := c.s.blobPath(h)
		switch {
		case errors.Is(r.err, os.ErrNotExist):
			// Gone since the listing: only a prune does that, and the
			// caller's lock keeps prunes out. Nothing to judge.
		case r.err != nil:
			c.blobs[h] = blobState{bad: "unreadable"}
			c.report("blob "+h.String(), fmt.Sprintf("unreadable: %v", r.err), nil)
		case r.got != h:
			c.blobs[h] = blobState{size: r.size, bad: "damaged"}
			c.report("blob "+h.String(), "content hashes to "+r.got.String(), removeFile(p))
		default:
			c.blobs[h] = blobState{size: r.size}
		}
	}
	return nil
}

// hashFile returns the SHA-256 and size of the file at p, stopping when
// ctx is cancelled (a layer may be gigabytes).
func hashFile(ctx context.Context, p string) (v1.Hash, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	sum, n, err := fsutil.HashReader(ctx, f)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: sum}, n, nil
}

// need says why the blob d describes cannot be used, or nil.
func (c *checker) need(what string, d v1.Descriptor) error {
	if err := checkHash(d.Digest); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	st, ok := c.blobs[d.Digest]
	if !ok {
		// A plain check runs beside builds: a blob written after the
		// listing (a build that tagged its image since) is judged now.
		st, ok = c.lateBlob(d.Digest)
	}
	switch {
	case !ok:
		return fmt.Errorf("%s %s is missing", what, d.Digest)
	case st.bad != "":
		return fmt.Errorf("%s %s is %s", what, d.Digest, st.bad)
	case st.size != d.Size:
		return fmt.Errorf("%s %s has %d bytes, its descriptor says %d", what, d.Digest, st.size, d.Size)
	}
	return nil
}

// lateBlob hashes blob h if it appeared after checkBlobs listed the
// directory, and remembers the verdict.
func (c *checker) lateBlob(h v1.Hash) (blobState, bool) {
	p, err := c.s.blobPath(h)
	if err != nil {
		return blobState{}, false
	}
	got, size, err := hashFile(context.Background(), p)
	if err != nil {
		return blobState{}, false
	}
	st := blobState{size: size}
	if got != h {
		st.bad = "damaged"
		c.report("blob "+h.String(), "content hashes to "+got.String(), removeFile(p))
	}
	c.blobs[h] = st
	return st, true
}

// needLayer is need for a layer, which may also be held by a snapshot
// (the store's Check runs after the snapshots' and so trusts them) or, a
// --cache-from layer, by a registry that gives it on use.
func (c *checker) needLayer(d v1.Descriptor) error {
	if _, ok := c.blobs[d.Digest]; !ok && (c.s.remoteBlob(d.Digest) || c.s.isHeld(d)) {
		return nil
	}
	return c.need("layer", d)
}

// image judges the manifest or index d names: complete means it and
// everything it refers to can be read. It returns an image's config digest.
func (c *checker) image(d v1.Descriptor, depth int) (v1.Hash, error) {
	if err := c.need("manifest", d); err != nil {
		return v1.Hash{}, err
	}
	if v, ok := c.images[d.Digest]; ok {
		return v.config, v.err
	}
	cfg, err := c.judge(d.Digest, depth)
	c.images[d.Digest] = verdict{cfg, err}
	return cfg, err
}

func (c *checker) judge(h v1.Hash, depth int) (v1.Hash, error) {
	if depth > 4 {
		return v1.Hash{}, errors.New("image indexes nested too deep")
	}
	if c.blobs[h].size > maxManifestSize {
		return v1.Hash{}, fmt.Errorf("manifest %s is too large for a manifest", h)
	}
	raw, err := c.s.readBlob(h)
	if err != nil {
		return v1.Hash{}, err
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return v1.Hash{}, fmt.Errorf("manifest %s: %w", h, err)
	}
	if probe.MediaType.IsIndex() || probe.MediaType == "" && probe.Manifests != nil {
		return v1.Hash{}, c.judgeIndex(h, raw, depth)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("manifest %s: %w", h, err)
	}
	if err := c.need("config", m.Config); err != nil {
		return v1.Hash{}, err
	}
	data, err := c.s.readBlob(m.Config.Digest)
	if err != nil {
		return v1.Hash{}, err
	}
	cf, err := parseConfig(data)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return v1.Hash{}, fmt.Errorf("config %s lists %d diff IDs for %d layers", m.Config.Digest, len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	// Every layer, foreign ones (with URLs) too: the store opens layers
	// from blobs/ only, so an image missing one cannot be built upon,
	// unless a registry is known to hold it.
	for _, l := range m.Layers {
		if err := c.needLayer(l); err != nil {
			return v1.Hash{}, err
		}
	}
	return m.Config.Digest, nil
}

// judgeIndex: an index may list platforms never pulled, so only the
// manifests that are present are judged, and one at least must be.
func (c *checker) judgeIndex(h v1.Hash, raw []byte, depth int) error {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("index %s: %w", h, err)
	}
	present := 0
	for _, d := range idx.Manifests {
		if _, ok := c.blobs[d.Digest]; !ok || checkHash(d.Digest) != nil {
			continue
		}
		present++
		if _, err := c.image(d, depth+1); err != nil {
			return fmt.Errorf("index %s: %w", h, err)
		}
	}
	if present == 0 {
		return fmt.Errorf("index %s: none of its manifests is present", h)
	}
	return nil
}

// checkLayout checks oci-layout, which Check cannot rewrite: OpenForCheck
// wrote it if it was missing, so a bad one was written by someone else.
func (c *checker) checkLayout() error {
	data, err := readSmallFile(c.s.path(layoutFile), 1<<20)
	if err != nil {
		c.report(layoutFile, err.Error(), nil)
		return nil
	}
	var l struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(data, &l); err != nil || l.Version != "1.0.0" {
		c.report(layoutFile, fmt.Sprintf("not an OCI image layout 1.0.0 marker: %q", data), nil)
	}
	return nil
}

// checkTags judges every image index.json lists and removes the broken
// ones in one rewrite of index.json.
func (c *checker) checkTags() error {
	idx, err := readIndex(c.s.path(indexFile))
	if err != nil {
		c.report(indexFile, fmt.Sprintf("%v; no tag can be read: repair or remove it by hand", err), nil)
		return nil
	}
	first := len(c.findings)
	var broken []v1.Descriptor
	for _, d := range idx.Manifests {
		if _, err := c.image(d, 0); err != nil {
			broken = append(broken, d)
			subject := "index.json entry " + d.Digest.String()
			if n := d.Annotations[annRefName]; n != "" {
				subject = "tag " + n
			}
			c.findings = append(c.findings, Finding{Subject: subject, Problem: err.Error()})
		}
	}
	if !c.repair || len(broken) == 0 {
		return nil
	}
	err = c.s.removeIndexEntries(broken)
	for i := first; i < len(c.findings); i++ {
		if err != nil {
			c.findings[i].Problem += fmt.Sprintf("; removing it: %v", err)
		} else {
			c.findings[i].Repaired = true
		}
	}
	return nil
}

// removeIndexEntries removes the descriptors of index.json that match one
// of broken by digest and name, so that a tag moved to another image
// since broken was judged stays.
func (s *Store) removeIndexEntries(broken []v1.Descriptor) error {
	return s.updateIndex(func(ds []v1.Descriptor) ([]v1.Descriptor, bool) {
		n := len(ds)
		ds = slices.DeleteFunc(ds, func(d v1.Descriptor) bool {
			return slices.ContainsFunc(broken, func(b v1.Descriptor) bool {
				return b.Digest == d.Digest && b.Annotations[annRefName] == d.Annotations[annRefName]
			})
		})
		return ds, len(ds) < n
	})
}

// checkRecords judges images/<config hex>: each must name a complete image
// whose config is that ID.
func (c *checker) checkRecords() error {
	dir := filepath.Join(c.s.root, imagesDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		id := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if checkHash(id) != nil || !e.Type().IsRegular() {
			c.report(filepath.Join(imagesDir, e.Name()), "not an image record", removeTree(p))
			continue
		}
		subject := "image record " + id.String()
		data, err := readSmallFile(p, 1<<20)
		var d v1.Descriptor
		if err == nil {
			err = json.Unmarshal(data, &d)
		}
		if err != nil {
			c.report(subject, fmt.Sprintf("unreadable: %v", err), removeFile(p))
			continue
		}
		cfg, err := c.image(d, 0)
		switch {
		case err != nil:
			c.report(subject, err.Error(), removeFile(p))
		case cfg != id:
			c.report(subject, fmt.Sprintf("manifest %s is of image %s", d.Digest, cfg), removeFile(p))
		}
	}
	return nil
}

// checkSteps judges every step-cache entry: readable, and its layer blob
// present and sound.
func (c *checker) checkSteps() error {
	root := filepath.Join(c.s.root, stepsDir)
	dirs, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		dir := filepath.Join(root, d.Name())
		if !d.IsDir() || len(d.Name()) != 2 || !isLowerHex(d.Name()) {
			c.report(filepath.Join(stepsDir, d.Name()), "not a step-cache directory", removeTree(dir))
			continue
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			c.checkStep(filepath.Join(dir, e.Name()), d.Name(), e)
		}
	}
	return nil
}

func (c *checker) checkStep(p, prefix string, e os.DirEntry) {
	name := e.Name()
	if len(name) != 64 || !isLowerHex(name) || name[:2] != prefix || !e.Type().IsRegular() {
		c.report(filepath.Join(stepsDir, prefix, name), "not a step-cache entry", removeTree(p))
		return
	}
	subject := "step entry " + name
	data, err := readSmallFile(p, 16<<20)
	if err != nil {
		c.report(subject, fmt.Sprintf("unreadable: %v", err), removeFile(p))
		return
	}
	var ef entryFile
	if err := json.Unmarshal(data, &ef); err != nil {
		c.report(subject, fmt.Sprintf("unreadable: %v", err), removeFile(p))
		return
	}
	if ef.Version != entryVersion || ef.Layer == nil {
		return // another version's to judge; or no layer, nothing to need
	}
	if err := c.needLayer(ef.Layer.Descriptor); err != nil {
		c.report(subject, err.Error(), removeFile(p))
		return
	}
	if err := checkHash(ef.Layer.DiffID); err != nil {
		c.report(subject, fmt.Sprintf("diff ID: %v", err), removeFile(p))
	}
}

// checkContexts: remembered context hashes are hints, but a damaged file
// would be ignored by every build and never replaced by a smaller one.
func (c *checker) checkContexts() error {
	dir := filepath.Join(c.s.root, contextsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if len(e.Name()) != 64 || !isLowerHex(e.Name()) || !e.Type().IsRegular() {
			c.report(filepath.Join(contextsDir, e.Name()), "not a file of context hashes", removeTree(p))
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			c.report("context hashes "+e.Name(), fmt.Sprintf("unreadable: %v", err), removeFile(p))
			continue
		}
		if !bytes.HasPrefix(data, []byte(ctxMagic)) && bytes.HasPrefix(data, []byte("builder-ctx-")) {
			continue // another version's format
		}
		if _, err := decodeContext(data); err != nil {
			c.report("context hashes "+e.Name(), "damaged", removeFile(p))
		}
	}
	return nil
}

// checkTemps finds the sessions of dead processes under tmp/ and the
// temporary files of index.json writers that died, which Open would have
// removed silently.
func (c *checker) checkTemps() error {
	tmp := c.s.path(tmpDir)
	err := fsutil.DeadSessions(tmp, func(dir string) error {
		c.report(filepath.Join(tmpDir, filepath.Base(dir)), "session of a process that is gone", removeTree(dir))
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range fsutil.StaleAtomicTemps(c.s.root) {
		c.report(filepath.Base(p), "temporary file of a writer that died", removeFile(p))
	}
	return nil
}

// readSmallFile reads a file that is small unless damaged.
func readSmallFile(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f, limit)
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
