package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/fsutil"
)

// flatChunk is how many layers one merge step adds. Chains are merged in
// whole chunks from the bottom, so the merged snapshot of the bottom
// chunk(s) is reused while the chain grows, and each merge mount stacks
// at most flatChunk+1 lowers, well inside the kernel's 500.
const flatChunk = 250

// flatPrefix marks internal snapshots that hold a merged chain bottom.
const flatPrefix = "flat-"

// flatID names the merged snapshot of a chain: it depends on exactly the
// layers and their order.
func flatID(ids []ID) ID {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return ID(flatPrefix + hex.EncodeToString(h.Sum(nil)))
}

// flatten returns a committed snapshot holding the merged tree of ids (a
// multiple of flatChunk layers, bottom first), making it if needed: the
// merge of the chain's bottom part below the top flatChunk layers (itself
// flattened the same way) with those layers.
func (s *Store) flatten(ctx context.Context, ids []ID) (ID, error) {
	id := flatID(ids)
	if s.exists(id) {
		return id, nil
	}
	unlock, err := s.lock(ctx, string(id))
	if err != nil {
		return "", err
	}
	defer unlock()
	if s.exists(id) {
		return id, nil
	}
	top, bottom := ids, ""
	if len(ids) > flatChunk {
		below, err := s.flatten(ctx, ids[:len(ids)-flatChunk])
		if err != nil {
			return "", err
		}
		top, bottom = ids[len(ids)-flatChunk:], s.dir(below)
	}
	lowers := make([]string, 0, len(top)+1)
	for i := len(top) - 1; i >= 0; i-- {
		lowers = append(lowers, s.dir(top[i]))
	}
	if bottom != "" {
		lowers = append(lowers, bottom)
	}
	if err := s.merge(ctx, lowers, id, ids); err != nil {
		return "", err
	}
	return id, nil
}

// merge mounts lowers read-only in a private mount namespace and copies
// the merged tree into a new snapshot id, which holds the layers chain.
// Overlay applies the whiteouts and opaque directories and hides its own
// xattrs, so the copy is a plain tree: usable as the bottom of any chain.
// Its marker records the digest of the tree, for Check.
func (s *Store) merge(ctx context.Context, lowers []string, id ID, chain []ID) error {
	tmp, err := s.sessionDir("merge-")
	if err != nil {
		return err
	}
	defer fsutil.RemoveAll(tmp) // a no-op once published
	mnt := filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return err
	}
	m := Mount{Lowers: lowers}
	if len(lowers) == 1 {
		m.Lowers = append(m.Lowers, s.emptyPath()) // overlay, not a bind: hide whiteouts
	}
	err = Private(func() error {
		if err := m.MountAt(mnt); err != nil {
			return err
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		return copyTree(ctx, mnt, filepath.Join(tmp, "fs"))
	})
	if err != nil {
		return fmt.Errorf("merging into %s: %w", id, err)
	}
	if err := os.Remove(mnt); err != nil {
		return err
	}
	tree, err := hashTree(filepath.Join(tmp, "fs"), WriteOptions{})
	if err != nil {
		return fmt.Errorf("hashing merged snapshot %s: %w", id, err)
	}
	return s.publish(tmp, id, marker{Origin: originMerge, Chain: chain, Tree: newTreeDigest(tree, WriteOptions{})})
}

// treeCopier copies a directory tree keeping everything a layer can
// hold: types, modes, owners, xattrs, hardlinks, device numbers, times.
type treeCopier struct {
	xr    xattrReader
	links map[fileKey]string
}

func copyTree(ctx context.Context, src, dst string) error {
	c := &treeCopier{links: map[fileKey]string{}}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	if err := c.copyDir(ctx, src, dst); err != nil {
		return err
	}
	return c.attrs(src, dst, &st)
}

func (c *treeCopier) copyDir(ctx context.Context, src, dst string) error {
	names, err := readNames(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.copyEntry(ctx, filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

func (c *treeCopier) copyEntry(ctx context.Context, src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	typ := st.Mode & unix.S_IFMT
	if st.Nlink > 1 && typ != unix.S_IFDIR {
		key := fileKey{uint64(st.Dev), st.Ino}
		if first, ok := c.links[key]; ok {
			return os.Link(first, dst)
		}
		c.links[key] = dst
	}
	var err error
	switch typ {
	case unix.S_IFDIR:
		if err = os.Mkdir(dst, 0o700); err == nil {
			err = c.copyDir(ctx, src, dst)
		}
	case unix.S_IFREG:
		err = copyFileData(src, dst)
	case unix.S_IFLNK:
		var target string
		if target, err = os.Readlink(src); err == nil {
			err = os.Symlink(target, dst)
		}
	default: // devices, fifos, sockets
		err = unix.Mknod(dst, typ|0o600, int(st.Rdev))
	}
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return c.attrs(src, dst, &st)
}

// attrs copies owner, mode, xattrs (not overlay's) and times, in the order
// that keeps setuid bits and capabilities (chown clears both).
func (c *treeCopier) attrs(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	xattrs, err := c.xr.read(src)
	if err != nil {
		return err
	}
	for _, x := range xattrs {
		if !layerXattr(x.name) {
			continue
		}
		if err := unix.Lsetxattr(dst, x.name, x.value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("setting xattr %s on %s: %w", x.name, dst, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// copyFileData copies the regular file src to dst, a new file. Both are
// *os.File, so the kernel copies (copy_file_range).
func copyFileData(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = fsutil.CopyFile(dst, in, nil)
	return err
}
