package snapshot

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrTooDeep means a mount would stack more layers than the kernel allows.
var ErrTooDeep = errors.New("too many layers for one overlay mount")

// ID names a committed snapshot: the hex of its layer's diff ID, or an
// internal name for a merged chain bottom.
type ID string

// Store holds committed snapshots under ROOT/snapshots and active ones in a
// private session directory under ROOT/tmp.
type Store struct{ storeState }

// Options tune a Store.
type Options struct {
	// MaxLayerSize caps the uncompressed size of one layer that Unpack
	// reads, and the file data it writes: 0 means DefaultMaxLayerSize, a
	// negative value no limit.
	MaxLayerSize int64
}

// Open opens (creating if needed) the snapshot store of the store root
// with default options. It detaches stale mounts under the root and
// removes temporary directories left by dead processes; Check reports
// what it removed.
func Open(root string) (*Store, error) { return openStore(root, Options{}) }

// OpenOptions is Open with options.
func OpenOptions(root string, opts Options) (*Store, error) { return openStore(root, opts) }

// MaxLayerSize is the store's limit on one layer (< 0: none), for
// callers that unpack other archives under the same rule ([ExtractLimit]).
func (s *Store) MaxLayerSize() int64 { return s.maxLayer }

// Close removes this process's temporary directories.
func (s *Store) Close() error { return s.closeStore() }

// TempDir makes a fresh directory in this process's session directory
// of the store, for work that is not a snapshot (an ADD's download); the
// caller removes it, and a killed process's session goes whole.
func (s *Store) TempDir(pattern string) (string, error) { return s.sessionDir(pattern) }

// Exists reports whether the committed snapshot id is present.
func (s *Store) Exists(id ID) bool { return s.exists(id) }

// Dir is the directory holding the files of committed snapshot id.
func (s *Store) Dir(id ID) string { return s.dir(id) }

// List returns the committed snapshots.
func (s *Store) List() ([]ID, error) { return s.list() }

// Remove deletes a committed snapshot. It is for pruning; the caller makes
// sure no build uses it.
func (s *Store) Remove(id ID) error { return s.remove(id) }

// Unpack applies an uncompressed OCI layer tar as committed snapshot id,
// which must be the hex of the layer's diff ID: the sha256 of every byte
// of layer up to EOF, including anything after the tar's end-of-archive
// blocks. Unpack hashes the stream as it applies it and drains it to EOF;
// the snapshot is published only if the hash equals id, so a layer whose
// image lies about its diff ID can never stand in for another's.
// Otherwise, or if the stream or its files exceed the store's
// MaxLayerSize ([SizeLimitError]), nothing is published.
//
// It is atomic (a crash leaves no partial snapshot) and idempotent (if id
// exists, layer is not read); concurrent calls for one id both succeed.
func (s *Store) Unpack(ctx context.Context, id ID, layer io.Reader) error {
	return s.unpack(ctx, id, layer)
}

// WriteMerged writes to w one OCI layer tar holding the changes of the
// committed snapshots run (bottom first, at least one) on top of the
// committed chain lower: applied over lower, it gives exactly the
// filesystem lower+run gives. Paths the run deleted from lower become
// whiteouts, hardlinks stay links (also one made to a file of a lower
// layer), and owners, modes, times and xattrs are the result's. Entries
// are written as WriteLayer writes them, so the same chains and options
// give the same bytes. It streams: memory holds the set of paths the run
// touched, never a file or the tree.
func (s *Store) WriteMerged(ctx context.Context, w io.Writer, lower, run []ID, opts WriteOptions) error {
	return s.writeMerged(ctx, w, lower, run, opts)
}

// Import applies an uncompressed OCI layer tar as a committed snapshot
// named by the stream's diff ID, which it computes, and returns that id.
// It is Unpack for a layer this process made itself (a merged layer), so
// there is no diff ID to check against yet.
func (s *Store) Import(ctx context.Context, layer io.Reader) (ID, error) {
	return s.importLayer(ctx, layer)
}

// Prepare makes an active snapshot on top of the chain parents (bottom
// first, all committed). Its upper directory is empty and its root has the
// chain root's mode and owner. A chain deeper than MaxLowers-1 has its
// bottom merged into a cached internal snapshot, transparently.
func (s *Store) Prepare(ctx context.Context, parents []ID) (*Active, error) {
	return s.prepare(ctx, parents)
}

