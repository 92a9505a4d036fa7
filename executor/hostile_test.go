package executor_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/parser"
)

// doublingLines is issue 13's reproduction: "<kind> A1=<16 bytes>", then
// "<kind> A2=${A1}${A1}" and so on, each value twice the one before.
func doublingLines(kind string, lines int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s A1=0123456789abcdef\n", kind)
	for i := 2; i <= lines; i++ {
		fmt.Fprintf(&b, "%s A%d=${A%d}${A%d}\n", kind, i, i-1, i-1)
	}
	return b.String()
}

// TestHostileDockerfileBuilds builds Dockerfiles written to exhaust the
// builder, end to end: the environment is the executor's (ARG and ENV
// values of the stage and its base, kept in the image state), not a
// test's. Each refusal is the parser's error at the line that would
// overflow; nothing in the context, the busybox rootfs or a host
// directory changes, and nothing is printed on standard error.
func TestHostileDockerfileBuilds(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"f": "f\n"})
	host := t.TempDir()
	writeFiles(t, host, map[string]string{"h": "h\n"})
	dirs := map[string]string{"context": ctxDir, "busybox": e.base, "host": host}
	before := map[string]map[string]string{}
	for what, dir := range dirs {
		before[what] = treeOf(t, dir)
	}
	ten := "FROM busybox:test\n" + strings.Repeat("ENV N=1\nLABEL l=$N\nUSER u$N\nEXPOSE 80\nSTOPSIGNAL SIGTERM\n", 2000)
	cases := []struct {
		name, df string
		want     string // the *parser.Error, or "" for success
		check    func(t *testing.T, res *executor.Result)
	}{
		{"10,000 instructions", ten, "", func(t *testing.T, res *executor.Result) {
			if n := len(res.Config.History); n < 10000 {
				t.Errorf("%d history entries, want 10,000 and the base's", n)
			}
		}},
		{"ARG doubling", "FROM busybox:test\n" + doublingLines("ARG", 41),
			"Dockerfile:19: ARG A18: expanded value is longer than 1 MiB", nil},
		{"ENV doubling", "FROM busybox:test\n" + doublingLines("ENV", 41),
			"Dockerfile:19: ENV A18: expanded value is longer than 1 MiB", nil},
		// The base stage ends with 7 MiB of ENV (A1…A17 hold 2 MiB); the
		// stage built on it may not add another 1 MiB.
		{"a base image's environment", "FROM busybox:test AS base\n" + doublingLines("ENV", 17) +
			"ENV C1=$A17 C2=$A17 C3=$A17 C4=$A17 C5=$A17\nFROM base\nLABEL fits=1\nENV D=$A17\n",
			"Dockerfile:22: ENV D: the environment (ARG and ENV values, the base image's included) would be larger than 8 MiB", nil},
		{"invalid UTF-8", "FROM busybox:test\nLABEL x=\"\xff\xfe\"\nWORKDIR /w\xff\n", "", func(t *testing.T, res *executor.Result) {
			// Each invalid byte becomes U+FFFD, as with docker build.
			if v := res.Config.Config.Labels["x"]; v != "\uFFFD\uFFFD" {
				t.Errorf("label %q, want two U+FFFD", v)
			}
			if v := res.Config.Config.WorkingDir; v != "/w\uFFFD" {
				t.Errorf("WORKDIR %q, want /w and U+FFFD", v)
			}
		}},
		{"unterminated heredoc", "FROM busybox:test\nCOPY <<EOF /f\nf\n", "Dockerfile:2: unterminated heredoc", nil},
		{"a 1 MB line", "FROM busybox:test\nRUN echo " + strings.Repeat("a", 1000000) + "\n",
			"Dockerfile:2: dockerfile line greater than max allowed size of 65535", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			var res *executor.Result
			var err error
			stderr := capturedStderr(t, func() { res, err = e.build(t, ctxDir, c.df, &buildOpts{noCache: true}) })
			t.Logf("%s: %v", c.name, time.Since(start).Round(time.Millisecond))
			var pe *parser.Error
			switch {
			case c.want == "" && err != nil:
				t.Fatal(err)
			case c.want != "" && !errors.As(err, &pe):
				t.Fatalf("error %v, want %q", err, c.want)
			case c.want != "" && pe.Error() != c.want:
				t.Fatalf("error %q, want %q", pe.Error(), c.want)
			}
			if stderr != "" {
				t.Errorf("standard error: %.300q", stderr)
			}
			if c.check != nil {
				c.check(t, res)
			}
		})
	}
	for what, dir := range dirs {
		if diff := diffMaps(before[what], treeOf(t, dir)); diff != "" {
			t.Errorf("the %s directory changed:\n%s", what, diff)
		}
	}
}

// capturedStderr runs fn with os.Stderr sent to a file and returns what was
// written there.
func capturedStderr(t *testing.T, fn func()) string {
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
