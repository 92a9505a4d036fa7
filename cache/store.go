package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"time"

	"golang.org/x/sync/singleflight"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/builderdev/builder/internal/fsutil"
)

// ErrNotFound is returned when a blob, image, tag or cache entry is absent.
var ErrNotFound = errors.New("not found")

// Store is the local store at one root directory. It is safe for use by
// several goroutines and by several processes at once.
type Store struct {
	root string

	mu   sync.Mutex
	sess *fsutil.Session // created on the first write

	holder      LayerHolder        // nil: no snapshot gives layers (see held.go)
	compressing singleflight.Group // held layers being compressed, by diff ID and format
}

const (
	layoutFile    = "oci-layout"
	indexFile     = "index.json"
	indexLockFile = "index.lock"
	buildLockFile = "build.lock"
	blobsDir      = "blobs/sha256"
	stepsDir      = "steps"
	contextsDir   = "contexts"
	imagesDir     = "images"
	sourcesDir    = "sources"
	tmpDir        = "tmp"
)

// Open opens the store at root, creating the layout if it is missing,
// and removes what dead processes left in it.
func Open(root string) (*Store, error) {
	s, err := open(root)
	if err != nil {
		return nil, err
	}
	// Sessions of dead processes are only garbage; failing to remove one
	// must not stop a build.
	fsutil.SweepSessions(s.path(tmpDir))
	fsutil.SweepAtomicTemps(s.root)
	return s, nil
}

// OpenForCheck is Open without the sweep of dead sessions and temporary
// files, so that [Store.Check] reports them instead of finding them gone.
func OpenForCheck(root string) (*Store, error) { return open(root) }

func open(root string) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// The root is the store's one gate: the store holds build-arg values
	// (history, cache entries), and a 0700 root keeps every other user
	// out, whatever the modes inside, which stay those of any OCI layout.
	if err := fsutil.MkdirPrivate(root); err != nil {
		return nil, fmt.Errorf("creating store %s: %w", root, err)
	}
	for _, d := range []string{blobsDir, stepsDir, contextsDir, imagesDir, sourcesDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating store %s: %w", root, err)
		}
	}
	s := &Store{root: root}
	if err := s.initLayout(); err != nil {
		return nil, fmt.Errorf("creating store %s: %w", root, err)
	}
	return s, nil
}

// initLayout writes oci-layout and an empty index.json when they are
// missing. The common case, an existing store, costs two stats.
func (s *Store) initLayout() error {
	if _, err := os.Stat(s.path(indexFile)); err == nil {
		if _, err := os.Stat(s.path(layoutFile)); err == nil {
			return nil
		}
	}
	l, err := fsutil.Acquire(s.path(indexLockFile), true)
	if err != nil {
		return err
	}
	defer l.Release()
	if _, err := os.Stat(s.path(layoutFile)); errors.Is(err, os.ErrNotExist) {
		if err := fsutil.WriteFileAtomic(s.path(layoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			return err
		}
	}
	if _, err := os.Stat(s.path(indexFile)); errors.Is(err, os.ErrNotExist) {
		return writeIndex(s.path(indexFile), nil)
	}
	return nil
}

// Root is the store's root directory.
func (s *Store) Root() string { return s.root }

// Close releases the store's temporary session.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.sess.Close()
	s.sess = nil
	return err
}

func (s *Store) path(rel string) string { return filepath.Join(s.root, rel) }

// session returns the process's temporary directory, creating it on first
// use: a store that is only read never creates one.
func (s *Store) session() (*fsutil.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		sess, err := fsutil.NewSession(s.path(tmpDir))
		if err != nil {
			return nil, fmt.Errorf("creating temporary session: %w", err)
		}
		s.sess = sess
	}
	return s.sess, nil
}

// tempFile creates a pending file in the session; the caller defers its
// Cleanup.
func (s *Store) tempFile(pattern string) (*fsutil.PendingFile, error) {
	sess, err := s.session()
	if err != nil {
		return nil, err
	}
	// The store's files get the modes of any OCI layout. What keeps other
	// users out is the 0700 root (see open), which is also all an older,
	// world-readable store needs to become private: no walk over its
	// files.
	return fsutil.CreatePending(sess.Dir(), pattern, 0o644)
}

// writeSmall writes data to dst through the session: written, fsynced,
// renamed. The directory is not fsynced: the files written this way
// (step entries, image records) are hints that a crash may lose but never
// corrupt.
func (s *Store) writeSmall(dst string, data []byte) error {
	f, err := s.tempFile("small-*")
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(data); err != nil {
		return err
	}
	err = f.CommitNoDirSync(dst)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		err = f.CommitNoDirSync(dst)
	}
	return err
}

// BuildLock is held, shared, by every build for its whole duration; Prune
// takes it exclusively, so it never removes what a running build uses.
func (s *Store) BuildLock(ctx context.Context) (release func(), err error) {
	return s.lock(ctx, false)
}

// ExclusiveLock waits until no build runs and keeps new ones waiting, for
// work that removes what a build may be using: Prune takes it itself, a
// caller of Check with repair takes it around Check.
func (s *Store) ExclusiveLock(ctx context.Context) (release func(), err error) {
	return s.lock(ctx, true)
}

// lock takes the build lock, polling so that a cancelled ctx stops the
// wait: a blocking flock cannot be interrupted.
func (s *Store) lock(ctx context.Context, exclusive bool) (func(), error) {
	delay := time.Millisecond
	for {
		l, ok, err := fsutil.TryAcquire(s.path(buildLockFile), exclusive)
		if err != nil {
			return nil, fmt.Errorf("taking build lock: %w", err)
		}
		if ok {
			return func() { l.Release() }, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for build lock: %w", context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// index.json

func readIndex(path string) (*v1.IndexManifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx, err := v1.ParseIndexManifest(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return idx, nil
}

func writeIndex(path string, manifests []v1.Descriptor) error {
	if manifests == nil {
		manifests = []v1.Descriptor{} // "manifests": [] rather than null, which strict readers refuse
	}
	data, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     manifests,
	})
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, data, 0o644)
}

// readAllLimited reads a small metadata blob, refusing absurd sizes so a
// damaged store cannot make a lookup allocate gigabytes.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}
