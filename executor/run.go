package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// runHostname is the hostname RUN steps see, as BuildKit's is
// "buildkitsandbox".
const runHostname = "builder"

const hostsFile = "127.0.0.1\tlocalhost " + runHostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"

// outputTail is how many lines of a failed RUN's output the error keeps.
const outputTail = 10

// stepRun runs a RUN instruction in a container on the stage's snapshot.
func (b *build) stepRun(ctx context.Context, sc *stepCtx, st *imageState, ins *parser.Run) error {
	if err := checkStep(ins, &b.opts); err != nil {
		return err
	}
	network, err := b.networkMode(ins.Network)
	if err != nil {
		return err
	}
	args, mounts := runArgs(ins)
	argv := commandLine(st, args, ins.Shell)
	if len(argv) == 0 {
		return errors.New("no command given")
	}
	env := st.runEnv(b.plan.ProxyEnv)

	history := runHistory(argv, st)
	kb := keyRun(runKey{parent: st.fsKey, argv: argv, env: st.keyEnv(), user: st.cfg.Config.User,
		workdir: st.workdir(), network: network, platform: b.opts.Platform, history: history,
		heredocs: ins.Heredocs, sandbox: b.opts.Sandbox.key()})
	sums, err := b.mountKey(ctx, sc, kb, ins, st.workdir())
	if err != nil {
		return err
	}

	command := strings.Join(ins.Args, " ")
	return b.fsStep(ctx, sc, st, kb, "RUN "+history, func(ctx context.Context, a *snapshot.Active) error {
		sm, err := b.prepareMounts(ctx, sc, ins, sums, st.workdir(), filepath.Dir(a.Upper()))
		if err != nil {
			return err
		}
		defer sm.close() // once the command is gone: a locked cache mount waits
		spec := container.Spec{
			Root:       a.Mount,
			Args:       argv,
			Env:        append(env[:len(env):len(env)], sm.env...),
			Dir:        st.workdir(),
			User:       st.cfg.Config.User,
			Hostname:   runHostname,
			Network:    network,
			ResolvConf: b.resolvConf(),
			Hosts:      b.opts.Sandbox.hosts(),
			ShmSize:    b.opts.Sandbox.ShmSize,
			Rlimits:    b.opts.Sandbox.Ulimits,
			Mounts:     sortMounts(append(mounts, sm.mounts...)),
		}
		if network == NetworkDefault {
			if err := b.joinSandbox(ctx, &spec); err != nil {
				return err
			}
		}
		var tail []string
		var mu sync.Mutex
		code, err := b.starter.Run(ctx, spec, func(stream int, line string) {
			mu.Lock()
			if tail = append(tail, line); len(tail) > outputTail {
				tail = tail[1:]
			}
			mu.Unlock()
			sc.report(Event{Kind: StepLog, Stream: stream, Line: line})
		})
		if err != nil {
			return err
		}
		if code != 0 {
			return &StepError{Pos: sc.step.Pos, Instruction: "RUN", Err: &ExitError{Command: command, Code: code}, Output: tail}
		}
		return nil
	})
}

// SetupError is returned, wrapped, by a RUN step whose container could
// not be set up or whose command could not be started: nothing of the
// command ran. It is the container runtime's, named here so that callers
// of Build can match it without importing the runtime.
type SetupError = container.SetupError

var (
	resolvOnce sync.Once
	resolvData []byte
)

// resolvConf is the host's resolver configuration, which RUN steps get a
// copy of, adapted to their network by joinSandbox.
func (b *build) resolvConf() []byte {
	resolvOnce.Do(func() {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			data = nil
		}
		resolvData = data
	})
	return resolvData
}

// stepWorkdir sets WORKDIR and creates the directory, owned by the USER
// in effect as BuildKit does, when the image lacks it.
func (b *build) stepWorkdir(ctx context.Context, sc *stepCtx, st *imageState, ins *parser.Workdir) error {
	wd := resolveWorkdir(st.workdir(), ins.Path)
	st.cfg.Config.WorkingDir = wd
	user := st.cfg.Config.User
	kb := keyWorkdir(st.fsKey, wd, user)
	return b.fsStep(ctx, sc, st, kb, "WORKDIR "+wd, func(ctx context.Context, a *snapshot.Active) error {
		return withRootfs(a.Mount, filepath.Dir(a.Upper()), func(root string) error {
			uid, gid := 0, 0
			if user != "" {
				u, err := lookupUser(root, user)
				if err != nil {
					return err
				}
				uid, gid = u.Uid, u.Gid
			}
			_, err := mkdirAllIn(root, wd, 0o755, uid, gid)
			return err
		})
	})
}

// runHistory is a RUN's history text as docker writes it: the ARGs in
// scope with their values ("|2 FOO=x BAR="), then the command. An ENV of
// the same name wins over an ARG's value, as it does in the container.
func runHistory(argv []string, st *imageState) string {
	if len(st.args) == 0 {
		return strings.Join(argv, " ")
	}
	words := make([]string, 0, 1+len(st.args)+len(argv))
	words = append(words, fmt.Sprintf("|%d", len(st.args)))
	for _, a := range st.args {
		v := ""
		if e := envValue(st.cfg.Config.Env, a.key); e != nil {
			v = *e
		} else if a.value != nil {
			v = *a.value
		}
		words = append(words, a.key+"="+v)
	}
	return strings.Join(append(words, argv...), " ")
}

// sortMounts orders mounts so that one whose target lies inside another's
// comes after it, whatever the order of the --mount options, as BuildKit
// orders them; the order is otherwise kept.
func sortMounts(m []container.Mount) []container.Mount {
	depth := func(p string) int { return strings.Count(path.Clean(p), "/") }
	sort.SliceStable(m, func(i, j int) bool { return depth(m[i].Target) < depth(m[j].Target) })
	return m
}
