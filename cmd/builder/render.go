package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/registry"
)

// renderer draws build events. Report may be called from several
// goroutines; Close flushes and leaves the terminal clean.
type renderer interface {
	executor.Reporter
	Close()
}

// newRenderer returns the renderer for a progress mode ("plain", "tty",
// "rawjson", "quiet"). multiStage puts stage names in step headers, as BuildKit does
// for Dockerfiles with more than one stage.
func newRenderer(mode string, w io.Writer, env *environment, multiStage bool) renderer {
	switch mode {
	case "quiet":
		return quietRenderer{}
	case "tty":
		return startTTYDisplay(w, env.size, multiStage)
	case "rawjson":
		return newRawJSONRenderer(w)
	}
	return newPlainRenderer(w, multiStage)
}

// describe tells a renderer with a header what the work is ("Building",
// "Pushing") and how many steps to expect.
func describe(r renderer, title string, total int) {
	if d, ok := r.(interface{ Describe(string, int) }); ok {
		d.Describe(title, total)
	}
}

type quietRenderer struct{}

func (quietRenderer) Report(executor.Event) {}
func (quietRenderer) Close()                {}

// pullProgress turns a registry's download progress into progress events
// of step id, for `builder pull`; in builds the executor does this.
func pullProgress(r executor.Reporter, id int) func(registry.Progress) {
	return func(p registry.Progress) {
		if p.Cached {
			return
		}
		cur := p.Complete
		if p.Done && p.Total > 0 {
			cur = p.Total
		}
		r.Report(executor.Event{Kind: executor.StepProgress, ID: id, Label: p.Digest.String(),
			Current: cur, Total: p.Total, Time: time.Now()})
	}
}

// shortDigest is "sha256:" and the first 12 hex digits, as docker shows
// layers; other labels stay as they are.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// stepHeader is how a step is introduced: "[2/5] COPY . /app", with the
// stage for multi-stage builds: "[build 2/5] COPY . /app".
func stepHeader(e executor.Event, multiStage bool) string {
	var where string
	if multiStage && e.Stage != "" {
		where = e.Stage
		if isDigits(where) {
			where = "stage-" + where
		}
	}
	if e.Step > 0 {
		if where != "" {
			where += " "
		}
		where += fmt.Sprintf("%d/%d", e.Step, e.Steps)
	}
	if where == "" {
		return e.Name
	}
	return "[" + where + "] " + e.Name
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
