package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/snapshot"
)

// staged is a Mount's source made ready before the rootfs is mounted:
// src is what gets bound on the target (a path, or /proc/self/fd/N of a
// descriptor opened beneath the source), dir whether it is a directory.
type staged struct {
	m   *Mount
	src string
	dir bool
}

// stageMounts mounts every extra source in the child's own namespace,
// under the stub directory (which the host never sees mounted), and
// opens what each one binds. Called before the rootfs is mounted, so the
// mount points it needs (file or directory) can join the stub layer.
func stageMounts(spec *Spec) ([]staged, error) {
	var out []staged
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		s, err := stageMount(spec.Root.Stub, i, m)
		if err != nil {
			return nil, fmt.Errorf("mount on %s: %w", m.Target, err)
		}
		out = append(out, s)
		if !underDev(m.Target) {
			spec.Root.MountPoints = append(spec.Root.MountPoints, snapshot.MountPoint{Path: m.Target, Dir: s.dir})
		}
	}
	return out, nil
}

func stageMount(stub string, i int, m *Mount) (staged, error) {
	dir := filepath.Join(stub, "mounts", strconv.Itoa(i))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return staged{}, err
	}
	switch {
	case m.Tmpfs:
		if err := mountTmpfs(dir, m); err != nil {
			return staged{}, err
		}
		if m.File != "" {
			return staged{m: m, src: filepath.Join(dir, m.File)}, nil
		}
		return staged{m: m, src: dir, dir: true}, nil
	case m.Overlay != nil:
		if err := m.Overlay.MountAt(dir); err != nil {
			return staged{}, err
		}
		return openBeneath(m, dir)
	default:
		return openBeneath(m, m.Source)
	}
}

// mountTmpfs mounts a tmpfs on dir and writes m's files into it.
func mountTmpfs(dir string, m *Mount) error {
	data := "mode=1777"
	if m.File != "" || len(m.Files) > 0 {
		data = "mode=0755"
	}
	if m.Size > 0 {
		data += ",size=" + strconv.FormatInt(m.Size, 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("mounting tmpfs: %w", err)
	}
	for _, f := range m.Files {
		p := filepath.Join(dir, f.Name)
		if err := writeCopy(p, f.Data); err != nil {
			return fmt.Errorf("writing %s: %w", f.Name, err)
		}
		if err := os.Lchown(p, f.UID, f.GID); err != nil {
			return err
		}
		if err := unix.Chmod(p, f.Mode&0o7777); err != nil {
			return err
		}
	}
	return nil
}

// openBeneath opens m.SubPath inside root as if root were /, so neither
// an absolute symlink nor ".." leads out of it, and returns the
// descriptor's magic link, which a bind mount follows to exactly what
// was opened.
func openBeneath(m *Mount, root string) (staged, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return staged{}, fmt.Errorf("opening %s: %w", root, err)
	}
	defer unix.Close(rfd)
	sub := m.SubPath
	if sub == "" {
		sub = "."
	}
	fd, err := unix.Openat2(rfd, sub, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return staged{}, fmt.Errorf("opening source %s: %w", m.SubPath, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return staged{}, err
	}
	// Left open: the command's exec closes it (CloseRange marks every
	// descriptor close-on-exec), after the bind.
	return staged{m: m, src: "/proc/self/fd/" + strconv.Itoa(fd), dir: st.Mode&unix.S_IFMT == unix.S_IFDIR}, nil
}

// mountExtras binds each staged source on its target inside root, in
// order, then applies the target's flags.
func mountExtras(root string, mounts []staged) error {
	var rootSt unix.Stat_t
	if err := unix.Stat(root, &rootSt); err != nil {
		return err
	}
	for _, s := range mounts {
		if err := mountExtra(root, rootSt.Dev, s); err != nil {
			return fmt.Errorf("mount on %s: %w", s.m.Target, err)
		}
	}
	return nil
}

func mountExtra(root string, rootDev uint64, s staged) error {
	dst, err := inRoot(root, s.m.Target)
	if err != nil {
		return err
	}
	if err := ensureTarget(dst, rootDev, s.dir); err != nil {
		return err
	}
	if err := unix.Mount(s.src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding: %w", err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NODEV)
	if s.m.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if s.m.NoExec {
		flags |= unix.MS_NOEXEC
	}
	if s.m.NoSuid {
		flags |= unix.MS_NOSUID
	}
	if err := unix.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("setting flags: %w", err)
	}
	return nil
}

// ensureTarget makes a missing mount point, but only off the rootfs (in
// /dev, or inside an earlier extra mount): on the rootfs the stub made
// them all, and one made now would land in the layer.
func ensureTarget(dst string, rootDev uint64, dir bool) error {
	if _, err := os.Lstat(dst); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	have := filepath.Dir(dst)
	for {
		if _, err := os.Lstat(have); err == nil || have == "/" {
			break
		}
		have = filepath.Dir(have)
	}
	var st unix.Stat_t
	if err := unix.Stat(have, &st); err != nil {
		return err
	}
	if st.Dev == rootDev {
		return errors.New("internal: the mount point is missing from the stub layer")
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if dir {
		return os.Mkdir(dst, 0o755)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
