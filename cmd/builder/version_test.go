package main

import (
	"regexp"
	"testing"
)

// TestVersionFromLdflags: what the Makefile sets is what version prints.
func TestVersionFromLdflags(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3-4-gabcdef0", "abcdef0123456789abcdef0123456789abcdef01"
	if got, want := versionLine(), `^builder v1\.2\.3-4-gabcdef0 go\S+ linux/\w+ commit abcdef012345$`; !regexp.MustCompile(want).MatchString(got) {
		t.Errorf("versionLine() = %q, want %s", got, want)
	}
}
