package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/builderdev/builder/cache"
)

// BenchmarkReadContext20k is what a cold COPY . /app of 20,000 files of
// 5 KiB in 200 directories costs in reading the context: resolving,
// listing, hashing every file (nothing remembered) and copying it into a
// plain directory, without mounts or a layer to commit.
func BenchmarkReadContext20k(b *testing.B) {
	ctxDir := b.TempDir()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	raw := make([]byte, 2560)
	for d := range 200 {
		dir := filepath.Join(ctxDir, fmt.Sprintf("d%03d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte(hex.EncodeToString(raw)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	o := copyOpts{dest: "/app", inCtx: true, patterns: []string{"."}}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		store, err := cache.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		bd := &build{opts: Options{ContextDir: ctxDir}, cache: store}
		dst := b.TempDir()
		b.StartTimer()
		readContext(b, bd, o, dst)
		b.StopTimer()
		store.Close()
		os.RemoveAll(dst)
		b.StartTimer()
	}
}

// readContext selects, walks, hashes and copies o's sources into dst.
func readContext(b *testing.B, bd *build, o copyOpts, dst string) {
	tree, err := openTree(bd.opts.ContextDir, true)
	if err != nil {
		b.Fatal(err)
	}
	defer tree.Close()
	srcs, err := selectSources(tree, o.patterns, o.ignore)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range srcs {
		if err := s.walk(o.ignore); err != nil {
			b.Fatal(err)
		}
	}
	if err := bd.hashSources(context.Background(), sha256.New(), srcs); err != nil {
		b.Fatal(err)
	}
	c, err := copyInto(context.Background(), dst, dst, o, srcs)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.finishDeferred(context.Background(), 0); err != nil {
		b.Fatal(err)
	}
}
