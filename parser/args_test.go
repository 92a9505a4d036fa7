package parser

import (
	"slices"
	"strings"
	"testing"
)

// resolvedArgs expands every ARG step of the plan's stages against env and
// lists what each name resolved to: "K=v", or "K unset".
func resolvedArgs(t *testing.T, p *Plan, env []string) []string {
	t.Helper()
	var got []string
	for _, s := range p.Stages {
		for _, step := range s.Steps {
			if step.Name != "ARG" {
				continue
			}
			ins, err := step.Expand(env)
			if err != nil {
				t.Fatalf("%s: %v", step.Pos, err)
			}
			got = append(got, argWords(ins.(*Arg).Args)...)
		}
	}
	return got
}

func argWords(defs []ArgDef) []string {
	var out []string
	for _, a := range defs {
		if a.Resolved == nil {
			out = append(out, a.Key+" unset")
		} else {
			out = append(out, a.Key+"="+*a.Resolved)
		}
	}
	return out
}

// TestArgScopes pins what an ARG inside a stage holds, following
// BuildKit's dispatchArg: the build arg, else the default, else what FROM
// lines see under that name (a global ARG, or a predefined platform arg),
// else unset.
func TestArgScopes(t *testing.T) {
	cross := Options{BuildPlatform: "linux/amd64", TargetPlatform: "linux/arm64"}
	withArgs := func(o Options, kv ...string) Options {
		o.BuildArgs = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			o.BuildArgs[kv[i]] = kv[i+1]
		}
		return o
	}
	tests := []struct {
		name string
		src  string
		opts Options
		want []string
	}{
		{"no default and no build arg: unset, not empty", "FROM a\nARG X", cross, []string{"X unset"}},
		{"an empty default is set", "FROM a\nARG X=", cross, []string{"X="}},
		{"the default expands with the stage's environment", "FROM a\nARG X=$Y-x", cross, []string{"X=y-x"}},
		{"a build arg beats the default", "FROM a\nARG X=d", withArgs(cross, "X", "b"), []string{"X=b"}},
		{"a build arg gives a value to an ARG without one", "FROM a\nARG X", withArgs(cross, "X", "b"), []string{"X=b"}},
		{"a global ARG's default, once declared again", "ARG G=g\nFROM a\nARG G", cross, []string{"G=g"}},
		{"a global ARG's build arg", "ARG G=g\nFROM a\nARG G", withArgs(cross, "G", "b"), []string{"G=b"}},
		{"a global ARG without a default", "ARG G\nFROM a\nARG G", cross, []string{"G unset"}},
		{"a global ARG declared twice: the last default, as FROM sees it", "ARG G=1\nARG G=2\nFROM a:$G\nARG G", cross, []string{"G=2"}},
		{"a stage default beats the global one", "ARG G=g\nFROM a\nARG G=s", cross, []string{"G=s"}},
		{"redeclared with a new default", "FROM a\nARG X=1\nARG X=2", cross, []string{"X=1", "X=2"}},
		// BuildKit keeps X=1 in the environment here; the builder has
		// always unset it. Pinned so that changing it is a decision.
		{"redeclared without a default", "FROM a\nARG X=1\nARG X", cross, []string{"X=1", "X unset"}},
		{"each stage declares its own", "FROM a\nARG X=1\nFROM b\nARG X", cross, []string{"X=1", "X unset"}},
		{"platform args: the build machine's and the target's",
			"FROM a\nARG BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT", cross,
			[]string{"BUILDPLATFORM=linux/amd64", "BUILDOS=linux", "BUILDARCH=amd64", "BUILDVARIANT=",
				"TARGETPLATFORM=linux/arm64", "TARGETOS=linux", "TARGETARCH=arm64", "TARGETVARIANT="}},
		{"a variant", "FROM a\nARG TARGETVARIANT TARGETARCH",
			Options{BuildPlatform: "linux/amd64", TargetPlatform: "linux/arm/v7"}, []string{"TARGETVARIANT=v7", "TARGETARCH=arm"}},
		{"the target defaults to the build platform", "FROM a\nARG TARGETARCH", Options{BuildPlatform: "linux/s390x"}, []string{"TARGETARCH=s390x"}},
		{"a build arg replaces a platform arg", "FROM a\nARG TARGETARCH BUILDARCH", withArgs(cross, "TARGETARCH", "riscv64"),
			[]string{"TARGETARCH=riscv64", "BUILDARCH=amd64"}},
		{"a global ARG's default replaces a platform arg", "ARG TARGETARCH=declared\nFROM a\nARG TARGETARCH", cross, []string{"TARGETARCH=declared"}},
		{"a global ARG without a default keeps the platform arg", "ARG BUILDARCH\nFROM a\nARG BUILDARCH", cross, []string{"BUILDARCH=amd64"}},
		{"a stage default replaces a platform arg", "FROM a\nARG TARGETARCH=mine", cross, []string{"TARGETARCH=mine"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(strings.NewReader(tt.src+"\n"), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := resolvedArgs(t, p, []string{"Y=y"}); !slices.Equal(got, tt.want) {
				t.Errorf("resolved %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCrossPlatformFrom: FROM lines see the build machine's BUILD* args
// and the target's TARGET* ones, as do the ARGs of a stage.
func TestCrossPlatformFrom(t *testing.T) {
	src := "FROM --platform=$BUILDPLATFORM golang:$BUILDOS-$BUILDARCH AS build\nARG BUILDARCH TARGETARCH\n" +
		"FROM --platform=$TARGETPLATFORM alpine:$TARGETOS-$TARGETARCH\nARG BUILDARCH TARGETARCH\n"
	p, err := Parse(strings.NewReader(src), Options{BuildPlatform: "linux/amd64", TargetPlatform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	var from []string
	for _, s := range p.Stages {
		from = append(from, s.Base.Image+" on "+s.Platform)
	}
	if want := []string{"golang:linux-amd64 on linux/amd64", "alpine:linux-arm64 on linux/arm64"}; !slices.Equal(from, want) {
		t.Errorf("FROM lines %q, want %q", from, want)
	}
	if got, want := resolvedArgs(t, p, nil), []string{"BUILDARCH=amd64", "TARGETARCH=arm64", "BUILDARCH=amd64", "TARGETARCH=arm64"}; !slices.Equal(got, want) {
		t.Errorf("stage ARGs %q, want %q", got, want)
	}
}

func TestGlobalArgsResolved(t *testing.T) {
	src := "ARG A=1 B C=$A-c TARGETOS\nARG A=2\nFROM x\n"
	p, err := Parse(strings.NewReader(src), Options{BuildArgs: map[string]string{"C": "given"}, BuildPlatform: "linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := argWords(p.Args), []string{"A=1", "B unset", "C=given", "TARGETOS=linux", "A=2"}; !slices.Equal(got, want) {
		t.Errorf("global ARGs resolved %q, want %q", got, want)
	}
}

func TestProxyAndUnusedArgs(t *testing.T) {
	src := "ARG GLOBAL\nFROM a\nARG USED\nFROM b AS unneeded\nARG OTHER=1 HTTPS_PROXY\nFROM c\n"
	args := map[string]string{
		"HTTP_PROXY": "http://p:3128", "no_proxy": "localhost", "HTTPS_PROXY": "http://s:3128",
		"GLOBAL": "g", "USED": "u", "OTHER": "o", "SOURCE_DATE_EPOCH": "0",
		"UNUSED": "x", "TARGETARCH": "arm64",
	}
	p, err := Parse(strings.NewReader(src), Options{BuildArgs: args})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"HTTPS_PROXY=http://s:3128", "HTTP_PROXY=http://p:3128", "no_proxy=localhost"}; !slices.Equal(p.ProxyEnv, want) {
		t.Errorf("ProxyEnv = %q, want %q", p.ProxyEnv, want)
	}
	// A platform arg given as a build arg reaches FROM lines, but docker
	// counts it unused unless an ARG declares it, and so does the builder.
	if want := []string{"TARGETARCH", "UNUSED"}; !slices.Equal(p.UnusedArgs, want) {
		t.Errorf("UnusedArgs = %q, want %q", p.UnusedArgs, want)
	}
}

// TestTriggerArgs: an ARG in an ONBUILD trigger resolves like the
// Dockerfile's own.
func TestTriggerArgs(t *testing.T) {
	opts := Options{BuildArgs: map[string]string{"X": "b"}, BuildPlatform: "linux/amd64", TargetPlatform: "linux/arm64"}
	p, err := Parse(strings.NewReader("ARG G=g\nFROM a\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	step, err := p.ParseTrigger("ARG X Y=d G BUILDARCH TARGETARCH NONE", Pos{File: "Dockerfile", Line: 2})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := step.Expand(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"X=b", "Y=d", "G=g", "BUILDARCH=amd64", "TARGETARCH=arm64", "NONE unset"}
	if got := argWords(ins.(*Arg).Args); !slices.Equal(got, want) {
		t.Errorf("trigger ARG resolved %q, want %q", got, want)
	}
}
