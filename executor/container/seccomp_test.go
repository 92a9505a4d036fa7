package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// seccompProbeEnv makes the test binary a probe of the seccomp filter
// (see TestMain): "filter" installs it first, "none" does not.
const seccompProbeEnv = "BUILDER_TEST_SECCOMP_PROBE"

// seccompProbes are system calls the probe makes as root with every
// capability, in its own mount and network namespaces. With every
// capability, only the filter can refuse them, so the probe tells the
// filter's work apart from the capability set's, which in a container
// already refuses mount and setns.
var seccompProbes = []struct {
	name string
	call func(dir string) error
}{
	{"mount", func(dir string) error {
		err := unix.Mount("probe", dir, "tmpfs", 0, "")
		if err == nil {
			unix.Unmount(dir, 0)
		}
		return err
	}},
	{"fsopen", func(string) error {
		fd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}},
	{"setns", func(string) error {
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening the namespace: %w", err)
		}
		defer unix.Close(fd)
		return unix.Setns(fd, unix.CLONE_NEWNET) // the thread's own: harmless
	}},
	{"add_key", func(string) error {
		_, err := unix.AddKey("user", "builder-seccomp-probe", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	}},
	// Go forks with clone(2), whose flags the filter reads.
	{"clone new user namespace", func(string) error { return startTrue(unix.CLONE_NEWUSER) }},
	{"clone", func(string) error { return startTrue(0) }},
	// A size of 0 is invalid: the kernel answers EINVAL, and nothing is
	// ever created.
	{"clone3", func(string) error {
		_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}},
	{"unshare mount namespace", func(string) error { return unix.Unshare(unix.CLONE_NEWNS) }},
}

func startTrue(cloneflags uintptr) error {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags}
	return cmd.Run()
}

// seccompProbe runs seccompProbes, after installing the filter when mode
// is "filter", and prints each probe's errno (0 for success) as JSON.
func seccompProbe(mode string) int {
	// The probes that change the thread's namespaces must not leave
	// it to other goroutines: it is never unlocked, so it dies with
	// the process.
	runtime.LockOSThread()
	// Mounts of the probe must not reach the host's namespace, which
	// the new one shares propagation with.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintln(os.Stderr, "making mounts private:", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "seccomp-probe-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.Remove(dir)
	if mode == "filter" {
		if err := installSeccomp(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	results := map[string]uintptr{}
	for _, p := range seccompProbes {
		var errno syscall.Errno
		if err := p.call(dir); errors.As(err, &errno) {
			results[p.name] = uintptr(errno)
		} else if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", p.name, err)
			return 2
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		return 2
	}
	return 0
}

// runSeccompProbe starts the probe in new mount and network namespaces
// and returns what each probe's system call returned.
func runSeccompProbe(t *testing.T, mode string) map[string]syscall.Errno {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), seccompProbeEnv+"="+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWNET}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe %s: %v\n%s", mode, err, stderr.String())
	}
	var raw map[string]uintptr
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("probe %s: %v: %q", mode, err, out)
	}
	got := map[string]syscall.Errno{}
	for _, p := range seccompProbes {
		got[p.name] = syscall.Errno(raw[p.name])
	}
	return got
}

// TestSeccompFilter runs each probe as root with every capability, with
// and without the filter: without it the call does what it was asked
// (clone3's EINVAL is the kernel refusing its size), so the refusal with
// it is the filter's alone.
func TestSeccompFilter(t *testing.T) {
	testutil.RequireRoot(t)
	requireSeccompFilter(t)
	want := map[string][2]syscall.Errno{ // without the filter, with it
		"mount":                    {0, unix.EPERM},
		"fsopen":                   {0, unix.EPERM},
		"setns":                    {0, unix.EPERM},
		"add_key":                  {0, unix.EPERM},
		"clone new user namespace": {0, unix.EPERM},
		"clone3":                   {unix.EINVAL, unix.ENOSYS},
		"clone":                    {0, 0},
		"unshare mount namespace":  {0, 0},
	}
	without, with := runSeccompProbe(t, "none"), runSeccompProbe(t, "filter")
	for _, p := range seccompProbes {
		w, ok := want[p.name]
		if !ok {
			t.Fatalf("probe %q has no expectation", p.name)
		}
		if without[p.name] != w[0] {
			t.Errorf("%s without the filter: %s, want %s: the probe does not test what it claims", p.name, errnoText(without[p.name]), errnoText(w[0]))
		}
		if with[p.name] != w[1] {
			t.Errorf("%s with the filter: %s, want %s", p.name, errnoText(with[p.name]), errnoText(w[1]))
		}
	}
}

func errnoText(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	return fmt.Sprintf("%s (%s)", unix.ErrnoName(e), e)
}

// TestSeccompRefusesUserNamespaces: with Docker's capabilities a RUN step
// cannot mount, but a user namespace would give it every capability back;
// the filter refuses that route, as Docker's profile does. Ordinary work
// (threads) keeps working.
func TestSeccompRefusesUserNamespaces(t *testing.T) {
	cases := []struct {
		name, run string
		fail      bool
		stdout    []string
	}{
		{"unshare -U then mount", `unshare -Urm sh -c 'mount -t tmpfs x /tmp && echo MOUNTED'`, true, nil},
		{"unshare -U alone", `unshare -U true`, true, nil},
		{"seccomp mode in status", `grep -E '^Seccomp:' /proc/self/status`, false, []string{"Seccomp:\t2"}},
		{"threads still start", `sh -c 'sleep 0 & wait' && echo ok`, false, []string{"ok"}},
	}
	requireSeccompFilter(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, "")
			r := run(context.Background(), f.spec(sh(c.run)...))
			if r.err != nil {
				t.Fatalf("run: %v", r)
			}
			if failed := r.code != 0; failed != c.fail {
				t.Errorf("RUN %s: exit code %d, want failure=%v: %v", c.run, r.code, c.fail, r)
			}
			if slices.Contains(r.stdout, "MOUNTED") {
				t.Errorf("RUN %s mounted: %v", c.run, r)
			}
			if c.stdout != nil && !slices.Equal(r.stdout, c.stdout) {
				t.Errorf("RUN %s: stdout = %q, want %q", c.run, r.stdout, c.stdout)
			}
		})
	}
}

// requireSeccompFilter stops the test on the architectures
// seccomp_other.go covers, which have no filter (a failure under CI=true).
func requireSeccompFilter(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		testutil.Missing(t, "no seccomp filter on "+runtime.GOARCH)
	}
}
