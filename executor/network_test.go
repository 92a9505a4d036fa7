package executor_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
)

// netprobe builds testdata/netprobe, statically, into a fresh context dir.
func netprobe(t *testing.T) string {
	t.Helper()
	goBin := testutil.RequireTool(t, "go")
	dir := t.TempDir()
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, "netprobe"), "./testdata/netprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building netprobe: %v\n%s", err, out)
	}
	return dir
}

// hostListeners are what a hostile step would go for on the host: a TCP
// service on the loopback and an abstract unix socket, each greeting and
// counting whoever connects.
type hostListeners struct {
	tcpAddr  string
	unixName string
	accepted atomic.Int32
}

func listenHost(t *testing.T) *hostListeners {
	t.Helper()
	h := &hostListeners{unixName: "@builder-nettest-" + randHex(t, 6)}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.Listen("unix", h.unixName)
	if err != nil {
		t.Fatal(err)
	}
	h.tcpAddr = tl.Addr().String()
	for _, l := range []net.Listener{tl, ul} {
		t.Cleanup(func() { l.Close() })
		go serveGreeting(l, "host-secret", &h.accepted)
	}
	return h
}

func serveGreeting(l net.Listener, greeting string, n *atomic.Int32) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if n != nil {
			n.Add(1)
		}
		fmt.Fprintln(c, greeting)
		c.Close()
	}
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// outsideHost is a server in a network namespace of the test's own,
// reached from the host through a veth pair: it stands for the internet,
// which tests never use.
func outsideHost(t *testing.T) string {
	t.Helper()
	ip := testutil.RequireTool(t, "ip")
	id := randHex(t, 3)
	ns, hostIf, nsIf := "bnt-"+id, "bnth"+id, "bntn"+id
	third := int(id[0])%200 + 20 // 198.18.0.0/15 is for benchmarks, never routed
	hostIP, nsIP := fmt.Sprintf("198.18.%d.1", third), fmt.Sprintf("198.18.%d.2", third)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() {
		exec.Command(ip, "link", "del", hostIf).Run()
		exec.Command(ip, "netns", "del", ns).Run()
	})
	run("link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns)
	run("addr", "add", hostIP+"/30", "dev", hostIf)
	run("link", "set", hostIf, "up")
	run("-n", ns, "addr", "add", nsIP+"/30", "dev", nsIf)
	run("-n", ns, "link", "set", nsIf, "up")
	run("-n", ns, "link", "set", "lo", "up")

	// A socket belongs to the namespace of the thread that made it: make
	// the listener on a thread that entered ns, then retire the thread.
	var l net.Listener
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, ferr := os.Open("/var/run/netns/" + ns)
		if ferr != nil {
			err = ferr
			return
		}
		defer f.Close()
		if err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			return
		}
		l, err = net.Listen("tcp", nsIP+":0")
	}()
	wg.Wait()
	if err != nil {
		t.Fatalf("listening in %s: %v", ns, err)
	}
	t.Cleanup(func() { l.Close() })
	go serveGreeting(l, "hello-from-outside", nil)
	return l.Addr().String()
}

// hostInterfaces are the host's interfaces other than lo.
func hostInterfaces(t *testing.T) []string {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		if i.Name != "lo" {
			names = append(names, i.Name)
		}
	}
	if len(names) == 0 {
		t.Fatal("the host has no interface but lo: the AF_PACKET check would prove nothing")
	}
	return names
}

// TestRunNetworkDefault: a RUN step on the default network reaches a
// server outside the machine's namespaces (here one in a namespace of the
// test's), but not a service on the host's loopback, directly or through
// the gateway, nor an abstract unix socket of the host, and its AF_PACKET
// sockets cannot bind to the host's interfaces.
func TestRunNetworkDefault(t *testing.T) {
	testutil.RequireTool(t, "slirp4netns")
	e := newEnv(t)
	ctxDir := netprobe(t)
	host := listenHost(t)
	outside := outsideHost(t)
	_, port, _ := net.SplitHostPort(host.tcpAddr)
	hostIfs := hostInterfaces(t)

	probes := []string{"tcp " + outside, "tcp " + host.tcpAddr, "tcp 10.0.2.2:" + port, "unix " + host.unixName, "ifaces"}
	for _, name := range hostIfs {
		probes = append(probes, "packet "+name)
	}
	df := "FROM busybox:test\nCOPY netprobe /netprobe\nRUN /netprobe " + strings.Join(probes, " ") + "\n"
	var events []executor.Event
	_, err := e.build(t, ctxDir, df, &buildOpts{noCache: true, events: &events})
	out := stepOutput(events)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	lines := probeLines(out)
	if got := lines["tcp "+outside]; got != "connected: hello-from-outside" {
		t.Errorf("outbound connection to %s: %q, want connected", outside, got)
	}
	for _, p := range []string{"tcp " + host.tcpAddr, "tcp 10.0.2.2:" + port, "unix " + host.unixName} {
		if got := lines[p]; !strings.HasPrefix(got, "failed: ") {
			t.Errorf("%s from the default network: %q, want a failure", p, got)
		}
	}
	for _, name := range hostIfs {
		if got := lines["packet "+name]; !strings.Contains(got, "no such network interface") {
			t.Errorf("AF_PACKET bound to the host's %s: %q", name, got)
		}
	}
	if got := lines["ifaces:"]; got != "lo tap0" {
		t.Errorf("interfaces in the step: %q, want lo tap0", got)
	}
	if n := host.accepted.Load(); n != 0 {
		t.Errorf("the host's listeners accepted %d connections from the step", n)
	}
}

