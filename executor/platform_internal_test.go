package executor

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestCannotRun: a foreign architecture runs only under an enabled
// binfmt_misc emulator registered with the F flag (found from inside a
// RUN step's root); otherwise the message says what to install.
func TestCannotRun(t *testing.T) {
	foreign, qemu := "arm64", "aarch64"
	if runtime.GOARCH == "arm64" {
		foreign, qemu = "amd64", "x86_64"
	}
	tests := []struct {
		name  string
		arch  string
		entry string // the binfmt_misc entry of the emulator; "" for none
		want  string // a part of the message; "" when it can run
	}{
		{"host", runtime.GOARCH, "", ""},
		{"no emulator", foreign, "", "apt-get install qemu-user-static"},
		{"disabled", foreign, "disabled\ninterpreter /usr/bin/qemu-" + qemu + "\nflags: F\n", "registered but disabled"},
		{"no F flag", foreign, "enabled\ninterpreter /usr/bin/qemu-" + qemu + "\nflags: OC\n", "without the F flag"},
		{"emulated", foreign, "enabled\ninterpreter /usr/bin/qemu-" + qemu + "\nflags: OCF\n", ""},
		{"unknown", "sparc64", "", "no emulator is known"},
	}
	old := binfmtDir
	t.Cleanup(func() { binfmtDir = old })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			binfmtDir = t.TempDir()
			if tt.entry != "" {
				if err := os.WriteFile(filepath.Join(binfmtDir, "qemu-"+qemu), []byte(tt.entry), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := cannotRun(v1.Platform{OS: "linux", Architecture: tt.arch})
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("cannotRun(%s) = %q, want %q", tt.arch, got, tt.want)
			}
		})
	}
}
