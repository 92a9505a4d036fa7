// Package fsutil holds the small file-system helpers that more than one
// package needs, each written once: atomic file replacement
// ([PendingFile], [WriteFileAtomic]), copying and hashing file data
// ([CopyData], [CopyFile], [HashReader]), advisory locks, and
// per-process temporary directories that a crashed process leaves behind
// in a state the next process can recognise and remove.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic replaces path with data: it writes a temporary file in
// the same directory, fsyncs it, renames it over path and fsyncs the
// directory, so readers see the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for content that write streams: the
// file at path appears only once write returned nil and the data is on
// disk; on an error nothing is left, under path or beside it.
//
// A path that names something other than a regular file (/dev/null, a
// FIFO, a symlink such as /dev/stdout) is written in place, through the
// link: renaming a file over it would replace the device or the link
// itself, as docker's `save -o` never does.
func WriteAtomic(path string, perm os.FileMode, write func(io.Writer) error) error {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory", path)
		}
		return writeInPlace(path, perm, write)
	}
	f, err := CreatePending(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*", perm)
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if err := write(f); err != nil {
		return err
	}
	return f.Commit(path)
}

// SweepAtomicTemps removes the temporary files WriteFileAtomic leaves in
// dir when its process dies between creating and renaming one.
func SweepAtomicTemps(dir string) {
	for _, p := range StaleAtomicTemps(dir) {
		os.Remove(p)
	}
}

// StaleAtomicTemps lists the temporary files of WriteFileAtomic in dir
// that are older than a minute: a live writer renames its file within
// milliseconds, so an older one belongs to a process that died.
func StaleAtomicTemps(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var stale []string
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, ".") || !strings.Contains(name, ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Minute {
			stale = append(stale, filepath.Join(dir, name))
		}
	}
	return stale
}

// MkdirPrivate creates dir, and any missing parent, readable by its owner
// only (0700), and takes group and other permissions away from an
// existing dir that belongs to this process's user. The store holds
// build-arg values (in history and cache entries), so it is private like
// /var/lib/docker. A directory owned by someone else is left as it is:
// root running builder on a user's store must not change that user's
// choices.
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if st.Uid != uint32(os.Geteuid()) || st.Mode&0o077 == 0 {
		return nil
	}
	if err := unix.Chmod(dir, st.Mode&0o7777&^0o077); err != nil {
		return &os.PathError{Op: "chmod", Path: dir, Err: err}
	}
	return nil
}

// SyncDir fsyncs a directory so that renames into it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Lock is a held flock(2) lock on a file. Closing the process releases it,
// so a killed holder never leaves a stale lock.
type Lock struct{ f *os.File }

// Acquire takes a lock on path (created if missing), shared or exclusive,
// waiting until it is free.
func Acquire(path string, exclusive bool) (*Lock, error) {
	return acquire(path, exclusive, false)
}

// TryAcquire is Acquire without waiting; it returns ok=false when the lock
// is held elsewhere.
func TryAcquire(path string, exclusive bool) (l *Lock, ok bool, err error) {
	l, err = acquire(path, exclusive, true)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, false, nil
	}
	return l, err == nil, err
}

func acquire(path string, exclusive, nonblock bool) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EROFS) {
		// A store on a read-only mount: flock needs no write access, and
		// the lock file is there if the store was ever used.
		f, err = os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if nonblock {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f: f}, nil
}

// Release drops the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only fd drops the flock
	l.f = nil
	return err
}

// Session is a private temporary directory under ROOT/tmp, held by one live
// process. Its lock file tells a later process whether the owner is still
// running: a session whose lock can be taken belongs to a dead process and
// is removed by SweepSessions.
type Session struct {
	dir  string
	lock *Lock
}

const sessionLock = ".session.lock"

// NewSession creates a session directory under tmpRoot.
func NewSession(tmpRoot string) (*Session, error) {
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return nil, err
	}
	// The directory is made and locked under a name the sweeper ignores,
	// then renamed: a sweeper never sees a session before its lock is held.
	// The name carries the pid and its PID namespace, so a sweeper in the
	// same namespace can tell a dead owner from a slow one.
	name := strconv.Itoa(os.Getpid()) + "-" + pidNamespace() + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	nascent, err := os.MkdirTemp(tmpRoot, "n-"+name+"-")
	if err != nil {
		return nil, err
	}
	l, err := Acquire(filepath.Join(nascent, sessionLock), true)
	if err != nil {
		os.RemoveAll(nascent)
		return nil, err
	}
	dir := filepath.Join(tmpRoot, "s-"+strings.TrimPrefix(filepath.Base(nascent), "n-"))
	if err := os.Rename(nascent, dir); err != nil {
		l.Release()
		os.RemoveAll(nascent)
		return nil, err
	}
	return &Session{dir: dir, lock: l}, nil
}

// Dir is the session directory.
func (s *Session) Dir() string { return s.dir }

// MkdirTemp makes a fresh directory inside the session.
func (s *Session) MkdirTemp(pattern string) (string, error) {
	return os.MkdirTemp(s.dir, pattern)
}

// Close removes the session directory and releases its lock.
func (s *Session) Close() error {
	if s == nil || s.lock == nil {
		return nil
	}
	err := RemoveAll(s.dir)
	s.lock.Release()
	s.lock = nil
	return err
}

// SweepSessions removes the session directories under tmpRoot whose owner
// is gone, and returns how many it removed. Live sessions are left alone.
func SweepSessions(tmpRoot string) (int, error) {
	n := 0
	err := DeadSessions(tmpRoot, func(dir string) error {
		if err := RemoveAll(dir); err != nil {
			return fmt.Errorf("removing stale %s: %w", dir, err)
		}
		n++
		return nil
	})
	return n, err
}

// DeadSessions calls fn with each session directory under tmpRoot whose
// owner is gone. fn runs while the session's lock is held, so another
// sweeper cannot remove the directory meanwhile; fn's errors are joined
// and the walk goes on.
func DeadSessions(tmpRoot string, fn func(dir string) error) error {
	ents, err := os.ReadDir(tmpRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if strings.HasPrefix(e.Name(), "n-") {
			// A session being born, or one whose owner died between
			// making it and renaming it: only the latter is stale. A dead
			// owner in our PID namespace is certain; otherwise only age
			// tells.
			if !nascentOwnerDead(e.Name()) {
				if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < time.Minute {
					continue
				}
			}
		} else if !strings.HasPrefix(e.Name(), "s-") {
			continue
		}
		dir := filepath.Join(tmpRoot, e.Name())
		l, ok, err := TryAcquire(filepath.Join(dir, sessionLock), true)
		if err != nil || !ok {
			continue // held by a live process, or vanished meanwhile
		}
		if err := fn(dir); err != nil {
			errs = append(errs, err)
		}
		l.Release()
	}
	return errors.Join(errs...)
}

// pidNamespace names this process's PID namespace by its inode.
func pidNamespace() string {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return "0"
	}
	return strconv.FormatUint(st.Ino, 10)
}

// nascentOwnerDead reports whether a nascent session "n-<pid>-<pidns>-…"
// belongs to a process of this PID namespace that no longer exists.
func nascentOwnerDead(name string) bool {
	parts := strings.SplitN(strings.TrimPrefix(name, "n-"), "-", 3)
	if len(parts) < 3 || parts[1] != pidNamespace() || parts[1] == "0" {
		return false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return false
	}
	return unix.Kill(pid, 0) == unix.ESRCH
}

// RemoveAll is os.RemoveAll that also copes with directories left without
// write or search permission (overlay work dirs are mode 000).
func RemoveAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

func writeInPlace(path string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
