package parser

import (
	"slices"
	"strings"
	"testing"
)

func TestStageReferences(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		opts  Options
		bases []Base  // of every stage
		deps  [][]int // of every stage
		from  *CopyFrom
	}{
		{name: "base by name, any case",
			src:   "FROM a AS Build\nFROM BUILD\n",
			bases: []Base{{Image: "a"}, {Kind: BaseStage, Stage: 0}}, deps: [][]int{nil, {0}}},
		{name: "base by index",
			src:   "FROM a\nFROM 0\n",
			bases: []Base{{Image: "a"}, {Kind: BaseStage, Stage: 0}}, deps: [][]int{nil, {0}}},
		{name: "a number that is not an index is an image",
			src:   "FROM a\nFROM 01\nFROM 5\n",
			bases: []Base{{Image: "a"}, {Image: "01"}, {Image: "5"}}, deps: [][]int{nil, nil, nil}},
		{name: "a later stage's name in FROM is an image, as in docker",
			src:   "FROM later\nFROM b AS later\n",
			bases: []Base{{Image: "later"}, {Image: "b"}}, deps: [][]int{nil, nil}},
		{name: "scratch, any case",
			src:   "FROM Scratch\n",
			bases: []Base{{Kind: BaseScratch}}, deps: [][]int{nil}},
		{name: "COPY --from a global ARG naming a stage",
			src:   "ARG SRC=build\nFROM a AS build\nFROM b\nCOPY --from=$SRC /x /x\n",
			bases: []Base{{Image: "a"}, {Image: "b"}}, deps: [][]int{nil, {0}}, from: &CopyFrom{Stage: 0}},
		{name: "COPY --from a global ARG overridden by a build arg",
			src:   "ARG SRC=build\nFROM a AS build\nFROM b\nCOPY --from=$SRC /x /x\n",
			opts:  Options{BuildArgs: map[string]string{"SRC": "registry.local/tools:1"}},
			bases: []Base{{Image: "a"}, {Image: "b"}}, deps: [][]int{nil, nil},
			from: &CopyFrom{Stage: -1, Image: "registry.local/tools:1"}},
		{name: "COPY --from reads any number as an index, as BuildKit does",
			src:   "FROM a\nFROM b\nCOPY --from=00 /x /x\n",
			bases: []Base{{Image: "a"}, {Image: "b"}}, deps: [][]int{nil, {0}}, from: &CopyFrom{Stage: 0}},
		{name: "deps sorted and unique",
			src:   "FROM a AS x\nFROM a AS y\nFROM y\nCOPY --from=y a b\nCOPY --from=0 a b\nRUN --mount=from=x,target=/x --mount=from=1,target=/y true\n",
			bases: []Base{{Image: "a"}, {Image: "a"}, {Kind: BaseStage, Stage: 1}}, deps: [][]int{nil, nil, {0, 1}},
			from: &CopyFrom{Stage: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(strings.NewReader(tt.src), tt.opts)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tt.src, err)
			}
			if len(p.Stages) != len(tt.bases) {
				t.Fatalf("Parse(%q) has %d stages, want %d", tt.src, len(p.Stages), len(tt.bases))
			}
			for i, s := range p.Stages {
				if s.Base != tt.bases[i] || !slices.Equal(s.Deps, tt.deps[i]) {
					t.Errorf("Parse(%q) stage %d: base %+v deps %v, want %+v %v", tt.src, i, s.Base, s.Deps, tt.bases[i], tt.deps[i])
				}
			}
			if tt.from == nil {
				return
			}
			last := p.Stages[len(p.Stages)-1]
			ins, err := last.Steps[0].Expand(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := ins.(*Copy).From; got == nil || *got != *tt.from {
				t.Errorf("Parse(%q) COPY --from = %+v, want %+v", tt.src, got, tt.from)
			}
		})
	}
}

