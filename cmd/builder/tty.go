package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/builderdev/builder/executor"
)

// barRedrawEvery bounds how often byte progress alone redraws the bars.
const barRedrawEvery = 100 * time.Millisecond

// ttyRenderer is the live view for a terminal: the step lines of the
// plain renderer scroll by, and below them one progress bar per active
// download or layer write is redrawn in place.
//
// The bars are drawn by us, not by progressbar: each bar renders into
// io.Discard and we take its text with String(). progressbar assumes it
// owns the cursor's line, which cannot hold for several bars at once.
type ttyRenderer struct {
	mu       sync.Mutex
	w        io.Writer
	width    func() int
	lines    *plainRenderer // formats step lines into pending
	pending  bytes.Buffer
	bars     []*ttyBar // in the order they appeared
	drawn    int       // bar lines on the screen below the cursor's line
	lastDraw time.Time
}

type ttyBar struct {
	id    int
	label string
	bar   *progressbar.ProgressBar
}

func newTTYRenderer(w io.Writer, width func() int, multiStage bool) *ttyRenderer {
	r := &ttyRenderer{w: w, width: width}
	r.lines = newPlainRenderer(&r.pending, multiStage)
	return r
}

func (r *ttyRenderer) Report(e executor.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Kind == executor.StepProgress {
		if !r.updateBar(e) && time.Since(r.lastDraw) < barRedrawEvery {
			return
		}
	} else {
		r.lines.render(e)
		switch e.Kind {
		case executor.StepDone, executor.StepCached, executor.StepFailed:
			r.dropBars(e.ID)
		}
	}
	r.redraw()
}

// Close removes the bars and writes what is pending.
func (r *ttyRenderer) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bars = nil
	r.redraw()
}

// updateBar moves a bar, creating it on its first event. A finished bar
// leaves a "done" line in the log and disappears; updateBar then reports
// true so the screen is redrawn at once.
func (r *ttyRenderer) updateBar(e executor.Event) bool {
	if e.Total > 0 && e.Current >= e.Total {
		r.lines.render(e)
		r.removeBar(func(b *ttyBar) bool { return b.id == e.ID && b.label == e.Label })
		return true
	}
	var b *ttyBar
	for _, x := range r.bars {
		if x.id == e.ID && x.label == e.Label {
			b = x
		}
	}
	created := b == nil
	if created {
		b = &ttyBar{id: e.ID, label: e.Label, bar: newBar(e)}
		r.bars = append(r.bars, b)
	} else if e.Total > 0 && b.bar.GetMax64() != e.Total {
		b.bar.ChangeMax64(e.Total)
	}
	b.bar.Set64(e.Current)
	// Set64 renders only when the whole percentage changes; the bar's
	// text must be current (and not empty) whenever we draw it.
	b.bar.RenderBlank()
	return created
}

func newBar(e executor.Event) *progressbar.ProgressBar {
	limit := e.Total
	if limit <= 0 {
		limit = -1 // unknown: a spinner with a byte count
	}
	return progressbar.NewOptions64(limit,
		progressbar.OptionSetWriter(io.Discard),
		progressbar.OptionSetDescription(fmt.Sprintf("#%d %s", e.ID, shortDigest(e.Label))),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(25),
		progressbar.OptionThrottle(0),
		progressbar.OptionSpinnerType(14),
		// No ticker goroutine: bars change only under r.mu.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSetPredictTime(false),
	)
}

func (r *ttyRenderer) dropBars(id int) {
	r.removeBar(func(b *ttyBar) bool { return b.id == id })
}

func (r *ttyRenderer) removeBar(match func(*ttyBar) bool) {
	kept := r.bars[:0]
	for _, b := range r.bars {
		if !match(b) {
			kept = append(kept, b)
		}
	}
	r.bars = kept
}

// redraw erases the bars, writes the pending step lines (which stay),
// and draws the bars again below them, one screen line each.
func (r *ttyRenderer) redraw() {
	var out bytes.Buffer
	if r.drawn > 0 {
		fmt.Fprintf(&out, "\x1b[%dA\x1b[J", r.drawn)
	}
	out.Write(r.pending.Bytes())
	r.pending.Reset()
	cols := r.width() - 1
	for _, b := range r.bars {
		text := strings.TrimSpace(strings.ReplaceAll(b.bar.String(), "\r", ""))
		out.WriteString(truncate(text, max(cols, 10)) + "\n")
	}
	r.drawn = len(r.bars)
	r.lastDraw = time.Now()
	r.w.Write(out.Bytes())
}
