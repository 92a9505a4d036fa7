package container

import (
	"context"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// TestContainerHardening checks what root inside a RUN step can and
// cannot do. Several checks would pass on this machine for the wrong
// reason (no /proc/kcore, host disks that even root cannot open), so each
// also asserts the mechanism: the capability sets, the mask mounts, that
// mknod itself succeeds.
func TestContainerHardening(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string
		fail     bool     // the script must exit non-zero
		stdout   []string // exact stdout, when set
		inStderr string   // a substring of stderr, when set
	}{
		{name: "capabilities", script: `grep -E '^Cap(Bnd|Eff|Prm|Inh|Amb)' /proc/self/status`,
			stdout: []string{"CapInh:\t0000000000000000", "CapPrm:\t00000000a80425fb", "CapEff:\t00000000a80425fb",
				"CapBnd:\t00000000a80425fb", "CapAmb:\t0000000000000000"}},
		{name: "no mount", script: `mkdir -p /mnt && mount -t tmpfs x /mnt`, fail: true, inStderr: "denied"},
		{name: "char device made but not opened", script: `mknod /tmp/n c 1 3 && echo made && echo x > /tmp/n`,
			fail: true, stdout: []string{"made"}, inStderr: "Permission denied"},
		{name: "block device made but not opened", script: `mknod /tmp/sda b 8 0 && echo made && head -c1 /tmp/sda`,
			fail: true, stdout: []string{"made"}, inStderr: "Permission denied"},
		{name: "dev nodes work", script: `echo x > /dev/null && head -c 5 /dev/zero | wc -c && head -c 3 /dev/urandom | wc -c`,
			stdout: []string{"5", "3"}},
		{name: "dev contents", script: `ls /dev | tr '\n' ' '; echo; for l in ptmx fd stdin; do readlink /dev/$l; done`,
			stdout: []string{"fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero ",
				"pts/ptmx", "/proc/self/fd", "/proc/self/fd/0"}},
		{name: "no tty", script: `tty`, fail: true, stdout: []string{"not a tty"}},
		{name: "keys and timer_list masked", script: `cat /proc/keys /proc/timer_list | wc -c; ` +
			`awk '$5 == "/proc/keys" || $5 == "/proc/timer_list" {print $5, $4}' /proc/self/mountinfo`,
			stdout: []string{"0", "/proc/keys /null", "/proc/timer_list /null"}},
		{name: "proc sys read-only", script: `echo evil > /proc/sys/kernel/hostname`, fail: true, inStderr: "Read-only file system"},
		{name: "sys read-only", script: `touch /sys/x`, fail: true, inStderr: "Read-only file system"},
		{name: "sys mounted ro", script: `awk '$5 == "/sys" || $5 == "/proc/sys" {print $5, substr($6, 1, 2)}' /proc/self/mountinfo`,
			stdout: []string{"/sys ro", "/proc/sys ro"}},
		{name: "no sethostname", script: `hostname evil`, fail: true},
		{name: "pid 1 leads its own session", script: `echo $$; cut -d' ' -f1,5,6 /proc/1/stat`, stdout: []string{"1", "1 1 1"}},
		{name: "fresh proc", script: `echo /proc/[0-9]*`, stdout: []string{"/proc/1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "")
			r := run(context.Background(), f.spec(sh(tc.script)...))
			if r.err != nil {
				t.Fatalf("run: %v", r)
			}
			if failed := r.code != 0; failed != tc.fail {
				t.Errorf("exit code %d, want failure=%v: %v", r.code, tc.fail, r)
			}
			if tc.stdout != nil && !slices.Equal(r.stdout, tc.stdout) {
				t.Errorf("stdout = %q, want %q", r.stdout, tc.stdout)
			}
			if tc.inStderr != "" && !strings.Contains(strings.Join(r.stderr, "\n"), tc.inStderr) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.inStderr)
			}
		})
	}
}

// TestContainerSignals starts the builder with SIGINT (and a few more)
// ignored, as a shell does for a background job: the command must still get default signal
// dispositions and an empty mask, as under Docker.
func TestContainerSignals(t *testing.T) {
	f := newFixture(t, "")
	ignored := []os.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGPIPE}
	signal.Ignore(ignored...)
	defer signal.Reset(ignored...)
	r := mustRun(t, f.spec("grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"))
	want := []string{"SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"}
	if !slices.Equal(r.stdout, want) {
		t.Errorf("signals of the command = %q, want %q", r.stdout, want)
	}
}

