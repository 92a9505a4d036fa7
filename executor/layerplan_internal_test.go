package executor

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// pairs is n groups of size from start.
func groupsOf(start, size, n int) []mergeGroup {
	var g []mergeGroup
	for i := range n {
		g = append(g, mergeGroup{start + i*size, start + (i+1)*size})
	}
	return g
}

func TestPlanLayers(t *testing.T) {
	tests := []struct {
		name             string
		base, built, max int
		mode             Squash
		want             []mergeGroup
	}{
		{"fits", 1, 124, 125, SquashNone, nil},
		{"150 steps", 1, 150, 125, SquashNone, groupsOf(1, 2, 26)},
		{"200 steps", 1, 200, 125, SquashNone, groupsOf(1, 2, 76)},
		{"1000 steps", 1, 1000, 125, SquashNone, groupsOf(1, 16, 59)},
		{"deep base", 300, 2, 125, SquashNone, groupsOf(0, 4, 59)},
		{"base fills the limit", 125, 3, 125, SquashNone, groupsOf(0, 2, 3)},
		{"room for one", 124, 5, 125, SquashNone, []mergeGroup{{124, 129}}},
		{"room for two", 123, 5, 125, SquashNone, []mergeGroup{{123, 127}}},
		{"room for three", 10, 20, 13, SquashNone, []mergeGroup{{10, 28}}},
		{"limit 1", 1, 3, 1, SquashNone, []mergeGroup{{0, 4}}},
		{"squash", 5, 10, 125, SquashNew, []mergeGroup{{5, 15}}},
		{"squash one layer", 5, 1, 125, SquashNew, nil},
		{"squash nothing", 5, 0, 125, SquashNew, nil},
		{"squash on a deep base", 300, 10, 125, SquashNew, append(groupsOf(0, 4, 59), mergeGroup{300, 310})},
		{"squash on a deep base, top apart", 130, 10, 125, SquashNew, append(groupsOf(0, 2, 6), mergeGroup{130, 140})},
		{"squash all", 5, 10, 125, SquashAll, []mergeGroup{{0, 15}}},
		{"squash all of one layer", 1, 0, 125, SquashAll, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := planLayers(tc.base, tc.built, tc.max, tc.mode)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("planLayers(%d, %d, %d, %d) = %v, want %v", tc.base, tc.built, tc.max, tc.mode, got, tc.want)
			}
		})
	}
}

// TestPlanLayersRules checks the policy's promises over many shapes.
func TestPlanLayersRules(t *testing.T) {
	for _, max := range []int{1, 2, 3, 10, 125} {
		for base := 0; base <= 300; base += 7 {
			var prev []mergeGroup
			for built := 0; built <= 400; built++ {
				groups := planLayers(base, built, max, SquashNone)
				total := base + built
				where := fmt.Sprintf("base %d, built %d, max %d: %v", base, built, max, groups)
				end, left := 0, total
				for _, g := range groups {
					if g.start < end || g.len() < 2 {
						t.Fatalf("%s: groups overlap, are out of order or too small", where)
					}
					end, left = g.end, left-g.len()+1
				}
				if left > max {
					t.Fatalf("%s: %d layers left", where, left)
				}
				if total <= max && groups != nil {
					t.Fatalf("%s: merges an image that fits", where)
				}
				if len(groups) > 0 && groups[0].start < base && base+1 <= max {
					t.Fatalf("%s: rewrites the base although it leaves room", where)
				}
				if len(groups) > 0 && end == total && max-min(base, max) >= 2 && base+1 <= max {
					t.Fatalf("%s: the top layer is merged although there is room", where)
				}
				// One more step keeps every group of the same size and
				// forms at most one more.
				if len(prev) > 0 && len(groups) > 0 && prev[0].len() == groups[0].len() && groups[0].start == prev[0].start {
					if len(groups) > len(prev)+1 || !reflect.DeepEqual(groups[:len(prev)], prev) {
						t.Fatalf("%s: one more layer rewrote groups %v", where, prev)
					}
				}
				prev = groups
			}
		}
	}
}

func TestMergeHistory(t *testing.T) {
	at := func(sec int64) v1.Time { return v1.Time{Time: time.Unix(sec, 0).UTC()} }
	h := func(by string, empty bool) v1.History {
		return v1.History{CreatedBy: by, EmptyLayer: empty, Created: at(int64(len(by)))}
	}
	// Layers: base(0) a(1) b(2) c(3); ENV between a and b.
	hist := []v1.History{h("base", false), h("a", false), h("ENV x", true), h("b", false), h("c", false)}
	tests := []struct {
		name   string
		hist   []v1.History
		layers int
		groups []mergeGroup
		want   []string // CreatedBy, "+" if it has a layer, then the comment
		err    string
	}{{
		name: "middle group", hist: hist, layers: 4, groups: []mergeGroup{{1, 3}},
		want: []string{"base+", "a", "ENV x", "b", "builder merge: the layers of steps 2-4+ merged: steps 2-4", "c+"},
	}, {
		name: "all", hist: hist, layers: 4, groups: []mergeGroup{{0, 4}},
		want: []string{"base", "a", "ENV x", "b", "c", "builder merge: the layers of steps 1-5+ merged: steps 1-5"},
	}, {
		name: "two groups", hist: hist, layers: 4, groups: []mergeGroup{{0, 2}, {2, 4}},
		want: []string{"base", "a", "builder merge: the layers of steps 1-2+ merged: steps 1-2", "ENV x", "b", "c", "builder merge: the layers of steps 4-5+ merged: steps 4-5"},
	}, {
		name: "base without history", hist: hist[1:], layers: 4, groups: []mergeGroup{{0, 2}},
		want: []string{" layer without a history entry", "a", "builder merge: the layers of steps 1-2+ merged: steps 1-2", "ENV x", "b+", "c+"},
	}, {
		name: "more history than layers", hist: hist, layers: 3, err: "names 4 layers, but it has 3",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, steps, err := mergeHistory(tc.hist, tc.layers, tc.groups)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != len(tc.groups) {
				t.Errorf("%d step ranges for %d groups", len(steps), len(tc.groups))
			}
			var lines []string
			for _, e := range got {
				l := e.CreatedBy
				if !e.EmptyLayer {
					l += "+"
				}
				if e.Comment != "" {
					l += " " + e.Comment
				}
				lines = append(lines, l)
			}
			if !reflect.DeepEqual(lines, tc.want) {
				t.Errorf("history:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
			}
			layers := tc.layers
			for _, g := range tc.groups {
				layers -= g.len() - 1
			}
			cfg := &v1.ConfigFile{History: got, RootFS: v1.RootFS{DiffIDs: make([]v1.Hash, layers)}}
			if err := CheckHistory(cfg); err != nil {
				t.Error(err)
			}
			if n := len(tc.hist); len(tc.groups) > 0 && got[len(got)-1].Created != tc.hist[n-1].Created && tc.groups[len(tc.groups)-1].end == tc.layers {
				t.Errorf("merged entry's time %v is not its last step's", got[len(got)-1].Created)
			}
		})
	}
}
