package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// The mount set follows Docker's default (moby's oci.DefaultSpec): what a
// Dockerfile's RUN sees there, it sees here.

// devNodes are bind-mounted from the host's /dev. A bind mount keeps its
// own flags, so they work although the /dev tmpfs is nodev.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

var devSymlinks = [][2]string{
	{"/proc/self/fd", "fd"},
	{"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"},
	{"pts/ptmx", "ptmx"},
}

// maskedPaths are hidden, when present: files under /dev/null, directories
// under an empty read-only tmpfs.
var maskedPaths = []string{
	"/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
	"/proc/timer_stats", "/proc/sched_debug", "/proc/sysrq-trigger",
	"/proc/acpi", "/proc/asound", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

// readonlyPaths stay visible but cannot be written: /proc/sys would
// otherwise let root in the container change the host's kernel settings.
var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"}

// defaultHostname is the hostname of a Spec without one, as BuildKit's is
// "buildkitsandbox".
const defaultHostname = "builder"

const procFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// setupRootfs mounts the container's root and everything on it, then
// pivots into it. It runs in the child's own mount namespace, so the host
// never sees any of these mounts and a crash leaves none behind.
func setupRootfs(spec *Spec) error {
	// A shared / would propagate every mount below back to the host (and
	// pivot_root refuses a shared parent).
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	root := filepath.Join(spec.Root.Stub, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("creating rootfs mount point: %w", err)
	}
	// Before the rootfs: the stub layer makes their mount points.
	extras, err := stageMounts(spec)
	if err != nil {
		return err
	}
	if err := spec.Root.MountAt(root); err != nil {
		return fmt.Errorf("mounting rootfs: %w", err)
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = defaultHostname
	}
	// The /etc files first: their paths resolve inside the rootfs as the
	// stub resolved them, before proc, sysfs or the /dev tmpfs cover a
	// directory the resolution could pass through.
	if err := bindEtcFiles(root, spec, hostname); err != nil {
		return err
	}
	proc, err := mountPseudo(root, "proc", "proc", procFlags, unix.PROC_SUPER_MAGIC)
	if err != nil {
		return err
	}
	if err := mountDev(root, spec.ShmSize); err != nil {
		return err
	}
	sys, err := mountPseudo(root, "sys", "sysfs", unix.MS_RDONLY|procFlags, unix.SYSFS_MAGIC)
	if err != nil {
		return err
	}
	if err := maskPaths(proc, sys); err != nil {
		return err
	}
	if err := mountExtras(root, extras); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	if spec.Network == NetworkNone {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bringing lo up: %w", err)
		}
	}
	return pivot(root)
}

// inRoot resolves path inside root: the image's symlinks (an /etc that
// points elsewhere, say) must not lead a mount out of the rootfs. Nothing
// runs in the rootfs yet, so the result cannot change under us.
func inRoot(root, path string) (string, error) {
	p, err := securejoin.SecureJoin(root, path)
	if err != nil {
		return "", fmt.Errorf("resolving %s in the rootfs: %w", path, err)
	}
	return p, nil
}

