package executor_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builderdev/builder/executor"
)

// TestSymlinkedProcSys is the regression test for a host-root hole: an
// image whose /proc (or /sys) is an absolute symlink used to switch off
// every mask, because the masks were applied through the host's / while
// proc itself was mounted through the symlink inside the rootfs; a RUN
// step could then write the host's /proc/sys. The builder must refuse to
// mount proc or sysfs on anything but a plain directory, as runc does,
// and no host sysctl may change. The step only ever writes back the value
// it read, so even a regression leaves the host as it was.
func TestSymlinkedProcSys(t *testing.T) {
	e := newEnv(t)
	const sysctl = "/proc/sys/kernel/core_uses_pid"
	write := "v=$(cat " + sysctl + ") && echo $v > " + sysctl + " && echo WROTE-SYSCTL; " +
		"ls /sys/firmware 2>/dev/null | head -1; grep -c firmware /proc/self/mountinfo"
	cases := []struct {
		name  string
		links map[string]string // symlinks in the context's r/ (or the tar)
		add   bool              // ADD evil.tar rather than COPY r/ /
		want  string            // in the refusal
	}{
		{"COPY proc symlink", map[string]string{"proc": "/p"}, false, "/proc is a symlink to /p"},
		{"ADD proc symlink", map[string]string{"proc": "/p"}, true, "/proc is a symlink to /p"},
		{"COPY sys symlink", map[string]string{"sys": "/s"}, false, "/sys is a symlink to /s"},
		{"ADD relative proc symlink", map[string]string{"proc": "p"}, true, "/proc is a symlink to p"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := readHost(t, sysctl)
			ctxDir := t.TempDir()
			// A base with no /proc or /sys of its own, so that COPY may put
			// a symlink there (it does not replace a directory).
			df := "FROM scratch\nCOPY --from=busybox:test /bin/ /bin/\n"
			if c.add {
				writeEvilTar(t, filepath.Join(ctxDir, "evil.tar"), c.links)
				df += "ADD evil.tar /\n"
			} else {
				r := filepath.Join(ctxDir, "r")
				for name, target := range c.links {
					dir := strings.TrimPrefix(target, "/")
					if err := os.MkdirAll(filepath.Join(r, dir), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(r, dir, ".keep"), nil, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(target, filepath.Join(r, name)); err != nil {
						t.Fatal(err)
					}
				}
				df += "COPY r/ /\n"
			}
			df += "RUN " + write + "\n"
			var events []executor.Event
			_, err := e.build(t, ctxDir, df, &buildOpts{noCache: true, events: &events})
			out := stepOutput(events)
			if after := readHost(t, sysctl); after != before {
				t.Fatalf("host %s changed from %q to %q", sysctl, before, after)
			}
			if err == nil {
				t.Fatalf("build succeeded; RUN output:\n%s", out)
			}
			if strings.Contains(out, "WROTE-SYSCTL") {
				t.Fatalf("the step wrote %s; output:\n%s", sysctl, out)
			}
			var setup *executor.SetupError
			if !errors.As(err, &setup) {
				t.Fatalf("error %v is not a container setup error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func readHost(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func stepOutput(events []executor.Event) string {
	var lines []string
	for _, ev := range events {
		if ev.Kind == executor.StepLog && ev.Stream != 0 {
			lines = append(lines, ev.Line)
		}
	}
	return strings.Join(lines, "\n")
}

// writeEvilTar writes a tar holding each symlink name -> target and a
// directory with a file where an absolute target points.
func writeEvilTar(t *testing.T, path string, links map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, target := range links {
		dir := strings.TrimPrefix(target, "/")
		hdrs := []*tar.Header{
			{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: dir + "/.keep", Typeflag: tar.TypeReg, Mode: 0o644},
			{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777},
		}
		for _, h := range hdrs {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
