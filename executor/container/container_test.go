package container

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/snapshot"
)

// fixture is a RUN rootfs: the busybox rootfs at the bottom, optional
// extra layers on top, and a fresh upper, work and stub dir.
type fixture struct {
	dir    string
	lowers []string
	upper  string
	work   string
	stub   string
}

// newFixture makes a fixture whose layers are extra (topmost first) over
// busybox, with its writable dirs under a new temp dir (or parent, when
// given). It fails the test if any mount is left under that dir at the end.
func newFixture(t testing.TB, parent string, extra ...string) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	busybox := testutil.BusyboxRootfs(t)
	if parent == "" {
		parent = t.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left in the host namespace: %q", m)
		}
	})
	f := &fixture{dir: dir, lowers: append(slices.Clone(extra), busybox)}
	f.upper, f.work, f.stub = filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "stub")
	for _, d := range []string{f.upper, f.work, f.stub} {
		// The upper's own mode becomes the merged /, which every user
		// must be able to traverse.
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// hostsFile is an /etc/hosts as the executor gives RUN steps.
const hostsFile = "127.0.0.1\tlocalhost builder\n::1\tlocalhost ip6-localhost ip6-loopback\n"

func (f *fixture) spec(args ...string) Spec {
	return Spec{
		Root:       snapshot.Mount{Lowers: f.lowers, Upper: f.upper, Work: f.work, Stub: f.stub},
		Args:       args,
		Env:        []string{defaultPath},
		Dir:        "/",
		Hostname:   "builder",
		Network:    "host",
		ResolvConf: []byte("nameserver 192.0.2.53\n"),
		Hosts:      []byte(hostsFile),
	}
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

type runResult struct {
	code           int
	err            error
	stdout, stderr []string
}

func (r runResult) String() string {
	return fmt.Sprintf("code=%d err=%v\nstdout: %q\nstderr: %q", r.code, r.err, r.stdout, r.stderr)
}

func run(ctx context.Context, spec Spec) runResult {
	var r runResult
	r.code, r.err = Run(ctx, spec, func(stream int, line string) {
		switch stream {
		case 1:
			r.stdout = append(r.stdout, line)
		case 2:
			r.stderr = append(r.stderr, line)
		default:
			r.stderr = append(r.stderr, fmt.Sprintf("BAD STREAM %d: %s", stream, line))
		}
	})
	return r
}

// mustRun runs spec and fails the test unless the command exits 0.
func mustRun(t testing.TB, spec Spec) runResult {
	t.Helper()
	r := run(context.Background(), spec)
	if r.err != nil || r.code != 0 {
		t.Fatalf("Run(%q): %v", spec.Args, r)
	}
	return r
}

// layerEntry is one item of a test layer: a directory when data is
// empty and the path ends in "/".
type layerEntry struct {
	path     string
	mode     os.FileMode
	uid, gid int
	data     string
}

func makeLayer(t testing.TB, entries ...layerEntry) string {
	t.Helper()
	dir := t.TempDir()
	for _, e := range entries {
		p := filepath.Join(dir, e.path)
		var err error
		if strings.HasSuffix(e.path, "/") {
			err = os.MkdirAll(p, e.mode)
		} else {
			err = os.WriteFile(p, []byte(e.data), e.mode)
		}
		if err == nil {
			err = os.Chmod(p, e.mode)
		}
		if err == nil {
			err = os.Lchown(p, e.uid, e.gid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// appLayer adds a user app (1000) in groups app (1000), staff and tty.
func appLayer(t testing.TB) string {
	return makeLayer(t,
		layerEntry{path: "etc/", mode: 0o755},
		layerEntry{path: "etc/passwd", mode: 0o644, data: "root:x:0:0:root:/root:/bin/sh\n" +
			"app:x:1000:1000:app:/home/app:/bin/sh\n"},
		layerEntry{path: "etc/group", mode: 0o644, data: "root:x:0:\ntty:x:5:app\nstaff:x:50:app\napp:x:1000:\n"},
	)
}

// mountsUnder lists the host's mount points at or below dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

func unescapeMountinfo(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// processesWith lists the pids of processes with marker among their args.
func processesWith(t testing.TB, marker string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if slices.Contains(strings.Split(string(cmdline), "\x00"), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitForProcess polls until a process with marker exists and returns
// its pid. It only guards against a hang; no timing is asserted.
func waitForProcess(t testing.TB, marker string, done <-chan runResult) int {
	t.Helper()
	for i := 0; i < 6000; i++ {
		if pids := processesWith(t, marker); len(pids) > 0 {
			return pids[0]
		}
		select {
		case r := <-done:
			t.Fatalf("container ended before its process showed up: %v", r)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no process with %q appeared", marker)
	return 0
}

// sleepMarker is a sleep argument unique to one test, to find its
// processes among everything else running on the machine. Whatever
// process still has it when the test ends is killed.
func sleepMarker(t testing.TB) string {
	marker := strconv.Itoa(100000 + rand.IntN(900000))
	t.Cleanup(func() {
		for _, pid := range processesWith(t, marker) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return marker
}

func TestContainerOutput(t *testing.T) {
	f := newFixture(t, "")
	r := mustRun(t, f.spec(sh(`echo out1; echo err1 >&2; echo; echo out2; echo err2 >&2; printf 'no newline'`)...))
	if want := []string{"out1", "", "out2", "no newline"}; !slices.Equal(r.stdout, want) {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if want := []string{"err1", "err2"}; !slices.Equal(r.stderr, want) {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}

	// A line longer than maxLine comes in maxLine pieces.
	r = mustRun(t, f.spec(sh(`head -c 150000 /dev/zero | tr '\0' a; echo; echo after`)...))
	var lens []int
	for _, l := range r.stdout {
		lens = append(lens, len(l))
	}
	if want := []int{maxLine, maxLine, 150000 - 2*maxLine, len("after")}; !slices.Equal(lens, want) {
		t.Errorf("line lengths = %v, want %v", lens, want)
	}
}

func TestContainerExitCode(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"true", 0},
		{"exit 3", 3},
		{"false", 1},
	} {
		t.Run(tc.script, func(t *testing.T) {
			f := newFixture(t, "")
			r := run(context.Background(), f.spec(sh(tc.script)...))
			if r.err != nil || r.code != tc.want {
				t.Errorf("run %q: %v, want code %d", tc.script, r, tc.want)
			}
		})
	}
}

// TestContainerKilledBySignal kills the command, PID 1 of the container,
// from the host: its status is 128+9, not an error.
func TestContainerKilledBySignal(t *testing.T) {
	f := newFixture(t, "")
	marker := sleepMarker(t)
	done := make(chan runResult, 1)
	go func() { done <- run(context.Background(), f.spec(sh("exec sleep "+marker)...)) }()
	pid := waitForProcess(t, marker, done)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.code != 128+9 {
		t.Errorf("killed container: %v, want code 137", r)
	}
}

func TestContainerUser(t *testing.T) {
	for _, tc := range []struct {
		user string
		env  []string
		want string // id -u; id -g; sorted id -G; $HOME
	}{
		{"", nil, "0 0 [0] /root"},
		{"root", nil, "0 0 [0] /root"},
		{"app", nil, "1000 1000 [1000 5 50] /home/app"},
		{"1000", nil, "1000 1000 [1000 5 50] /home/app"},
		{"app:staff", nil, "1000 50 [50] /home/app"},
		{"1000:1000", nil, "1000 1000 [1000] /home/app"},
		{"4321", nil, "4321 0 [0] /"},
		{"app", []string{defaultPath, "HOME=/elsewhere"}, "1000 1000 [1000 5 50] /elsewhere"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			f := newFixture(t, "", appLayer(t))
			spec := f.spec(sh(`echo $(id -u) $(id -g) $(id -G | tr ' ' '\n' | sort | tr '\n' ' ') $HOME`)...)
			spec.User = tc.user
			if tc.env != nil {
				spec.Env = tc.env
			}
			r := mustRun(t, spec)
			var got string
			if len(r.stdout) == 1 {
				fs := strings.Fields(r.stdout[0])
				if len(fs) >= 3 {
					got = fmt.Sprintf("%s %s %v %s", fs[0], fs[1], fs[2:len(fs)-1], fs[len(fs)-1])
				}
			}
			// Sorting as strings puts 1000 before 5.
			if got != tc.want {
				t.Errorf("USER %q: got %q (%v), want %q", tc.user, got, r, tc.want)
			}
		})
	}
}

func TestContainerSetupErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Spec)
		want  string
		errno syscall.Errno
	}{
		{"unknown user", func(s *Spec) { s.User = "ghost" }, `resolving user "ghost"`, 0},
		{"unknown group", func(s *Spec) { s.User = "app:ghosts" }, "unable to find group ghosts", 0},
		{"command not found", func(s *Spec) { s.Args = []string{"no-such-cmd", "x"} }, `command "no-such-cmd" not found in PATH`, 0},
		{"not executable", func(s *Spec) { s.Args = []string{"/etc/passwd"} }, "executing /etc/passwd", syscall.EACCES},
		{"working dir is a file", func(s *Spec) { s.Dir = "/etc/passwd/x" }, "creating working directory /etc/passwd/x", syscall.ENOTDIR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "", appLayer(t))
			spec := f.spec("/bin/true")
			tc.edit(&spec)
			r := run(context.Background(), spec)
			var se *SetupError
			if !errors.As(r.err, &se) {
				t.Fatalf("got %v, want a *SetupError", r)
			}
			if !strings.HasPrefix(r.err.Error(), "setting up container: ") || !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", r.err, tc.want)
			}
			if tc.errno != 0 && !errors.Is(r.err, tc.errno) {
				t.Errorf("error %q does not match %v", r.err, tc.errno)
			}
		})
	}
}

func TestContainerSpecRejected(t *testing.T) {
	f := newFixture(t, "")
	spec := f.spec("/bin/true")
	spec.Network = "bridge"
	if _, err := Run(context.Background(), spec, func(int, string) {}); err == nil || !strings.Contains(err.Error(), "bridge") {
		t.Errorf("network bridge: err = %v, want an unsupported network error", err)
	}
	spec = f.spec("/bin/true")
	spec.Root.Stub = ""
	if _, err := Run(context.Background(), spec, func(int, string) {}); err == nil {
		t.Error("no stub: err = nil, want an error")
	}
}

func TestContainerDir(t *testing.T) {
	f := newFixture(t, "")
	spec := f.spec(sh("pwd; touch here")...)
	spec.Dir = "/work/a/b"
	r := mustRun(t, spec)
	if !slices.Equal(r.stdout, []string{"/work/a/b"}) {
		t.Errorf("pwd = %q, want /work/a/b", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(f.upper, "work/a/b/here")); err != nil {
		t.Errorf("the command's file is not in the working dir: %v", err)
	}
}

func TestContainerEnv(t *testing.T) {
	f := newFixture(t, "")
	env := []string{"PATH=/usr/bin:/bin", "FOO=bar baz", "EMPTY=", "HOME=/root"}
	spec := f.spec("env") // env itself is PID 1: it prints exactly what execve got
	spec.Env = env
	r := mustRun(t, spec)
	if !slices.Equal(r.stdout, env) {
		t.Errorf("env = %q, want %q", r.stdout, env)
	}

	spec.Env = []string{"A=1"} // no PATH: the default one finds env; HOME comes from passwd
	r = mustRun(t, spec)
	if want := []string{"A=1", "HOME=/root"}; !slices.Equal(r.stdout, want) {
		t.Errorf("env = %q, want %q", r.stdout, want)
	}
}

func TestContainerEtcFiles(t *testing.T) {
	f := newFixture(t, "")
	spec := f.spec(sh("cat /etc/resolv.conf /etc/hosts /etc/hostname; hostname")...)
	r := mustRun(t, spec)
	want := strings.Split(strings.TrimSuffix(string(spec.ResolvConf)+hostsFile, "\n"), "\n")
	want = append(want, "builder", "builder")
	if !slices.Equal(r.stdout, want) {
		t.Errorf("etc files = %q, want %q", r.stdout, want)
	}
}

// TestContainerResolvConfCopy writes through the container's
// /etc/resolv.conf: the host's file must not change, nor the upper dir.
func TestContainerResolvConfCopy(t *testing.T) {
	f := newFixture(t, "")
	before, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		testutil.Missing(t, "the host has no /etc/resolv.conf: "+err.Error())
	}
	spec := f.spec(sh("echo nameserver 203.0.113.9 >> /etc/resolv.conf; echo x >> /etc/hosts; cat /etc/resolv.conf")...)
	spec.ResolvConf = before
	r := mustRun(t, spec)
	if len(r.stdout) == 0 || r.stdout[len(r.stdout)-1] != "nameserver 203.0.113.9" {
		t.Errorf("container's resolv.conf = %q, want the appended line", r.stdout)
	}
	after, err := os.ReadFile("/etc/resolv.conf")
	if err != nil || string(after) != string(before) {
		t.Fatalf("host /etc/resolv.conf changed: %q -> %q (%v)", before, after, err)
	}
	assertUpper(t, f.upper, nil)
}

func TestContainerUpper(t *testing.T) {
	t.Run("true leaves it empty", func(t *testing.T) {
		f := newFixture(t, "")
		mustRun(t, f.spec("true"))
		assertUpper(t, f.upper, nil)
	})
	t.Run("a new file under a 0750 /etc", func(t *testing.T) {
		etc := makeLayer(t, layerEntry{path: "etc/", mode: 0o750, uid: 1000, gid: 1000})
		f := newFixture(t, "", etc)
		r := mustRun(t, f.spec(sh("echo hi > /etc/motd; stat -c '%a %u %g' /etc")...))
		if !slices.Equal(r.stdout, []string{"750 1000 1000"}) {
			t.Errorf("/etc in the container = %q, want 750 1000 1000", r.stdout)
		}
		assertUpper(t, f.upper, []string{"etc", "etc/motd"})
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(f.upper, "etc"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o750 || st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("upper etc: mode %o owner %d:%d, want 750 1000:1000", st.Mode&0o7777, st.Uid, st.Gid)
		}
	})
}

// assertUpper checks that upper holds exactly the paths want.
func assertUpper(t testing.TB, upper string, want []string) {
	t.Helper()
	var got []string
	err := filepath.WalkDir(upper, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == upper {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		got = append(got, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("upper dir holds %q, want %q", got, want)
	}
}

func TestContainerCancel(t *testing.T) {
	f := newFixture(t, "")
	marker := sleepMarker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan runResult, 1)
	go func() { done <- run(ctx, f.spec(sh("sleep "+marker+" & sleep "+marker)...)) }()
	waitForProcess(t, marker, done)
	cancel()
	var r runResult
	select {
	case r = <-done:
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatal("Run did not return after cancel")
	}
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled run: %v, want context.Canceled", r)
	}
	if pids := processesWith(t, marker); len(pids) > 0 {
		t.Errorf("processes left after cancel: %v", pids)
	}
}

func TestContainerBackgroundKilled(t *testing.T) {
	f := newFixture(t, "")
	marker := sleepMarker(t)
	r := run(context.Background(), f.spec(sh("sleep "+marker+" & exit 3")...))
	if r.err != nil || r.code != 3 {
		t.Errorf("run: %v, want code 3", r)
	}
	if pids := processesWith(t, marker); len(pids) > 0 {
		t.Errorf("background processes left: %v", pids)
	}
}

// TestContainerSharedMount runs a container whose dirs sit on a shared
// mount, as on a systemd host: without MS_PRIVATE its mounts would
// propagate to the host namespace.
func TestContainerSharedMount(t *testing.T) {
	testutil.RequireRoot(t)
	shared := t.TempDir()
	if err := unix.Mount(shared, shared, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(shared, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the fixture: %v", err)
		}
	})
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	before := mountsUnder(t, shared)
	f := newFixture(t, shared)
	mustRun(t, f.spec(sh("mount >/dev/null; cat /proc/self/mountinfo >/dev/null")...))
	if after := mountsUnder(t, shared); !slices.Equal(after, before) {
		t.Errorf("host mounts under the shared dir: %q, want only %q", after, before)
	}
}

// TestContainerConcurrent runs several containers at once, as parallel
// stages do.
func TestContainerConcurrent(t *testing.T) {
	const n = 6
	var wg sync.WaitGroup
	results := make([]runResult, n)
	fixtures := make([]*fixture, n)
	for i := range fixtures {
		fixtures[i] = newFixture(t, "")
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = run(context.Background(), fixtures[i].spec(sh(fmt.Sprintf("echo %d; exit %d", i, i))...))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil || r.code != i || !slices.Equal(r.stdout, []string{strconv.Itoa(i)}) {
			t.Errorf("container %d: %v", i, r)
		}
	}
}

func TestDefaultCapsMask(t *testing.T) {
	if got := capMask(defaultCaps); got != 0xa80425fb {
		t.Errorf("capMask(defaultCaps) = %#x, want 0xa80425fb", got)
	}
}
