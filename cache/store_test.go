package cache

import (
	"os"
	"path/filepath"
	"testing"
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
