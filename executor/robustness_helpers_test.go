package executor_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/executor"
)

// builderProc is a builder process started by a test, with its output
// collected as it arrives, each stderr line stamped with its arrival.
type builderProc struct {
	cmd    *exec.Cmd
	start  time.Time
	stdout lockedBuffer
	stderr stampedLines
	done   chan struct{} // closed once Wait has returned
	err    error         // Wait's result, valid after done
}

// startBuilder starts the builder binary on root with args.
func startBuilder(t *testing.T, bin, root string, args ...string) *builderProc {
	t.Helper()
	p := &builderProc{cmd: exec.Command(bin, append([]string{"--root", root}, args...)...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "BUILDER_ROOT=")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.stderr.since = time.Now()
	p.start = p.stderr.since
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting builder %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process and returns its exit code (-1 if a signal
// ended it).
func (p *builderProc) wait() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// stampedLines collects a process's stderr, remembering when each
// complete line arrived, relative to since.
type stampedLines struct {
	mu      sync.Mutex
	since   time.Time
	partial []byte
	lines   []stampedLine
}

type stampedLine struct {
	at   time.Duration
	text string
}

func (s *stampedLines) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Since(s.since)
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.lines = append(s.lines, stampedLine{at: at, text: string(s.partial[:i])})
		s.partial = s.partial[i+1:]
	}
	return len(p), nil
}

// Lines returns the complete lines so far, and a last partial one.
func (s *stampedLines) Lines() []stampedLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]stampedLine(nil), s.lines...)
	if len(s.partial) > 0 {
		out = append(out, stampedLine{at: time.Since(s.since), text: string(s.partial)})
	}
	return out
}

func (s *stampedLines) String() string {
	var b strings.Builder
	for _, l := range s.Lines() {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// procID names a process across pid reuse: its pid and its start time in
// clock ticks since boot (field 22 of /proc/PID/stat).
type procID struct {
	pid   int
	start string
}

// procStat reads a process's parent pid, its start time and whether it
// has exited (a zombie that its parent, often init after the builder
// died, has not reaped yet).
func procStat(pid int) (ppid int, start string, exited, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, "", false, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[19], f[0] == "Z" || f[0] == "X", err == nil
}

// descendants lists every process below pid (not pid itself), with the
// PID namespace of each.
func descendants(pid int) map[procID]string {
	children := map[int][]procID{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, start, _, ok := procStat(p); ok {
			children[ppid] = append(children[ppid], procID{p, start})
		}
	}
	out := map[procID]string{}
	queue := []int{pid}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			ns, _ := os.Readlink("/proc/" + strconv.Itoa(c.pid) + "/ns/pid")
			out[c] = ns
			queue = append(queue, c.pid)
		}
		queue = queue[1:]
	}
	return out
}

// alive reports whether the process id names still runs.
func (id procID) alive() bool {
	_, start, exited, ok := procStat(id.pid)
	return ok && start == id.start && !exited
}

// killTree stops p, notes every process below it, and SIGKILLs p alone,
// as a crash would kill it: what it started must go by itself. It returns
// what was below p.
func killTree(t *testing.T, p *builderProc) map[procID]string {
	t.Helper()
	// Stopped, the builder starts nothing between the listing and the kill;
	// its RUN step may still fork, inside a PID namespace the listing names.
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		<-p.done // it has exited already
		return nil
	}
	below := descendants(p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return below
}

// survivors waits for the processes of a killed builder to go and returns
// those still there when the hang guard ran out: the listed processes,
// and any process in a PID namespace one of them had of its own.
func survivors(below map[procID]string) []string {
	self, _ := os.Readlink("/proc/self/ns/pid")
	var left map[int]bool
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		left = map[int]bool{}
		for id, ns := range below {
			if id.alive() {
				left[id.pid] = true
			}
			if ns != "" && ns != self {
				for _, pid := range pidsInNamespace(ns) {
					if _, _, exited, ok := procStat(pid); ok && !exited {
						left[pid] = true
					}
				}
			}
		}
		if len(left) == 0 {
			return nil
		}
	}
	var out []string
	for pid := range left {
		out = append(out, describeProc(pid))
	}
	sort.Strings(out)
	return out
}

func describeProc(pid int) string {
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strconv.Itoa(pid) + " " + strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
}

// storeCheck is what `builder check` found in a store.
type storeCheck struct {
	swept    []string // problems check removed itself: a dead process's leftovers
	repaired []string // problems only check --repair removed
}

