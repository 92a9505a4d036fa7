package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// MaxLowers is the kernel's overlay stack limit (OVL_MAX_STACK). One slot
// goes to the stub layer of a RUN mount, so a chain may be MaxLowers-1
// layers deep before Prepare merges its bottom.
const MaxLowers = 500

// overlayOptions keep the upper dir a faithful diff whatever the host's
// defaults are: with redirect_dir or metacopy on, a renamed directory or a
// chmod'ed file would be recorded as an xattr instead of data.
var overlayOptions = [][2]string{
	{"redirect_dir", "off"},
	{"index", "off"},
	{"metacopy", "off"},
	{"xino", "off"},
}

// Mount describes an overlay of a snapshot chain. It is plain data:
// nothing is mounted until MountAt, which must run in a private mount
// namespace (the RUN child's, or one made by Private).
type Mount struct {
	// Lowers are the layer directories, topmost first, as overlay lists
	// them. There is always at least one (an empty dir for scratch).
	Lowers []string
	// Upper and Work are the writable layer and overlay's work dir; both
	// empty for a read-only view.
	Upper string
	Work  string
	// Stub, when set, is a scratch directory used to create MountPoints
	// that the chain lacks: they are made by copy-up on top of the chain
	// into Stub/upper, which then becomes the topmost lower. Mounting
	// /proc or a generated /etc/hosts over them thus never writes to
	// Upper, and the stub inherits the image's metadata for /etc and its
	// siblings instead of hiding it.
	Stub        string
	MountPoints []MountPoint
}

// MountPoint is a path inside the rootfs that must exist for something to
// be mounted on it.
type MountPoint struct {
	Path string // absolute inside the rootfs, e.g. "/etc/resolv.conf"
	Dir  bool   // a directory; otherwise an empty regular file
}

// ReadOnly reports whether the mount has no upper layer.
func (m Mount) ReadOnly() bool { return m.Upper == "" }

// MountAt mounts m on target (an existing directory) with the kernel's
// new mount API, one "lowerdir+" per layer, so the length of the option
// string never limits the depth. The mount is nodev: without a devices
// cgroup, that is what keeps a device node made by mknod inside a build
// from opening a host device.
func (m Mount) MountAt(target string) error {
	lowers := m.Lowers
	if len(lowers) == 0 {
		return errors.New("mount: no lower directories")
	}
	if m.Stub != "" && len(m.MountPoints) > 0 {
		stubUpper, err := m.makeStub()
		if err != nil {
			return fmt.Errorf("preparing mount points: %w", err)
		}
		lowers = append([]string{stubUpper}, lowers...)
	}
	if len(lowers) > MaxLowers {
		return fmt.Errorf("mount: %d lower directories: %w", len(lowers), ErrTooDeep)
	}
	if m.ReadOnly() && len(lowers) == 1 {
		// overlay needs two lowers without an upper; one layer is just a
		// read-only bind of its directory.
		if err := unix.Mount(lowers[0], target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mounting %s: %w", lowers[0], err)
		}
		return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NODEV|unix.MS_REC, "")
	}
	return mountOverlay(lowers, m.Upper, m.Work, target)
}

// makeStub creates the missing mount points on top of the chain by
// mounting it with Stub/upper as the upper dir, and returns Stub/upper.
func (m Mount) makeStub() (string, error) {
	upper := filepath.Join(m.Stub, "upper")
	work := filepath.Join(m.Stub, "work")
	merged := filepath.Join(m.Stub, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := copyRootAttrs(m.Lowers[0], upper); err != nil {
		return "", err
	}
	if err := mountOverlay(m.Lowers, upper, work, merged); err != nil {
		return "", err
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	for _, mp := range m.MountPoints {
		if err := ensureMountPoint(merged, mp); err != nil {
			return "", fmt.Errorf("%s: %w", mp.Path, err)
		}
	}
	return upper, nil
}

func ensureMountPoint(root string, mp MountPoint) error {
	p, err := securejoin.SecureJoin(root, mp.Path)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	switch {
	case err == nil && mp.Dir && fi.IsDir():
		return nil
	case err == nil && !mp.Dir && fi.Mode().IsRegular():
		return nil
	case err == nil:
		// A node of the wrong type (a file where /proc belongs): replace
		// it in the stub only; the image keeps it. Symlinks never get
		// here: SecureJoin followed them inside root, as runc follows a
		// mount destination, and the RUN child resolves the same way.
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if mp.Dir {
		return os.Mkdir(p, 0o755)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// copyRootAttrs gives dst the mode and owner of src: the upper dir's root
// becomes the merged root, so it must look like the chain's root.
func copyRootAttrs(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return err
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Chmod(dst, st.Mode&0o7777)
}

// mountOverlay mounts an overlay with the new mount API. With no upper
// the mount is read-only.
func mountOverlay(lowers []string, upper, work, target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	fail := func(what string, err error) error {
		if msg := kernelMessages(fd); msg != "" {
			return fmt.Errorf("mounting overlay: %s: %w (%s)", what, err, msg)
		}
		return fmt.Errorf("mounting overlay: %s: %w", what, err)
	}
	for _, l := range lowers {
		if err := setPath(fd, "lowerdir+", l); err != nil {
			return fail("lowerdir+ "+l, err)
		}
	}
	if upper != "" {
		if err := setPath(fd, "upperdir", upper); err != nil {
			return fail("upperdir", err)
		}
		if err := setPath(fd, "workdir", work); err != nil {
			return fail("workdir", err)
		}
	}
	for _, o := range overlayOptions {
		if err := unix.FsconfigSetString(fd, o[0], o[1]); err != nil {
			return fail(o[0]+"="+o[1], err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("create", err)
	}
	attrs := unix.MOUNT_ATTR_NODEV
	if upper == "" {
		attrs |= unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting overlay on %s: %w", target, err)
	}
	return nil
}

// setPath passes a directory to fsconfig: as a string when it fits the
// kernel's 255-byte limit for a value, as an O_PATH descriptor otherwise.
func setPath(fd int, key, path string) error {
	if len(path) < 256 {
		return unix.FsconfigSetString(fd, key, path)
	}
	dfd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return unix.FsconfigSetFd(fd, key, dfd)
}

// kernelMessages drains the fs context's message log ("e overlay: …").
func kernelMessages(fd int) string {
	var msgs []string
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

// Private runs fn on an OS thread of its own, inside a new private mount
// namespace. Whatever fn mounts is visible only to that thread and is gone
// when fn returns, or when the process dies, so a crash cannot leave
// mounts behind. fn must do its file work itself: other goroutines run on
// other threads and do not see its mounts.
func Private(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread's namespace is the one /proc/self shows and
			// it never exits; keep it unchanged. While this goroutine holds
			// it, the nested call is scheduled on another thread.
			ch <- Private(fn)
			runtime.UnlockOSThread()
			return
		}
		// The thread is never unlocked: when this goroutine returns, the
		// runtime ends the thread and its namespace with it.
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			ch <- fmt.Errorf("unshare mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			ch <- fmt.Errorf("making mounts private: %w", err)
			return
		}
		ch <- fn()
	}()
	return <-ch
}
