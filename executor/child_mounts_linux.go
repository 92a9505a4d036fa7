package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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

const procFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// setupRootfs mounts the container's root and everything on it, then
// pivots into it. It runs in the child's own mount namespace, so the host
// never sees any of these mounts and a crash leaves none behind.
func setupRootfs(spec *containerSpec) error {
	// A shared / would propagate every mount below back to the host (and
	// pivot_root refuses a shared parent).
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	root := filepath.Join(spec.Root.Stub, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("creating rootfs mount point: %w", err)
	}
	if err := spec.Root.MountAt(root); err != nil {
		return fmt.Errorf("mounting rootfs: %w", err)
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = runHostname
	}
	steps := []func() error{
		func() error { return mountProc(root) },
		func() error { return mountDev(root) },
		func() error { return mountSys(root) },
		func() error { return maskPaths(root) },
		func() error { return bindEtcFiles(root, spec, hostname) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	if spec.Network == "none" {
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

func mountProc(root string) error {
	p, err := inRoot(root, "/proc")
	if err != nil {
		return err
	}
	if err := unix.Mount("proc", p, "proc", procFlags, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	return nil
}

func mountDev(root string) error {
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
		{"shm", "tmpfs", 0o1777, procFlags, "mode=1777,size=65536k"},
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

func mountSys(root string) error {
	p, err := inRoot(root, "/sys")
	if err != nil {
		return err
	}
	if err := unix.Mount("sysfs", p, "sysfs", unix.MS_RDONLY|procFlags, ""); err != nil {
		return fmt.Errorf("mounting /sys: %w", err)
	}
	return nil
}

// maskPaths applies Docker's masks. Paths are looked up directly under
// the fresh /proc and /sys mounts, which hold no symlinks on the way.
func maskPaths(root string) error {
	for _, path := range maskedPaths {
		p := filepath.Join(root, path)
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
		p := filepath.Join(root, path)
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
func bindEtcFiles(root string, spec *containerSpec, hostname string) error {
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
