package container

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/snapshot"
)

// Spec is everything the child needs to set up the container and start
// the command. It crosses the re-exec as JSON.
type Spec struct {
	// Root is the rootfs overlay, which the child mounts. Run sets its
	// MountPoints; its Stub must be set.
	Root snapshot.Mount
	// Args is the argv to execute (SHELL already prepended for the shell
	// form); Args[0] is looked up in the container's PATH from Env.
	Args []string
	// Env is the process environment, "KEY=VALUE".
	Env []string
	// Dir is the working directory inside the rootfs; created if missing.
	Dir string
	// User is the USER value: "name", "uid", "name:group", "uid:gid";
	// "" is root. Names resolve in the rootfs's /etc/passwd and /etc/group;
	// supplementary groups are set from /etc/group.
	User string
	// Hostname for the UTS namespace; "" is "builder".
	Hostname string
	// Network is NetworkNone (the default), NetworkHost, or NetworkJoin,
	// which only [SandboxNet.Join] sets.
	Network string
	// netNS is the network namespace to join when Network is NetworkJoin.
	netNS *os.File
	// ResolvConf and Hosts are the contents bind-mounted (from per-step
	// copies) on /etc/resolv.conf and /etc/hosts.
	ResolvConf []byte
	Hosts      []byte
	// Mounts are mounted after /proc, /dev and /sys, in order: a mount
	// inside another's target comes after it.
	Mounts []Mount
	// ShmSize is the size of the /dev/shm tmpfs in bytes; 0 is 64 MiB,
	// docker's default.
	ShmSize int64
	// Rlimits are set on the command's process before it starts, as
	// docker's --ulimit sets them.
	Rlimits []Rlimit
}

// Rlimit is one resource limit: Resource is a unix.RLIMIT_* number.
type Rlimit struct {
	Resource   int
	Soft, Hard uint64
}

// defaultShmSize is /dev/shm's size when Spec.ShmSize is 0, as docker's.
const defaultShmSize = 64 << 20

// Network modes of a container (Spec.Network).
const (
	// NetworkNone is a new network namespace with only lo, up.
	NetworkNone = "none"
	// NetworkHost is the builder's own network namespace.
	NetworkHost = "host"
	// NetworkJoin is a namespace shared by several containers, a
	// [SandboxNet]'s; set it with [SandboxNet.Join].
	NetworkJoin = "join"
)

// reexecName is the argv[0] that marks a process as a RUN child. Nothing
// else starts this binary with it, and it never reaches flag parsing.
const reexecName = "builder-run"

// The child's descriptors beyond stdio, in ExtraFiles order.
const (
	specFD  = 3 // the Spec as JSON, read to EOF
	setupFD = 4 // a setupFailure as JSON; closed by a successful execve
	netnsFD = 5 // the network namespace to join, for Network "join"
)

// maxLine is where a line without a newline is cut into several output
// lines, so a command printing megabytes without one cannot make the
// builder hold them all.
const maxLine = 64 << 10

// runMountPoints are the paths the child mounts on; the stub layer
// provides the ones the image lacks, so they never land in the upper dir.
var runMountPoints = []snapshot.MountPoint{
	{Path: "/proc", Dir: true},
	{Path: "/dev", Dir: true},
	{Path: "/sys", Dir: true},
	{Path: "/etc/resolv.conf"},
	{Path: "/etc/hosts"},
	{Path: "/etc/hostname"},
}

// Run runs spec and returns the command's exit code (128+N when
// killed by signal N). output receives each line the command prints on
// stdout (stream 1) or stderr (stream 2), without the newline; it is never
// called concurrently, and lines of one stream arrive in order. An error
// means the container could not be set up or was cancelled through ctx;
// cancelling kills every process of the container.
func Run(ctx context.Context, spec Spec, output func(stream int, line string)) (int, error) {
	if err := prepare(ctx, &spec); err != nil {
		return -1, err
	}
	c, err := startChild(spec.Network, spec.netNS)
	if err != nil {
		return -1, err
	}
	return c.run(ctx, spec, output)
}

