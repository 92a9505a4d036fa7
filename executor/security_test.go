package executor_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
)

// runOutput builds df without the cache and returns the lines the RUN
// steps printed, stdout and stderr together, with the build's error.
func (e *env) runOutput(t *testing.T, df string) (string, *executor.Result, error) {
	t.Helper()
	return e.runOutputOpts(t, df, &buildOpts{})
}

// runOutputOpts is runOutput with options (noCache and events are set).
func (e *env) runOutputOpts(t *testing.T, df string, o *buildOpts) (string, *executor.Result, error) {
	t.Helper()
	var events []executor.Event
	o.noCache, o.events = true, &events
	res, err := e.build(t, t.TempDir(), df, o)
	var lines []string
	for _, ev := range events {
		if ev.Kind == executor.StepLog && ev.Stream != 0 {
			lines = append(lines, ev.Line)
		}
	}
	return strings.Join(lines, "\n"), res, err
}

// TestEscapeAttempts runs RUN steps that try to reach the host. Each must
// fail, and for the reason the design gives: a dropped capability, nodev,
// a read-only mount. A step failing for another reason (a missing file,
// say) would hide a hole, so the error text is checked too.
func TestEscapeAttempts(t *testing.T) {
	e := newEnv(t)
	host, _ := os.Hostname()
	cases := []struct {
		name, run string
		want      string // in the output, case-insensitive
	}{
		// CAP_SYS_ADMIN is not in the default set.
		{"mount tmpfs", "mkdir -p /mnt && mount -t tmpfs x /mnt", "permission denied"},
		{"remount sys rw", "mount -o remount,rw /sys", "permission denied"},
		{"unmask proc keys", "umount /proc/keys", "operation not permitted"},
		{"sethostname", "hostname escaped", "operation not permitted"},
		// mknod is allowed, as under Docker; the nodev rootfs denies the open.
		{"block device", "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda", "head: /tmp/sda: permission denied"},
		{"char device", "mknod /tmp/n c 1 3 && echo x > /tmp/n", "can't create /tmp/n: permission denied"},
		{"devices on /dev tmpfs", "mknod /dev/mem2 c 1 1 && head -c1 /dev/mem2", "permission denied"},
		// Read-only /proc/sys and /sys.
		{"proc sysctl", "echo escaped > /proc/sys/kernel/hostname", "read-only file system"},
		{"sys", "touch /sys/x", "read-only file system"},
		{"sys kernel knob", "echo 1 > /sys/kernel/mm/transparent_hugepage/enabled", "read-only file system"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := e.runOutput(t, "FROM busybox:test\nRUN "+c.run+"\n")
			if err == nil {
				t.Fatalf("RUN %s succeeded; output:\n%s", c.run, out)
			}
			var exit *executor.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("RUN %s failed without an exit status: %v", c.run, err)
			}
			if !strings.Contains(strings.ToLower(out), c.want) {
				t.Errorf("RUN %s output %q, want it to say %q", c.run, out, c.want)
			}
		})
	}
	if now, _ := os.Hostname(); now != host {
		t.Errorf("host name changed from %q to %q", host, now)
	}
}

