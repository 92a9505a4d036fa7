package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/builderdev/builder/executor"
)

// progressEvery is how often a plain log shows a byte count per label.
const progressEvery = time.Second

// plainRenderer writes BuildKit-style lines, one per event, each with
// its step number so that interleaved steps stay readable:
//
//	#3 [2/5] COPY . /app
//	#3 DONE 0.2s
//
// Times come from the events, never from the clock, so a fixed sequence
// of events always gives the same text.
type plainRenderer struct {
	mu         sync.Mutex
	w          io.Writer
	multiStage bool
	steps      map[int]*plainStep
	last       int // step of the last line written; -1 before any
}

type plainStep struct {
	start    time.Time
	shown    bool
	progress map[string]labelProgress
}

type labelProgress struct {
	at   time.Time // of the last line written for the label
	done bool
}

func newPlainRenderer(w io.Writer, multiStage bool) *plainRenderer {
	return &plainRenderer{w: w, multiStage: multiStage, steps: map[int]*plainStep{}, last: -1}
}

func (r *plainRenderer) Report(e executor.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.render(e)
}

func (r *plainRenderer) Close() {}

// render writes the lines of one event; the caller holds mu.
func (r *plainRenderer) render(e executor.Event) {
	if e.Kind == executor.LayersMerged && e.Merge != nil {
		r.line(0, mergeLine(e.Merge))
		return
	}
	if e.Kind == executor.BuildWarning || e.ID == 0 {
		for _, line := range strings.Split(e.Line, "\n") {
			r.line(0, line)
		}
		return
	}
	st := r.steps[e.ID]
	if st == nil {
		st = &plainStep{start: e.Time, progress: map[string]labelProgress{}}
		r.steps[e.ID] = st
	}
	if e.Kind == executor.StepStarted {
		st.start = e.Time
	}
	if !st.shown {
		st.shown = true
		r.stepLine(e.ID, stepHeader(e, r.multiStage))
	}
	switch e.Kind {
	case executor.StepCached:
		r.stepLine(e.ID, "CACHED")
	case executor.StepLog:
		if e.Stream == 0 {
			r.stepLine(e.ID, e.Line)
		} else {
			r.stepLine(e.ID, fmt.Sprintf("%.3f %s", e.Time.Sub(st.start).Seconds(), e.Line))
		}
	case executor.StepProgress:
		r.progress(e, st)
	case executor.StepDone:
		r.stepLine(e.ID, fmt.Sprintf("DONE %.1fs", e.Duration.Seconds()))
	case executor.StepFailed:
		r.stepLine(e.ID, "ERROR: "+errText(e.Err))
	}
}

// progress writes a byte count at most once per progressEvery for each
// label, and always the final one, once.
func (r *plainRenderer) progress(e executor.Event, st *plainStep) {
	done := e.Total > 0 && e.Current >= e.Total
	last, seen := st.progress[e.Label]
	if last.done || (seen && !done && e.Time.Sub(last.at) < progressEvery) {
		return
	}
	st.progress[e.Label] = labelProgress{at: e.Time, done: done}
	text := shortDigest(e.Label) + " " + humanSize(e.Current)
	if e.Total > 0 {
		text += " / " + humanSize(e.Total)
	}
	if done {
		text += " done"
	}
	r.stepLine(e.ID, text)
}

func (r *plainRenderer) stepLine(id int, text string) {
	r.line(id, fmt.Sprintf("#%d %s", id, text))
}

// line writes one line, after a blank one when the step changes, as
// BuildKit separates its blocks.
func (r *plainRenderer) line(id int, text string) {
	if r.last != -1 && r.last != id {
		io.WriteString(r.w, "\n")
	}
	r.last = id
	io.WriteString(r.w, text+"\n")
}

func errText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// mergeLine is the one line saying which steps' layers were merged.
func mergeLine(m *executor.MergeReport) string {
	why := fmt.Sprintf("to stay within --max-layers %d", m.Limit)
	switch m.Squash {
	case executor.SquashNew:
		why = "for --squash"
	case executor.SquashAll:
		why = "for --squash-all"
	}
	var ranges []string
	for _, s := range m.Steps {
		ranges = append(ranges, fmt.Sprintf("%d-%d", s[0], s[1]))
	}
	steps := strings.Join(ranges, ", ")
	if len(ranges) > 4 {
		steps = fmt.Sprintf("%s, ... %s (%d groups)", strings.Join(ranges[:2], ", "), ranges[len(ranges)-1], len(ranges))
	}
	return fmt.Sprintf("merged layers %s: %d layers -> %d; steps %s (builder history shows each step)", why, m.Before, m.After, steps)
}
