package parser

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
)

// doubling is the reproduction of issue 13: "<kind> A1=<16 bytes>", then
// "<kind> A2=${A1}${A1}" and so on, each value twice the one before.
func doubling(kind string, lines int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s A1=0123456789abcdef\n", kind)
	for i := 2; i <= lines; i++ {
		fmt.Fprintf(&b, "%s A%d=${A%d}${A%d}\n", kind, i, i-1, i-1)
	}
	return b.String()
}

// continued spreads text over lines of at most 60,000 bytes joined by
// continuation backslashes, as a long instruction must be written.
func continued(text string) string {
	var b strings.Builder
	for len(text) > 60000 {
		b.WriteString(text[:60000] + "\\\n")
		text = text[60000:]
	}
	return b.String() + text
}

// expandAll expands every step of every stage, carrying ENV and ARG values
// forward as the executor does, and returns the last instruction or the
// first error.
func expandAll(p *Plan, buildArgs map[string]string) (Instruction, error) {
	var last Instruction
	for _, s := range p.Stages {
		var env []string
		for _, step := range s.Steps {
			ins, err := step.Expand(env)
			if err != nil {
				return nil, err
			}
			last = ins
			switch ins := ins.(type) {
			case *Env:
				for _, kv := range ins.Pairs {
					env = append(env, kv.Key+"="+kv.Value)
				}
			case *Arg:
				for _, a := range ins.Args {
					if v, ok := buildArgs[a.Key]; ok {
						env = append(env, a.Key+"="+v)
					} else if a.Value != nil {
						env = append(env, a.Key+"="+*a.Value)
					}
				}
			}
		}
	}
	return last, nil
}

