package container

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestContainerMounts: a tmpfs holding one file bound at a path whose
// parents the image lacks, a host directory bound read-only below it, a
// symlink in the source that must not lead out of it, and a directory
// tmpfs under /dev; the upper dir stays empty, so no mount point reaches
// the layer.
func TestContainerMounts(t *testing.T) {
	f := newFixture(t, "")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "in.txt"), []byte("from the host\n"), 0o644)
	os.Symlink("/etc", filepath.Join(src, "escape"))
	spec := f.spec(sh(`set -e
cat /new/dir/secret
stat -c '%a %u:%g' /new/dir/secret
cat /new/dir/src/in.txt
ls /new/dir/escape-target | head -1
touch /new/dir/src/x 2>/dev/null && echo writable || echo read-only
cat /dev/pipes/script
grep -c " /new/dir/secret tmpfs ro,nosuid,nodev,noexec" /proc/mounts`)...)
	spec.Mounts = []Mount{
		{Target: "/new/dir/secret", Tmpfs: true, File: "s", Files: []File{{Name: "s", Data: []byte("hush\n"), Mode: 0o440, UID: 7, GID: 8}},
			ReadOnly: true, NoExec: true, NoSuid: true},
		{Target: "/new/dir/src", Source: src, ReadOnly: true},
		// The whole source again: it lists its own "escape" link.
		{Target: "/new/dir/escape-target", Source: src, SubPath: "."},
		{Target: "/dev/pipes", Tmpfs: true, Files: []File{{Name: "script", Data: []byte("echo hi\n"), Mode: 0o755}}, ReadOnly: true},
	}
	r := mustRun(t, spec)
	want := []string{"hush", "440 7:8", "from the host", "escape", "read-only", "echo hi", "1"}
	if !slices.Equal(r.stdout, want) {
		t.Errorf("output %q, want %q", r.stdout, want)
	}
	assertUpper(t, f.upper, nil)

	// A symlink in the source leads nowhere outside it: escape -> /etc
	// resolves to src/etc, which does not exist, and the mount fails
	// rather than bind the host's /etc/passwd.
	spec = f.spec("true")
	spec.Mounts = []Mount{{Target: "/m", Source: src, SubPath: "escape/passwd"}}
	if r := run(context.Background(), spec); r.err == nil || !strings.Contains(r.err.Error(), "escape/passwd") {
		t.Errorf("a source through a symlink to /etc: %v, want an error naming it", r)
	}
}

func TestMountCheck(t *testing.T) {
	for _, tc := range []struct {
		m    Mount
		want string
	}{
		{Mount{Target: "/x"}, "want one of"},
		{Mount{Target: "/x", Tmpfs: true, Source: "/y"}, "want one of"},
		{Mount{Target: "x", Tmpfs: true}, "absolute path"},
		{Mount{Target: "/", Tmpfs: true}, "absolute path"},
		{Mount{Target: "/x", Tmpfs: true, Files: []File{{Name: "../e"}}}, "one path component"},
		{Mount{Target: "/x", Source: "/y", File: "f"}, "only a tmpfs"},
	} {
		if err := tc.m.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check(%+v) = %v, want %q", tc.m, err, tc.want)
		}
	}
}
