package parser

import (
	"errors"
	"io"
)

// Ignore holds the rules of a .dockerignore file.
type Ignore struct{}

// MatchInfo carries what a directory's match told about its children, so a
// walk need not match every parent again (see Ignore.Match).
type MatchInfo struct{}

// ParseIgnore reads .dockerignore rules (patternmatcher/ignorefile syntax:
// comments, "!" exceptions, "**").
func ParseIgnore(r io.Reader) (*Ignore, error) { return nil, errors.New("parser: not implemented") }

// Match reports whether rel (slash-separated, relative to the context root,
// no leading "./") is excluded. parent is the MatchInfo returned for rel's
// parent directory (the zero value for top-level entries). A nil *Ignore
// excludes nothing.
func (ig *Ignore) Match(rel string, parent MatchInfo) (excluded bool, info MatchInfo, err error) {
	return false, MatchInfo{}, nil
}

// MayIncludeBelow reports whether an excluded directory can still contain
// included paths (because of "!" exceptions), i.e. whether a walk must
// descend into it.
func (ig *Ignore) MayIncludeBelow(rel string) bool { return false }