// checkStore runs `builder check` on root, and `check --repair` if check
// found problems it does not remove itself. A last check must then find
// nothing at all.
func checkStore(t *testing.T, bin, root string) storeCheck {
	t.Helper()
	var c storeCheck
	r := runCLI(t, bin, root, "check")
	switch r.code {
	case 0:
		c.swept = outputLines(r.stdout)
	case 1:
		c.repaired = outputLines(r.stdout)
		if fix := runCLI(t, bin, root, "check", "--repair"); fix.code != 0 {
			t.Errorf("builder check --repair: exit %d\n%s%s", fix.code, fix.stdout, fix.stderr)
		}
	default:
		t.Errorf("builder check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if again := runCLI(t, bin, root, "check"); again.code != 0 || again.stdout != "" {
		t.Errorf("builder check after %q: exit %d\n%s%s", r.stdout, again.code, again.stdout, again.stderr)
	}
	return c
}

func outputLines(s string) []string {
	if s = strings.TrimSpace(s); s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// buildGuarded builds without the cache and fails the test if the build
// hangs, as a read of a FIFO with no writer would.
func buildGuarded(t *testing.T, e *env, ctx, df string) (*executor.Result, error) {
	t.Helper()
	// A hang guard, not a timing assertion.
	res, err, hung := buildWithin(t, e, ctx, df, 60*time.Second)
	if hung {
		t.Fatal("the build hung")
	}
	return res, err
}

// buildWithin builds without the cache and reports whether the build was
// still running after guard: it then opens every FIFO of the context for
// writing, again and again, which lets each open and read of one end,
// until the build ends.
func buildWithin(t *testing.T, e *env, ctx, df string, guard time.Duration) (*executor.Result, error, bool) {
	t.Helper()
	type result struct {
		res *executor.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := e.build(t, ctx, df, &buildOpts{noCache: true})
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err, false
	case <-time.After(guard):
	}
	for {
		filepath.WalkDir(ctx, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeNamedPipe != 0 {
				if f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			}
			return nil
		})
		select {
		case r := <-done:
			return r.res, r.err, true
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lastLayerEntries lists the entries of the image's last layer made by the
// step after FROM: name, type, mode, and content (its size if long; "the
// host's secret" if it holds hostSecret) or link target; nil if the step
// made no layer.
func lastLayerEntries(t *testing.T, e *env, res *executor.Result) []string {
	t.Helper()
	img, err := e.store.Image(res.Image.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) < 2 {
		return nil
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("%s %s %o", hdr.Name, typeName(hdr.FileInfo().Mode()), hdr.Mode&0o7777)
		switch hdr.Typeflag {
		case tar.TypeReg:
			data, _ := io.ReadAll(tr)
			if strings.Contains(string(data), hostSecret) {
				data = []byte("the host's secret")
			} else if len(data) > 64 {
				data = fmt.Appendf(nil, "%d bytes", len(data))
			}
			desc += fmt.Sprintf(" %q", data)
		case tar.TypeSymlink:
			desc += " -> " + hdr.Linkname
		}
		out = append(out, desc)
	}
}

// swapAt is a context that a test swaps under a build: once an inotify
// event on a file of the context says how far the build got, two paths
// change places, atomically (RENAME_EXCHANGE).
type swapAt struct {
	dir, name string // the watched directory (relative to the context) and file
	mask      uint32 // the event: IN_OPEN, IN_CLOSE_NOWRITE
	a, b      string // the paths swapped, relative to the context
}

// arm starts waiting for the event; the returned function stops waiting
// and reports whether the swap happened.
func (s swapAt) arm(t *testing.T, ctx string) (stop func() bool) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Join(ctx, s.dir), s.mask); err != nil {
		t.Fatal(err)
	}
	quit, done := make(chan struct{}), make(chan bool, 1)
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-quit:
				done <- false
				return
			default:
			}
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 10)
			n, _ := unix.Read(fd, buf)
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				off += unix.SizeofInotifyEvent + int(ev.Len)
				if name == s.name && ev.Mask&s.mask != 0 {
					err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(ctx, s.a), unix.AT_FDCWD, filepath.Join(ctx, s.b), unix.RENAME_EXCHANGE)
					if err != nil {
						t.Errorf("swapping %s and %s: %v", s.a, s.b, err)
					}
					<-quit
					done <- err == nil
					return
				}
			}
		}
	}()
	return func() bool { close(quit); return <-done }
}

// reportProblems fails the test with each problem a hostile row showed.
// There is no "known hole" mark any more: a skipped row would count as
// green in CI, and every hole found so far is closed.
func reportProblems(t *testing.T, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

// swapper swaps two paths of a context as fast as it can until stopped.
func swapper(t *testing.T, a, b string) (stop func()) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("swapping %s and %s: %v", a, b, err)
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

// grower rewrites p as fast as it can until stopped: it appends, and
// starts over past 256 kB.
func grower(t *testing.T, p string) (stop func()) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer f.Close()
		chunk := []byte(strings.Repeat("growing\n", 512))
		for n := 0; ; n += len(chunk) {
			select {
			case <-quit:
				return
			default:
			}
			if n > 256<<10 {
				f.Truncate(0)
				f.Seek(0, io.SeekStart)
				n = 0
			}
			if _, err := f.Write(chunk); err != nil {
				t.Errorf("writing %s: %v", p, err)
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}
