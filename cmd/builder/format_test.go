package main

import (
	"testing"
	"time"
)

func TestHumanSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{999, "999B"},
		{1000, "1kB"},
		{1234, "1.23kB"},
		{12345, "12.3kB"},
		{999_499, "999kB"},
		{999_500, "1MB"},
		{7_800_000, "7.8MB"},
		{123_456_789, "123MB"},
		{5_000_000_000, "5GB"},
	}
	for _, tt := range tests {
		if got := humanSize(tt.in); got != tt.want {
			t.Errorf("humanSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHumanAge(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{0, "Less than a second ago"},
		{time.Second, "1 second ago"},
		{30 * time.Second, "30 seconds ago"},
		{90 * time.Second, "About a minute ago"},
		{45 * time.Minute, "45 minutes ago"},
		{70 * time.Minute, "About an hour ago"},
		{5 * time.Hour, "5 hours ago"},
		{3 * 24 * time.Hour, "3 days ago"},
		{20 * 24 * time.Hour, "2 weeks ago"},
		{100 * 24 * time.Hour, "3 months ago"},
		{3 * 365 * 24 * time.Hour, "3 years ago"},
	}
	for _, tt := range tests {
		if got := humanAge(now.Add(-tt.ago), now); got != tt.want {
			t.Errorf("humanAge(now-%v) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	if got := humanAge(time.Time{}, now); got != "N/A" {
		t.Errorf("humanAge(zero) = %q, want N/A", got)
	}
}

func TestSplitName(t *testing.T) {
	tests := []struct{ in, repo, tag string }{
		{"app:latest", "app", "latest"},
		{"app", "app", "latest"},
		{"localhost:5000/x/app:1.0", "localhost:5000/x/app", "1.0"},
		{"localhost:5000/app", "localhost:5000/app", "latest"},
		{"app@sha256:abcd", "app", "<none>"},
	}
	for _, tt := range tests {
		if repo, tag := splitName(tt.in); repo != tt.repo || tag != tt.tag {
			t.Errorf("splitName(%q) = %q, %q, want %q, %q", tt.in, repo, tag, tt.repo, tt.tag)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"RUN /bin/sh -c make all", 10, "RUN /bin/…"},
		{"ééééé", 3, "éé…"},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
