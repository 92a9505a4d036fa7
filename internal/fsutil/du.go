package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// DiskSize is what a file takes on disk, as du counts it: its allocated
// blocks, not its length (a 300-byte file takes a 4 KiB block; a sparse
// one less than its length).
func DiskSize(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// DiskUsage is what `du -s dir` reports, in bytes: the blocks of every
// file and directory under dir, each inode counted once however many
// links it has. Entries removed during the walk are skipped, and so are
// the subdirectories of dir named in skip.
func DiskUsage(dir string, skip ...string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && filepath.Dir(p) == dir && slices.Contains(skip, d.Name()) {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += DiskSize(fi)
		return nil
	})
	return total, err
}