// TestContainerUmask runs the builder under umask 077: files a RUN step
// creates must not depend on it.
func TestContainerUmask(t *testing.T) {
	f := newFixture(t, "")
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	spec := f.spec(sh("umask; touch /f; stat -c %a /f /work")...)
	spec.Dir = "/work"
	r := mustRun(t, spec)
	if want := []string{"0022", "644", "755"}; !slices.Equal(r.stdout, want) {
		t.Errorf("umask, file and working dir modes = %q, want %q", r.stdout, want)
	}
}

func TestContainerNonRootCaps(t *testing.T) {
	f := newFixture(t, "", appLayer(t))
	spec := f.spec(sh(`grep -E '^Cap(Bnd|Eff|Prm)' /proc/self/status`)...)
	spec.User = "app"
	r := mustRun(t, spec)
	want := []string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t00000000a80425fb"}
	if !slices.Equal(r.stdout, want) {
		t.Errorf("caps of app = %q, want %q", r.stdout, want)
	}
}

func TestContainerNetwork(t *testing.T) {
	hostIfs := func() []string {
		ents, err := os.ReadDir("/sys/class/net")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	for _, network := range []string{"none", "host", ""} {
		t.Run(network, func(t *testing.T) {
			f := newFixture(t, "")
			spec := f.spec(sh(`ip -o link | cut -d: -f2 | cut -d@ -f1 | tr -d ' ' | sort; ip -o link show lo | grep -c UP`)...)
			spec.Network = network
			before := hostIfs()
			r := mustRun(t, spec)
			after := hostIfs()
			if len(r.stdout) == 0 || r.stdout[len(r.stdout)-1] != "1" {
				t.Fatalf("network %q: lo is not up: %q", network, r.stdout)
			}
			got := r.stdout[:len(r.stdout)-1]
			if network != "host" { // "" is isolated too, never the host's
				if !slices.Equal(got, []string{"lo"}) {
					t.Errorf("network %q: interfaces %q, want only lo", network, got)
				}
				return
			}
			// Other podman runs on this machine add and remove
			// interfaces; what was there throughout must be seen, and
			// nothing that was never there.
			for _, name := range before {
				if slices.Contains(after, name) && !slices.Contains(got, name) {
					t.Errorf("network %q: host interface %s missing from %q", network, name, got)
				}
			}
			for _, name := range got {
				if !slices.Contains(before, name) && !slices.Contains(after, name) {
					t.Errorf("network %q: interface %s is not the host's (%q)", network, name, before)
				}
			}
		})
	}
}

// TestContainerSandboxNet: a spec pointed at a sandbox network with Join
// is in its namespace, lo and tap0 up, and asks slirp4netns's forwarder
// for names, keeping the host's search domains.
func TestContainerSandboxNet(t *testing.T) {
	f := newFixture(t, "")
	slirp := testutil.RequireTool(t, "slirp4netns")
	n, err := StartSandboxNet(context.Background(), slirp)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	spec := f.spec(sh(`ip -o link | awk -F': ' '{print $2, ($3 ~ /[<,]UP[,>]/) ? "up" : "down"}' | sort; cat /etc/resolv.conf`)...)
	spec.ResolvConf = []byte("nameserver 127.0.0.53\nsearch example.test\noptions edns0\n")
	n.Join(&spec)
	r := mustRun(t, spec)
	want := []string{"lo up", "tap0 up", "nameserver 10.0.2.3", "search example.test", "options edns0"}
	if !slices.Equal(r.stdout, want) {
		t.Errorf("in the sandbox network: %q, want %q", r.stdout, want)
	}
}

// TestContainerFDLeak opens a descriptor without close-on-exec, as a CI
// runner or a shell may hand the builder: the command must not see it.
func TestContainerFDLeak(t *testing.T) {
	f := newFixture(t, "")
	fd, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0) // no O_CLOEXEC on purpose
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const leaked = 77
	if err := unix.Dup2(fd, leaked); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leaked)
	r := run(context.Background(), f.spec(sh(`ls /proc/self/fd | tr '\n' ' '; cat <&77`)...))
	if r.err != nil || r.code == 0 {
		t.Errorf("reading fd 77 succeeded: %v", r)
	}
	// ls sees its stdio and the directory it is reading.
	if want := []string{"0 1 2 3 "}; !slices.Equal(r.stdout, want) {
		t.Errorf("descriptors in the container = %q, want %q", r.stdout, want)
	}
}
