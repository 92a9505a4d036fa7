package fsutil

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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
