package executor

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultMaxLayers is the deepest image a build or a flatten makes unless
// told otherwise: docker's layer store refuses more than 125 layers
// ("max depth exceeded"), CRI-O and containers/storage 128, so 125 runs
// everywhere. docs/layers.md has the policy.
const DefaultMaxLayers = 125

// Squash says how a build's layers are merged beyond what the limit needs.
type Squash int

const (
	SquashNone Squash = iota // merge only to stay under the limit
	SquashNew                // the build's own layers become one; the base's stay (--squash)
	SquashAll                // the whole image becomes one layer (--squash-all)
)

// mergeGroup is a run of consecutive layers, [start, end), that become
// one layer.
type mergeGroup struct{ start, end int }

func (g mergeGroup) len() int { return g.end - g.start }

// planLayers says which consecutive layers of an image of base layers
// (the FROM image's) and built layers (this build's) to merge so that at
// most max remain, max ≥ 1. The rules, and why (docs/layers.md):
//   - the base's layers are never rewritten unless base+1 > max: they are
//     someone else's, already in every registry and cache;
//   - the plan depends only on the three counts, so the same build gives
//     the same groups and, with the same layers, the same digests;
//   - groups are at the bottom of the build's layers, whole groups of one
//     size G (a power of two), and the top layers stay single: editing the
//     last steps of a Dockerfile changes only the top layers, and a build
//     that grows by a step forms at most one new group from layers that
//     were single, leaving every existing group as it was.
func planLayers(base, built, max int, mode Squash) []mergeGroup {
	total := base + built
	switch mode {
	case SquashAll:
		return oneGroup(0, total)
	case SquashNew:
		if built == 0 {
			return nil
		}
		// Plan on the image the squash makes (base + 1), then widen the
		// group holding the squashed layer back to the build's layers.
		var groups []mergeGroup
		inner := planLayers(base, 1, max, SquashNone)
		for _, g := range inner {
			if g.end > base {
				g.end = total
			}
			groups = append(groups, g)
		}
		if len(groups) == 0 || groups[len(groups)-1].end != total {
			groups = append(groups, oneGroup(base, total)...)
		}
		return groups
	}
	if total <= max {
		return nil
	}
	off, n := base, built
	if base+1 > max {
		off, n = 0, total // the base alone leaves no room: it is merged too
	}
	room := max - off
	excess := n - room
	if room <= 1 {
		return oneGroup(off, off+n)
	}
	for size := 2; size < n; size *= 2 {
		count := (excess + size - 2) / (size - 1) // each group saves size-1 layers
		if count*size <= n-1 {
			groups := make([]mergeGroup, count)
			for i := range groups {
				groups[i] = mergeGroup{off + i*size, off + (i+1)*size}
			}
			return groups
		}
	}
	// Too little room for whole groups below a single top layer: one
	// group at the bottom, the top room-1 layers single.
	return oneGroup(off, off+n-(room-1))
}

func oneGroup(start, end int) []mergeGroup {
	if end-start < 2 {
		return nil
	}
	return []mergeGroup{{start, end}}
}

// mergedComment is the history comment of the entry a merged layer gets.
const mergedComment = "merged: steps %d-%d"

// mergeHistory returns the history of the image once the layers of
// groups are merged (layers is the count before): the entries of merged
// layers become empty_layer, and after the last of each group comes one
// entry for the merged layer, saying which steps (history entries,
// counted from 1 at the bottom of the rewritten history) it holds. An
// image whose history names fewer layers than it has (a base written
// without history) gets an entry for each unnamed bottom layer first.
func mergeHistory(hist []v1.History, layers int, groups []mergeGroup) ([]v1.History, [][2]int, error) {
	named := 0
	for _, h := range hist {
		if !h.EmptyLayer {
			named++
		}
	}
	if named > layers {
		return nil, nil, fmt.Errorf("the image's history names %d layers, but it has %d", named, layers)
	}
	full := make([]v1.History, 0, len(hist)+layers-named)
	for range layers - named {
		full = append(full, v1.History{Comment: "layer without a history entry"})
	}
	full = append(full, hist...)

	// owner[i] is the history index of layer i's entry.
	owner := make([]int, 0, layers)
	for i, h := range full {
		if !h.EmptyLayer {
			owner = append(owner, i)
		}
	}
	out := make([]v1.History, 0, len(full)+len(groups))
	var steps [][2]int
	g := 0
	layer := -1
	var first int // history index (in full) of the current group's first entry
	for i, h := range full {
		if !h.EmptyLayer {
			layer++
		}
		inGroup := g < len(groups) && layer >= groups[g].start && layer < groups[g].end && !h.EmptyLayer
		if g < len(groups) && layer == groups[g].start && !h.EmptyLayer {
			first = i
		}
		if inGroup {
			h.EmptyLayer = true
		}
		out = append(out, h)
		if inGroup && layer == groups[g].end-1 {
			last := owner[layer]
			steps = append(steps, [2]int{first + 1, last + 1})
			out = append(out, v1.History{
				Created:   full[last].Created,
				CreatedBy: fmt.Sprintf("builder merge: the layers of steps %d-%d", first+1, last+1),
				Comment:   fmt.Sprintf(mergedComment, first+1, last+1),
			})
			g++
		}
	}
	return out, steps, nil
}

// CheckHistory checks the OCI rule for an image config: when it has a
// history, its entries that are not empty_layer are as many as its layers.
func CheckHistory(cfg *v1.ConfigFile) error {
	if len(cfg.History) == 0 {
		return nil
	}
	named := 0
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			named++
		}
	}
	if named != len(cfg.RootFS.DiffIDs) {
		return fmt.Errorf("history has %d entries with a layer, the image %d layers", named, len(cfg.RootFS.DiffIDs))
	}
	return nil
}