// dockerMasked and dockerReadonly are moby's default masked and
// read-only paths (oci/defaults.go).
var (
	dockerMasked = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap"}
	dockerReadonly = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// TestRunMechanisms checks the mechanisms themselves from inside a RUN:
// Docker's capability set, and in the step's mountinfo the masks, the
// read-only mounts and nodev on the rootfs. /proc/kcore does not exist on
// this kernel, so "reading it fails" proves nothing here; the mask list
// does, for every masked path the kernel has.
func TestRunMechanisms(t *testing.T) {
	e := newEnv(t)
	script := "grep -E '^Cap(Bnd|Eff|Prm|Inh|Amb):' /proc/self/status; " +
		"for p in " + strings.Join(append(slices.Clone(dockerMasked), dockerReadonly...), " ") +
		"; do test -e $p && echo present $p; done; cat /proc/self/mountinfo"
	out, _, err := e.runOutput(t, "FROM busybox:test\nRUN "+script+"\n")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	caps := map[string]string{}
	mounts := map[string]mountEntry{}
	var present []string
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":\t"); ok && strings.HasPrefix(k, "Cap") {
			caps[k] = v
		} else if p, ok := strings.CutPrefix(line, "present "); ok {
			present = append(present, p)
		} else if m, ok := parseMountinfo(line); ok {
			mounts[m.point] = m
		}
	}
	want := map[string]string{"CapBnd": "00000000a80425fb", "CapEff": "00000000a80425fb", "CapPrm": "00000000a80425fb", "CapInh": "0000000000000000", "CapAmb": "0000000000000000"}
	for k, v := range want {
		if caps[k] != v {
			t.Errorf("%s = %q, want %s (Docker's default set)", k, caps[k], v)
		}
	}
	for _, p := range present {
		m, ok := mounts[p]
		switch {
		case !ok:
			t.Errorf("%s exists in the step and nothing is mounted on it", p)
		case slices.Contains(dockerReadonly, p) && !m.has("ro"):
			t.Errorf("%s is mounted %s, want ro", p, m.opts)
		case slices.Contains(dockerMasked, p) && !(m.root == "/null" || m.fstype == "tmpfs" && m.has("ro")):
			t.Errorf("%s is not masked: %+v", p, m)
		}
	}
	if !slices.Contains(present, "/proc/keys") || !slices.Contains(present, "/proc/sys") {
		t.Errorf("present paths %q: the probe itself is broken", present)
	}
	checks := []struct {
		point string
		opts  []string
	}{
		{"/", []string{"nodev"}},
		{"/dev", []string{"nodev", "nosuid"}},
		{"/sys", []string{"ro", "nodev", "nosuid", "noexec"}},
		{"/proc", []string{"nodev", "nosuid", "noexec"}},
		{"/dev/shm", []string{"nodev", "nosuid", "noexec"}},
	}
	for _, c := range checks {
		m, ok := mounts[c.point]
		if !ok {
			t.Errorf("no mount on %s in the step", c.point)
			continue
		}
		for _, o := range c.opts {
			if !m.has(o) {
				t.Errorf("%s is mounted %s, want %s", c.point, m.opts, o)
			}
		}
	}
	// mountinfo shows only options that differ from the kernel's defaults.
	if m := mounts["/"]; m.fstype != "overlay" || strings.Contains(m.super, "redirect_dir=on") || strings.Contains(m.super, "metacopy=on") {
		t.Errorf("rootfs mount %+v, want overlay without redirect_dir or metacopy", m)
	}
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	root, point, opts, fstype, super string
}

func (m mountEntry) has(opt string) bool { return slices.Contains(strings.Split(m.opts, ","), opt) }

func parseMountinfo(line string) (mountEntry, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	f, g := strings.Fields(pre), strings.Fields(post)
	if !ok || len(f) < 6 || len(g) < 3 {
		return mountEntry{}, false
	}
	return mountEntry{root: f[3], point: f[4], opts: f[5], fstype: g[0], super: g[2]}, true
}

// TestHiddenHost: the step sees its own PID namespace and host name, not
// the builder's processes.
func TestHiddenHost(t *testing.T) {
	e := newEnv(t)
	pid := os.Getpid()
	out, _, err := e.runOutput(t, fmt.Sprintf("FROM busybox:test\nRUN test ! -e /proc/%d && echo pid1=$(cat /proc/1/comm) && echo procs=$(ls /proc | grep -c '^[0-9]')\n", pid))
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if !strings.Contains(out, "pid1=sh") {
		t.Errorf("PID 1 of the step is not its own shell: %q", out)
	}
	var n int
	if i := strings.Index(out, "procs="); i < 0 {
		t.Errorf("no process count in %q", out)
	} else if fmt.Sscanf(out[i:], "procs=%d", &n); n == 0 || n > 5 {
		// sh, the $(...) subshell, ls and grep
		t.Errorf("the step sees %d processes, want its own 4 or so", n)
	}
}