// prepare fills in a spec's defaults and checks it.
func prepare(ctx context.Context, spec *Spec) error {
	if spec.Network == "" {
		spec.Network = NetworkNone // isolated unless asked otherwise
	}
	if err := spec.check(); err != nil {
		return err
	}
	spec.Root.MountPoints = withMountPoints(spec.Root.MountPoints)
	return ctx.Err()
}

// child is a started RUN child: PID 1 of its new namespaces, waiting in
// readSpec for the spec that tells it what to build and run.
type child struct {
	cmd     *exec.Cmd
	p       *childPipes
	done    chan struct{} // closed once the child is reaped
	waitErr error         // cmd.Wait's, set before done closes
}

// startChild starts a child in new namespaces (a new network namespace
// for NetworkNone; netNS joined for NetworkJoin). It returns once the
// process exists; the child then waits for its spec.
func startChild(network string, netNS *os.File) (*child, error) {
	p, err := newChildPipes()
	if err != nil {
		return nil, err
	}
	extra := []*os.File{p.specR, p.setupW}
	if network == NetworkJoin {
		extra = append(extra, netNS)
	}
	c := &child{p: p, done: make(chan struct{}), cmd: &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{reexecName},
		Env:        []string{}, // the command gets exactly spec.Env, set by the child
		Stdout:     p.outW,
		Stderr:     p.errW,
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: cloneFlags(network),
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL,
		},
	}}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits,
		// not the process (golang/go#27505): this goroutine keeps its
		// thread until the child is gone, so the runtime cannot retire
		// the thread under it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		p.closeAll()
		return nil, fmt.Errorf("starting container: %w", err)
	}
	p.closeChildEnds()
	return c, nil
}

