package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// openIn opens rel (absolute or relative, symlinks and ".." included) as
// if root were "/": the kernel resolves every component inside root
// (openat2 RESOLVE_IN_ROOT, KERNEL.md §6), so neither an absolute symlink
// nor "../.." can lead outside it. Magic links (/proc/self/root) are
// refused.
func openIn(root int, rel string, flags int) (int, error) {
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(root, rel, how)
		// EAGAIN: a rename elsewhere raced with the lookup; the kernel
		// asks us to try again rather than risk a wrong answer.
		if (errors.Is(err, unix.EAGAIN) && i < 64) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// openDir opens a directory by path for use as the root of openIn.
func openDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// fdPath names an open file (also an O_PATH one) for the calls that take
// only a path: the kernel resolves the magic link to the file itself.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// relInside returns where the open directory sub lies inside the open
// directory root, as a slash path relative to root.
func relInside(root, sub int) (string, error) {
	rootPath, err := os.Readlink(fdPath(root))
	if err != nil {
		return "", err
	}
	subPath, err := os.Readlink(fdPath(sub))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(rootPath, subPath)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is not inside %s", subPath, rootPath)
	}
	return filepath.ToSlash(rel), nil
}

// removeAllAt removes name, a directory in the directory parent, and all
// it holds, without following any symlink: every step is relative to a
// descriptor of a directory already checked to be one.
func removeAllAt(parent int, name string) error {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return err
	}
	for _, n := range names {
		err := unix.Unlinkat(fd, n, 0)
		if errors.Is(err, unix.EISDIR) {
			err = removeAllAt(fd, n)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			f.Close()
			return err
		}
	}
	f.Close()
	return unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
}
