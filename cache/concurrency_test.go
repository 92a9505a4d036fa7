package cache

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestConcurrentStores runs several writers, each with its own Store on
// one root as separate processes would have, and checks that no tag, blob
// or entry is lost.
func TestConcurrentStores(t *testing.T) {
	root := t.TempDir()
	base, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	rec := putTestImage(t, base, map[string][]byte{"shared": []byte("s")}, "shared")
	const workers, rounds = 6, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- concurrentWorker(root, w, rounds, rec)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	imgs, err := base.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != workers*rounds {
		t.Errorf("index holds %d tags, want %d: a concurrent Tag lost another's", len(imgs), workers*rounds)
	}
	for w := range workers {
		for r := range rounds {
			if _, err := base.Lookup(fmt.Sprintf("w%d:r%d", w, r)); err != nil {
				t.Errorf("Lookup: %v", err)
			}
			if _, err := base.LookupStep(workerKey(w, r)); err != nil {
				t.Errorf("LookupStep(%d, %d): %v", w, r, err)
			}
		}
	}
}

func workerKey(w, r int) Key {
	kb := NewKeyBuilder()
	kb.AddString("worker", fmt.Sprint(w))
	kb.AddString("round", fmt.Sprint(r))
	return kb.Sum()
}

func concurrentWorker(root string, w, rounds int, rec ImageRecord) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	defer s.Close()
	same := bytes.Repeat([]byte("the same blob for everyone "), 10000)
	for r := range rounds {
		if _, _, err := s.PutBlob(bytes.NewReader(same), v1.Hash{}); err != nil {
			return fmt.Errorf("worker %d: PutBlob: %w", w, err)
		}
		l, err := s.PutLayer(context.Background(), bytes.NewReader(same), Compression{}, nil)
		if err != nil {
			return fmt.Errorf("worker %d: PutLayer: %w", w, err)
		}
		if err := s.Tag(fmt.Sprintf("w%d:r%d", w, r), rec.Manifest); err != nil {
			return fmt.Errorf("worker %d: Tag: %w", w, err)
		}
		// Everyone also re-tags one shared name: last writer wins, nobody fails.
		if err := s.Tag("shared", rec.Manifest); err != nil {
			return fmt.Errorf("worker %d: Tag: %w", w, err)
		}
		if err := s.RecordStep(workerKey(w, r), Entry{Layer: &l}); err != nil {
			return fmt.Errorf("worker %d: RecordStep: %w", w, err)
		}
		// The same key from every worker: replaced atomically, always readable.
		if err := s.RecordStep(workerKey(-1, 0), Entry{Layer: &l}); err != nil {
			return fmt.Errorf("worker %d: RecordStep: %w", w, err)
		}
		if _, err := s.LookupStep(workerKey(-1, 0)); err != nil {
			return fmt.Errorf("worker %d: LookupStep of the shared key: %w", w, err)
		}
	}
	if err := s.Untag("shared"); err != nil && !strings.Contains(err.Error(), "not found") {
		return err
	}
	return nil
}

// helperWriter is the body of the subprocess that TestKilledWriter kills
// in the middle of a blob write (see TestMain).
func helperWriter(root string) {
	s, err := Open(root)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	// Write 1 MiB, say so, then block forever: the parent kills us here.
	r := io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), blockForever{})
	go func() {
		for {
			time.Sleep(10 * time.Millisecond)
			s.mu.Lock()
			sess := s.sess
			s.mu.Unlock()
			if sess != nil && entries(sess) > 0 {
				fmt.Println("writing")
				return
			}
		}
	}()
	s.PutBlob(r, v1.Hash{})
}

type blockForever struct{}

func (blockForever) Read([]byte) (int, error) { select {} }

func entries(sess interface{ Dir() string }) int {
	ents, _ := os.ReadDir(sess.Dir())
	return len(ents) - 1 // the session lock
}

// TestKilledWriter kills a process in the middle of PutBlob: no partial
// blob may appear, and the next Open removes the dead session.
func TestKilledWriter(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CACHE_TEST_HELPER_ROOT="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "writing\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	sessions, _ := filepath.Glob(filepath.Join(root, tmpDir, "s-*"))
	if len(sessions) != 1 {
		t.Fatalf("found %d session dirs after the kill, want the dead one", len(sessions))
	}
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	assertNoBlobs(t, s)
	if _, err := os.Stat(sessions[0]); !os.IsNotExist(err) {
		t.Errorf("Open left the dead writer's session %s: %v", sessions[0], err)
	}
}

// TestSweepKeepsLiveSessions: opening a store must not remove the temporary
// files of another live Store.
func TestSweepKeepsLiveSessions(t *testing.T) {
	a := openTest(t)
	f, err := a.tempFile("inflight-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := Open(a.Root())
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := os.Stat(f.Name()); err != nil {
		t.Errorf("a second Open removed a live session's file: %v", err)
	}
}
