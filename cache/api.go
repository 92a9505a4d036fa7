package cache

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotFound is returned when a blob, image, tag or cache entry is absent.
var ErrNotFound = errors.New("not found")

// Store is the local store at one root directory. It is safe for use by
// several goroutines and by several processes at once.
type Store struct{}

// Open opens the store at root, creating the layout if it is missing.
func Open(root string) (*Store, error) { return nil, errors.New("cache: not implemented") }

// Root is the store's root directory.
func (s *Store) Root() string { return "" }

// Close releases the store's temporary session.
func (s *Store) Close() error { return nil }

// --- blobs ---

// HasBlob reports whether the blob is present.
func (s *Store) HasBlob(h v1.Hash) bool { return false }

// OpenBlob opens a blob for reading; ErrNotFound if absent.
func (s *Store) OpenBlob(h v1.Hash) (io.ReadCloser, error) { return nil, ErrNotFound }

// BlobSize returns a blob's size; ErrNotFound if absent.
func (s *Store) BlobSize(h v1.Hash) (int64, error) { return 0, ErrNotFound }

// PutBlob stores r. If want is non-zero the content must hash to it, or
// nothing is stored. It returns the digest and size.
func (s *Store) PutBlob(r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	return v1.Hash{}, 0, errors.New("cache: not implemented")
}

// Compression chooses how layers are compressed.
type Compression struct {
	Format string // "gzip" (default), "zstd", "none"
	Level  int    // 0: the format's fast default
}

// Layer is a layer blob in the store with its uncompressed digest.
type Layer struct {
	Descriptor v1.Descriptor // media type, compressed digest, size
	DiffID     v1.Hash       // digest of the uncompressed tar
}

// PutLayer compresses and stores an uncompressed layer tar read from r,
// computing its digest and diff ID in the same pass. progress, if not
// nil, is called with the number of uncompressed bytes read so far.
func (s *Store) PutLayer(ctx context.Context, r io.Reader, c Compression, progress func(n int64)) (Layer, error) {
	return Layer{}, errors.New("cache: not implemented")
}

// OpenLayer opens a stored layer blob as an uncompressed tar stream.
func (s *Store) OpenLayer(desc v1.Descriptor) (io.ReadCloser, error) {
	return nil, errors.New("cache: not implemented")
}

// --- images and tags ---

// ImageRecord is an image in the store.
type ImageRecord struct {
	Name     string        // familiar name ("app:latest"), "" if untagged
	Manifest v1.Descriptor // the manifest blob
	ID       v1.Hash       // config digest: the image ID, as docker shows it
}

// PutImage writes cfg and a manifest listing layers, and returns the
// untagged record. The image is complete once PutImage returns.
func (s *Store) PutImage(cfg *v1.ConfigFile, layers []v1.Descriptor) (ImageRecord, error) {
	return ImageRecord{}, errors.New("cache: not implemented")
}

// Image opens a stored image by manifest digest.
func (s *Store) Image(manifest v1.Hash) (v1.Image, error) {
	return nil, errors.New("cache: not implemented")
}

// Tag points name at the manifest, replacing any earlier image of that
// name. name is normalised with NormalizeName.
func (s *Store) Tag(name string, manifest v1.Descriptor) error {
	return errors.New("cache: not implemented")
}

// Untag removes a name; ErrNotFound if it is not there.
func (s *Store) Untag(name string) error { return errors.New("cache: not implemented") }

// Lookup finds an image by name, by ID or unique ID prefix (with or without
// "sha256:"), or by manifest digest.
func (s *Store) Lookup(ref string) (ImageRecord, error) { return ImageRecord{}, ErrNotFound }

// Images lists the tagged images, sorted by name.
func (s *Store) Images() ([]ImageRecord, error) { return nil, errors.New("cache: not implemented") }

// NormalizeName turns a user's image name into the store's familiar form:
// "app" → "app:latest", "docker.io/library/app:1" → "app:1",
// "localhost:5000/x" → "localhost:5000/x:latest". A digest reference
// stays a digest reference.
func NormalizeName(name string) (string, error) { return "", errors.New("cache: not implemented") }

// --- step cache ---

// KeyRecipe versions the cache-key recipe. Changing what goes into keys
// means changing this string, which invalidates every older entry.
const KeyRecipe = "builder-key-v1"

// Key is a step's cache key. It is not a content digest.
type Key [32]byte

func (k Key) String() string { return hex.EncodeToString(k[:]) }