// TestLaterStageReferences checks that COPY --from may name a stage
// further down, as BuildKit allows, and that Needed puts it first; RUN
// --mount from= may not (BuildKit: "stage needs to be defined before
// current command").
func TestLaterStageReferences(t *testing.T) {
	src := "FROM a AS app\nCOPY --from=assets /x /x\nCOPY --from=3 /y /y\nFROM b AS assets\nFROM c AS tools\nFROM d\n"
	p, err := Parse(strings.NewReader(src), Options{Target: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 3}; !slices.Equal(p.Stages[0].Deps, want) {
		t.Errorf("deps of app = %v, want %v", p.Stages[0].Deps, want)
	}
	cp, err := p.Stages[0].Steps[0].Expand(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cp.(*Copy).From; got == nil || *got != (CopyFrom{Stage: 1}) {
		t.Errorf("COPY --from = %+v, want stage 1", got)
	}
	if got, want := p.Needed(), []int{1, 3, 0}; !slices.Equal(got, want) {
		t.Errorf("Needed() = %v, want %v", got, want)
	}
	for _, from := range []string{"TOOLS", "2"} {
		src := "FROM a AS app\nRUN --mount=from=" + from + ",target=/t true\nFROM b AS assets\nFROM c AS tools\n"
		_, err := Parse(strings.NewReader(src), Options{})
		want := "Dockerfile:2: RUN --mount from=" + from + ": stage tools is defined after this one; a RUN mount can read only a stage defined before it"
		if err == nil || err.Error() != want {
			t.Errorf("RUN --mount from=%s of a later stage: %v, want %s", from, err, want)
		}
	}
}

// TestRunMountStage checks that RUN --mount from= gives the executor the
// stage index, or -1 for an image.
func TestRunMountStage(t *testing.T) {
	p, err := Parse(strings.NewReader("FROM a AS tools\nFROM b\nRUN --mount=from=TOOLS,target=/t --mount=from=0,target=/u --mount=from=alpine,target=/v --mount=type=tmpfs,target=/w true\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := p.Stages[1].Steps[0].Expand(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, m := range ins.(*Run).Mounts {
		got = append(got, m.Stage)
	}
	if want := []int{0, 0, -1, -1}; !slices.Equal(got, want) {
		t.Errorf("mount stages = %v, want %v", got, want)
	}
}

func TestPlatformArgs(t *testing.T) {
	// A global ARG's default replaces a predefined arg (BuildKit's
	// buildMetaArgs), and a build arg replaces both.
	src := "ARG TARGETARCH=declared\nFROM --platform=$BUILDPLATFORM a:$BUILDOS-$BUILDARCH$BUILDVARIANT\nFROM b:$TARGETPLATFORM-$TARGETOS-$TARGETARCH-$TARGETVARIANT\n"
	tests := []struct {
		opts            Options
		build, platform string
		target          string
	}{
		{Options{BuildPlatform: "linux/amd64"}, "a:linux-amd64", "linux/amd64", "b:linux/amd64-linux-declared-"},
		{Options{BuildPlatform: "linux/amd64", TargetPlatform: "linux/arm/v7"}, "a:linux-amd64", "linux/amd64", "b:linux/arm/v7-linux-declared-v7"},
		{Options{BuildPlatform: "linux/arm64", BuildArgs: map[string]string{"TARGETARCH": "riscv64"}},
			"a:linux-arm64", "linux/arm64", "b:linux/arm64-linux-riscv64-"},
	}
	for _, tt := range tests {
		p, err := Parse(strings.NewReader(src), tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Stages[0]; got.Base.Image != tt.build || got.Platform != tt.platform {
			t.Errorf("%+v: stage 0 = %s on %s, want %s on %s", tt.opts, got.Base.Image, got.Platform, tt.build, tt.platform)
		}
		if got := p.Stages[1].Base.Image; got != tt.target {
			t.Errorf("%+v: stage 1 = %s, want %s", tt.opts, got, tt.target)
		}
	}
}
