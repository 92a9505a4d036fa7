package fsutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

// TestDiskUsageIsDu: DiskUsage agrees with du -s, hardlinks and small
// files included.
func TestDiskUsageIsDu(t *testing.T) {
	du := testutil.RequireTool(t, "du") // fails under CI=true when missing
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "small"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "b", "big"), make([]byte, 100_000), 0o644)
	os.Link(filepath.Join(dir, "a", "b", "big"), filepath.Join(dir, "link"))
	got, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(du, "-s", "-B1", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if got != want {
		t.Errorf("DiskUsage = %d, du -s says %d", got, want)
	}
}
