package container

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/snapshot"
)

// BenchmarkRunTrue measures the per-RUN overhead of the container: fresh
// upper, work and stub dirs, the re-exec, every mount, the stub layer,
// pivot, caps, exec of /bin/sh -c true, and the wait.
// network=join is the default network of a build: the step joins the
// build's sandbox namespace, which slirp4netns serves (started once, out
// of the timing).
func BenchmarkRunTrue(b *testing.B) {
	for _, network := range []string{"host", "none", "join"} {
		b.Run("network="+network, func(b *testing.B) {
			benchmarkRun(b, network)
		})
	}
}

func benchmarkRun(b *testing.B, network string) {
	testutil.RequireRoot(b)
	var netns *os.File
	if network == "join" {
		slirp := testutil.RequireTool(b, "slirp4netns")
		n, err := StartSandboxNet(context.Background(), slirp)
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		netns = n.ns
	}
	busybox := testutil.BusyboxRootfs(b)
	parent := b.TempDir()
	ctx := context.Background()
	for b.Loop() {
		dir, err := os.MkdirTemp(parent, "step-")
		if err != nil {
			b.Fatal(err)
		}
		root := snapshot.Mount{
			Lowers: []string{busybox},
			Upper:  filepath.Join(dir, "upper"),
			Work:   filepath.Join(dir, "work"),
			Stub:   filepath.Join(dir, "stub"),
		}
		for _, d := range []string{root.Upper, root.Work, root.Stub} {
			if err := os.Mkdir(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		spec := Spec{
			Root: root, Args: []string{"/bin/sh", "-c", "true"}, Env: []string{defaultPath},
			Dir: "/", Hostname: defaultHostname, Network: network, netNS: netns,
			ResolvConf: []byte("nameserver 192.0.2.53\n"), Hosts: []byte(hostsFile),
		}
		code, err := Run(ctx, spec, func(int, string) {})
		if err != nil || code != 0 {
			b.Fatalf("Run: code %d, %v", code, err)
		}
	}
}

// BenchmarkSandboxNetStart is what the default network costs a build
// once: a network namespace, slirp4netns started and configured, and
// stopped again.
func BenchmarkSandboxNetStart(b *testing.B) {
	testutil.RequireRoot(b)
	slirp := testutil.RequireTool(b, "slirp4netns")
	for b.Loop() {
		n, err := StartSandboxNet(context.Background(), slirp)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
