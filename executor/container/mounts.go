package container

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/builderdev/builder/snapshot"
)

// Mount is one more filesystem the command sees (a RUN --mount, a
// heredoc script), set up by the child: the parent never mounts
// anything. Exactly one of Source, Overlay and Tmpfs says what it is.
//
// Its target is made to exist in the stub layer, like /proc's, so a
// mount point made only for the mount never lands in the upper dir and
// so in the layer. A target under /dev is made in the /dev tmpfs, and a
// target inside another Mount (mounted before it: Mounts are mounted in
// order) inside that one.
type Mount struct {
	// Target is absolute inside the rootfs, resolved inside it.
	Target string
	// Source is a host directory; SubPath, resolved inside it as if it
	// were the root (RESOLVE_IN_ROOT: its symlinks cannot lead out), is
	// what is bound on Target. A cache directory, the build context.
	Source string
	// Overlay is a snapshot chain mounted by the child (read-only unless
	// it has an upper dir); SubPath inside it is bound on Target.
	Overlay *snapshot.Mount
	SubPath string
	// Tmpfs is a new tmpfs holding Files. With File set, only that
	// file is bound on Target (a secret, a script), not the directory.
	Tmpfs bool
	Size  int64 // tmpfs size limit in bytes; 0 is the kernel's default
	Files []File
	File  string
	// ReadOnly, NoExec and NoSuid apply to the mount on Target; every
	// mount is nodev.
	ReadOnly bool
	NoExec   bool
	NoSuid   bool
}

// File is a file written into a tmpfs [Mount] before the command starts.
// Its data crosses the re-exec in the spec pipe and lives only in the
// tmpfs: it never touches a disk.
type File struct {
	Name     string // one path component
	Data     []byte
	Mode     uint32 // permission bits
	UID, GID int
}

func (m *Mount) check() error {
	kinds := 0
	for _, set := range []bool{m.Source != "", m.Overlay != nil, m.Tmpfs} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds != 1:
		return fmt.Errorf("container spec: mount on %s: want one of a source, an overlay or a tmpfs", m.Target)
	case !path.IsAbs(m.Target) || path.Clean(m.Target) == "/":
		return fmt.Errorf("container spec: mount target %q: want an absolute path other than /", m.Target)
	}
	for _, f := range m.Files {
		if f.Name == "" || strings.Contains(f.Name, "/") || f.Name == "." || f.Name == ".." {
			return fmt.Errorf("container spec: mount on %s: file name %q is not one path component", m.Target, f.Name)
		}
	}
	if m.File != "" && !m.Tmpfs {
		return errors.New("container spec: only a tmpfs mount binds one of its files")
	}
	return nil
}

// underDev reports whether target lies in the container's /dev tmpfs,
// where the child makes the mount point itself.
func underDev(target string) bool {
	t := path.Clean(target)
	return t == "/dev" || strings.HasPrefix(t, "/dev/")
}
