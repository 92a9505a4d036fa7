package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/internal/testutil"
)

func TestMain(m *testing.M) {
	// RUN containers re-execute this test binary; they must take over
	// before testing or testscript look at the arguments.
	if container.ReexecMain() {
		return
	}
	testscript.Main(m, map[string]func(){"builder": main, "termrun": termRunMain})
}

// TestScripts runs the CLI scripts in testdata/script. Each has its own
// store in $WORK/root. Conditions and commands they can use besides
// testscript's own:
//
//	[root]            true as root; when not root under CI=true it fails
//	                  the script, so `[!root] skip` never hides a missing
//	                  prerequisite in CI
//	[tool:NAME]       true when NAME is on PATH; when it is not, under
//	                  CI=true it fails the script (use it, not [exec:NAME])
//	exitcode N CMD... runs CMD and checks its exit status is N
//	envfile NAME FILE sets $NAME to the content of FILE, trimmed (an
//	                  image ID from --iidfile, say)
//	registry [-auth USER:PASSWORD] NAME
//	                  starts the CNCF distribution registry on loopback
//	                  for the rest of the script (with -auth, behind
//	                  htpasswd) and sets $NAME to its host:port
//	proxy NAME ADDR   starts a byte-counting proxy to ADDR and sets $NAME
//	                  to its host:port
//	proxybytes NAME reset | received MAX | sent MIN MAX
//	                  zeroes the proxy's counters, or fails if it has
//	                  returned more than MAX response bytes, or forwarded
//	                  request bytes (uploads) outside MIN..MAX
//	proxystall NAME REGISTRY N
//	                  the proxy sends N bytes of each blob longer than
//	                  that, then nothing until the client gives up (a
//	                  pull frozen mid-layer)
//	term OP ...       runs and reads a program in a real terminal (tmux);
//	                  see cmdTerm
//	noproc REGEXP     waits until no process's command line matches
//	nomount DIR       fails if anything is mounted at or under DIR
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: false,
		UpdateScripts:       *update, // go test -update rewrites what cmp compares with
		Setup: func(e *testscript.Env) error {
			e.Setenv("BUILDER_ROOT", filepath.Join(e.WorkDir, "root"))
			if v, ok := os.LookupEnv("CI"); ok {
				e.Setenv("CI", v)
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if tool, ok := strings.CutPrefix(cond, "tool:"); ok {
				if _, err := exec.LookPath(tool); err == nil {
					return true, nil
				}
				if os.Getenv("CI") == "true" {
					return false, fmt.Errorf("script needs %s, and under CI=true a missing prerequisite is a failure", tool)
				}
				return false, nil
			}
			switch cond {
			case "root":
				if os.Geteuid() == 0 {
					return true, nil
				}
				if os.Getenv("CI") == "true" {
					return false, errors.New("script needs root, and under CI=true a missing prerequisite is a failure")
				}
				return false, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":   cmdExitCode,
			"envfile":    cmdEnvFile,
			"registry":   cmdRegistry,
			"proxy":      cmdProxy,
			"proxybytes": cmdProxyBytes,
			"proxystall": cmdProxyStall,
			"term":       cmdTerm,
			"noproc":     cmdNoProc,
			"nomount":    cmdNoMount,
		},
	})
}

// cmdExitCode runs a program and checks its exit status, which a plain
// `! builder …` cannot: usage errors must exit 2 and failures 1.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: running %s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile NAME FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}

func cmdRegistry(ts *testscript.TestScript, neg bool, args []string) {
	var user, password string
	if len(args) == 3 && args[0] == "-auth" {
		var ok bool
		if user, password, ok = strings.Cut(args[1], ":"); !ok {
			ts.Fatalf("usage: registry [-auth USER:PASSWORD] NAME")
		}
		args = args[2:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: registry [-auth USER:PASSWORD] NAME")
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		ts.Fatalf("registry: docker-registry is not installed (make deps installs it)")
	}
	dir := ts.MkAbs("registry-" + args[0])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		ts.Fatalf("registry: %v", err)
	}
	var extra string
	if user != "" {
		if extra, err = testutil.HtpasswdConfig(dir, user, password); err != nil {
			ts.Fatalf("registry: %v", err)
		}
	}
	addr, stop, err := testutil.RunRegistryConfig(bin, dir, extra)
	if err != nil {
		ts.Fatalf("registry: %v", err)
	}
	ts.Defer(stop)
	ts.Setenv(args[0], addr)
}

// proxies are the scripts' proxies by variable name; scripts run in
// parallel, and each names its own.
var proxies sync.Map // "script dir/NAME" → *testutil.Proxy

func cmdProxy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: proxy NAME ADDR")
	}
	p, err := testutil.NewProxy(args[1])
	if err != nil {
		ts.Fatalf("proxy: %v", err)
	}
	ts.Defer(p.Close)
	proxies.Store(ts.MkAbs(args[0]), p)
	ts.Setenv(args[0], p.Addr)
}

func cmdProxyBytes(ts *testscript.TestScript, neg bool, args []string) {
	v, ok := proxies.Load(ts.MkAbs(args[0]))
	if neg || len(args) < 2 || !ok {
		ts.Fatalf("usage: proxybytes NAME reset | received MAX | sent MIN MAX (after proxy NAME)")
	}
	p := v.(*testutil.Proxy)
	switch {
	case args[1] == "reset" && len(args) == 2:
		p.Reset()
	case args[1] == "sent" && len(args) == 4:
		lo, err1 := strconv.ParseInt(args[2], 10, 64)
		hi, err2 := strconv.ParseInt(args[3], 10, 64)
		if err1 != nil || err2 != nil {
			ts.Fatalf("usage: proxybytes NAME sent MIN MAX")
		}
		if got := p.Sent(); got < lo || got > hi {
			ts.Fatalf("the proxy forwarded %d request bytes, want %d to %d; requests:\n%s", got, lo, hi, strings.Join(p.Log(), "\n"))
		}
		ts.Logf("the proxy forwarded %d request bytes", p.Sent())
	case args[1] == "received" && len(args) == 3:
		max, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			ts.Fatalf("proxybytes: %v", err)
		}
		if got := p.Received(); got > max {
			ts.Fatalf("the proxy returned %d bytes, want at most %d; requests:\n%s", got, max, strings.Join(p.Log(), "\n"))
		}
		ts.Logf("the proxy returned %d bytes", p.Received())
	default:
		ts.Fatalf("usage: proxybytes NAME reset | received MAX | sent MIN MAX")
	}
}

func cmdProxyStall(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: proxystall NAME REGISTRY BYTES (after proxy NAME REGISTRY)")
	}
	v, ok := proxies.Load(ts.MkAbs(args[0]))
	if !ok {
		ts.Fatalf("proxystall: no proxy %s", args[0])
	}
	n, err := strconv.ParseInt(args[2], 10, 64)
	if err != nil {
		ts.Fatalf("proxystall: %v", err)
	}
	target := args[1]
	v.(*testutil.Proxy).SetFault(func(r *http.Request) testutil.Fault {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			return testutil.Fault{}
		}
		// Only blobs longer than n: a shorter one would be sent whole on
		// a connection the stalled handler never frees, which the client
		// then reuses for a request nobody answers.
		resp, err := http.Head("http://" + target + r.URL.Path)
		if err != nil {
			return testutil.Fault{}
		}
		resp.Body.Close()
		if resp.ContentLength <= n {
			return testutil.Fault{}
		}
		return testutil.Fault{StallBodyAfter: n}
	})
}