// run hands the child its spec and waits for the command.
func (c *child) run(ctx context.Context, spec Spec, output func(stream int, line string)) (int, error) {
	defer c.p.closeAll()
	payload, err := json.Marshal(spec)
	if err != nil {
		c.kill()
		return -1, fmt.Errorf("encoding container spec: %w", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	emit := func(stream int, line string) {
		mu.Lock()
		defer mu.Unlock()
		output(stream, line)
	}
	var setupMsg []byte
	var writeErr error
	wg.Add(4)
	go func() { defer wg.Done(); readLines(c.p.outR, 1, emit) }()
	go func() { defer wg.Done(); readLines(c.p.errR, 2, emit) }()
	go func() { defer wg.Done(); setupMsg, _ = io.ReadAll(c.p.setupR) }()
	go func() {
		defer wg.Done()
		// An early death of the child makes this fail with EPIPE; its
		// setup report or exit status says why.
		_, writeErr = c.p.specW.Write(payload)
		c.p.specW.Close()
	}()

	waitErr, cancelled := c.waitOrKill(ctx)
	// Once PID 1 is dead every holder of the pipes is dead, so they close.
	wg.Wait()

	if len(setupMsg) > 0 {
		return -1, decodeSetupFailure(setupMsg)
	}
	if cancelled {
		return -1, ctx.Err()
	}
	if writeErr != nil {
		// The child reads the whole spec before anything else: it died
		// before it could start the command, which never ran.
		return -1, fmt.Errorf("%w: %v", errChildGone, writeErr)
	}
	return exitCode(c.cmd, waitErr)
}

// errChildGone: the child died before it had read its spec.
var errChildGone = errors.New("the container process died before it started")

// waitOrKill waits for the container's PID 1, killing it if ctx ends
// first. The PID namespace dies with its PID 1, so that kills every
// process of the step; and SIGKILL is the one signal PID 1 cannot ignore.
func (c *child) waitOrKill(ctx context.Context) (waitErr error, cancelled bool) {
	select {
	case <-c.done:
		return c.waitErr, false
	case <-ctx.Done():
		c.cmd.Process.Kill()
		<-c.done
		return c.waitErr, true
	}
}

// kill ends a child that will not be used, and reaps it.
func (c *child) kill() {
	c.cmd.Process.Kill()
	<-c.done
	c.p.closeAll()
}

// alive reports whether the child has not exited (a prestarted child
// killed from outside must not be handed a step).
func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// check rejects specs the child could only fail on later, with a less
// helpful message.
func (s *Spec) check() error {
	switch {
	case s.Root.Stub == "":
		return errors.New("container spec: no stub directory for the mount points")
	case len(s.Root.Lowers) == 0:
		return errors.New("container spec: no rootfs layers")
	case len(s.Args) == 0 || s.Args[0] == "":
		return errors.New("container spec: no command")
	}
	switch s.Network {
	case NetworkHost, NetworkNone:
	case NetworkJoin:
		if s.netNS == nil {
			return errors.New("container spec: no network namespace to join")
		}
	default:
		return fmt.Errorf("container spec: unsupported network %q", s.Network)
	}
	for i := range s.Mounts {
		if err := s.Mounts[i].check(); err != nil {
			return err
		}
	}
	return nil
}

func withMountPoints(have []snapshot.MountPoint) []snapshot.MountPoint {
	out := append([]snapshot.MountPoint(nil), have...)
	for _, mp := range runMountPoints {
		found := false
		for _, h := range have {
			found = found || h.Path == mp.Path
		}
		if !found {
			out = append(out, mp)
		}
	}
	return out
}

func cloneFlags(network string) uintptr {
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP
	if network == NetworkNone {
		flags |= unix.CLONE_NEWNET
	}
	return uintptr(flags)
}

func exitCode(cmd *exec.Cmd, waitErr error) (int, error) {
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return -1, fmt.Errorf("waiting for container: %w", waitErr)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		return cmd.ProcessState.ExitCode(), nil
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// childPipes are the parent's and child's ends of the child's stdout,
// stderr, spec and setup-report pipes. os.Pipe makes them close-on-exec,
// so a container started concurrently never inherits another's.
type childPipes struct {
	outR, outW     *os.File
	errR, errW     *os.File
	specR, specW   *os.File
	setupR, setupW *os.File
}

func newChildPipes() (*childPipes, error) {
	p := &childPipes{}
	for _, pair := range []struct{ r, w **os.File }{
		{&p.outR, &p.outW}, {&p.errR, &p.errW}, {&p.specR, &p.specW}, {&p.setupR, &p.setupW},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			p.closeAll()
			return nil, fmt.Errorf("creating container pipes: %w", err)
		}
		*pair.r, *pair.w = r, w
	}
	return p, nil
}

// closeChildEnds drops the parent's copies of the child's ends, so the
// read ends see EOF once the container is gone.
func (p *childPipes) closeChildEnds() {
	for _, f := range []*os.File{p.outW, p.errW, p.specR, p.setupW} {
		f.Close()
	}
}

func (p *childPipes) closeAll() {
	for _, f := range []*os.File{p.outR, p.outW, p.errR, p.errW, p.specR, p.specW, p.setupR, p.setupW} {
		if f != nil {
			f.Close() // a second Close only returns os.ErrClosed
		}
	}
}

// readLines calls emit for each line of r, cutting lines longer than
// maxLine, until r reaches EOF.
func readLines(r io.Reader, stream int, emit func(int, string)) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			emit(stream, string(bytes.TrimSuffix(line, []byte{'\n'})))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// setupFailure is what the child reports when it cannot start the
// command: a message naming the step, and the errno if there is one so
// the parent's error still matches it with errors.Is.
type setupFailure struct {
	Msg   string
	Errno uintptr `json:",omitempty"`
}

// SetupError is returned by [Run] when the container could not be set up
// or the command could not be started: nothing of the command ran.
type SetupError struct {
	Msg   string
	Errno syscall.Errno // 0 when the failure was not a system call's
}

func (e *SetupError) Error() string { return "setting up container: " + e.Msg }

func (e *SetupError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

func decodeSetupFailure(data []byte) error {
	var f setupFailure
	if err := json.Unmarshal(data, &f); err != nil {
		return &SetupError{Msg: string(bytes.TrimSpace(data))}
	}
	return &SetupError{Msg: f.Msg, Errno: syscall.Errno(f.Errno)}
}

// ReexecMain runs the container side, the child, when this process was
// started as one by [Run], and then exits; otherwise it returns false at
// once. Every program that calls Run (and its TestMain, since
// /proc/self/exe is then the test binary) must call it first thing in
// main, before anything looks at the arguments.
func ReexecMain() bool {
	if len(os.Args) != 1 || os.Args[0] != reexecName {
		return false
	}
	childMain() // execs the command or exits
	panic("unreachable")
}
