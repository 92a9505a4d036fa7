package executor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/snapshot"
)

// withRootfs mounts m on a thread with a private mount namespace, on a
// fresh directory in work, and calls fn with the mounted root. Everything
// fn does to the files must happen in fn itself, on that thread.
func withRootfs(m snapshot.Mount, work string, fn func(root string) error) error {
	return snapshot.Private(func() error {
		root, unmount, err := mountTemp(m, work)
		if err != nil {
			return err
		}
		defer unmount()
		return fn(root)
	})
}

// mountTemp mounts m on a fresh directory in work (a directory of the
// store's); it must run inside a private mount namespace.
func mountTemp(m snapshot.Mount, work string) (string, func(), error) {
	target, err := os.MkdirTemp(work, "mnt-")
	if err != nil {
		return "", nil, err
	}
	if err := m.MountAt(target); err != nil {
		os.Remove(target)
		return "", nil, err
	}
	return target, func() {
		unix.Unmount(target, 0)
		os.Remove(target)
	}, nil
}

// lookupUser resolves a USER value ("app", "1000", "app:staff") against
// the /etc/passwd and /etc/group of the rootfs at root. Symlinks in those
// paths resolve inside root.
func lookupUser(root, spec string) (*user.ExecUser, error) {
	passwd, closeP := openInRoot(root, "/etc/passwd")
	defer closeP()
	group, closeG := openInRoot(root, "/etc/group")
	defer closeG()
	u, err := user.GetExecUser(spec, &user.ExecUser{Home: "/"}, passwd, group)
	if err != nil {
		return nil, err // the user package names the user or group
	}
	return u, nil
}

// lookupChown resolves a COPY/ADD --chown value. As docker documents, a
// user without a group, name or number, gives the same number as GID.
func lookupChown(root, spec string) (uid, gid int, err error) {
	name, grp, hasGroup := strings.Cut(spec, ":")
	u, err := lookupUser(root, name)
	if err != nil {
		return 0, 0, err
	}
	if !hasGroup {
		// As BuildKit: a user named by name gets its primary group from
		// /etc/passwd, one given by number the group of that number.
		if _, err := strconv.Atoi(name); err == nil {
			return u.Uid, u.Uid, nil
		}
		return u.Uid, u.Gid, nil
	}
	g, err := lookupUser(root, "0:"+grp)
	if err != nil {
		return 0, 0, err
	}
	return u.Uid, g.Gid, nil
}

// openInRoot opens a file of the rootfs for reading; a missing file gives
// a nil reader, which the user package treats as an empty database.
func openInRoot(root, path string) (io.Reader, func()) {
	p, err := securejoin.SecureJoin(root, path)
	if err != nil {
		return nil, func() {}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, func() {}
	}
	return f, func() { f.Close() }
}

// mkdirAllIn creates dir (absolute inside root) and its missing parents,
// resolving symlinks inside root, with mode and owner for the ones it
// creates. It returns the resolved host path.
func mkdirAllIn(root, dir string, mode os.FileMode, uid, gid int) (string, error) {
	p, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return "", fmt.Errorf("%s is not a directory", dir)
		}
		return p, nil
	}
	// Walk down from root so every created component gets mode and owner.
	rel, err := filepath.Rel(root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("path %s escapes the root", dir)
	}
	cur := root
	for _, c := range strings.Split(rel, string(filepath.Separator)) {
		if c == "" || c == "." {
			continue
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("%s: not a directory", strings.TrimPrefix(cur, root))
			}
			continue
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if err := os.Mkdir(cur, mode); err != nil {
			return "", err
		}
		if err := os.Chmod(cur, mode); err != nil { // umask
			return "", err
		}
		if err := os.Lchown(cur, uid, gid); err != nil {
			return "", err
		}
	}
	return p, nil
}
