package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A RUN step's default network, as with docker build, is its own network
// namespace with outbound access only. The outbound path is slirp4netns, a
// userspace TCP/IP stack: it attaches a tap device to the namespace and
// turns the container's connections into ordinary sockets of the host,
// which needs no bridge, no NAT rules and no change to the host's network
// configuration that a killed builder could leave behind. The host's
// loopback is unreachable (--disable-host-loopback: the gateway 10.0.2.2
// does not lead to the host's 127.0.0.1), and so are the host's abstract
// unix sockets, which belong to the host's network namespace.
//
// One namespace and one slirp4netns serve every RUN step of a build: it
// costs one process start per build rather than per step, and a step joins
// it with one setns.

// slirpDNS is the address slirp4netns answers DNS on, forwarding to the
// host's resolvers.
const slirpDNS = "10.0.2.3"

// slirpStartTimeout bounds how long slirp4netns may take to configure the
// namespace; it takes a few milliseconds.
const slirpStartTimeout = 10 * time.Second

// SandboxNet is a network namespace with outbound access through
// slirp4netns, which containers join with [SandboxNet.Join].
type SandboxNet struct {
	ns     *os.File // the namespace, kept alive by this descriptor
	cmd    *exec.Cmd
	exitW  *os.File // slirp4netns exits when this closes, or when we die
	stderr *boundedBuffer
}

// StartSandboxNet makes a network namespace and attaches slirp4netns (the
// binary at slirp) to it. ctx bounds the start only; the network lives
// until Close.
func StartSandboxNet(ctx context.Context, slirp string) (*SandboxNet, error) {
	ns, err := newNetNS()
	if err != nil {
		return nil, err
	}
	n := &SandboxNet{ns: ns, stderr: &boundedBuffer{max: 4 << 10}}
	if err := n.startSlirp(ctx, slirp); err != nil {
		ns.Close()
		return nil, err
	}
	return n, nil
}

func (n *SandboxNet) startSlirp(ctx context.Context, slirp string) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("starting slirp4netns: %w", err)
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return fmt.Errorf("starting slirp4netns: %w", err)
	}
	// No Pdeathsig: it is tied to the forking thread, and threads that
	// held a private namespace are retired by the runtime. The exit pipe
	// closes when this process dies, however it dies.
	n.cmd = exec.Command(slirp,
		"--configure", "--mtu=65520", "--disable-host-loopback",
		"--enable-sandbox", "--enable-seccomp",
		"--ready-fd=3", "--exit-fd=4", "--netns-type=path", "/proc/self/fd/5", "tap0")
	n.cmd.ExtraFiles = []*os.File{readyW, exitR, n.ns}
	n.cmd.Stdout = n.stderr
	n.cmd.Stderr = n.stderr
	n.cmd.Env = []string{}
	n.cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	err = n.cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return fmt.Errorf("starting slirp4netns: %w", err)
	}
	n.exitW = exitW

	ready := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(readyR, b[:])
		ready <- err
	}()
	timer := time.NewTimer(slirpStartTimeout)
	defer timer.Stop()
	select {
	case err = <-ready:
	case <-timer.C:
		err = errors.New("timed out")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		n.stop()
		if msg := strings.TrimSpace(n.stderr.String()); msg != "" {
			return fmt.Errorf("starting slirp4netns: %w: %s", err, lastLine(msg))
		}
		return fmt.Errorf("starting slirp4netns: %w", err)
	}
	return nil
}

// stop ends slirp4netns. It is killed rather than told through its exit
// pipe, which it polls only every 20 ms or so, and reaped in the
// background: its exit unregisters the tap device, which takes the kernel
// 20 to 40 ms that no build needs to wait for.
func (n *SandboxNet) stop() {
	if n.exitW == nil {
		return
	}
	n.cmd.Process.Kill()
	go n.cmd.Wait()
	n.exitW.Close()
	n.exitW = nil
}

// Close stops slirp4netns and drops the namespace; containers still in it
// keep it until they end, without outbound access.
func (n *SandboxNet) Close() error {
	n.stop()
	return n.ns.Close()
}

// Join points spec at this network: the container enters its namespace,
// and its resolv.conf names slirp4netns's DNS forwarder.
func (n *SandboxNet) Join(spec *Spec) {
	spec.Network = NetworkJoin
	spec.netNS = n.ns
	spec.ResolvConf = sandboxResolvConf(spec.ResolvConf)
}

// newNetNS returns a new network namespace with lo up. The namespace is
// entered on a thread of its own, which is retired afterwards (the
// goroutine exits locked), so no other goroutine ever runs in it.
func newNetNS() (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("creating network namespace: %w", err)}
			return
		}
		if err := loopbackUp(); err != nil {
			ch <- result{err: fmt.Errorf("bringing lo up: %w", err)}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		ch <- result{f, err}
	}()
	r := <-ch
	return r.f, r.err
}

// boundedBuffer keeps the last max bytes written to it.
type boundedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - b.max; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// sandboxResolvConf is the resolver configuration of a step on the
// sandbox network: slirp4netns's DNS forwarder (which reaches the host's
// resolvers even when they listen on the host's loopback), with the
// host's search domains and options kept.
func sandboxResolvConf(host []byte) []byte {
	var b strings.Builder
	b.WriteString("nameserver " + slirpDNS + "\n")
	for _, line := range strings.Split(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	return []byte(b.String())
}
