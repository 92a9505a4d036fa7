package fsutil

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/builderdev/builder/internal/testutil"
)

func TestSweepAtomicTemps(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, ".index.json.tmp-123")
	fresh := filepath.Join(dir, ".index.json.tmp-456")
	keep := filepath.Join(dir, "index.json")
	for _, p := range []string{old, fresh, keep} {
		os.WriteFile(p, []byte("x"), 0o644)
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(old, past, past)
	os.Chtimes(keep, past, past)
	SweepAtomicTemps(dir)
	for p, want := range map[string]bool{old: false, fresh: true, keep: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

func TestSessionsSweepOnlyDead(t *testing.T) {
	root := t.TempDir()
	live, err := NewSession(root)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead := filepath.Join(root, "s-1-dead")
	os.MkdirAll(dead, 0o700)
	os.WriteFile(filepath.Join(dead, sessionLock), nil, 0o600) // nobody holds its lock
	n, err := SweepSessions(root)
	if err != nil || n != 1 {
		t.Fatalf("SweepSessions = %d, %v; want 1 removed", n, err)
	}
	if _, err := os.Stat(live.Dir()); err != nil {
		t.Errorf("live session removed: %v", err)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("dead session kept")
	}
}

func TestSweepNascentOfDeadOwner(t *testing.T) {
	root := t.TempDir()
	// A pid that cannot be alive: beyond the kernel's pid_max.
	dead := filepath.Join(root, "n-99999999-"+pidNamespace()+"-x-1")
	otherNS := filepath.Join(root, "n-99999999-1-x-2")
	alive := filepath.Join(root, "n-"+strconv.Itoa(os.Getpid())+"-"+pidNamespace()+"-x-3")
	for _, d := range []string{dead, otherNS, alive} {
		os.MkdirAll(d, 0o700)
		os.WriteFile(filepath.Join(d, sessionLock), nil, 0o600)
	}
	if _, err := SweepSessions(root); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]bool{dead: false, otherNS: true, alive: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s kept = %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}

func TestMkdirPrivate(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // nil: dir does not exist
		want  os.FileMode
	}{
		{name: "new", want: 0o700},
		{name: "open", setup: mkdirMode(0o755), want: 0o700},
		{name: "group only", setup: mkdirMode(0o750), want: 0o700},
		{name: "search for others", setup: mkdirMode(0o711), want: 0o700},
		{name: "setgid kept", setup: mkdirMode(os.ModeSetgid | 0o775), want: os.ModeSetgid | 0o700},
		{name: "private already", setup: mkdirMode(0o700), want: 0o700},
		{name: "another user's", setup: func(t *testing.T, dir string) {
			testutil.RequireRoot(t) // only root can give a directory away
			mkdirMode(0o755)(t, dir)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, want: 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "parent", "root")
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			if err := MkdirPrivate(dir); err != nil {
				t.Fatalf("MkdirPrivate: %v", err)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModePerm | os.ModeSetgid); got != tt.want {
				t.Errorf("mode after MkdirPrivate = %v, want %v", got, tt.want)
			}
		})
	}
}

// mkdirMode makes the directory with exactly mode, whatever the umask.
func mkdirMode(mode os.FileMode) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeadSessions(t *testing.T) {
	root := t.TempDir()
	live, err := NewSession(root)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead := filepath.Join(root, "s-1-dead")
	os.MkdirAll(dead, 0o700)
	os.WriteFile(filepath.Join(dead, sessionLock), nil, 0o600)
	os.MkdirAll(filepath.Join(root, "other"), 0o700) // not a session: not ours to judge
	var got []string
	if err := DeadSessions(root, func(dir string) error { got = append(got, dir); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{dead}) {
		t.Errorf("DeadSessions found %q, want %q", got, dead)
	}
	if _, err := os.Stat(dead); err != nil {
		t.Errorf("DeadSessions removed what fn did not: %v", err)
	}
}
