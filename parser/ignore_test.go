package parser

import (
	"strings"
	"sync"
	"testing"
)

// matchWalk matches rel the way a walk does: each parent first, passing
// its MatchInfo down.
func matchWalk(t *testing.T, ig *Ignore, rel string) bool {
	t.Helper()
	var info MatchInfo
	parts := strings.Split(rel, "/")
	for i := range parts {
		ex, next, err := ig.Match(strings.Join(parts[:i+1], "/"), info)
		if err != nil {
			t.Fatalf("Match(%q) = %v", rel, err)
		}
		if i == len(parts)-1 {
			return ex
		}
		info = next
	}
	return false
}

func TestIgnore(t *testing.T) {
	tests := []struct {
		name     string
		rules    string
		excluded []string
		included []string
		// dirs whose MayIncludeBelow must say true / false
		descend, skip []string
	}{
		{
			name:     "extension, with an exception",
			rules:    "# logs\n*.log\n!keep.log\n",
			excluded: []string{"a.log", "debug.log"},
			included: []string{"keep.log", "a.txt", "sub/a.log", "logs"},
		},
		{
			name:     "any depth",
			rules:    "**/tmp\n**/*.o\n",
			excluded: []string{"tmp", "a/tmp", "a/b/tmp", "a/tmp/file", "x.o", "a/b/x.o"},
			included: []string{"tmpx", "a/tmpfile", "x.of"},
		},
		{
			name:     "leading slash and dot are the root",
			rules:    "/abs\n./rel\n/dir/sub\n",
			excluded: []string{"abs", "abs/x", "rel", "rel/y", "dir/sub", "dir/sub/z"},
			included: []string{"a/abs", "a/rel", "dir", "dir/other", "x/dir/sub"},
		},
		{
			name:     "directory excluded, a file below re-included",
			rules:    "vendor\n!vendor/keep/me.go\n",
			excluded: []string{"vendor", "vendor/a.go", "vendor/keep", "vendor/keep/other.go"},
			included: []string{"vendor/keep/me.go", "main.go"},
			descend:  []string{"vendor", "vendor/keep"},
			skip:     []string{"vendor/other", "vendor/keep/me.go/x", "src"},
		},
		{
			name:     "everything but some",
			rules:    "*\n!src\n!go.mod\nsrc/**/*_test.go\n",
			excluded: []string{"README.md", "docs", "docs/a.md", "src/a_test.go", "src/x/y_test.go"},
			included: []string{"src", "src/a.go", "src/x/y.go", "go.mod"},
			skip:     []string{"docs", "docs/sub"},
		},
		{
			name:     "exception with a wildcard in a directory",
			rules:    "build\n!build/*/out.txt\n",
			descend:  []string{"build", "build/linux"},
			skip:     []string{"build/linux/deep", "other"},
			excluded: []string{"build/linux/out.log", "build/out.txt"},
			included: []string{"build/linux/out.txt"},
		},
		{
			name:     "exception with ** may be anywhere",
			rules:    "node_modules\n!**/LICENSE\n",
			descend:  []string{"node_modules", "node_modules/a/b"},
			included: []string{"node_modules/a/LICENSE", "LICENSE"},
			excluded: []string{"node_modules/a/index.js"},
		},
		{
			name:     "no exceptions: nothing below an excluded dir",
			rules:    "  .git  \n\n*.swp\n",
			excluded: []string{".git", ".git/HEAD", ".b.swp"},
			included: []string{"a/.git", "git"},
			skip:     []string{".git", ".git/objects"},
		},
		{
			name:     "later rule wins",
			rules:    "!a.txt\n*.txt\n",
			excluded: []string{"a.txt", "b.txt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ig, err := ParseIgnore(strings.NewReader(tt.rules))
			if err != nil {
				t.Fatalf("ParseIgnore(%q) = %v", tt.rules, err)
			}
			for _, p := range tt.excluded {
				if !matchWalk(t, ig, p) {
					t.Errorf("rules %q: Match(%q) = included, want excluded", tt.rules, p)
				}
			}
			for _, p := range tt.included {
				if matchWalk(t, ig, p) {
					t.Errorf("rules %q: Match(%q) = excluded, want included", tt.rules, p)
				}
			}
			for _, d := range tt.descend {
				if !ig.MayIncludeBelow(d) {
					t.Errorf("rules %q: MayIncludeBelow(%q) = false, want true", tt.rules, d)
				}
			}
			for _, d := range tt.skip {
				if ig.MayIncludeBelow(d) {
					t.Errorf("rules %q: MayIncludeBelow(%q) = true, want false", tt.rules, d)
				}
			}
		})
	}
}

