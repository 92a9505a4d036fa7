package testutil

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// registryConfig is a minimal configuration of the CNCF distribution
// registry: filesystem storage in the test's temp dir, loopback only, no
// auth, deletes allowed (so tests can make a registry lose a blob).
const registryConfig = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`

// registryStartTimeout bounds how long StartRegistry waits for /v2/; the
// registry answers within a few hundred milliseconds here.
const registryStartTimeout = 20 * time.Second

// StartRegistry starts the CNCF distribution registry (Debian's
// docker-registry) on 127.0.0.1 with its storage in a temp dir, waits
// until /v2/ answers, stops it when the test ends, and returns its
// "127.0.0.1:PORT".
func StartRegistry(t testing.TB) string {
	t.Helper()
	bin := RequireTool(t, "docker-registry")
	addr, stop, err := RunRegistry(bin, t.TempDir())
	if err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	t.Cleanup(stop)
	return addr
}

// RunRegistry starts the registry program bin on a free loopback port
// with its files under dir, waits until /v2/ answers, and returns its
// "127.0.0.1:PORT" and how to stop it. It is StartRegistry for callers
// without a testing.TB (script tests).
func RunRegistry(bin, dir string) (addr string, stop func(), err error) {
	return RunRegistryConfig(bin, dir, "")
}

// RunRegistryConfig is RunRegistry with extra lines of configuration,
// such as HtpasswdConfig.
func RunRegistryConfig(bin, dir, extra string) (addr string, stop func(), err error) {
	// The port is picked by binding :0 and released before the registry
	// binds it, so another process may take it in between: retry then.
	for range 3 {
		addr, err = freePort()
		if err != nil {
			return "", nil, fmt.Errorf("finding a free port: %w", err)
		}
		storage := filepath.Join(dir, "storage-"+addr[len("127.0.0.1:"):])
		stop, err = runRegistry(bin, dir, storage, addr, extra)
		if err == nil {
			return addr, stop, nil
		}
	}
	return "", nil, err
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// runRegistry starts one registry process and waits for it to answer. It
// returns a function that stops it.
func runRegistry(bin, dir, storage, addr, extra string) (func(), error) {
	config := filepath.Join(dir, "config-"+addr[len("127.0.0.1:"):]+".yml")
	if err := os.WriteFile(config, append(fmt.Appendf(nil, registryConfig, storage, addr), extra...), 0o644); err != nil {
		return nil, err
	}
	var logs syncBuffer
	cmd := exec.Command(bin, "serve", config)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	// Pdeathsig kills the registry if the test binary dies without its
	// cleanup (a -timeout panic). The signal follows the thread that
	// started the process, not the process, so that thread stays locked
	// to the goroutine that waits for it (KERNEL.md: Pdeathsig and locked
	// threads).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started, exited := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	if err := waitForRegistry(addr, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%w; its output:\n%s", err, logs.String())
	}
	return stop, nil
}

func waitForRegistry(addr string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), registryStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("docker-registry on %s exited: %v", addr, err)
		case <-ctx.Done():
			return fmt.Errorf("docker-registry on %s did not answer /v2/ within %s", addr, registryStartTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// syncBuffer collects a process's output, which exec writes from its own
// goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// PushImage pushes img to ref with go-containerregistry, over plain HTTP
// when the registry is on loopback (as StartRegistry's is).
func PushImage(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := ParseReference(ref)
	if err != nil {
		t.Fatalf("PushImage: %v", err)
	}
	if err := remote.Write(r, img, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// ParseReference parses ref as a registry would be addressed in tests:
// loopback registries (localhost, 127.0.0.0/8, ::1) over plain HTTP.
func ParseReference(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	host := r.Context().RegistryStr()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// HtpasswdConfig writes an htpasswd file for user and password under dir
// and returns the registry configuration that requires them.
func HtpasswdConfig(dir, user, password string) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", user, hash), 0o644); err != nil {
		return "", err
	}
	return fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", path), nil
}
