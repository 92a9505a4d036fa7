package executor_test

import (
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builderdev/builder/executor"
)

// benchEnv is env for benchmarks: a store with busybox:test.
type benchEnv struct{ *env }

func newBenchEnv(b *testing.B) *benchEnv { return &benchEnv{newEnv(b)} }

func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
}

// build builds df as `builder build` does after flag parsing.
func (e *benchEnv) build(b *testing.B, ctxDir, df string, noCache bool) *executor.Result {
	b.Helper()
	res, err := e.env.build(b, ctxDir, df, &buildOpts{noCache: noCache})
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// BenchmarkNoopRebuild20 rebuilds an unchanged 20-step Dockerfile (10
// COPY, 10 RUN) whose every step is cached: the cost of parsing, keying
// each step and checking the context, per build.
func BenchmarkNoopRebuild20(b *testing.B) {
	e := newBenchEnv(b)
	ctxDir := b.TempDir()
	var df strings.Builder
	df.WriteString("FROM busybox:test\n")
	for i := range 10 {
		name := fmt.Sprintf("f%d.txt", i)
		writeFilesTB(b, ctxDir, map[string]string{name: strings.Repeat(name, 100)})
		fmt.Fprintf(&df, "COPY %s /app/\nRUN wc -c /app/%s > /app/%s.len\n", name, name, name)
	}
	e.build(b, ctxDir, df.String(), false)
	for b.Loop() {
		e.build(b, ctxDir, df.String(), false)
	}
}

func writeFilesTB(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkContextRebuild20k: a context of 20,000 files of 5 KiB (about
// 100 MB, half-compressible text) copied with COPY . /app; each iteration
// edits one file and rebuilds, so the COPY step reruns and commits a new
// 100 MB layer.
func BenchmarkContextRebuild20k(b *testing.B) {
	e := newBenchEnv(b)
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
	df := "FROM busybox:test\nCOPY . /app\n"
	e.build(b, ctxDir, df, false)
	edited := filepath.Join(ctxDir, "d100", "f050")
	i := 0
	for b.Loop() {
		i++
		if err := os.WriteFile(edited, []byte(fmt.Sprintf("edit %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
		e.build(b, ctxDir, df, false)
	}
}

// BenchmarkRunStep is the cost of one uncached RUN through
// executor.Build: parse, FROM from the store, mount, container, and for
// "touch" the commit of a one-file layer ("true" changes nothing, and a
// step that changes nothing adds no layer).
func BenchmarkRunStep(b *testing.B) {
	e := newBenchEnv(b)
	ctxDir := b.TempDir()
	for _, run := range []string{"true", "touch /x"} {
		b.Run(strings.Fields(run)[0], func(b *testing.B) {
			df := "FROM busybox:test\nRUN " + run + "\n"
			for b.Loop() {
				e.build(b, ctxDir, df, true)
			}
		})
	}
}

// BenchmarkRunSteps30 is 30 uncached RUN steps, each committing a small
// layer, in one build: the per-step cost the deep workload sees (divide
// ns/op by 30), with the children started ahead as in a real build.
func BenchmarkRunSteps30(b *testing.B) {
	e := newBenchEnv(b)
	ctxDir := b.TempDir()
	var df strings.Builder
	df.WriteString("FROM busybox:test\n")
	for i := range 30 {
		fmt.Fprintf(&df, "RUN echo %d > /f%d\n", i, i)
	}
	for b.Loop() {
		e.build(b, ctxDir, df.String(), true)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*30)/1000, "ms/step")
}

// BenchmarkRunMounts builds one RUN step, uncached, plain, with a cache
// mount and with a secret: the mounts should cost no more than the plain
// step within noise (issue 17). Compare the sub-benchmarks' ns/op.
func BenchmarkRunMounts(b *testing.B) {
	e := newBenchEnv(b)
	ctxDir := b.TempDir()
	for _, bc := range []struct{ name, run string }{
		{"plain", "RUN true"},
		{"cache", "RUN --mount=type=cache,target=/var/cache/x true"},
		{"secret", "RUN --mount=type=secret,id=token true"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			df := "FROM busybox:test\n" + bc.run + "\n"
			for b.Loop() {
				_, err := e.env.buildWith(b, ctxDir, df, &buildOpts{noCache: true}, func(o *executor.Options) {
					o.Secrets = map[string][]byte{"token": []byte("value")}
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
