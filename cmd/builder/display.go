package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/builderdev/builder/executor"
)

const (
	// frameEvery bounds the redraws: at most 10 a second, however many
	// events arrive, and often enough for the timers' tenths.
	frameEvery = 100 * time.Millisecond
	// logTail is how many lines of a running step's output stay on screen.
	logTail = 6
	// barWidth is the widest a progress bar gets, brackets included.
	barWidth = 32
)

// ANSI sequences the display uses; a line is truncated before it is
// coloured, so colours never count against the width.
const (
	ansiBlue   = "\x1b[34m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiReset  = "\x1b[0m"
)

// ttyDisplay is the live view of a build on a terminal, in BuildKit's
// shape: a header with the elapsed time and [done/total], then one line
// per step with its own timer; a running step also shows the last lines
// of its output and a bar per download or upload, and collapses to its
// one line when it finishes.
//
// Events only change the model; a loop redraws the whole frame in place
// at most every frameEvery, and on SIGWINCH. The frame is a function of
// the model, the clock and the terminal's size (frame), so tests draw it
// with a fixed clock.
//
// The bars are drawn here, not by schollz/progressbar: it reads its own
// clock for the rate (the "228 GB/s" of a first frame) and owns the
// cursor's line, while a frame holds several bars, fitted to the width
// at each redraw.
type ttyDisplay struct {
	mu         sync.Mutex
	w          io.Writer
	size       func() (cols, rows int)
	now        func() time.Time
	multiStage bool
	title      string // "Building", "Pushing", "Pulling"
	total      int    // steps the build will show; 0 when unknown
	start      time.Time
	steps      []*dispStep // in the order they first appeared
	byID       map[int]*dispStep
	notes      []string // lines tied to no step: warnings
	shown      []int    // widths of the last frame's lines, above the cursor
	dirty      bool
	closed     bool
	loop       bool // run was started, and Close waits for it

	stop chan struct{} // closed by Close to end the loop
	done chan struct{} // closed by the loop when it has ended
}

type stepState int

const (
	stateRunning stepState = iota
	stateCached
	stateDone
	stateFailed
	stateCanceled
)

type dispStep struct {
	id       int
	header   string
	start    time.Time
	state    stepState
	duration time.Duration
	logs     []string // the last logTail lines of output
	bars     []*dispBar
}

type dispBar struct {
	label          string
	current, total int64
	start, last    time.Time
}

// newTTYDisplay returns a display drawing on w. It draws only when told
// (draw) until run starts its loop.
func newTTYDisplay(w io.Writer, size func() (int, int), now func() time.Time, multiStage bool) *ttyDisplay {
	return &ttyDisplay{w: w, size: size, now: now, multiStage: multiStage, start: now(), title: "Building",
		byID: map[int]*dispStep{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// startTTYDisplay is the display of a real terminal: it redraws on a
// timer and when the terminal is resized.
func startTTYDisplay(w io.Writer, size func() (int, int), multiStage bool) *ttyDisplay {
	d := newTTYDisplay(w, size, time.Now, multiStage)
	d.loop = true
	liveDisplay.Store(d)
	go d.run()
	return d
}

// Describe sets the header's word and the number of steps it counts
// toward.
func (d *ttyDisplay) Describe(title string, total int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.title, d.total = title, total
	d.dirty = true
}

func (d *ttyDisplay) run() {
	defer close(d.done)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	tick := time.NewTicker(frameEvery)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-winch:
			d.mu.Lock()
			d.dirty = true
			d.mu.Unlock()
		case <-tick.C:
		}
		d.mu.Lock()
		if d.dirty || d.running() {
			d.draw(false)
		}
		d.mu.Unlock()
	}
}

func (d *ttyDisplay) running() bool {
	for _, s := range d.steps {
		if s.state == stateRunning {
			return true
		}
	}
	return false
}

func (d *ttyDisplay) Report(e executor.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.dirty = true
	if e.Kind == executor.BuildWarning || e.ID == 0 {
		for _, line := range strings.Split(e.Line, "\n") {
			d.notes = append(d.notes, cleanLine(line))
		}
		return
	}
	s := d.byID[e.ID]
	if s == nil {
		s = &dispStep{id: e.ID, header: stepHeader(e, d.multiStage), start: e.Time}
		d.byID[e.ID] = s
		d.steps = append(d.steps, s)
	}
	switch e.Kind {
	case executor.StepStarted:
		s.start = e.Time
	case executor.StepCached:
		s.state, s.bars = stateCached, nil
	case executor.StepLog:
		s.logs = append(s.logs, cleanLine(e.Line))
		if len(s.logs) > logTail {
			s.logs = s.logs[len(s.logs)-logTail:]
		}
	case executor.StepProgress:
		s.progress(e)
	case executor.StepDone:
		s.state, s.duration = stateDone, e.Duration
	case executor.StepFailed:
		s.state, s.duration = stateFailed, e.Duration
		if errors.Is(e.Err, context.Canceled) {
			s.state = stateCanceled
		}
		if s.duration == 0 {
			s.duration = e.Time.Sub(s.start)
		}
	}
	if s.state != stateRunning {
		s.logs, s.bars = nil, nil
	}
}

func (s *dispStep) progress(e executor.Event) {
	var b *dispBar
	for _, x := range s.bars {
		if x.label == e.Label {
			b = x
		}
	}
	if b == nil {
		b = &dispBar{label: e.Label, start: e.Time}
		s.bars = append(s.bars, b)
	}
	b.current, b.last = e.Current, e.Time
	if e.Total > 0 {
		b.total = e.Total
	}
}

// Close draws the last frame, every step on one line, and leaves it.
func (d *ttyDisplay) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	liveDisplay.CompareAndSwap(d, nil)
	close(d.stop)
	if d.loop {
		<-d.done
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.steps {
		if s.state == stateRunning {
			// A build that ends with a step still running was stopped.
			s.state, s.duration, s.logs, s.bars = stateCanceled, d.now().Sub(s.start), nil, nil
		}
	}
	d.draw(true)
}

// draw replaces the frame on the screen with the current one. Lines are
// never as wide as the terminal, so each took one row when drawn; if the
// terminal has narrowed since, it has rewrapped them, as tmux, VTE and
// most terminals do, and the cursor goes up by the rows they take now.
// (xterm cuts lines instead, so there the frame above it is overwritten.)
func (d *ttyDisplay) draw(final bool) {
	cols, rows := d.size()
	lines := d.frame(d.now(), cols, rows, final)
	var b bytes.Buffer
	if up := rowsTaken(d.shown, cols); up > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", up)
	}
	d.shown = d.shown[:0]
	for _, l := range lines {
		b.WriteString("\r" + l + "\x1b[K\n")
		d.shown = append(d.shown, visibleWidth(l))
	}
	b.WriteString("\x1b[J")
	d.w.Write(b.Bytes())
	if final {
		d.shown = nil
	}
	d.dirty = false
}

// rowsTaken is how many rows lines of the given widths take on a
// terminal of cols columns that wraps them.
func rowsTaken(widths []int, cols int) int {
	n := 0
	for _, w := range widths {
		n += max(1, (w+cols-1)/max(cols, 1))
	}
	return n
}

// visibleWidth is a line's width on screen, its escape sequences left out.
func visibleWidth(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			i += escapeLen(s[i:])
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return n
}

// frame is the display at now on a terminal of cols×rows: the header,
// each step, and the notes. A live frame fits in rows-1 rows, dropping
// the oldest finished steps first; the final frame shows every step.
func (d *ttyDisplay) frame(now time.Time, cols, rows int, final bool) []string {
	cols = max(cols-1, 20)
	var blocks [][]string
	var finished []bool
	doneCount, failed, canceled := 0, false, false
	for _, s := range d.steps {
		switch s.state {
		case stateDone, stateCached:
			doneCount++
		case stateFailed:
			failed = true
		case stateCanceled:
			canceled = true
		}
		blocks = append(blocks, s.lines(now, cols))
		finished = append(finished, s.state != stateRunning)
	}
	total := max(d.total, len(d.steps))
	head := fmt.Sprintf("[+] %s %.1fs (%d/%d)", d.title, now.Sub(d.start).Seconds(), doneCount, total)
	if final {
		switch {
		case failed:
			head += " FAILED"
		case canceled:
			head += " CANCELED"
		default:
			head += " FINISHED"
		}
	}
	var notes []string
	for _, n := range d.notes {
		notes = append(notes, colour(ansiYellow, truncate(n, cols)))
	}
	if !final {
		budget := rows - 2 - len(notes) // the header, and the cursor's row
		blocks = fitBlocks(blocks, finished, budget)
	}
	out := []string{truncate(head, cols)}
	for _, b := range blocks {
		out = append(out, b...)
	}
	return append(out, notes...)
}

// fitBlocks drops the oldest finished steps, then the oldest lines,
// until the blocks fit in budget rows.
func fitBlocks(blocks [][]string, finished []bool, budget int) [][]string {
	n := 0
	for _, b := range blocks {
		n += len(b)
	}
	var kept [][]string
	for i, b := range blocks {
		if n > budget && finished[i] {
			n -= len(b)
			continue
		}
		kept = append(kept, b)
	}
	for n > budget && len(kept) > 0 && budget >= 0 {
		if len(kept[0]) <= 1 {
			kept = kept[1:]
		} else {
			kept[0] = append(kept[0][:1], kept[0][2:]...)
		}
		n--
	}
	return kept
}

// lines are a step's rows: its line, then while it runs its bars and the
// last lines of its output.
func (s *dispStep) lines(now time.Time, cols int) []string {
	prefix, col := "", ""
	elapsed := s.duration
	switch s.state {
	case stateRunning:
		col, elapsed = ansiBlue, now.Sub(s.start)
	case stateCached:
		prefix = "CACHED "
	case stateFailed:
		prefix, col = "ERROR ", ansiRed
	case stateCanceled:
		prefix, col = "CANCELED ", ansiYellow
	}
	out := []string{colour(col, withTimer(" => "+prefix+s.header, elapsed, cols))}
	for _, b := range s.bars {
		out = append(out, colour(col, b.line(now, cols)))
	}
	for _, l := range s.logs {
		out = append(out, colour(col, truncate(" => => # "+l, cols)))
	}
	return out
}

// line is one transfer: "=> => sha256:0123456789ab 1.2MB / 3MB [===>   ]".
func (b *dispBar) line(now time.Time, cols int) string {
	left := " => => " + shortDigest(b.label) + " " + humanSize(b.current)
	if b.total > 0 {
		left += " / " + humanSize(b.total)
	}
	end := now
	if b.total > 0 && b.current >= b.total {
		end = b.last
		left += " done"
	} else if b.total > 0 {
		// The bar takes what the text and the timer leave, up to barWidth.
		if w := min(barWidth, cols-len([]rune(left))-8); w >= 8 {
			left += " " + drawBar(b.current, b.total, w)
		}
	}
	return withTimer(left, end.Sub(b.start), cols)
}

// drawBar is [====>    ] of width w, brackets included.
func drawBar(current, total int64, w int) string {
	inner := w - 2
	filled := int(float64(inner) * float64(min(current, total)) / float64(total))
	bar := strings.Repeat("=", filled)
	if filled < inner {
		bar += ">" + strings.Repeat(" ", inner-filled-1)
	}
	return "[" + bar + "]"
}

// withTimer puts a duration at the right edge of a line of cols columns,
// truncating the text to make room. The room kept is the same for any
// timer under 1000s, so a line is not cut anew when its timer grows.
func withTimer(text string, d time.Duration, cols int) string {
	timer := fmt.Sprintf("%.1fs", max(d, 0).Seconds())
	room := cols - max(len(timer), len("999.9s")) - 1
	text = truncate(text, max(room, 1))
	pad := cols - len([]rune(text)) - len(timer)
	return text + strings.Repeat(" ", max(pad, 1)) + timer
}

func colour(code, line string) string {
	if code == "" {
		return line
	}
	return code + line + ansiReset
}

// cleanLine makes a line of a command's output safe to draw: what a
// carriage return overwrote is dropped, tabs become spaces, and escape
// sequences and other control characters go.
func cleanLine(s string) string {
	s = strings.TrimRight(s, "\r")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.ReplaceAll(s, "\t", "    ")
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			i += escapeLen(s[i:])
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsControl(r) {
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// escapeLen is the length of the escape sequence at the start of s: a CSI
// sequence (ESC [ … final byte), an OSC one such as a window title (ESC ]
// … BEL or ESC \), or ESC and one more byte.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	if s[1] == ']' {
		bel, st := strings.IndexByte(s, '\a'), strings.Index(s[1:], "\x1b\\")
		switch {
		case bel >= 0 && (st < 0 || bel < st+1):
			return bel + 1
		case st >= 0:
			return st + 3
		}
		return len(s)
	}
	if s[1] != '[' {
		return 2
	}
	for i := 2; i < len(s); i++ {
		if s[i] >= 0x40 && s[i] <= 0x7e {
			return i + 1
		}
	}
	return len(s)
}
