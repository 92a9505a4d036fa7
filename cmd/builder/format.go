package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var sizeUnits = []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}

// humanSize shows a byte count as docker does: decimal units and three
// significant digits ("0B", "12.3MB", "512kB").
func humanSize(n int64) string {
	f := float64(n)
	i := 0
	for f >= 999.5 && i < len(sizeUnits)-1 {
		f /= 1000
		i++
	}
	return strconv.FormatFloat(f, 'g', 3, 64) + sizeUnits[i]
}

// humanAge shows how long ago t was, in docker's words ("2 hours ago").
func humanAge(t, now time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return humanDuration(now.Sub(t)) + " ago"
}

func humanDuration(d time.Duration) string {
	switch s := int64(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int64(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	h := int64(d.Hours() + 0.5)
	switch {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	}
	return fmt.Sprintf("%d years", int64(d.Hours())/24/365)
}

// shortID is an image ID as docker lists it: 12 hex digits.
func shortID(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Hex[:12]
	}
	return h.Hex
}

// truncate shortens s to n runes, ending with "…", as docker's tables do.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// newTable writes aligned columns the way docker's tables look.
func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// splitName splits a familiar name into repository and tag:
// "localhost:5000/app:1" → "localhost:5000/app", "1". A digest reference
// has no tag.
func splitName(name string) (repo, tag string) {
	if i := strings.Index(name, "@"); i >= 0 {
		return name[:i], "<none>"
	}
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i:], "/") {
		return name, "latest"
	}
	return name[:i], name[i+1:]
}