// KeyBuilder builds a Key from named, length-prefixed fields. Fields
// records what went in, for BUILDER_DEBUG_KEYS.
type KeyBuilder struct{}

// NewKeyBuilder starts a key under KeyRecipe.
func NewKeyBuilder() *KeyBuilder { return &KeyBuilder{} }

// Add adds a named field.
func (b *KeyBuilder) Add(name string, value []byte) {}

// AddString adds a named string field.
func (b *KeyBuilder) AddString(name, value string) {}

// Sum returns the key.
func (b *KeyBuilder) Sum() Key { return Key{} }

// Fields returns "name=value" lines describing each field, values
// shortened, for debugging which field changed a key.
func (b *KeyBuilder) Fields() []string { return nil }

// Entry is what a step produced, enough to reuse it without running it.
type Entry struct {
	Layer   *Layer     // nil when the step made no layer
	Config  v1.Config  // the image's container config after the step
	History v1.History // the step's history entry
}

// LookupStep returns the entry recorded for k, or ErrNotFound. A hit
// records the time of use, for pruning least recently used entries first.
// An entry whose layer blob is missing counts as absent.
func (s *Store) LookupStep(k Key) (Entry, error) { return Entry{}, ErrNotFound }

// RecordStep records e under k, replacing any earlier entry.
func (s *Store) RecordStep(k Key, e Entry) error { return errors.New("cache: not implemented") }

// --- build context hashes ---

// FileStat is what decides whether a remembered file hash is still valid.
type FileStat struct {
	Size  int64
	Mtime int64 // ns
	Ctime int64 // ns
	Ino   uint64
	Mode  uint32
}

// ContextHashes are the remembered content hashes of one build context's
// files. Get and Put may be called from many goroutines.
type ContextHashes struct{}

// ContextHashes loads the remembered hashes for the context directory dir
// (an absolute path).
func (s *Store) ContextHashes(dir string) (*ContextHashes, error) {
	return nil, errors.New("cache: not implemented")
}

// Get returns the remembered hash of rel if st still matches.
func (c *ContextHashes) Get(rel string, st FileStat) (v1.Hash, bool) { return v1.Hash{}, false }

// Put remembers the hash of rel for st.
func (c *ContextHashes) Put(rel string, st FileStat, h v1.Hash) {}

// Save writes the hashes back if they changed, atomically.
func (c *ContextHashes) Save() error { return nil }

// --- locks ---

// BuildLock is held, shared, by every build for its whole duration; Prune
// takes it exclusively, so it never removes what a running build uses.
func (s *Store) BuildLock(ctx context.Context) (release func(), err error) {
	return nil, errors.New("cache: not implemented")
}

// --- export ---

// Format of an exported image archive.
type Format string

const (
	FormatOCI    Format = "oci"    // an OCI image layout in a tar (oci-archive)
	FormatDocker Format = "docker" // a `docker load` / `podman load` tar
)

// Export writes img as an archive of the given format to w. name
// ("app:latest") is recorded in the archive; it may be empty.
func Export(w io.Writer, img v1.Image, name string, format Format) error {
	return errors.New("cache: not implemented")
}

// ExportLayout writes img into an OCI image layout directory (created or
// added to), tagged name.
func ExportLayout(dir string, img v1.Image, name string) error {
	return errors.New("cache: not implemented")
}

// --- garbage collection ---

// PruneOptions select what Prune removes.
type PruneOptions struct {
	All         bool          // every cache entry, not only unused ones past their age
	KeepStorage int64         // remove LRU entries until what remains is at most this (bytes); 0: no budget
	Until       time.Duration // only entries unused for longer than this; 0: any age
	// Live, if set, is called with the diff IDs still referenced after
	// pruning, so that the caller can remove the snapshots of the rest.
	Live func(diffIDs map[v1.Hash]bool) error
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Entries   int
	Blobs     int
	Reclaimed int64
}

// Prune removes step-cache entries (least recently used first), then the
// blobs that no tag and no remaining entry reference. It never removes
// what a tagged image needs. It takes the build lock exclusively.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	return PruneReport{}, errors.New("cache: not implemented")
}

// Usage is what the store holds.
type Usage struct {
	Images, ImagesSize   int64 // tagged images and the bytes of their blobs
	Entries, EntriesSize int64 // step-cache entries and the bytes of layers only they keep
	Blobs, BlobsSize     int64
	Reclaimable          int64 // bytes Prune --all would free
}

// Usage reports what the store holds.
func (s *Store) Usage() (Usage, error) { return Usage{}, errors.New("cache: not implemented") }