// TestRunNetworkHost: --network=host is the host's network, and a
// Dockerfile may ask for it only with the user's leave.
func TestRunNetworkHost(t *testing.T) {
	e := newEnv(t)
	ctxDir := netprobe(t)
	host := listenHost(t)
	probe := "/netprobe tcp " + host.tcpAddr + " unix " + host.unixName
	df := "FROM busybox:test\nCOPY netprobe /netprobe\nRUN true\nRUN --network=host " + probe + "\n"

	// Refused before any step runs, naming the line.
	var events []executor.Event
	_, err := e.build(t, ctxDir, df, &buildOpts{noCache: true, events: &events})
	if err == nil || !strings.Contains(err.Error(), "Dockerfile:4: RUN --network=host is not allowed") || !strings.Contains(err.Error(), "--allow network.host") {
		t.Fatalf("build without the entitlement: %v, want a refusal naming Dockerfile:4 and --allow network.host", err)
	}
	for _, ev := range events {
		if ev.Kind == executor.StepStarted {
			t.Fatalf("a step started before the refusal: %+v", ev)
		}
	}

	for _, o := range []*buildOpts{{allowHost: true}, {network: executor.NetworkHost}} {
		events = nil
		o.noCache, o.events = true, &events
		before := host.accepted.Load()
		if _, err := e.build(t, ctxDir, df, o); err != nil {
			t.Fatalf("build with %+v: %v\n%s", o, err, stepOutput(events))
		}
		lines := probeLines(stepOutput(events))
		for _, p := range []string{"tcp " + host.tcpAddr, "unix " + host.unixName} {
			if got := lines[p]; got != "connected: host-secret" {
				t.Errorf("%s on the host network (%+v): %q, want connected", p, o, got)
			}
		}
		if n := host.accepted.Load() - before; n != 2 {
			t.Errorf("the host's listeners accepted %d connections, want 2", n)
		}
	}
}

// TestRunNetworkWithoutSlirp: with no slirp4netns the default network is
// an isolated namespace with only lo, never the host's, and the build
// says why once.
func TestRunNetworkWithoutSlirp(t *testing.T) {
	e := newEnv(t)
	ctxDir := netprobe(t)
	host := listenHost(t)
	t.Setenv("PATH", t.TempDir())
	df := "FROM busybox:test\nCOPY netprobe /netprobe\nRUN /netprobe ifaces tcp " + host.tcpAddr + "\nRUN /netprobe ifaces\n"
	var events []executor.Event
	if _, err := e.build(t, ctxDir, df, &buildOpts{noCache: true, events: &events}); err != nil {
		t.Fatalf("build: %v\n%s", err, stepOutput(events))
	}
	lines := probeLines(stepOutput(events))
	if got := lines["ifaces:"]; got != "lo" {
		t.Errorf("interfaces: %q, want lo only", got)
	}
	if got := lines["tcp "+host.tcpAddr]; !strings.HasPrefix(got, "failed: ") {
		t.Errorf("host loopback reachable without slirp4netns: %q", got)
	}
	var warnings int
	for _, ev := range events {
		if ev.Kind == executor.BuildWarning && strings.Contains(ev.Line, "slirp4netns is not installed") {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings about slirp4netns, want 1", warnings)
	}
}

// probeLines maps each netprobe line's probe ("tcp 1.2.3.4:5") to its
// result ("connected: hello").
func probeLines(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "ifaces: "); ok {
			m["ifaces:"] = rest
			continue
		}
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = v
		}
	}
	return m
}
