package parser

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/parser")

const goldenDir = "../testdata/parser"

// goldenEnv is what every step of a golden case expands against: what an
// image's ENV plus the ARGs in scope could hold. It is the same for every
// step, so an ENV or ARG of the file does not show in later steps.
var goldenEnv = []string{
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"HOME=/root",
	"NAME=world",
	"VERSION=1.2",
	"PORT=8080",
	"EMPTY=",
	"PORTS=9000 9001/udp",
}

// goldenOptions are the Options of the cases that need more than the
// defaults; the platforms are fixed so that goldens do not depend on the
// machine.
var goldenOptions = map[string]Options{
	"global-args-buildarg": {BuildArgs: map[string]string{"BASE": "debian", "UNDECLARED": "x"}},
	"target":               {Target: "Test"},
	"platform":             {BuildPlatform: "linux/amd64", TargetPlatform: "linux/arm/v7"},
}

func goldenParse(t testing.TB, name string, src []byte) (*Plan, error) {
	t.Helper()
	opts := goldenOptions[name]
	if opts.BuildPlatform == "" {
		opts.BuildPlatform = "linux/amd64"
	}
	return Parse(bytes.NewReader(src), opts)
}

// The golden JSON is a view of the Plan with every step expanded, so that
// a diff shows what changed in words a reviewer can check against docker.
type (
	goldenPlan struct {
		Escape   string
		Syntax   string   `json:",omitempty"`
		Args     []ArgDef `json:",omitempty"`
		Target   int
		Needed   []int
		Warnings []string `json:",omitempty"`
		Stages   []goldenStage
	}
	goldenStage struct {
		Index    int
		Name     string `json:",omitempty"`
		Pos      string
		Base     string
		Platform string `json:",omitempty"`
		Deps     []int  `json:",omitempty"`
		Steps    []goldenStep
	}
	goldenStep struct {
		Pos      string // Line-EndLine
		Name     string
		Text     string
		Type     string      `json:",omitempty"`
		Expanded Instruction `json:",omitempty"`
		Err      string      `json:",omitempty"`
	}
)

func goldenView(p *Plan) goldenPlan {
	v := goldenPlan{Escape: string(p.Escape), Syntax: p.Syntax, Args: p.Args, Target: p.Target,
		Needed: p.Needed(), Warnings: p.Warnings}
	for _, s := range p.Stages {
		gs := goldenStage{Index: s.Index, Name: s.Name, Pos: fmt.Sprintf("%d-%d", s.Pos.Line, s.Pos.EndLine),
			Platform: s.Platform, Deps: s.Deps}
		switch s.Base.Kind {
		case BaseScratch:
			gs.Base = "scratch"
		case BaseStage:
			gs.Base = fmt.Sprintf("stage %d", s.Base.Stage)
		default:
			gs.Base = "image " + s.Base.Image
		}
		for _, st := range s.Steps {
			g := goldenStep{Pos: fmt.Sprintf("%d-%d", st.Pos.Line, st.Pos.EndLine), Name: st.Name, Text: st.Text}
			ins, err := st.Expand(goldenEnv)
			if err != nil {
				g.Err = err.Error()
			} else {
				g.Type, g.Expanded = strings.TrimPrefix(fmt.Sprintf("%T", ins), "*parser."), ins
			}
			gs.Steps = append(gs.Steps, g)
		}
		v.Stages = append(v.Stages, gs)
	}
	return v
}

func goldenCases(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.Dockerfile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden Dockerfiles in %s (%v)", goldenDir, err)
	}
	return files
}

func TestGolden(t *testing.T) {
	for _, file := range goldenCases(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".Dockerfile")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			p, err := goldenParse(t, name, src)
			if err != nil {
				t.Fatalf("Parse(%s) = %v", file, err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(goldenView(p)); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			want := strings.TrimSuffix(file, ".Dockerfile") + ".json"
			if *update {
				if err := os.WriteFile(want, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantData, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run go test ./parser -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, wantData) {
				t.Errorf("Parse(%s) differs from %s (go test ./parser -run TestGolden -update rewrites it); got:\n%s", file, want, got)
			}
		})
	}
}
