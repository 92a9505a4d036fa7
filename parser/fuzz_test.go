package parser

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks, for any input: Parse does not panic; every error is an
// *Error whose text starts with its position; a Plan's stage references
// are in range and acyclic, a base stage is an earlier one, and Needed is
// in dependency order; and every step expands
// against an environment made from the input without panicking, giving an
// *Error when it fails.
func FuzzParse(f *testing.F) {
	for _, file := range goldenCases(f) {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src, "")
	}
	f.Add([]byte("FROM a AS b\nCOPY --from=b x y\n"), "b")
	f.Add([]byte("FROM a AS b\nCOPY --from=c x y\nFROM a AS c\nRUN --mount=from=2,target=/t true\nFROM c\n"), "b")
	f.Add([]byte("ARG X=${Y:-z}\nFROM $X\nRUN --mount=type=cache,uid=$U,target=/c <<EOF\n$U\nEOF\n"), "U=1")
	f.Add([]byte("# escape=`\nFROM a\nENV A=`$B C=\"`\"\"\n"), "B=2")
	f.Fuzz(func(t *testing.T, src []byte, envText string) {
		p, err := Parse(bytes.NewReader(src), Options{Target: targetFrom(envText)})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error %T %q is not an *Error", err, err)
			}
			if !strings.HasPrefix(err.Error(), e.Pos.String()+": ") {
				t.Fatalf("Parse error %q does not start with its position %v", err, e.Pos)
			}
			return
		}
		checkPlan(t, p)
		env := strings.Split(envText, "\n")
		for _, s := range p.Stages {
			for _, step := range s.Steps {
				if _, err := step.Expand(env); err != nil {
					var e *Error
					if !errors.As(err, &e) || e.Pos != step.Pos {
						t.Fatalf("Expand of %q = %T %v, want an *Error at %v", step.Text, err, err, step.Pos)
					}
				}
			}
		}
	})
}

// targetFrom picks a --target from the fuzzed env text: sometimes one.
func targetFrom(envText string) string {
	if name, ok := strings.CutPrefix(envText, "target="); ok {
		return name
	}
	return ""
}

func checkPlan(t *testing.T, p *Plan) {
	t.Helper()
	if len(p.Stages) == 0 || p.Target < 0 || p.Target >= len(p.Stages) {
		t.Fatalf("Plan has %d stages and target %d", len(p.Stages), p.Target)
	}
	for i, s := range p.Stages {
		if s.Index != i {
			t.Fatalf("stage %d has Index %d", i, s.Index)
		}
		for _, d := range s.Deps {
			if d < 0 || d >= len(p.Stages) || d == i {
				t.Fatalf("stage %d depends on stage %d", i, d)
			}
		}
		if s.Base.Kind == BaseStage && (!slices.Contains(s.Deps, s.Base.Stage) || s.Base.Stage >= i) {
			t.Fatalf("stage %d has base stage %d and deps %v", i, s.Base.Stage, s.Deps)
		}
	}
	seen := map[int]bool{}
	for _, i := range p.Needed() {
		for _, d := range p.Stages[i].Deps {
			if !seen[d] {
				t.Fatalf("Needed() = %v: stage %d comes before its dep %d", p.Needed(), i, d)
			}
		}
		seen[i] = true
	}
	if !seen[p.Target] {
		t.Fatalf("Needed() = %v lacks the target %d", p.Needed(), p.Target)
	}
}

// dockerfile150 is a 150-instruction Dockerfile of the usual mix, over
// three stages.
func dockerfile150() []byte {
	var b strings.Builder
	b.WriteString("# syntax=docker/dockerfile:1\nARG BASE=alpine:3.20\nARG VERSION=1.0\n")
	n := 0
	stage := func(from, name string) {
		fmt.Fprintf(&b, "FROM %s AS %s\n", from, name)
		n++
	}
	stage("${BASE}", "deps")
	for n < 50 {
		fmt.Fprintf(&b, "ENV V%d=${VERSION}-%d\nRUN apk add --no-cache pkg%d && \\\n    echo done $V%d\n", n, n, n, n)
		n += 2
	}
	stage("deps", "build")
	for n < 100 {
		fmt.Fprintf(&b, "COPY --chown=1000:1000 src/%d/ /src/%d/\nRUN --mount=type=cache,target=/root/.cache make -C /src/%d\n", n, n, n)
		n += 2
	}
	stage("scratch", "final")
	for n < 150 {
		fmt.Fprintf(&b, "COPY --from=build /src/%d/out /app/%d\nLABEL n%d=\"$VERSION\"\n", n, n, n)
		n += 2
	}
	return []byte(b.String())
}

func BenchmarkParse150(b *testing.B) {
	src := dockerfile150()
	p, err := Parse(bytes.NewReader(src), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if got := 2 + len(p.Stages) + len(p.Stages[0].Steps) + len(p.Stages[1].Steps) + len(p.Stages[2].Steps); got < 150 {
		b.Fatalf("the benchmark Dockerfile has %d instructions", got)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(src), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExpand150 expands every step of the same file once, as a build
// does.
func BenchmarkExpand150(b *testing.B) {
	p, err := Parse(bytes.NewReader(dockerfile150()), Options{})
	if err != nil {
		b.Fatal(err)
	}
	env := []string{"PATH=/usr/bin:/bin", "VERSION=2.0"}
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range p.Stages {
			for _, step := range s.Steps {
				if _, err := step.Expand(env); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