// TestIgnoreWithoutParents checks that a path matched with no parent
// information gets the same answer as one matched during a walk.
func TestIgnoreWithoutParents(t *testing.T) {
	ig, err := ParseIgnore(strings.NewReader("vendor\n!vendor/keep\n*.log\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"vendor/x/y", "vendor/keep/z", "a/b.log", "a/b.go"} {
		got, _, err := ig.Match(p, MatchInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if want := matchWalk(t, ig, p); got != want {
			t.Errorf("Match(%q, zero MatchInfo) = %v, walk says %v", p, got, want)
		}
	}
}

func TestIgnoreNil(t *testing.T) {
	var ig *Ignore
	ex, _, err := ig.Match("anything", MatchInfo{})
	if ex || err != nil {
		t.Errorf("nil Ignore: Match = %v, %v; want false, nil", ex, err)
	}
	if ig.MayIncludeBelow("anything") {
		t.Error("nil Ignore: MayIncludeBelow = true")
	}
	empty, err := ParseIgnore(strings.NewReader("# only a comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	if matchWalk(t, empty, "a/b") {
		t.Error("empty rules exclude a/b")
	}
}

func TestIgnoreBadPattern(t *testing.T) {
	for _, rules := range []string{"!\n", "a[\n", "0*[\n", "!x*[\n"} {
		if _, err := ParseIgnore(strings.NewReader(rules)); err == nil {
			t.Errorf("ParseIgnore(%q) = nil error", rules)
		}
	}
}

// TestIgnoreConcurrent matches from several goroutines, as parallel stages
// copying from one context do; run it with -race.
func TestIgnoreConcurrent(t *testing.T) {
	ig, err := ParseIgnore(strings.NewReader("**/*.tmp\n!keep.tmp\nbuild/\n[a-c]*.bak\n"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range []string{"x/y.tmp", "keep.tmp", "build/z", "b.bak", "d.bak"} {
				_, _, _ = ig.Match(p, MatchInfo{})
			}
		}()
	}
	wg.Wait()
	if !matchWalk(t, ig, "b1.bak") || matchWalk(t, ig, "keep.tmp") {
		t.Error("concurrent use changed the answers")
	}
}

// ignoreTree is every path of up to three components over a few names.
func ignoreTree() []string {
	names := []string{"a", "b", "keep", "x.log", ".git"}
	var out, level []string
	level = []string{""}
	for range 3 {
		var next []string
		for _, p := range level {
			for _, n := range names {
				q := n
				if p != "" {
					q = p + "/" + n
				}
				next = append(next, q)
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

// checkMayIncludeBelow checks that a walk which skips an excluded directory
// when MayIncludeBelow says false misses no included path.
func checkMayIncludeBelow(t *testing.T, rules string) {
	ig, err := ParseIgnore(strings.NewReader(rules))
	if err != nil {
		return
	}
	tree := ignoreTree()
	excluded := map[string]bool{}
	for _, p := range tree {
		excluded[p] = matchWalk(t, ig, p)
	}
	for _, d := range tree {
		if !excluded[d] || ig.MayIncludeBelow(d) {
			continue
		}
		for _, p := range tree {
			if strings.HasPrefix(p, d+"/") && !excluded[p] {
				t.Fatalf("rules %q: MayIncludeBelow(%q) = false, but %q below it is included", rules, d, p)
			}
		}
	}
}

func TestMayIncludeBelowSound(t *testing.T) {
	for _, rules := range []string{
		"a\n!a/keep\n",
		"*\n!*/keep\n",
		"a\n!a/*/keep\n",
		"**/b\n!**/b/keep\n",
		"a\n!a\na/b\n",
		"*\n!keep\n",
		"a/b\n!a/b/keep/x.log\n",
		"*.log\n!a/x.log\n",
		"a\n!a/k?ep\n",
		"a\n!a/[k]eep/x.log\n",
		"/a\n!./a/keep\n",
		"a**\n!a**/keep\n",
		"a/a\n!*0|b",    // patternmatcher leaves "|" to the regexp: alternation
		"a\n!a/k{1}eep", // and "{}" too: repetition
	} {
		checkMayIncludeBelow(t, rules)
	}
}

func FuzzIgnore(f *testing.F) {
	f.Add("a\n!a/keep\n")
	f.Add("*\n!*/keep\n**/x.log\n")
	f.Add("**/b\n!**/b/keep\n")
	f.Fuzz(func(t *testing.T, rules string) {
		checkMayIncludeBelow(t, rules)
	})
}