// hostileCases are Dockerfiles written to break the parser: too large,
// malformed, or made to expand without end. want is the exact error, ""
// for success; check, when set, looks at the plan and the last step.
var hostileCases = []struct {
	name  string
	src   string
	args  map[string]string
	want  string
	check func(t *testing.T, p *Plan, last Instruction)
	alloc int // MiB the case may allocate in all, when not 64
}{
	{name: "10,000 instructions", src: "FROM scratch\n" + strings.Repeat("ENV N=1\nLABEL l=$N\nWORKDIR /w/$N\nUSER u$N\nEXPOSE 80\n", 2000),
		check: func(t *testing.T, p *Plan, last Instruction) {
			if n := len(p.Stages[0].Steps); n != 10000 {
				t.Errorf("%d steps, want 10000", n)
			}
		}},
	{name: "a 1 MB line", src: "FROM scratch\nLABEL x=\"" + strings.Repeat("a", 1000000) + "\"\n",
		want: "Dockerfile:2: dockerfile line greater than max allowed size of 65535"},
	{name: "a 1 MB line first", src: strings.Repeat("#", 1000000) + "\nFROM scratch\n",
		want: "Dockerfile:1: dockerfile line greater than max allowed size of 65535"},
	{name: "a 1 MB instruction over continuation lines", src: "FROM scratch\nLABEL x=" + continued(strings.Repeat("a", 1000000)) + "\n",
		check: func(t *testing.T, p *Plan, last Instruction) {
			if v := last.(*Label).Pairs[0].Value; len(v) != 1000000 {
				t.Errorf("label of %d bytes, want 1000000", len(v))
			}
		}},
	{name: "invalid UTF-8", src: "FROM scratch\nENV A=\xff\nLABEL x=\"\xfe$A\"\nCOPY <<EOF /f\n\xc3x$A\nEOF\n",
		check: func(t *testing.T, p *Plan, last Instruction) {
			// Each invalid byte becomes U+FFFD, as in docker build.
			if got := last.(*Copy).Inline[0].Data; got != "\uFFFDx\uFFFD\n" {
				t.Errorf("heredoc %q, want %q", got, "\uFFFDx\uFFFD\n")
			}
		}},
	{name: "a NUL byte", src: "FROM scratch\nLABEL x=a\x00b\n", want: `Dockerfile:2: LABEL x: a NUL byte in "a\x00b"`},
	{name: "unterminated heredoc", src: "FROM scratch\nCOPY <<EOF /f\nhello\n", want: "Dockerfile:2: unterminated heredoc"},
	{name: "unterminated heredoc in RUN", src: "FROM scratch\nRUN <<EOF\necho\nEO\n", want: "Dockerfile:2: unterminated heredoc"},
	// A17 is exactly 1 MiB long; A18 would be 2 MiB.
	{name: "ARG doubling", src: "FROM scratch\n" + doubling("ARG", 41), want: "Dockerfile:19: ARG A18: expanded value is longer than 1 MiB"},
	{name: "global ARG doubling", src: doubling("ARG", 41) + "FROM scratch\n", want: "Dockerfile:18: ARG A18: expanded value is longer than 1 MiB"},
	{name: "ENV doubling", src: "FROM scratch\n" + doubling("ENV", 41), want: "Dockerfile:19: ENV A18: expanded value is longer than 1 MiB"},
	// A1…A17 hold 2 MiB; six more copies of A17 make 8 MiB and a little.
	{name: "ENV growing the environment", src: "FROM scratch\n" + doubling("ENV", 17) + "ENV B1=$A17 B2=$A17 B3=$A17 B4=$A17 B5=$A17 B6=$A17\n",
		want: "Dockerfile:19: ENV B6: the environment (ARG and ENV values, the base image's included) would be larger than 8 MiB"},
	{name: "build args growing the global ARGs", src: "ARG B1 B2 B3 B4 B5 B6 B7 B8\nFROM scratch\n", args: bigArgs(8),
		want: "Dockerfile:1: ARG B8: the global ARGs and build args would be larger than 8 MiB"},
	{name: "build args growing the environment", src: "FROM scratch\nARG B1 B2 B3 B4 B5 B6 B7 B8\n", args: bigArgs(8),
		want: "Dockerfile:2: ARG B8: the environment (ARG and ENV values, the base image's included) would be larger than 8 MiB"},
	{name: "one instruction expanding to more than 16 MiB", src: "FROM scratch\nARG B1\nLABEL " + labels(17, "$B1") + "\n", args: bigArgs(1),
		want: "Dockerfile:3: LABEL: expanded values are longer than 16 MiB together", alloc: 256},
	{name: "one variable many times", src: "FROM scratch\nARG B1\nLABEL x=" + strings.Repeat("$B1", 1000) + "\n", args: bigArgs(1),
		want: "Dockerfile:3: LABEL x: expanded value is longer than 1 MiB"},
	{name: "a replacement bomb", src: "FROM scratch\nARG A=" + strings.Repeat("x", 2048) + "\nLABEL x=${A//x/$A}\n",
		want: "Dockerfile:3: LABEL x: expanded value is longer than 1 MiB"},
	{name: "a replacement within the limits", src: "FROM scratch\nENV P=/usr/local/bin:/usr/bin\nLABEL x=\"${P//:/ }\"\n",
		check: func(t *testing.T, p *Plan, last Instruction) {
			if v := last.(*Label).Pairs[0].Value; v != "/usr/local/bin /usr/bin" {
				t.Errorf("label %q", v)
			}
		}},
	{name: "a heredoc of many variables", src: "FROM scratch\nARG B1\nCOPY <<EOF /f\n" + strings.Repeat("$B1", 17) + "\nEOF\n", args: bigArgs(1),
		want: "Dockerfile:3: COPY heredoc: expanded value is longer than 16 MiB", alloc: 256},
	{name: "${A:-${A:-…}} 10,000 deep", src: "FROM scratch\nLABEL x=" + strings.Repeat("${A:-", 10000) + "x" + strings.Repeat("}", 10000) + "\n",
		check: func(t *testing.T, p *Plan, last Instruction) {
			if v := last.(*Label).Pairs[0].Value; v != "x" {
				t.Errorf("label %q, want x", v)
			}
		}},
	{name: "${A:-${A:-…}} 10,001 deep", src: "FROM scratch\nLABEL x=" + strings.Repeat("${A:-", 10001) + "x" + strings.Repeat("}", 10001) + "\n",
		want: "Dockerfile:2: LABEL x: 10001 ${…} in one word, more than 10000"},
	{name: "a very long variable name", src: "FROM scratch\nLABEL x=${" + strings.Repeat("N", 60000) + ":-short}\n",
		check: func(t *testing.T, p *Plan, last Instruction) {
			if v := last.(*Label).Pairs[0].Value; v != "short" {
				t.Errorf("label %q, want short", v)
			}
		}},
	{name: "a 2 MiB variable name", src: "FROM scratch\nENV " + continued(strings.Repeat("N", 2<<20)) + "=1\n",
		want: `Dockerfile:2: ENV "NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNN"…: expanded value is longer than 1 MiB`},
}

