package parser

import (
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Ignore holds the rules of a .dockerignore file.
type Ignore struct {
	// mu guards pm: a pattern compiles itself on first use, and stages
	// copy from the context in parallel.
	mu         sync.Mutex
	pm         *patternmatcher.PatternMatcher
	exceptions [][]string // the "!" patterns, split into components
}

// MatchInfo carries what a directory's match told about its children, so a
// walk need not match every parent again (see Ignore.Match).
type MatchInfo struct{ info patternmatcher.MatchInfo }

// ParseIgnore reads .dockerignore rules (patternmatcher/ignorefile syntax:
// comments, "!" exceptions, "**").
func ParseIgnore(r io.Reader) (*Ignore, error) {
	patterns, err := ignorefile.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading .dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("invalid .dockerignore: %w", err)
	}
	ig := &Ignore{pm: pm}
	for _, p := range pm.Patterns() {
		if err := checkPattern(p.String()); err != nil {
			return nil, err
		}
		if p.Exclusion() {
			ig.exceptions = append(ig.exceptions, strings.Split(p.String(), "/"))
		}
	}
	return ig, nil
}

// checkPattern compiles one pattern by matching with it alone:
// patternmatcher.New checks only what filepath.Match reports against ".",
// and a pattern such as "a*[" would otherwise fail every later match.
func checkPattern(p string) error {
	one, err := patternmatcher.New([]string{p})
	if err == nil {
		_, err = one.MatchesOrParentMatches("x")
	}
	if err != nil {
		return fmt.Errorf("invalid .dockerignore pattern %q: %w", p, err)
	}
	return nil
}

// Match reports whether rel (slash-separated, relative to the context root,
// no leading "./") is excluded. parent is the MatchInfo returned for rel's
// parent directory (the zero value for top-level entries). A nil *Ignore
// excludes nothing.
func (ig *Ignore) Match(rel string, parent MatchInfo) (excluded bool, info MatchInfo, err error) {
	if ig == nil {
		return false, MatchInfo{}, nil
	}
	ig.mu.Lock()
	ex, mi, err := ig.pm.MatchesUsingParentResults(rel, parent.info)
	ig.mu.Unlock()
	if err != nil {
		return false, MatchInfo{}, fmt.Errorf("matching %s against .dockerignore: %w", rel, err)
	}
	return ex, MatchInfo{info: mi}, nil
}

// MayIncludeBelow reports whether an excluded directory can still contain
// included paths (because of "!" exceptions), i.e. whether a walk must
// descend into it.
func (ig *Ignore) MayIncludeBelow(rel string) bool {
	if ig == nil {
		return false
	}
	if len(ig.exceptions) > 0 && (rel == "" || rel == ".") {
		return true
	}
	dir := strings.Split(rel, "/")
	for _, ex := range ig.exceptions {
		if hasRegexpMeta(ex) || couldMatchBelow(ex, dir) {
			return true
		}
	}
	return false
}

// hasRegexpMeta reports whether an exception holds "|", "{", "}" or "^".
// patternmatcher v0.6 means to escape them but its escape table loses every
// byte above 63, so they reach the regexp engine: "!*0|b" re-includes every
// path ending in "b", and "!^a/*" every path below "a" (found by FuzzIgnore).
// docker and BuildKit match the same way, so Match keeps that meaning and a
// walk must descend rather than guess.
func hasRegexpMeta(pattern []string) bool {
	for _, c := range pattern {
		if strings.ContainsAny(c, "|{}^") {
			return true
		}
	}
	return false
}

// couldMatchBelow reports whether pattern components could match a path
// strictly below dir.
func couldMatchBelow(pattern, dir []string) bool {
	for i, d := range dir {
		if i >= len(pattern) {
			return false
		}
		if strings.Contains(pattern[i], "**") {
			return true
		}
		if ok, err := path.Match(pattern[i], d); err != nil || !ok {
			return false
		}
	}
	return len(pattern) > len(dir)
}
