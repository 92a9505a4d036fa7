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

// Open opens (creating if needed) the snapshot store of the store root.
// It removes temporary directories left by dead processes.
func Open(root string) (*Store, error) { return openStore(root) }

// Close removes this process's temporary directories.
func (s *Store) Close() error { return s.closeStore() }

// Exists reports whether the committed snapshot id is present.
func (s *Store) Exists(id ID) bool { return s.exists(id) }

// Dir is the directory holding the files of committed snapshot id.
func (s *Store) Dir(id ID) string { return s.dir(id) }

// List returns the committed snapshots.
func (s *Store) List() ([]ID, error) { return s.list() }

// Remove deletes a committed snapshot. It is for pruning; the caller makes
// sure no build uses it.
func (s *Store) Remove(id ID) error { return s.remove(id) }

// Unpack applies an uncompressed OCI layer tar as committed snapshot id.
// It is atomic (a crash leaves no partial snapshot) and idempotent (if id
// exists, r is not read); concurrent calls for one id both succeed.
func (s *Store) Unpack(ctx context.Context, id ID, layer io.Reader) error {
	return s.unpack(ctx, id, layer)
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
// id. If id already exists, the upper is discarded instead.
func (a *Active) Commit(id ID) error { return a.commit(id) }

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

// Apply unpacks an OCI layer tar into dir in overlay format (whiteouts
// become 0/0 character devices, .wh..wh..opq the opaque xattr). Nothing is
// written outside dir, whatever the tar holds.
func Apply(ctx context.Context, r io.Reader, dir string) error {
	return applyLayer(ctx, r, dir)
}

// Extract unpacks a plain tar archive (ADD of a local archive) into dest,
// a directory inside root; paths, symlinks and hardlinks in the archive
// resolve inside root and never outside it. Entries keep the archive's
// owners and modes, as docker's ADD does.
func Extract(r io.Reader, root, dest string) error {
	return extractArchive(r, root, dest)
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
