package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// waitFor bounds how long a script waits for a screen, an exit or a
// process to go; it is a bound on a hang, not a timing assertion.
const waitFor = 90 * time.Second

// cmdTerm drives a program in a real terminal, a tmux pane of the
// script's own tmux server (its socket is in $WORK, so other tmux
// servers are left alone):
//
//	term start COLS ROWS CMD...  runs CMD in a COLS×ROWS pane, with CI
//	                             and NO_COLOR removed from its environment
//	                             (ending the program term started before)
//	term wait REGEXP             waits until the screen matches REGEXP
//	term snap FILE               writes the screen to FILE, timers and
//	                             image IDs normalised (see normaliseScreen)
//	term keys KEY...             types keys (tmux send-keys names: C-c)
//	term signal SIG              sends SIG (INT, TERM) to the program
//	                             (through termrun, which runs it)
//	term resize COLS ROWS        resizes the pane
//	term exit N                  waits for the program to end, checks its
//	                             exit status is N
func cmdTerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: term start|wait|snap|keys|signal|resize|exit ...")
	}
	sock := ts.Getenv("TERM_SOCKET") // the server of the last term start
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			ts.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	switch op, args := args[0], args[1:]; {
	case op == "start" && len(args) >= 3:
		// One server per program: a second session of a server can
		// start at another size and scroll its first rows away.
		if sock != "" {
			exec.Command("tmux", "-S", sock, "kill-server").Run()
		}
		n, _ := strconv.Atoi(ts.Getenv("TERM_N"))
		ts.Setenv("TERM_N", strconv.Itoa(n+1))
		sock = ts.MkAbs(fmt.Sprintf("term%d.sock", n+1))
		ts.Setenv("TERM_SOCKET", sock)
		conf := ts.MkAbs("tmux.conf")
		ts.Check(os.WriteFile(conf, []byte(tmuxConf), 0o644))
		status := strings.TrimSuffix(sock, ".sock") + ".status"
		cmd := append([]string{"-f", conf, "new-session", "-d", "-x", args[0], "-y", args[1], "-c", ts.MkAbs("."),
			"env", "-u", "CI", "-u", "NO_COLOR", "TERM=screen", "termrun", status}, args[2:]...)
		// ts.Exec runs tmux with the script's environment, which the
		// server and so the pane inherit ($PATH finds builder).
		ts.Check(ts.Exec("tmux", append([]string{"-S", sock}, cmd...)...))
		ts.Defer(func() { exec.Command("tmux", "-S", sock, "kill-server").Run() })
	case op == "wait" && len(args) == 1:
		re, err := regexp.Compile("(?m)" + args[0])
		ts.Check(err)
		var screen string
		for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if screen = tmux("capture-pane", "-p"); re.MatchString(screen) {
				return
			}
		}
		ts.Fatalf("the screen never matched %q; it shows:\n%s", args[0], screen)
	case op == "snap" && len(args) == 1:
		ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(normaliseScreen(tmux("capture-pane", "-p"))), 0o644))
	case op == "keys" && len(args) >= 1:
		tmux(append([]string{"send-keys"}, args...)...)
	case op == "signal" && len(args) == 1:
		sig := map[string]syscall.Signal{"INT": syscall.SIGINT, "TERM": syscall.SIGTERM}[args[0]]
		if sig == 0 {
			ts.Fatalf("term signal: unknown signal %q (INT or TERM)", args[0])
		}
		// termrun passes it on to the program
		pid, err := strconv.Atoi(strings.TrimSpace(tmux("display", "-p", "#{pane_pid}")))
		ts.Check(err)
		ts.Check(syscall.Kill(pid, sig))
	case op == "resize" && len(args) == 2:
		tmux("resize-window", "-x", args[0], "-y", args[1])
	case op == "exit" && len(args) == 1:
		// tmux's own #{pane_dead_status} is sometimes never set (its
		// server leaves the program a zombie), so termrun writes it.
		status := strings.TrimSuffix(sock, ".sock") + ".status"
		for deadline := time.Now().Add(waitFor); ; time.Sleep(50 * time.Millisecond) {
			if b, err := os.ReadFile(status); err == nil && strings.HasSuffix(string(b), "\n") {
				if got := strings.TrimSpace(string(b)); got != args[0] {
					ts.Fatalf("the program exited with status %s, want %s; the screen:\n%s", got, args[0],
						tmux("capture-pane", "-p"))
				}
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("the program is still running; the screen:\n%s", tmux("capture-pane", "-p"))
			}
		}
	default:
		ts.Fatalf("usage: term start COLS ROWS CMD... | wait REGEXP | snap FILE | keys KEY... | signal SIG | resize COLS ROWS | exit N")
	}
}

// tmuxConf keeps a pane whose program ended, so that its screen and exit
// status can be read, with no "Pane is dead" line (it scrolls the screen
// by one row) and no status line (the pane has every row).
const tmuxConf = `set -g remain-on-exit on
set -g remain-on-exit-format ""
set -g status off
`

var (
	screenTimer = regexp.MustCompile(` +\d+\.\ds$`)
	screenTotal = regexp.MustCompile(`^\[\+\] (\w+) \d+\.\ds`)
	screenID    = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
)

// normaliseScreen makes a screen comparable across runs: a timer at the
// end of a line becomes " T", the header's elapsed time "T", an image ID
// sha256:ID, trailing spaces and blank lines go.
func normaliseScreen(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, " ")
		line = screenTimer.ReplaceAllString(line, " T")
		line = screenTotal.ReplaceAllString(line, "[+] $1 T")
		line = screenID.ReplaceAllString(line, "sha256:ID")
		out = append(out, line)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}

// cmdNoProc waits until no process's command line matches REGEXP, and
// fails if one still does after waitFor: what a build started must not
// outlive it.
func cmdNoProc(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: noproc REGEXP")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	var left []string
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		left = nil
		dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range dirs {
			b, err := os.ReadFile(f)
			if err != nil || len(b) == 0 {
				continue
			}
			if line := string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})); re.MatchString(line) {
				left = append(left, filepath.Base(filepath.Dir(f))+": "+line)
			}
		}
		if len(left) == 0 {
			return
		}
	}
	ts.Fatalf("processes still running:\n%s", strings.Join(left, "\n"))
}

// cmdNoMount fails if /proc/self/mountinfo lists a mount under DIR.
func cmdNoMount(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: nomount DIR")
	}
	dir := ts.MkAbs(args[0])
	info, err := os.ReadFile("/proc/self/mountinfo")
	ts.Check(err)
	for _, line := range strings.Split(string(info), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			ts.Fatalf("still mounted: %s", line)
		}
	}
}

// termRunMain is the program term start runs in the pane: "termrun FILE
// CMD ARGS..." runs CMD in the terminal's foreground, so Ctrl-C reaches
// it, passes SIGTERM on to it, and writes its exit status (128+N when a
// signal killed it, as a shell reports it) to FILE.
func termRunMain() {
	signal.Ignore(syscall.SIGINT) // the terminal sends it to CMD too
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.WriteFile(os.Args[1], []byte("127\n"), 0o644)
		os.Exit(127)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		for s := range term {
			cmd.Process.Signal(s)
		}
	}()
	cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	os.WriteFile(os.Args[1], []byte(strconv.Itoa(code)+"\n"), 0o644)
	os.Exit(code)
}
