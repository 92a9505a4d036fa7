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

// staleMounts lists the mount points strictly below root, in the order
// unmountUnder detaches them (KERNEL.md §9): deepest first, and the newest
// first when mounts are stacked on one path. Escapes in mountinfo are
// decoded by the mountinfo package.
func staleMounts(root string) ([]*mountinfo.Info, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if real == "/" {
		return nil, errors.New("refusing to clean up mounts under /")
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !strings.HasPrefix(m.Mountpoint, real+"/"), false
	})
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
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
	return mounts, nil
}

// unmountUnder detaches every mount below root, each lazily so a busy one
// cannot block the sweep, and returns the mount points it detached.
func unmountUnder(root string) ([]string, error) {
	// mountinfo reads /proc/thread-self: stay on one thread so the list
	// and the unmounts see the same mount namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mounts, err := staleMounts(root)
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, m := range mounts {
		err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
		switch {
		case err == nil:
			done = append(done, m.Mountpoint)
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			// already gone with a parent detached before it
		default:
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m.Mountpoint, err))
		}
	}
	return done, errors.Join(errs...)
}

func cleanupMounts(root string) (int, error) {
	done, err := unmountUnder(root)
	return len(done), err
}
