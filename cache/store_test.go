package cache

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

func TestMain(m *testing.M) {
	if root := os.Getenv("CACHE_TEST_HELPER_ROOT"); root != "" {
		helperWriter(root)
		return
	}
	os.Exit(m.Run())
}

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func assertNoBlobs(t *testing.T, s *Store) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Root(), blobsDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("unexpected blob %s", e.Name())
	}
}

// TestStoreIsPrivate: the store holds build-arg values, so no other user
// may read it, in a new store or in one an older version left open.
func TestStoreIsPrivate(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"new", func(t *testing.T, root string) {}},
		{"old world-readable store", func(t *testing.T, root string) {
			s, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := os.Chmod(root, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(openDir(t), "store")
			tt.setup(t, root)
			s, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fi, err := os.Stat(root)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("store root mode = %v, want 0700", fi.Mode().Perm())
			}
			// What counts: another user cannot read a file of it.
			testutil.RequireRoot(t)
			cmd := exec.Command("cat", filepath.Join(root, indexFile))
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "Permission denied") {
				t.Errorf("nobody reading index.json: %v, %s; want permission denied", err, out)
			}
		})
	}
}

// openDir is a temporary directory every user can traverse, unlike
// t.TempDir, so that only the store's own mode keeps others out.
func openDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "cache-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