// View returns a read-only Mount of the chain (for COPY --from). The
// returned release func removes any temporary directories it needed.
func (s *Store) View(ctx context.Context, chain []ID) (Mount, func() error, error) {
	return s.view(ctx, chain)
}

// Active is an upper directory being written on top of a chain.
type Active struct {
	// Mount is the overlay to mount for the step; its Stub is set, and
	// the caller fills MountPoints when it needs some.
	Mount Mount

	activeState
}

// Upper is the directory that receives the step's changes.
func (a *Active) Upper() string { return a.Mount.Upper }

// Commit moves the upper directory into the store as committed snapshot
// id. If id already exists, the upper is discarded instead. Check can
// only confirm that such a snapshot's marker matches its name; prefer
// CommitLayer for layers.
func (a *Active) Commit(id ID) error { return a.commit(id, nil) }

// CommitLayer is Commit for an upper whose layer was written with
// WriteLayer(w, a.Upper(), opts) and hashed to diff ID id: the marker
// records opts, so that Check can regenerate the layer from the snapshot
// and compare it with id.
func (a *Active) CommitLayer(id ID, opts WriteOptions) error { return a.commit(id, &opts) }

// Close removes what is left of the active snapshot. It is safe after
// Commit and safe to call twice.
func (a *Active) Close() error { return a.close() }

// WriteOptions control how a directory becomes a layer tar.
type WriteOptions struct {
	// SourceDateEpoch, when set, clamps every file time to at most it.
	SourceDateEpoch *time.Time
}

// WriteLayer writes the overlay upper directory dir to w as an OCI layer
// tar: entries in sorted order, stable headers (numeric ids only, no
// atime/ctime), whiteouts and opaque directories converted to .wh. files,
// hardlinks kept as tar links, xattrs kept except overlay's own. It
// returns an error for entries an upper written with redirect_dir or
// metacopy would hold. Files are read from dir, never through a mount.
func WriteLayer(w io.Writer, dir string, opts WriteOptions) error {
	return writeLayer(w, dir, opts)
}

// OpenLayer regenerates the layer tar of committed snapshot id with the
// options its commit recorded: the same bytes the commit hashed, since
// the layer writer is deterministic, unless the snapshot's files changed
// since (the caller checks the stream against the diff ID). Closing the
// reader early stops the writer.
func (s *Store) OpenLayer(id ID) (io.ReadCloser, error) { return s.openLayer(id) }

// GivesLayer reports whether committed snapshot id can give its layer tar
// (OpenLayer): a build committed it as a layer. An unpacked snapshot
// cannot: its files came from another writer's tar.
func (s *Store) GivesLayer(id ID) bool { return s.givesLayer(id) }

// Apply unpacks an OCI layer tar into dir in overlay format (whiteouts
// become 0/0 character devices, .wh..wh..opq the opaque xattr). Nothing is
// written outside dir, whatever the tar holds. The stream and its files
// may not exceed DefaultMaxLayerSize.
func Apply(ctx context.Context, r io.Reader, dir string) error {
	return applyLayer(ctx, newLayerStream(r, 0, false), dir)
}

// Extract unpacks a plain tar archive (ADD of a local archive) into dest,
// a directory inside root; paths, symlinks and hardlinks in the archive
// resolve inside root and never outside it. Entries keep the archive's
// owners and modes, as docker's ADD does. The archive is limited to
// DefaultMaxLayerSize.
func Extract(r io.Reader, root, dest string) error {
	return ExtractLimit(r, root, dest, 0)
}

// ExtractLimit is Extract with a limit on the uncompressed archive and
// the file data it makes (0: DefaultMaxLayerSize, < 0: none); exceeding
// it is a [SizeLimitError].
func ExtractLimit(r io.Reader, root, dest string, maxSize int64) error {
	return extractArchive(newLayerStream(r, maxSize, false), root, dest)
}

// CleanupMounts unmounts mounts under root left in the host mount
// namespace by a killed process (deepest first, lazily) and returns how
// many it removed. Mounts outside root are never touched.
func CleanupMounts(root string) (int, error) { return cleanupMounts(root) }

// Usage returns how many committed snapshots there are and the bytes they
// take on disk.
func (s *Store) Usage() (count int, bytes int64, err error) {
	return s.usage()
}

// Sizes is Usage per committed snapshot.
func (s *Store) Sizes() (map[ID]int64, error) { return s.sizes() }
