package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/builderdev/builder/executor"
)

// screen is a terminal reduced to what the display writes: lines, \r,
// \n, cursor up (ESC [ n A), erase to the end of the line (ESC [ K) and
// below (ESC [ J), and colours (ESC [ … m), which it drops.
type screen struct {
	lines []string
	row   int
}

func (s *screen) Write(p []byte) (int, error) {
	text := string(p)
	for text != "" {
		switch {
		case strings.HasPrefix(text, "\x1b["):
			rest := text[2:]
			i := strings.IndexAny(rest, "AJKm")
			if i < 0 {
				return 0, fmt.Errorf("unknown escape in %q", text)
			}
			switch rest[i] {
			case 'A':
				n, err := strconv.Atoi(rest[:i])
				if err != nil || n > s.row {
					return 0, fmt.Errorf("bad cursor up %q at row %d", rest[:i], s.row)
				}
				s.row -= n
			case 'J':
				s.lines = s.lines[:min(s.row, len(s.lines))]
			case 'K':
				// lines are stored without trailing text; nothing to do
			}
			text = rest[i+1:]
		case text[0] == '\r':
			text = text[1:]
		case text[0] == '\n':
			s.row++
			text = text[1:]
		default:
			i := strings.IndexAny(text, "\x1b\r\n")
			if i < 0 {
				i = len(text)
			}
			for len(s.lines) <= s.row {
				s.lines = append(s.lines, "")
			}
			s.lines[s.row] = text[:i] // every line is written whole, from column 0
			text = text[i:]
		}
	}
	return len(p), nil
}

// TestDisplayFrames draws the multi-stage build's frames with a fixed
// clock at chosen events, the final frame, and one live frame on a short
// terminal, and compares them with a golden file.
func TestDisplayFrames(t *testing.T) {
	events := multiStageEvents()
	// a RUN step with more output than a frame shows of it
	for i := 1; i <= logTail+2; i++ {
		events = append(events, executor.Event{Kind: executor.StepLog, ID: 5, Stage: "build", Step: 3, Steps: 3,
			Name: "RUN ./test.sh", Stream: 1, Line: fmt.Sprintf("ok %d\t- \x1b[32mgreen\x1b[0m", i), Time: at(1600 + i)})
	}
	lastLog := len(events) - 1
	events = append(events, executor.Event{Kind: executor.StepDone, ID: 5, Duration: 300 * time.Millisecond, Time: at(1900)})
	show := map[int]string{
		2:       "a pull under way, FROM scratch done",
		4:       "the pull two thirds done",
		10:      "RUN make runs with one line of output",
		lastLog: "RUN ./test.sh runs, its last lines shown",
	}
	var b strings.Builder
	var scr screen
	d := newTTYDisplay(&scr, func() (int, int) { return 60, 24 }, func() time.Time { return at(0) }, true)
	d.Describe("Building", 5)
	for i, e := range events {
		d.Report(e)
		if what, ok := show[i]; ok {
			fmt.Fprintf(&b, "--- %s (at %dms)\n", what, e.Time.Sub(t0).Milliseconds())
			frame := d.frame(e.Time.Add(50*time.Millisecond), 60, 24, false)
			b.WriteString(stripANSI(strings.Join(frame, "\n")) + "\n")
		}
		if i == lastLog {
			fmt.Fprintf(&b, "--- the same on a terminal of 8 rows\n")
			b.WriteString(stripANSI(strings.Join(d.frame(e.Time.Add(50*time.Millisecond), 60, 8, false), "\n")) + "\n")
		}
		d.now = func() time.Time { return e.Time }
		d.draw(false)
	}
	d.now = func() time.Time { return at(2000) }
	d.Close()
	final := d.frame(at(2000), 60, 24, true)
	fmt.Fprintf(&b, "--- the final frame\n")
	b.WriteString(stripANSI(strings.Join(final, "\n")) + "\n")
	checkGolden(t, "tty/frames.golden", b.String())

	// What the terminal shows at the end is the final frame and nothing
	// left of the frames before it.
	if got, want := strings.Join(scr.lines, "\n"), stripANSI(strings.Join(final, "\n")); got != want {
		t.Errorf("the screen shows\n%s\nwant the final frame\n%s", got, want)
	}
}

