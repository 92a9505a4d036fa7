package parser

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/builderdev/builder/internal/units"
)

// Every rule about build args and ARG scopes is in this file. Parse
// applies them once; the executor reads the results ([ArgDef.Resolved],
// [Plan.ProxyEnv], [Plan.UnusedArgs]) and knows none of the rules. They
// are BuildKit's (dockerfile2llb: defaultArgs, buildMetaArgs, dispatchArg):
//   - FROM lines, their --platform and COPY --from see the predefined
//     platform args, then the global ARGs; a build arg replaces either.
//     BUILDPLATFORM, BUILDOS, BUILDARCH and BUILDVARIANT describe the
//     machine that builds, the TARGET ones the platform built for.
//   - An ARG in a stage takes the build arg of its name, else its default
//     (expanded with the stage's environment), else what FROM lines see
//     under that name; else it is declared but unset, which RUN steps and
//     expansion tell from empty.
//   - Inside a stage a name is in scope from its ARG on: a global ARG or a
//     predefined arg must be declared again to be seen there.
//   - Proxy build args reach RUN steps without an ARG, and no cache key.

// argScope is what ARGs resolve against, fixed once the global ARGs are
// read: the build args, and what FROM lines see (BuildKit's globalArgs).
type argScope struct {
	buildArgs map[string]string
	meta      envList // predefined platform args, then global ARG values; the last value of a key wins
}

// resolve is the value an ARG in a stage gives key from there on: the
// build arg, else def (the default, expanded), else the global ARG or
// predefined arg of that name, else nil (unset).
func (s *argScope) resolve(key string, def *string) *string {
	if v, ok := s.buildArgs[key]; ok {
		return &v
	}
	if def != nil {
		return def
	}
	if v, ok := s.meta.Get(key); ok {
		return &v
	}
	return nil
}

// proxyArgs are the build args docker accepts without an ARG: the proxy
// variables reach RUN steps but neither the image nor the cache key.
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// specialArgs are build args BuildKit accepts without an ARG that change
// how the build runs rather than what a step sees.
var specialArgs = map[string]bool{"SOURCE_DATE_EPOCH": true}

// proxyEnv is Plan.ProxyEnv: the proxy build args, sorted by name.
func proxyEnv(buildArgs map[string]string) []string {
	var env []string
	for _, k := range slices.Sorted(maps.Keys(buildArgs)) {
		if proxyArgs[k] {
			env = append(env, k+"="+buildArgs[k])
		}
	}
	return env
}

// unusedArgs is Plan.UnusedArgs: the build args no ARG of the file
// declares, in any stage, needed or not, as docker counts them.
func unusedArgs(buildArgs map[string]string, declared map[string]bool) []string {
	var unused []string
	for _, k := range slices.Sorted(maps.Keys(buildArgs)) {
		if !declared[k] && !proxyArgs[k] && !specialArgs[k] {
			unused = append(unused, k)
		}
	}
	return unused
}

// platformArgs are the automatic platform ARGs docker gives FROM lines. A
// build arg of the same name overrides one, as in BuildKit.
func platformArgs(o Options) []string {
	build := o.BuildPlatform
	if build == "" {
		build = "linux/" + runtime.GOARCH
	}
	target := o.TargetPlatform
	if target == "" {
		target = build
	}
	var env []string
	for _, p := range []struct{ prefix, value string }{{"BUILD", build}, {"TARGET", target}} {
		parts := strings.SplitN(p.value, "/", 3)
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		env = append(env, p.prefix+"PLATFORM="+p.value, p.prefix+"OS="+parts[0],
			p.prefix+"ARCH="+parts[1], p.prefix+"VARIANT="+parts[2])
	}
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := o.BuildArgs[k]; ok {
			env[i] = k + "=" + v
		}
	}
	return env
}

// addGlobalArgs records ARGs before the first FROM. Their values feed FROM
// lines: a build arg wins over the default, which is expanded with the
// earlier global ARGs, as docker does.
func (b *planner) addGlobalArgs(n *bkparser.Node, c *instructions.ArgCommand) error {
	scope := &b.plan.scope
	for _, kv := range c.Args {
		b.declared[kv.Key] = true
		what := "ARG " + shortKey(kv.Key)
		def := ArgDef{Key: kv.Key}
		if kv.Value != nil {
			v, err := b.expandMeta(n, *kv.Value, what)
			if err != nil {
				return err
			}
			def.Value = &v
		}
		kv := ""
		if v, ok := scope.buildArgs[def.Key]; ok {
			kv = def.Key + "=" + v
		} else if def.Value != nil {
			kv = def.Key + "=" + *def.Value
		}
		if kv != "" {
			scope.meta = append(scope.meta, kv)
			if b.metaSize += len(kv) + 1; b.metaSize > MaxEnvSize {
				return &Error{Pos: b.pos(n), Msg: fmt.Sprintf("%s: the global ARGs and build args would be larger than %s", what, units.Limit(int64(MaxEnvSize)))}
			}
		}
		if v, ok := scope.meta.Get(def.Key); ok {
			def.Resolved = &v
		}
		b.plan.Args = append(b.plan.Args, def)
	}
	return nil
}

// applyArg expands an ARG's defaults, only those a build arg does not
// replace (BuildKit leaves those as written), and resolves the value each
// name holds from here on. The stage's environment may not grow past
// MaxEnvSize.
func (x *expansion) applyArg(a *instructions.ArgCommand) error {
	grow := envSize(x.env)
	x.resolved = make([]*string, len(a.Args))
	for i, kv := range a.Args {
		x.what = "ARG " + shortKey(kv.Key)
		if _, given := x.scope.buildArgs[kv.Key]; !given && kv.Value != nil {
			val, err := x.word(*kv.Value)
			if err != nil {
				return err
			}
			a.Args[i].Value = &val
		}
		v := x.scope.resolve(kv.Key, a.Args[i].Value)
		x.resolved[i] = v
		size := len(kv.Key) + 2
		if v != nil {
			size += len(*v)
		}
		if grow += size; grow > MaxEnvSize {
			return fmt.Errorf("%s: %w", x.what, errEnvTooLarge)
		}
	}
	return nil
}
