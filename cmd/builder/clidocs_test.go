package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCLIDocs: docs/cli holds one page per command, the same text as its
// --help, and an index; -update rewrites them.
func TestCLIDocs(t *testing.T) {
	dir := filepath.Join("..", "..", "docs", "cli")
	pages := map[string]string{"README.md": cliIndex()}
	for _, c := range commands {
		pages[c.Name+".md"] = commandMarkdown(c, testEnv())
	}
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range pages {
		path := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (go test -run TestCLIDocs -update writes it)", err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s is not the help text of the command (go test -run TestCLIDocs -update rewrites it)", path)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if _, ok := pages[e.Name()]; !ok {
			t.Errorf("%s: no command of that name", filepath.Join(dir, e.Name()))
		}
	}
}
