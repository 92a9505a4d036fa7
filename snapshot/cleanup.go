package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// cleanupMounts follows KERNEL.md §9: mountinfo (escapes decoded by the
// mountinfo package), only mount points strictly below root, deepest
// first and the newest first when mounts are stacked on one path, each
// detached lazily so a busy one cannot block the sweep.
func cleanupMounts(root string) (int, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return 0, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if real == "/" {
		return 0, errors.New("refusing to clean up mounts under /")
	}
	// mountinfo reads /proc/thread-self: stay on one thread so the list
	// and the unmounts see the same mount namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !strings.HasPrefix(m.Mountpoint, real+"/"), false
	})
	if err != nil {
		return 0, fmt.Errorf("reading mountinfo: %w", err)
	}
	sort.Slice(mounts, func(i, j int) bool {
		di, dj := strings.Count(mounts[i].Mountpoint, "/"), strings.Count(mounts[j].Mountpoint, "/")
		if di != dj {
			return di > dj
		}
		if mounts[i].Mountpoint != mounts[j].Mountpoint {
			return mounts[i].Mountpoint > mounts[j].Mountpoint
		}
		return mounts[i].ID > mounts[j].ID
	})
	n := 0
	var errs []error
	for _, m := range mounts {
		err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
		switch {
		case err == nil:
			n++
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			// already gone with a parent detached before it
		default:
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m.Mountpoint, err))
		}
	}
	return n, errors.Join(errs...)
}