// mountPseudo mounts a proc or sysfs on the rootfs's top-level directory
// name and returns where. Like runc, it refuses anything but a plain
// directory there: an image whose /proc is a symlink would have proc
// mounted wherever the link points while the masks, looked up by path,
// miss it. The mount is then checked to be what was asked for, since the
// masks below are applied by path inside it.
func mountPseudo(root, name, fstype string, flags uintptr, magic int64) (string, error) {
	p := filepath.Join(root, name) // one component: nothing to follow but itself
	fi, err := os.Lstat(p)
	if err != nil {
		return "", fmt.Errorf("mounting /%s: %w", name, err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, _ := os.Readlink(p)
		return "", fmt.Errorf("the image's /%s is a symlink to %s; RUN mounts %s there and needs a plain directory (remove the link from the image)", name, target, fstype)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("the image's /%s is not a directory; RUN mounts %s there and needs a plain directory", name, fstype)
	}
	if err := unix.Mount(fstype, p, fstype, flags, ""); err != nil {
		return "", fmt.Errorf("mounting /%s: %w", name, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return "", fmt.Errorf("checking /%s: %w", name, err)
	}
	if st.Type != magic {
		return "", fmt.Errorf("checking /%s: filesystem type %#x is not %s", name, st.Type, fstype)
	}
	return p, nil
}

func mountDev(root string, shmSize int64) error {
	if shmSize <= 0 {
		shmSize = defaultShmSize
	}
	dev, err := inRoot(root, "/dev")
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, n := range devNodes {
		if err := bindFile("/dev/"+n, filepath.Join(dev, n)); err != nil {
			return fmt.Errorf("mounting /dev/%s: %w", n, err)
		}
	}
	mounts := []struct {
		name, fstype string
		mode         os.FileMode
		flags        uintptr
		data         string
	}{
		{"pts", "devpts", 0o755, unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"shm", "tmpfs", 0o1777, procFlags, fmt.Sprintf("mode=1777,size=%d", shmSize)},
		{"mqueue", "mqueue", 0o755, procFlags, ""},
	}
	for _, m := range mounts {
		p := filepath.Join(dev, m.name)
		if err := os.Mkdir(p, m.mode); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", m.name, err)
		}
		if err := unix.Mount(m.name, p, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting /dev/%s: %w", m.name, err)
		}
	}
	for _, l := range devSymlinks {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("creating /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// maskPaths applies Docker's masks inside the proc and sysfs mounted at
// proc and sys. Those are fresh kernel filesystems, checked by
// mountPseudo, so nothing from the image lies on the way to a mask.
func maskPaths(proc, sys string) error {
	under := func(path string) (string, error) {
		if rel, ok := strings.CutPrefix(path, "/proc/"); ok {
			return filepath.Join(proc, rel), nil
		}
		if rel, ok := strings.CutPrefix(path, "/sys/"); ok {
			return filepath.Join(sys, rel), nil
		}
		return "", fmt.Errorf("mask %s is outside /proc and /sys", path)
	}
	for _, path := range maskedPaths {
		p, err := under(path)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("masking %s: %w", path, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|procFlags, "size=0")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking %s: %w", path, err)
		}
	}
	for _, path := range readonlyPaths {
		p, err := under(path)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", path, err)
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|procFlags, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", path, err)
		}
	}
	return nil
}

// bindEtcFiles writes this step's resolv.conf, hosts and hostname into
// the stub dir and bind-mounts those copies. Binding the host's own files
// would let the step write through to the host's resolver configuration.
func bindEtcFiles(root string, spec *Spec, hostname string) error {
	files := []struct {
		name string
		data []byte
	}{
		{"resolv.conf", spec.ResolvConf},
		{"hosts", spec.Hosts},
		{"hostname", []byte(hostname + "\n")},
	}
	for _, f := range files {
		src := filepath.Join(spec.Root.Stub, f.name)
		if err := writeCopy(src, f.data); err != nil {
			return fmt.Errorf("writing /etc/%s: %w", f.name, err)
		}
		dst, err := inRoot(root, "/etc/"+f.name)
		if err != nil {
			return err
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mounting /etc/%s: %w", f.name, err)
		}
	}
	return nil
}

func writeCopy(path string, data []byte) error {
	// Replace rather than truncate: whatever is at path is not followed.
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil { // umask
		f.Close()
		return err
	}
	return f.Close()
}

// bindFile bind-mounts the file src on a new empty file dst.
func bindFile(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	return unix.Mount(src, dst, "", unix.MS_BIND, "")
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// pivot makes root the new / with pivot_root(".", "."), which needs no
// put_old directory (one would land in the upper dir), then detaches the
// old root stacked under it.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering rootfs: %w", err)
	}
	return nil
}