// TestResolvConfWrite appends to the step's resolv.conf and hosts: the
// host's files stay as they were, the layer holds neither, and the next
// step gets fresh copies.
func TestResolvConfWrite(t *testing.T) {
	e := newEnv(t)
	before := map[string][]byte{}
	for _, p := range []string{"/etc/resolv.conf", "/etc/hosts", "/etc/hostname"} {
		before[p], _ = os.ReadFile(p)
	}
	df := "FROM busybox:test\n" +
		"RUN echo nameserver 192.0.2.1 >> /etc/resolv.conf && echo '192.0.2.1 evil' >> /etc/hosts && echo evil >> /etc/hostname && echo mark > /marker\n" +
		"RUN ! grep -r -e 192.0.2.1 -e evil /etc/resolv.conf /etc/hosts /etc/hostname && echo fresh\n"
	out, res, err := e.runOutput(t, df)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if !strings.Contains(out, "fresh") {
		t.Errorf("the second step saw the first step's writes: %q", out)
	}
	for p, data := range before {
		if now, _ := os.ReadFile(p); !bytes.Equal(now, data) {
			t.Errorf("host %s changed:\n%s\nwas\n%s", p, now, data)
		}
	}
	names := layerEntries(t, e, res, 1) // the busybox base is one layer
	if !slices.Equal(names, []string{"marker"}) {
		t.Errorf("the writing step's layer holds %q, want only marker", names)
	}
}

// layerEntries lists the entry names of the image's layer i.
func layerEntries(t *testing.T, e *env, res *executor.Result, i int) []string {
	t.Helper()
	img, err := e.store.Image(res.Image.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[i].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/"))
	}
}

// inheritFD opens path without O_CLOEXEC at a descriptor number of at
// least 100, so that every child of the test process inherits it, as a CI
// runner's leaked descriptors are inherited.
func inheritFD(t *testing.T, path string, flags int) int {
	t.Helper()
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for n := 100; n < 1000; n++ {
		if _, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0); err == unix.EBADF {
			if err := unix.Dup3(fd, n, 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(n) })
			return n
		}
	}
	t.Fatal("no free descriptor between 100 and 1000")
	return -1
}

