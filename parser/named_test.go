package parser

import (
	"strings"
	"testing"
)

// TestNamedContexts: a --build-context name replaces a stage or an image
// of that name in FROM and COPY --from.
func TestNamedContexts(t *testing.T) {
	const file = `FROM base AS build
COPY --from=tools /bin/x /x
COPY --from=build /y /y
FROM build
COPY --from=src . /src
`
	named := map[string]NamedContext{
		"base":  {Image: "127.0.0.1:5000/base:1"},
		"tools": {Image: "alpine:3"},
		"build": {Image: "prebuilt:1"},
		"src":   {Dir: "/work/src"},
	}
	p, err := Parse(strings.NewReader(file), Options{NamedContexts: named})
	if err != nil {
		t.Fatal(err)
	}
	if b := p.Stages[0].Base; b.Kind != BaseImage || b.Image != "127.0.0.1:5000/base:1" {
		t.Errorf("FROM base: %+v, want the image of the context", b)
	}
	if b := p.Stages[1].Base; b.Kind != BaseImage || b.Image != "prebuilt:1" {
		t.Errorf("FROM build, a stage and a context: %+v, want the context's image", b)
	}
	want := []CopyFrom{{Stage: -1, Image: "alpine:3"}, {Stage: -1, Image: "prebuilt:1"}, {Stage: -1, Dir: "/work/src"}}
	var got []CopyFrom
	for _, s := range p.Stages {
		for _, step := range s.Steps {
			ins, err := step.Expand(nil)
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := ins.(*Copy); ok {
				got = append(got, *c.From)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("COPY --from: %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("COPY --from #%d: %+v, want %+v", i+1, got[i], want[i])
		}
	}

	_, err = Parse(strings.NewReader("FROM src\n"), Options{NamedContexts: named})
	if err == nil || !strings.Contains(err.Error(), "Dockerfile:1: FROM src: the build context src is a directory") {
		t.Errorf("FROM of a directory context: %v", err)
	}
}
