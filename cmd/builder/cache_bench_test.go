package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

// BenchmarkCacheFromRebuild is a CI machine with an empty store
// rebuilding a 20-step, 10-layer Dockerfile whose cache another machine
// exported to a registry on loopback: every step comes from the
// registry's cache. It reports the bytes the registry returned per
// rebuild (no layer is downloaded).
//
//	go test -run '^$' -bench CacheFromRebuild ./cmd/builder
func BenchmarkCacheFromRebuild(b *testing.B) {
	testutil.RequireRoot(b)
	busybox := testutil.RequireTool(b, "busybox")
	reg := testutil.StartRegistry(b)
	proxy := testutil.StartProxy(b, reg)
	var steps strings.Builder
	for i := range 8 { // 10 layers with busybox's two
		fmt.Fprintf(&steps, "RUN head -c 100000 /dev/urandom > /f%d\nENV V%d=%d\nLABEL l%d=%d\n", i, i, i, i, i)
	}
	steps.WriteString("CMD [\"sh\"]\n")
	ctx := busyboxContext(b, busybox, steps.String())
	cacheRef := proxy.Addr + "/cache:bench"
	env := func(root string) *environment { return testEnv("BUILDER_ROOT="+root, "CI=true") }
	if code, _, stderr := runWith(env(b.TempDir()), "build", "-q", "--cache-to", "type=registry,ref="+cacheRef, ctx); code != 0 {
		b.Fatalf("exporting the cache: %s", stderr)
	}
	var received int64
	for b.Loop() {
		b.StopTimer()
		root := b.TempDir()
		proxy.Reset()
		b.StartTimer()
		code, _, stderr := runWith(env(root), "build", "--progress", "plain", "--cache-from", cacheRef, ctx)
		b.StopTimer()
		if code != 0 || strings.Count(stderr, " CACHED\n") != 10 {
			b.Fatalf("rebuild from the cache: exit %d\n%s", code, stderr)
		}
		received += proxy.Received()
		os.RemoveAll(root)
		b.StartTimer()
	}
	b.ReportMetric(float64(received)/float64(b.N), "B-downloaded/op")
}