func TestDisplayLinesFitTheWidth(t *testing.T) {
	d := newTTYDisplay(&screen{}, func() (int, int) { return 80, 24 }, func() time.Time { return at(0) }, true)
	for _, e := range multiStageEvents()[:5] {
		d.Report(e)
	}
	d.Report(executor.Event{Kind: executor.StepLog, ID: 1, Line: strings.Repeat("long ", 40), Time: at(700)})
	for _, cols := range []int{20, 40, 80, 200} {
		for _, line := range d.frame(at(800), cols, 24, false) {
			if n := len([]rune(stripANSI(line))); n > cols-1 && cols > 21 {
				t.Errorf("at %d columns a line is %d wide: %q", cols, n, line)
			}
		}
	}
}

func TestDisplayFailedAndCanceled(t *testing.T) {
	for _, tt := range []struct {
		name   string
		events []executor.Event
		head   string
		line   string
	}{
		{"failed", singleStageEvents(), "FAILED", " => ERROR [4/4] RUN ./test.sh"},
		{"canceled", singleStageEvents()[:11], "CANCELED", " => CANCELED [4/4] RUN ./test.sh"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newTTYDisplay(&screen{}, func() (int, int) { return 80, 24 }, func() time.Time { return at(0) }, false)
			for _, e := range tt.events {
				d.Report(e)
			}
			d.now = func() time.Time { return at(4000) }
			d.Close()
			frame := stripANSI(strings.Join(d.frame(at(4000), 80, 24, true), "\n"))
			if !strings.Contains(strings.Split(frame, "\n")[0], tt.head) || !strings.Contains(frame, tt.line) {
				t.Errorf("final frame\n%s\nwant %q in the header and a line %q", frame, tt.head, tt.line)
			}
			if strings.Contains(frame, "=> =>") {
				t.Errorf("final frame shows a finished step's output or bars:\n%s", frame)
			}
		})
	}
}

func TestCleanLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\tb", "a    b"},
		{"10%\r50%\r100%", "100%"},
		{"done\r", "done"},
		{"\x1b[1;32mok\x1b[0m", "ok"},
		{"bell\a and nul\x00", "bell and nul"},
		{"\x1b]0;title\aafter", "after"},
		{"\x1b]0;title\x1b\\after", "after"},
		{"é ü 日本", "é ü 日本"},
	}
	for _, tt := range tests {
		if got := cleanLine(tt.in); got != tt.want {
			t.Errorf("cleanLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRowsTaken: after the terminal narrows, a frame's old lines take
// the rows the terminal rewrapped them into, and the cursor must go up
// by that many.
func TestRowsTaken(t *testing.T) {
	tests := []struct {
		widths []int
		cols   int
		want   int
	}{
		{[]int{89, 89, 10}, 90, 3},
		{[]int{89, 89, 10}, 50, 5},
		{[]int{89, 0}, 30, 4},
		{nil, 80, 0},
	}
	for _, tt := range tests {
		if got := rowsTaken(tt.widths, tt.cols); got != tt.want {
			t.Errorf("rowsTaken(%v, %d) = %d, want %d", tt.widths, tt.cols, got, tt.want)
		}
	}
}

func TestDrawBar(t *testing.T) {
	tests := []struct {
		cur, total int64
		w          int
		want       string
	}{
		{0, 100, 12, "[>         ]"},
		{50, 100, 12, "[=====>    ]"},
		{100, 100, 12, "[==========]"},
		{200, 100, 12, "[==========]"},
	}
	for _, tt := range tests {
		if got := drawBar(tt.cur, tt.total, tt.w); got != tt.want {
			t.Errorf("drawBar(%d, %d, %d) = %q, want %q", tt.cur, tt.total, tt.w, got, tt.want)
		}
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			i += escapeLen(s[i:])
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}