// TestInheritedFD opens a file and a directory without close-on-exec
// before the build. A plain child process can read through both (the
// fixture works); the RUN step must see neither.
func TestInheritedFD(t *testing.T) {
	e := newEnv(t)
	sh := testutil.RequireTool(t, "/bin/busybox")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("host-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	fileFD := inheritFD(t, filepath.Join(dir, "secret"), unix.O_RDONLY)
	dirFD := inheritFD(t, dir, unix.O_RDONLY|unix.O_DIRECTORY)
	probe := fmt.Sprintf("cat /proc/self/fd/%d; cat /proc/self/fd/%d/secret", fileFD, dirFD)
	if out, err := exec.Command(sh, "sh", "-c", probe).CombinedOutput(); err != nil || strings.Count(string(out), "host-secret") != 2 {
		t.Fatalf("fixture: a plain child cannot read the inherited descriptors: %v\n%s", err, out)
	}
	out, _, err := e.runOutput(t, fmt.Sprintf("FROM busybox:test\nRUN ls /proc/self/fd; %s; test ! -e /proc/self/fd/%d && test ! -e /proc/self/fd/%d\n", probe, fileFD, dirFD))
	if strings.Contains(out, "host-secret") {
		t.Errorf("the step read through an inherited descriptor:\n%s", out)
	}
	if err != nil {
		t.Errorf("descriptors %d and %d are open in the step: %v\n%s", fileFD, dirFD, err, out)
	}
}

// TestNetworkNone: RUN --network=none sees only lo, and a plain RUN lo
// and the tap device of its sandbox network, never the host's interfaces
// (TestRunNetworkDefault checks what each can reach).
func TestNetworkNone(t *testing.T) {
	testutil.RequireTool(t, "slirp4netns")
	e := newEnv(t)
	for _, c := range []struct{ flag, want string }{{"--network=none ", "lo"}, {"", "lo tap0"}} {
		out, _, err := e.runOutput(t, "FROM busybox:test\nRUN "+c.flag+"ls /sys/class/net | tr '\\n' ' '; echo; ip -o link | grep -c UP\n")
		if err != nil {
			t.Fatalf("RUN %s: %v\n%s", c.flag, err, out)
		}
		got, up, _ := strings.Cut(out, "\n")
		if strings.TrimSpace(got) != c.want || up != strconv.Itoa(len(strings.Fields(c.want))) {
			t.Errorf("RUN %sinterfaces %q (%s up), want %s, all up", c.flag, got, up, c.want)
		}
	}
}

// TestCopyEscapes writes through symlinks and tar entries that point at a
// directory of the host: COPY, ADD and WORKDIR must resolve every path
// inside the image (as if chrooted), so the host directory stays empty
// and the host file keeps its single link, whether or not the build fails.
func TestCopyEscapes(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	secret := filepath.Join(host, "secret")
	if err := os.WriteFile(secret, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	tars := evilTars(t, host)
	// Where a build succeeds, what it wrote must be inside the image:
	// the last RUN of each case checks that.
	cases := []struct {
		name, df string
	}{
		{"COPY through absolute symlink", "RUN ln -s " + host + " /link\nCOPY payload /link/copied\nRUN grep -q payload " + host + "/copied\n"},
		{"COPY through relative symlink", "RUN ln -s ../../../../../../../.." + host + " /tmp/up\nCOPY payload /tmp/up/copied\nRUN grep -q payload " + host + "/copied\n"},
		{"COPY onto a symlink", "RUN ln -s " + secret + " /target\nCOPY payload /target\nRUN grep -q payload /target\n"},
		{"WORKDIR through symlink", "RUN ln -s " + host + " /wd\nWORKDIR /wd/made\nRUN test -d " + host + "/made\n"},
		{"ADD tar with dotdot", "ADD dotdot.tar /\n"},
		{"ADD tar with symlinks", "ADD links.tar /\n"},
		{"ADD tar with a hard link", "ADD hard.tar /\n"},
		{"ADD tar through image symlink", "RUN ln -s " + host + " /link\nADD links.tar /link/\nRUN test -f " + host + "/through-symlink\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctxDir := t.TempDir()
			writeFiles(t, ctxDir, map[string]string{"payload": "payload"})
			for name, data := range tars {
				if err := os.WriteFile(filepath.Join(ctxDir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := e.build(t, ctxDir, "FROM busybox:test\n"+c.df, &buildOpts{noCache: true})
			t.Logf("build: %v", err)
			entries, _ := os.ReadDir(host)
			if len(entries) != 1 {
				var names []string
				for _, d := range entries {
					names = append(names, d.Name())
				}
				t.Errorf("the host directory now holds %q", names)
			}
			var st unix.Stat_t
			if err := unix.Stat(secret, &st); err != nil || st.Nlink != 1 {
				t.Errorf("host file: %v, %d links", err, st.Nlink)
			}
			if data, _ := os.ReadFile(secret); string(data) != "host" {
				t.Errorf("host file now holds %q", data)
			}
		})
	}
}

// evilTars are tars whose entries try to leave the directory they are
// unpacked in: through "..", through a symlink to hostDir (absolute or
// relative) followed by a file below it, through a hard link to a host
// file.
func evilTars(t *testing.T, hostDir string) map[string][]byte {
	t.Helper()
	return map[string][]byte{
		"dotdot.tar": tarOfHeaders(t, []*tar.Header{
			{Name: "../../../../../../../.." + hostDir + "/dotdot", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		}),
		"links.tar": tarOfHeaders(t, []*tar.Header{
			{Name: "lnk", Typeflag: tar.TypeSymlink, Linkname: hostDir, Mode: 0o777},
			{Name: "lnk/through-symlink", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
			{Name: "rel", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../../.." + hostDir, Mode: 0o777},
			{Name: "rel/through-relative", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		}),
		"hard.tar": tarOfHeaders(t, []*tar.Header{
			{Name: "hard", Typeflag: tar.TypeLink, Linkname: hostDir + "/secret"},
		}),
	}
}

func tarOfHeaders(t *testing.T, entries []*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
