package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
)

// defaultPath is the PATH a command is looked up in when its environment
// has none: docker's for a RUN step whose image sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// setupExitCode is the child's exit status when it reports a setup
// failure; the parent goes by the report, not by this code.
const setupExitCode = 125

// childMain is the RUN child, PID 1 of the new namespaces: it builds the
// container around itself and execs the command. It returns only by
// exiting, after reporting why on setupFD.
func childMain() {
	// Capabilities and the bounding set are per thread, and the command
	// inherits those of the thread that calls execve: do it all on one.
	runtime.LockOSThread()
	// Files the step creates must not depend on the builder's umask:
	// layers would differ between machines. 022 is Docker's.
	unix.Umask(0o022)
	setup := os.NewFile(setupFD, "setup")
	defer func() {
		if r := recover(); r != nil {
			reportSetupFailure(setup, fmt.Errorf("panic: %v", r))
			os.Exit(setupExitCode) //nolint:forbidigo // as below
		}
	}()
	// Closed by a successful execve: the parent then reads EOF and
	// nothing else.
	_, err := unix.FcntlInt(setupFD, unix.F_SETFD, unix.FD_CLOEXEC)
	if err == nil {
		err = startCommand()
	}
	reportSetupFailure(setup, err)
	// The contract of ReexecMain: the child never returns into the
	// caller's main or TestMain, whatever happened.
	os.Exit(setupExitCode) //nolint:forbidigo // ReexecMain's child never returns
}

func reportSetupFailure(w *os.File, err error) {
	f := setupFailure{Msg: err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		f.Errno = uintptr(errno)
	}
	data, _ := json.Marshal(f)
	w.Write(data)
	w.Close()
}

// startCommand sets the container up and execs the command; it returns
// only on failure.
func startCommand() error {
	spec, err := readSpec()
	if err != nil {
		return err
	}
	if spec.Network == NetworkJoin {
		// Before anything is mounted: sysfs shows the devices of the
		// namespace of the thread that mounts it.
		if err := unix.Setns(netnsFD, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("joining the build's network namespace: %w", err)
		}
		unix.Close(netnsFD)
	}
	if err := setupRootfs(&spec); err != nil {
		return err
	}
	// From here on the paths are the container's own: /etc/passwd and
	// the working dir resolve inside the new root, symlinks included.
	u, err := user.GetExecUserPath(spec.User, &user.ExecUser{Home: "/"}, "/etc/passwd", "/etc/group")
	if err != nil {
		return fmt.Errorf("resolving user %q: %w", spec.User, err)
	}
	env := spec.Env
	if _, ok := lookupEnv(env, "HOME"); !ok {
		env = append(env[:len(env):len(env)], "HOME="+u.Home)
	}
	dir := filepath.Join("/", spec.Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating working directory %s: %w", dir, err)
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("entering working directory %s: %w", dir, err)
	}
	// While CAP_SYS_RESOURCE is held: it is needed to raise a hard limit.
	for _, l := range spec.Rlimits {
		if err := unix.Setrlimit(l.Resource, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			return fmt.Errorf("setting resource limit %d to %d:%d: %w", l.Resource, l.Soft, l.Hard, err)
		}
	}
	// Before the capabilities go: installing a filter without
	// CAP_SYS_ADMIN needs no_new_privs, which would break setuid programs.
	if err := installSeccomp(); err != nil {
		return err
	}
	if err := limitCapabilities(); err != nil {
		return err
	}
	if err := setCredentials(u); err != nil {
		return err
	}
	if err := rearmParentDeathSignal(); err != nil {
		return err
	}
	// Go closes only the descriptors it opened; one inherited from
	// whatever started the builder (a CI runner, a shell) would reach the
	// command, and an open directory there is a way out of the rootfs.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("closing inherited descriptors: %w", err)
	}
	path, err := lookPath(spec.Args[0], env)
	if err != nil {
		return err
	}
	// A signal the builder was started with ignored (SIGINT in a shell's
	// background job) would stay ignored in the command: execve resets
	// handlers, not SIG_IGN.
	unignoreSignals()
	err = syscall.Exec(path, spec.Args, env)
	return fmt.Errorf("executing %s: %w", path, err)
}

// kernelSigaction is the kernel's struct sigaction (x86-64 and arm64).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// unignoreSignals resets every ignored signal to the default, with
// rt_sigaction directly. signal.Notify for all signals did the same by
// installing handlers, but the runtime enables each of the 65 signals
// through a channel round trip with its signal thread: 2.8 ms of a 10 ms
// RUN (measured in the child, BenchmarkRunTrue). It also reaches 32 and
// 33, which the Go runtime leaves alone (glibc reserves them) and GNU
// make's posix_spawn leaves ignored. Only ignored signals are touched:
// the others carry the runtime's handlers, which execve resets anyway.
func unignoreSignals() {
	const sigIgn = 1
	for sig := uintptr(1); sig <= 64; sig++ {
		if sig == uintptr(unix.SIGKILL) || sig == uintptr(unix.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, sig, 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
			continue
		}
		if old.handler == sigIgn {
			var dfl kernelSigaction
			unix.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		}
	}
}

func readSpec() (Spec, error) {
	var spec Spec
	f := os.NewFile(specFD, "spec")
	defer f.Close()
	if err := json.NewDecoder(f).Decode(&spec); err != nil {
		return spec, fmt.Errorf("reading container spec: %w", err)
	}
	return spec, nil
}

func setCredentials(u *user.ExecUser) error {
	// The syscall package's versions change every thread of the process,
	// so no runtime thread keeps root's ids until execve.
	if err := syscall.Setgroups(u.Sgids); err != nil {
		return fmt.Errorf("setting supplementary groups %v: %w", u.Sgids, err)
	}
	if err := syscall.Setresgid(u.Gid, u.Gid, u.Gid); err != nil {
		return fmt.Errorf("setting gid %d: %w", u.Gid, err)
	}
	if err := syscall.Setresuid(u.Uid, u.Uid, u.Uid); err != nil {
		return fmt.Errorf("setting uid %d: %w", u.Uid, err)
	}
	return nil
}

// rearmParentDeathSignal sets the parent-death signal again: the kernel
// clears it when the credentials change, and without it a builder killed
// from now on would leave the command running. The parent may have died
// in between; its end of the setup pipe then shows that.
func rearmParentDeathSignal() error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("setting the parent-death signal: %w", err)
	}
	fds := []unix.PollFd{{Fd: setupFD}}
	for {
		_, err := unix.Poll(fds, 0)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return fmt.Errorf("checking the parent: %w", err)
		}
	}
	if fds[0].Revents&unix.POLLERR != 0 {
		return errors.New("the builder is gone")
	}
	return nil
}

// lookupEnv returns the value of the first key=value entry for key, as
// getenv(3) does.
func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// lookPath finds name in the container's PATH the way a shell would. It
// runs after the switch to the command's user, so the execute check is
// that user's.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathEnv, ok := lookupEnv(env, "PATH")
	if !ok {
		pathEnv = strings.TrimPrefix(defaultPath, "PATH=")
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in PATH %s", name, pathEnv)
}
