package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
)

// putImage stores a one-layer image named name in the store at root,
// through the library, so that commands that only read need no build.
func putImage(t *testing.T, root, name string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	s, err := cache.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.PutLayer(context.Background(), &buf, cache.Compression{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &v1.ConfigFile{
		Architecture: runtime.GOARCH, OS: "linux",
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.DiffID}},
		History: []v1.History{{CreatedBy: "COPY hello /"}},
	}
	rec, err := s.PutImage(cfg, []v1.Descriptor{l.Descriptor}, cache.FormatOCI, cache.Compression{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(name, rec.Manifest); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyCommandsLeaveNoSession: a command that only reads the store
// starts no temporary session, so it leaves nothing in tmp/ for the next
// process to sweep (and none for check to report).
func TestReadOnlyCommandsLeaveNoSession(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	putImage(t, root, "app")
	env := testEnv("BUILDER_ROOT=" + root)
	for _, args := range [][]string{
		{"images"}, {"inspect", "app"}, {"history", "app"}, {"du"}, {"du", "-v"}, {"check"},
	} {
		code, _, stderr := runWith(env, args...)
		if code != 0 {
			t.Fatalf("builder %q exited %d: %s", args, code, stderr)
		}
		ents, err := os.ReadDir(filepath.Join(root, "tmp"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			t.Errorf("builder %q left tmp/%s", args, e.Name())
		}
	}
}

func TestCheckExitStatus(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		damage   func(root string)
		code     int
		stdout   string // a regular expression
		stderr   string
		repaired bool
	}{
		{name: "clean", args: []string{"check"}, code: 0, stdout: `^$`, stderr: `^builder: store .*: no problems found\n$`},
		{name: "problem", args: []string{"check"}, damage: damageRecord, code: 1,
			stdout: `^image record sha256:0{64}: unreadable: .*\n$`,
			stderr: `: 1 problem found \(builder check --repair removes what is broken\)\n$`},
		{name: "repaired", args: []string{"check", "--repair"}, damage: damageRecord, code: 0,
			stdout: `^image record sha256:0{64}: unreadable: .* \(removed\)\n$`,
			stderr: `: 1 problem found, all removed\n$`},
		{name: "unrepairable", args: []string{"check", "--repair"}, damage: damageIndex, code: 1,
			stdout: `^index.json: .*no tag can be read.*[^)]\n$`,
			stderr: `: 1 problem found, 0 removed, 1 cannot be repaired by check\n$`},
		{name: "usage", args: []string{"check", "extra"}, code: 2, stdout: `^$`, stderr: `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			putImage(t, root, "app")
			if tt.damage != nil {
				tt.damage(root)
			}
			code, stdout, stderr := runWith(testEnv("BUILDER_ROOT="+root), tt.args...)
			if code != tt.code || !matches(tt.stdout, stdout) || !matches(tt.stderr, stderr) {
				t.Errorf("builder %q = %d\nstdout %q\nstderr %q\nwant %d, /%s/, /%s/", tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

func damageRecord(root string) {
	os.WriteFile(filepath.Join(root, "images", string(bytes.Repeat([]byte("0"), 64))), []byte("{"), 0o644)
}

func damageIndex(root string) {
	os.WriteFile(filepath.Join(root, "index.json"), []byte("{"), 0o644)
}

func matches(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
