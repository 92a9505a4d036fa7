package executor

import (
	"io/fs"
	"os"
	"strings"
	"testing"
)

// TestParseChmod: --chmod as BuildKit reads it, octal or chmod(1)'s
// symbolic modes, each applied to a file's own mode.
func TestParseChmod(t *testing.T) {
	dir := fs.ModeDir
	for _, tc := range []struct {
		spec      string
		in, want  os.FileMode
		errorText string
	}{
		{spec: "0755", in: 0o600, want: 0o755},
		{spec: "4755", in: 0o600, want: 0o755 | fs.ModeSetuid},
		{spec: "u+x", in: 0o644, want: 0o744},
		{spec: "go-w", in: 0o666, want: 0o644},
		{spec: "a=rX", in: 0o644, want: 0o444},
		{spec: "a=rX", in: dir | 0o700, want: dir | 0o555},
		{spec: "a=rX", in: 0o744, want: 0o555},
		{spec: "g=u", in: 0o750, want: 0o770},
		{spec: "o=", in: 0o777, want: 0o770},
		{spec: "u+s,g+s", in: 0o755, want: 0o755 | fs.ModeSetuid | fs.ModeSetgid},
		{spec: "+t", in: dir | 0o777, want: dir | 0o777 | fs.ModeSticky},
		{spec: "u=rwx,g=rx,o=", in: 0o666, want: 0o750},
		{spec: "u+x,u-x", in: 0o644, want: 0o644},
		{spec: "99999", errorText: "invalid chmod parameter: '99999'. it should be octal string and between 0 and 07777"},
		{spec: "8", errorText: "invalid chmod parameter: '8'"},
		{spec: "u+q", errorText: "unknown permission"},
		{spec: "u", errorText: "no operator"},
	} {
		f, err := parseChmod(tc.spec)
		if tc.errorText != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errorText) {
				t.Errorf("parseChmod(%q) = %v, want an error saying %q", tc.spec, err, tc.errorText)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseChmod(%q): %v", tc.spec, err)
			continue
		}
		if got := f(tc.in); got != tc.want {
			t.Errorf("--chmod=%s on %v = %v, want %v", tc.spec, tc.in, got, tc.want)
		}
	}
}
