package executor

import (
	"fmt"
	"path"
	"strings"

	"github.com/builderdev/builder/parser"
)

// selectCopy selects a COPY's sources in t as its options say, and walks
// them: with --parents each source keeps its path (the part after a
// "/./" pivot when the pattern has one), and --exclude drops what its
// patterns match.
func selectCopy(t *srcTree, o copyOpts, ig *parser.Ignore) ([]*source, error) {
	var srcs []*source
	if !o.parents {
		var err error
		if srcs, err = selectSources(t, o.patterns, ig); err != nil {
			return nil, err
		}
	} else {
		t.doublestar = true
		defer func() { t.doublestar = false }()
		for _, pat := range o.patterns {
			// BuildKit cuts at the first pivot; "a/b/." has none.
			pivot, rest, ok := strings.Cut(pat, "/./")
			if ok {
				pat = pivot + "/" + rest
			}
			got, err := selectSources(t, []string{pat}, ig)
			if err != nil {
				return nil, err
			}
			// The pivot's components, wildcards included, each matched one
			// component of the source's path: drop as many.
			base := strings.TrimPrefix(path.Clean("/"+pivot), "/")
			drop := 0
			if ok && base != "" {
				drop = strings.Count(base, "/") + 1
			}
			for _, s := range got {
				parts := strings.Split(s.rel, "/")
				s.keep = strings.Join(parts[min(drop, len(parts)):], "/")
			}
			srcs = append(srcs, got...)
		}
	}
	for _, s := range srcs {
		if err := s.walk(ig); err != nil {
			return nil, err
		}
	}
	if o.exclude == nil {
		return srcs, nil
	}
	return excludeSources(srcs, o.exclude), nil
}

// excludeSources applies --exclude as BuildKit does: inside a directory
// source to paths relative to it; a file a source pattern matched by its
// own path. A directory source itself stays, empty if need be. A
// directory below one is dropped when it matches, unless something below
// it is kept (a "!" pattern).
func excludeSources(srcs []*source, ex *parser.Ignore) []*source {
	var out []*source
	for _, s := range srcs {
		if !s.fi.IsDir() {
			if !excluded(ex, s.rel) {
				out = append(out, s)
			}
			continue
		}
		keep := make([]bool, len(s.entries))
		for i := len(s.entries) - 1; i >= 0; i-- {
			e := s.entries[i]
			keep[i] = keep[i] || !excluded(ex, e.rel)
			if keep[i] {
				// Entries come parents first: mark the parents to keep.
				for j := i - 1; j >= 0; j-- {
					if s.entries[j].fi.IsDir() && strings.HasPrefix(e.rel, s.entries[j].rel+"/") {
						keep[j] = true
					}
				}
			}
		}
		entries := s.entries[:0:0]
		for i, e := range s.entries {
			if keep[i] {
				entries = append(entries, e)
			}
		}
		s.entries = entries
		out = append(out, s)
	}
	return out
}

// parseExclude reads --exclude patterns, which follow .dockerignore's
// syntax.
func parseExclude(patterns []string) (*parser.Ignore, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	ig, err := parser.ParseIgnore(strings.NewReader(strings.Join(patterns, "\n")))
	if err != nil {
		return nil, fmt.Errorf("--exclude: %w", err)
	}
	return ig, nil
}
