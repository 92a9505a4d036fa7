package executor_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/snapshot"
)

// TestSeccompRefusesUserNamespaces: with Docker's capabilities a RUN step
// cannot mount, but a user namespace would give it every capability back;
// the filter refuses that route, and the mount API, as Docker's profile
// does. Ordinary work (threads, setuid programs) keeps working.
func TestSeccompRefusesUserNamespaces(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, run string
		wantErr   bool
		output    string
	}{
		{"unshare -U then mount", `unshare -Urm sh -c 'mount -t tmpfs x /tmp && echo MOUNTED'`, true, ""},
		{"unshare -U alone", `unshare -U true`, true, ""},
		{"plain mount", `mount -t tmpfs x /mnt`, true, ""},
		{"seccomp mode in status", `grep -E '^Seccomp:' /proc/self/status > /out`, false, "Seccomp:\t2\n"},
		{"threads still start", `sh -c 'sleep 0 & wait' && echo ok > /out`, false, "ok\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var events []executor.Event
			res, err := e.build(t, t.TempDir(), "FROM busybox:test\nRUN "+c.run+"\n", &buildOpts{noCache: true, events: &events})
			if (err != nil) != c.wantErr {
				t.Fatalf("RUN %s: err = %v, want error %v", c.run, err, c.wantErr)
			}
			for _, ev := range events {
				if strings.Contains(ev.Line, "MOUNTED") {
					t.Fatalf("RUN %s mounted: %q", c.run, ev.Line)
				}
			}
			if c.output != "" {
				if got := readFromImage(t, e, res, "/out"); got != c.output {
					t.Errorf("RUN %s: /out = %q, want %q", c.run, got, c.output)
				}
			}
		})
	}
}

// readFromImage reads a file the build's last layer wrote.
func readFromImage(t *testing.T, e *env, res *executor.Result, p string) string {
	t.Helper()
	ids := res.Config.RootFS.DiffIDs
	data, err := os.ReadFile(filepath.Join(e.snaps.Dir(snapshot.ID(ids[len(ids)-1].Hex)), p))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
