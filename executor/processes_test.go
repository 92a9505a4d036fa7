package executor_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/builderdev/builder/internal/testutil"
)

// TestConcurrentProcesses runs two builder processes on one store at
// once, building Dockerfiles that share a base and a first step, then
// prunes down to nothing and checks the tagged images survive intact.
func TestConcurrentProcesses(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo")
	e := newEnv(t)
	bin := builderBinary(t)
	// The untagged third build leaves cache entries and blobs that only
	// the cache holds, for prune to remove.
	dfs := map[string]string{
		"one:1": "FROM busybox:test\nRUN sleep 1; echo shared > /shared\nRUN echo one > /one\n",
		"two:1": "FROM busybox:test\nRUN sleep 1; echo shared > /shared\nRUN head -c 200000 /dev/urandom > /two\n",
		"":      "FROM busybox:test\nRUN sleep 1; echo shared > /shared\nRUN head -c 200000 /dev/urandom > /three\n",
	}
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for tag, df := range dfs {
		ctxDir := writeContext(t, df, nil)
		args := []string{"--root", e.root, "build", "-q", ctxDir}
		if tag != "" {
			args = append(args, "-t", tag)
		}
		c := exec.Command(bin, args...)
		// With a fixed epoch the shared step gives the same layer in every
		// process: the processes race to commit one blob and one snapshot.
		c.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000", "BUILDER_ROOT=")
		var b bytes.Buffer
		c.Stderr = &b
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, c), append(outs, &b)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("builder %s: %v\n%s", c.Args, err, outs[i])
		}
	}
	if t.Failed() {
		return
	}

	out := mustCLI(t, bin, e.root, "prune", "--keep-storage", "1B")
	t.Logf("prune: %s", out)
	var entries, blobs int
	if _, err := fmt.Sscanf(out, "Deleted %d cache entries, %d blobs", &entries, &blobs); err != nil || entries == 0 || blobs == 0 {
		t.Errorf("prune removed %d entries and %d blobs (%v), want the untagged build's", entries, blobs, err)
	}
	shared := map[string]bool{}
	for tag := range dfs {
		if tag == "" {
			continue
		}
		info := skopeoInspect(t, skopeo, "oci:"+e.root+":"+tag)
		if len(info.Layers) > 1 {
			shared[info.Layers[1]] = true
		}
		if len(info.Layers) != 3 {
			t.Errorf("%s after prune: %d layers, want 3", tag, len(info.Layers))
		}
		// skopeo inspect reads only the manifest and config: copy the
		// image too, which reads and verifies every layer.
		skopeoCopyOut(t, skopeo, bin, e.root, tag)
	}
	if len(shared) != 1 {
		t.Errorf("the shared step gave layers %v, want one layer", shared)
	}
	if _, err := e.reopen(t).build(t, t.TempDir(), "FROM one:1\nRUN cat /one /shared > /both\n", nil); err != nil {
		t.Errorf("building on one:1 after prune: %v", err)
	}
}

// TestPruneWaitsForBuild runs `builder prune --all` while another builder
// process is inside a RUN step: prune must wait for the build (it would
// otherwise delete the blobs and snapshots the build is using), and the
// image the build tags must be complete. The step blocks on a TCP
// connection to the test, so the test decides when it ends.
func TestPruneWaitsForBuild(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo")
	testutil.RequireRoot(t)
	bin := builderBinary(t)
	root := cliStore(t, bin)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ctxDir := writeContext(t, fmt.Sprintf("FROM busybox:test\nRUN nc 127.0.0.1 %d > /got && test -s /got\n", port), nil)
	// The step reaches the test on its loopback: the host network, asked for.
	build := exec.Command(bin, "--root", root, "build", "--network=host", "-q", "-t", "during:1", ctxDir)
	var out lockedBuffer
	build.Stderr = &out
	if err := build.Start(); err != nil {
		t.Fatal(err)
	}
	buildDone := make(chan error, 1)
	go func() { buildDone <- build.Wait() }()
	defer build.Process.Kill()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(60 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("the RUN step never connected: %v\n%s", err, out.String())
	}

	prune := exec.Command(bin, "--root", root, "prune", "--all")
	var pruneOut bytes.Buffer
	prune.Stdout, prune.Stderr = &pruneOut, &pruneOut
	if err := prune.Start(); err != nil {
		t.Fatal(err)
	}
	pruneDone := make(chan error, 1)
	go func() { pruneDone <- prune.Wait() }()
	// A prune that does not wait ends in well under a second; one that
	// waits cannot end before the step does.
	select {
	case err := <-pruneDone:
		t.Errorf("prune ended (%v) while a build was inside a RUN step:\n%s", err, pruneOut.String())
		pruneDone <- err
	case <-time.After(time.Second):
	}
	conn.Write([]byte("go\n"))
	conn.Close()
	if err := <-buildDone; err != nil {
		t.Fatalf("build during prune: %v\n%s", err, out.String())
	}
	if err := <-pruneDone; err != nil {
		t.Fatalf("prune: %v\n%s", err, pruneOut.String())
	}
	skopeoCopyOut(t, skopeo, bin, root, "during:1")
}

// skopeoCopyOut has skopeo read every layer of a stored image, as builder
// save writes it: the store holds built layers as snapshots (see
// cache/held.go), so skopeo reads the archive, not the store.
func skopeoCopyOut(t *testing.T, skopeo, bin, root, tag string) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "image.tar")
	if r := runCLI(t, bin, root, "save", "--format", "oci", "-o", archive, tag); r.code != 0 {
		t.Errorf("builder save %s: exit %d\n%s", tag, r.code, r.stderr)
		return
	}
	dst := "oci:" + filepath.Join(t.TempDir(), "copy") + ":x"
	if b, err := exec.Command(skopeo, "copy", "oci-archive:"+archive, dst).CombinedOutput(); err != nil {
		t.Errorf("skopeo copy of %s: %v\n%s", tag, err, b)
	}
}
