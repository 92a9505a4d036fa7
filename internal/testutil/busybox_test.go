package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSharedBusybox checks that test binaries share one rootfs per
// busybox instead of leaving a copy each in the temp dir, and never use a
// damaged one.
func TestSharedBusybox(t *testing.T) {
	bin := RequireTool(t, "/bin/busybox")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	want, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}

	first, msg := sharedBusybox(bin)
	if msg != "" {
		t.Fatal(msg)
	}
	second, msg := sharedBusybox(bin)
	if msg != "" {
		t.Fatal(msg)
	}
	if first != second || filepath.Dir(first) != tmp {
		t.Errorf("sharedBusybox() = %s, then %s; want one directory in %s", first, second, tmp)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, ".builder-busybox-*")); len(left) != 0 {
		t.Errorf("left behind %v", left)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{".", os.ModeDir | 0o755},
		{"tmp", os.ModeDir | os.ModeSticky | 0o777},
		{"root", os.ModeDir | 0o700},
		{"bin/busybox", 0o755},
	} {
		fi, err := os.Lstat(filepath.Join(first, c.path))
		if err != nil {
			t.Error(err)
		} else if fi.Mode() != c.mode {
			t.Errorf("%s: mode %s, want %s", c.path, fi.Mode(), c.mode)
		}
	}

	// A copy some test damaged is not handed out again.
	if err := os.Truncate(filepath.Join(first, "bin/busybox"), 10); err != nil {
		t.Fatal(err)
	}
	third, msg := sharedBusybox(bin)
	if msg != "" {
		t.Fatal(msg)
	}
	if third == first {
		t.Fatalf("sharedBusybox() returned the damaged copy %s", first)
	}
	if fi, err := os.Stat(filepath.Join(third, "bin/busybox")); err != nil || fi.Size() != want.Size() {
		t.Errorf("busybox in %s: %v, %v; want %d bytes", third, fi, err, want.Size())
	}
}
