package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
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
// "quiet"). multiStage puts stage names in step headers, as BuildKit does
// for Dockerfiles with more than one stage.
func newRenderer(mode string, w io.Writer, env *environment, multiStage bool) renderer {
	switch mode {
	case "quiet":
		return quietRenderer{}
	case "tty":
		return newTTYRenderer(w, env.width, multiStage)
	}
	return newPlainRenderer(w, multiStage)
}

type quietRenderer struct{}

func (quietRenderer) Report(executor.Event) {}
func (quietRenderer) Close()                {}

// pullTracker ties registry download progress to the FROM step that
// asked for it, so that the bytes show under that step's number. The
// resolver passes FROM's reference unchanged to the registry, so the
// step named "FROM ref" is the one pulling ref.
type pullTracker struct {
	r   executor.Reporter
	mu  sync.Mutex
	ids map[string]int // image reference → step ID
}

func newPullTracker(r executor.Reporter) *pullTracker {
	return &pullTracker{r: r, ids: map[string]int{}}
}

func (p *pullTracker) Report(e executor.Event) {
	if e.Kind == executor.StepStarted {
		if ref, ok := strings.CutPrefix(e.Name, "FROM "); ok {
			p.mu.Lock()
			p.ids[ref] = e.ID
			p.mu.Unlock()
		}
	}
	p.r.Report(e)
}

// progress is a registry.Options.Progress function.
func (p *pullTracker) progress(pr registry.Progress) {
	if pr.Cached {
		return
	}
	p.mu.Lock()
	id := p.ids[pr.Ref]
	p.mu.Unlock()
	cur := pr.Complete
	if pr.Done && pr.Total > 0 {
		cur = pr.Total
	}
	p.r.Report(executor.Event{Kind: executor.StepProgress, ID: id, Label: shortDigest(pr.Digest.String()),
		Current: cur, Total: pr.Total, Time: time.Now()})
}

// shortDigest is "sha256:" and the first 12 hex digits, as docker shows
// layers.
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