func bigArgs(n int) map[string]string {
	m := map[string]string{}
	for i := 1; i <= n; i++ {
		m[fmt.Sprintf("B%d", i)] = strings.Repeat("b", MaxWordSize)
	}
	return m
}

func labels(n int, value string) string {
	var parts []string
	for i := 1; i <= n; i++ {
		parts = append(parts, fmt.Sprintf("l%d=%s", i, value))
	}
	return strings.Join(parts, " ")
}

// TestHostileDockerfiles parses and expands each hostile case. Every
// refusal is the exact error, reached with little memory (the rows that
// succeed are checked for their result): the growth is
// stopped before the oversized value is built, so the bytes allocated
// stay a small multiple of the limits, however far the input would
// grow. Nothing is written to standard error (BuildKit's lexer prints
// there for invalid UTF-8 unless the parser keeps such bytes from it).
func TestHostileDockerfiles(t *testing.T) {
	for _, c := range hostileCases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var p *Plan
			var last Instruction
			var err error
			stderr := captureStderr(t, func() {
				p, err = Parse(strings.NewReader(c.src), Options{BuildArgs: c.args})
				if err == nil {
					last, err = expandAll(p, c.args)
				}
			})
			runtime.ReadMemStats(&after)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Fatalf("error %.300q, want %q", got, c.want)
			}
			if stderr != "" {
				t.Errorf("wrote to standard error: %.300q", stderr)
			}
			// The input itself, the build args and the values that fit
			// are held several times over (a strings.Builder allocates
			// about twice what it ends with, and the lexer builds the
			// word and its split form); 64 MiB is far below what the
			// bombs would take (2^44 bytes for the doubling).
			// Only refusals are bounded: a Dockerfile that parses costs
			// memory in proportion to its size, as it should.
			limit := uint64(max(c.alloc, 64)) << 20
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %.1f MiB", float64(alloc)/(1<<20))
			if c.want != "" && alloc > limit {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
			if c.check != nil {
				c.check(t, p, last)
			}
		})
	}
}

// captureStderr runs fn with os.Stderr sent to a file and returns what
// was written there.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stderr
	os.Stderr = f
	defer func() { os.Stderr = saved }()
	fn()
	f.Seek(0, io.SeekStart)
	data, _ := io.ReadAll(f)
	return string(data)
}

// BenchmarkParseInstructions parses and expands Dockerfiles of n
// instructions: the time per instruction must not grow with n.
func BenchmarkParseInstructions(b *testing.B) {
	for _, n := range []int{1000, 10000, 20000} {
		src := "FROM scratch\n" + strings.Repeat("ENV N=1\nLABEL l=$N\nWORKDIR /w/$N\nUSER u$N\nEXPOSE 80\n", n/5)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				p, err := Parse(strings.NewReader(src), Options{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := expandAll(p, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/instruction")
		})
	}
}
