package main

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/registry"
)

// testEnv is an environment with the given variables, not root, and
// stderr not a terminal.
func testEnv(vars ...string) *environment {
	m := map[string]string{}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return &environment{
		lookupEnv: func(k string) (string, bool) { v, ok := m[k]; return v, ok },
		euid:      1000,
		size:      func() (int, int) { return 80, 24 },
	}
}

func runWith(env *environment, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, env: env}
	code = run(context.Background(), a, args)
	return code, out.String(), errb.String()
}

func parseBuild(env *environment, args ...string) (*buildConfig, error) {
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	silence(fs)
	f := registerBuildFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return env.buildConfig(f, fs.Args())
}

func TestBuildConfig(t *testing.T) {
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	host := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	epoch := func(s int64) *time.Time { t := time.Unix(s, 0).UTC(); return &t }
	tests := []struct {
		name  string
		env   []string
		args  []string
		check func(c *buildConfig) any // returns what is compared with want
		want  any
	}{
		{"context", nil, []string{"ctx"}, func(c *buildConfig) any { return c.req.ContextDir }, abs("ctx")},
		{"default dockerfile", nil, []string{"ctx"}, func(c *buildConfig) any { return c.req.Dockerfile }, ""},
		{"-f path", nil, []string{"-f", "sub/Dockerfile.prod", "."}, func(c *buildConfig) any { return c.req.Dockerfile }, "sub/Dockerfile.prod"},
		{"-f stdin", nil, []string{"-f", "-", "."}, func(c *buildConfig) any { return c.req.Dockerfile }, "-"},
		{"build args", []string{"FROM_ENV=e", "EMPTY="}, []string{"--build-arg", "A=1", "--build-arg", "FROM_ENV", "--build-arg", "UNSET",
			"--build-arg", "EMPTY", "--build-arg", "B=", "--build-arg", "C=x=y,z", "."},
			func(c *buildConfig) any { return c.req.BuildArgs },
			map[string]string{"A": "1", "FROM_ENV": "e", "EMPTY": "", "B": "", "C": "x=y,z"}},
		{"labels", nil, []string{"--label", "a=1", "--label", "b", "."}, func(c *buildConfig) any { return c.req.Options.Labels },
			map[string]string{"a": "1", "b": ""}},
		{"tags", nil, []string{"-t", "a", "--tag", "b:2", "."}, func(c *buildConfig) any { return c.req.Tags }, []string{"a:latest", "b:2"}},
		{"target", nil, []string{"--target", "build", "."}, func(c *buildConfig) any { return c.req.Target }, "build"},
		{"no cache", nil, []string{"--no-cache", "--no-cache-filter", "a", "--no-cache-filter", "b", "."},
			func(c *buildConfig) any { return []any{c.req.Options.NoCache, c.req.Options.NoCacheStages} }, []any{true, []string{"a", "b"}}},
		{"pull", nil, []string{"--pull", "."}, func(c *buildConfig) any { return c.pull }, registry.PullAlways},
		{"no pull", nil, []string{"."}, func(c *buildConfig) any { return c.pull }, registry.PullMissing},
		{"iidfile", nil, []string{"--iidfile", "id.txt", "."}, func(c *buildConfig) any { return c.iidfile }, "id.txt"},
		{"default platform", nil, []string{"."}, func(c *buildConfig) any { return c.req.Options.Platform }, host},
		{"platform", nil, []string{"--platform", "linux/arm64/v8", "."}, func(c *buildConfig) any { return c.req.Options.Platform },
			v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{"compression", nil, []string{"--compression", "zstd", "."}, func(c *buildConfig) any { return c.req.Options.Compression.Format }, "zstd"},
		{"default compression", nil, []string{"."}, func(c *buildConfig) any { return c.req.Options.Compression.Format }, "gzip"},
		{"jobs", nil, []string{"--jobs", "3", "."}, func(c *buildConfig) any { return c.req.Options.Jobs }, 3},
		{"no jobs limit by default", nil, []string{"."}, func(c *buildConfig) any { return c.req.Options.Jobs }, 0},
		{"default network", nil, []string{"."}, func(c *buildConfig) any { return c.req.Options.Network }, executor.NetworkDefault},
		{"network none", nil, []string{"--network", "none", "."}, func(c *buildConfig) any { return c.req.Options.Network }, executor.NetworkNone},
		{"network host", nil, []string{"--network=host", "."}, func(c *buildConfig) any { return c.req.Options.Network }, executor.NetworkHost},
		{"host network not allowed by default", nil, []string{"."}, func(c *buildConfig) any { return c.req.Options.AllowNetworkHost }, false},
		{"allow network.host", nil, []string{"--allow", "network.host", "."}, func(c *buildConfig) any { return c.req.Options.AllowNetworkHost }, true},
		{"output docker to stdout", nil, []string{"--output", "type=docker,dest=-", "."}, func(c *buildConfig) any { return c.req.Outputs },
			[]executor.Output{{Type: "docker", Dest: "-"}}},
		{"output local", nil, []string{"-o", "type=local,dest=out", "."}, func(c *buildConfig) any { return c.req.Outputs },
			[]executor.Output{{Type: "local", Dest: "out"}}},
		{"output bare path", nil, []string{"-o", "out", "."}, func(c *buildConfig) any { return c.req.Outputs },
			[]executor.Output{{Type: "local", Dest: "out"}}},
		{"output tar to stdout", nil, []string{"-o", "-", "."}, func(c *buildConfig) any { return c.req.Outputs },
			[]executor.Output{{Type: "tar", Dest: "-"}}},
		{"output oci-layout", nil, []string{"-o", "type=oci-layout,dest=out,name=app:1", "."}, func(c *buildConfig) any { return c.req.Outputs },
			[]executor.Output{{Type: "oci-layout", Dest: "out", Name: "app:1"}}},
		{"no output", nil, []string{"."}, func(c *buildConfig) any { return len(c.req.Outputs) }, 0},
		{"progress auto off a terminal", nil, []string{"."}, func(c *buildConfig) any { return c.progress }, "plain"},
		{"progress quiet", nil, []string{"-q", "--progress", "tty", "."}, func(c *buildConfig) any { return c.progress }, "quiet"},
		{"progress tty", nil, []string{"--progress=tty", "."}, func(c *buildConfig) any { return c.progress }, "tty"},
		{"progress tty under CI", []string{"CI=true"}, []string{"--progress=tty", "."}, func(c *buildConfig) any { return c.progress }, "plain"},
		{"SOURCE_DATE_EPOCH from env", []string{"SOURCE_DATE_EPOCH=0"}, []string{"."}, func(c *buildConfig) any { return c.req.Options.SourceDateEpoch }, epoch(0)},
		{"SOURCE_DATE_EPOCH build arg wins", []string{"SOURCE_DATE_EPOCH=5"}, []string{"--build-arg", "SOURCE_DATE_EPOCH=1700000000", "."},
			func(c *buildConfig) any { return c.req.Options.SourceDateEpoch }, epoch(1700000000)},
		{"no SOURCE_DATE_EPOCH", nil, []string{"."}, func(c *buildConfig) any { return c.req.Options.SourceDateEpoch == nil }, true},
		{"debug keys", []string{"BUILDER_DEBUG_KEYS=1"}, []string{"."}, func(c *buildConfig) any { return c.req.Options.DebugKeys }, true},
		{"no debug keys", []string{"BUILDER_DEBUG_KEYS=0"}, []string{"."}, func(c *buildConfig) any { return c.req.Options.DebugKeys }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseBuild(testEnv(tt.env...), tt.args...)
			if err != nil {
				t.Fatalf("build %q: %v", tt.args, err)
			}
			if got := tt.check(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("build %q: got %#v, want %#v", tt.args, got, tt.want)
			}
		})
	}
}

func TestProgressAutoOnTerminal(t *testing.T) {
	tests := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, nil, "tty"},
		{[]string{"CI=true"}, nil, "plain"},
		{[]string{"CI=1"}, nil, "plain"},
		{[]string{"CI=false"}, nil, "tty"},
		{[]string{"NO_COLOR=1"}, nil, "plain"},
		{[]string{"NO_COLOR="}, nil, "tty"},
		{[]string{"TERM=dumb"}, nil, "plain"},
		{[]string{"TERM=dumb"}, []string{"--progress=tty"}, "tty"},
		{[]string{"CI=true"}, []string{"--progress=rawjson"}, "rawjson"},
	}
	for _, tt := range tests {
		env := testEnv(tt.env...)
		env.stderrTTY = true
		c, err := parseBuild(env, append(tt.args, ".")...)
		if err != nil {
			t.Errorf("build %q: %v", tt.args, err)
		} else if c.progress != tt.want {
			t.Errorf("build %q on a terminal with %q: progress %q, want %s", tt.args, tt.env, c.progress, tt.want)
		}
	}
}

// TestUsageErrors checks the exact message and exit code 2 of command
// lines that cannot run. None of them touches a store.
func TestUsageErrors(t *testing.T) {
	const buildUsage = "Usage: builder build [flags] CONTEXT\n"
	tests := []struct {
		name string
		env  []string
		args []string
		want string // stderr
	}{
		{"missing context", nil, []string{"build"}, buildUsage + "builder: missing build context (a directory, usually .)\n"},
		{"extra args", nil, []string{"build", ".", "x"}, buildUsage + "builder: unexpected argument \"x\": build takes one context directory\n"},
		{"stdin context and Dockerfile", nil, []string{"build", "-f", "-", "-"}, buildUsage + "builder: the context and the Dockerfile cannot both come from stdin (-f - with a context directory, or - alone)\n"},
		{"git context", nil, []string{"build", "https://github.com/o/r.git"}, buildUsage + "builder: a URL or git repository as the build context is not supported: clone or download it, then give its directory\n"},
		{"build arg without name", nil, []string{"build", "--build-arg", "=V", "."}, buildUsage + "builder: invalid --build-arg \"=V\": want NAME=VALUE or NAME\n"},
		{"build arg empty", nil, []string{"build", "--build-arg", "", "."}, buildUsage + "builder: invalid --build-arg \"\": want NAME=VALUE or NAME\n"},
		{"label without name", nil, []string{"build", "--label", "=x", "."}, buildUsage + "builder: invalid --label \"=x\": want NAME=VALUE\n"},
		{"output local to stdout", nil, []string{"build", "--output", "type=local,dest=-", "."},
			buildUsage + "builder: invalid --output \"type=local,dest=-\": type=local is a directory and cannot go to stdout\n"},
		{"output unknown type", nil, []string{"build", "--output", "type=image,dest=out", "."},
			buildUsage + "builder: --output type=image is not supported (use type=oci, type=docker, type=oci-layout, type=local, type=tar or type=registry)\n"},
		{"output without type", nil, []string{"build", "--output", "dest=x.tar", "."},
			buildUsage + "builder: invalid --output \"dest=x.tar\": missing type= (oci, docker, oci-layout, local, tar or registry)\n"},
		{"registry output with dest", nil, []string{"build", "--output", "type=registry,dest=x", "."},
			buildUsage + "builder: invalid --output \"type=registry,dest=x\": type=registry takes name=REF and no dest\n"},
		{"registry output to a digest", nil, []string{"build", "--output", "type=registry,name=127.0.0.1:5000/a@sha256:" + strings.Repeat("0", 64), "."},
			buildUsage + "builder: invalid --output \"type=registry,name=127.0.0.1:5000/a@sha256:" + strings.Repeat("0", 64) + "\": a digest cannot be pushed to; name a tag\n"},
		{"cache export to a digest", nil, []string{"build", "--cache-to", "type=registry,ref=127.0.0.1:5000/c@sha256:" + strings.Repeat("0", 64), "."},
			buildUsage + "builder: invalid --cache-to \"type=registry,ref=127.0.0.1:5000/c@sha256:" + strings.Repeat("0", 64) + "\": ref=\"127.0.0.1:5000/c@sha256:" + strings.Repeat("0", 64) + "\": a digest cannot be pushed to; name a tag\n"},
		{"cache mode on import", nil, []string{"build", "--cache-from", "type=registry,ref=r/c:1,mode=max", "."},
			buildUsage + "builder: invalid --cache-from \"type=registry,ref=r/c:1,mode=max\": mode is for --cache-to\n"},
		{"push without a tag", nil, []string{"build", "--push", "."},
			buildUsage + "builder: --push needs a name to push to: give one with -t NAME\n"},
		{"output without dest", nil, []string{"build", "--output", "type=docker", "."},
			buildUsage + "builder: invalid --output \"type=docker\": missing dest=PATH\n"},
		{"output unknown key", nil, []string{"build", "--output", "type=oci,dest=x,compression=zstd", "."},
			buildUsage + "builder: invalid --output \"type=oci,dest=x,compression=zstd\": unknown key \"compression\" (use type, dest and name)\n"},
		{"output layout to stdout", nil, []string{"build", "--output", "type=oci-layout,dest=-", "."},
			buildUsage + "builder: invalid --output \"type=oci-layout,dest=-\": type=oci-layout is a directory and cannot go to stdout\n"},
		{"bad progress", nil, []string{"build", "--progress", "fancy", "."}, buildUsage + "builder: invalid --progress \"fancy\" (use auto, plain, tty, rawjson or quiet)\n"},
		{"bad compression", nil, []string{"build", "--compression", "lz4", "."}, buildUsage + "builder: invalid --compression \"lz4\" (use gzip, zstd or none)\n"},
		{"negative jobs", nil, []string{"build", "--jobs", "-1", "."}, buildUsage + "builder: invalid --jobs -1 (use 0 for no limit, or a positive number)\n"},
		{"bad network", nil, []string{"build", "--network", "bridge", "."}, buildUsage + "builder: invalid --network \"bridge\" (use default, none or host)\n"},
		{"bad entitlement", nil, []string{"build", "--allow", "network.hots", "."}, buildUsage + "builder: invalid --allow \"network.hots\" (the one entitlement is network.host)\n"},
		{"insecure entitlement", nil, []string{"build", "--allow", "security.insecure", "."}, buildUsage + "builder: --allow security.insecure is not supported: RUN --security=insecure would give a step the host's privileges\n"},
		{"several platforms", nil, []string{"build", "--platform", "linux/amd64,linux/arm64", "."},
			buildUsage + "builder: invalid --platform \"linux/amd64,linux/arm64\": building for several platforms at once is not supported\n"},
		{"bad SOURCE_DATE_EPOCH", []string{"SOURCE_DATE_EPOCH=yesterday"}, []string{"build", "."},
			buildUsage + "builder: invalid SOURCE_DATE_EPOCH \"yesterday\": want a number of seconds since 1970-01-01\n"},
		{"bad SOURCE_DATE_EPOCH build arg", nil, []string{"build", "--build-arg", "SOURCE_DATE_EPOCH=-1", "."},
			buildUsage + "builder: invalid SOURCE_DATE_EPOCH \"-1\": want a number of seconds since 1970-01-01\n"},
		{"unknown flag", nil, []string{"build", "--nope", "."}, buildUsage + "builder: unknown flag: --nope\n"},
		{"unknown shorthand", nil, []string{"build", "-x", "."}, buildUsage + "builder: unknown shorthand flag: 'x' in -x\n"},
		{"flag without value", nil, []string{"build", ".", "--target"}, buildUsage + "builder: flag needs an argument: --target\n"},
		{"unknown command", nil, []string{"frob"}, "Usage: builder [--root DIR] COMMAND [ARGS]\nbuilder: unknown command \"frob\" (see 'builder --help')\n"},
		{"unknown global flag", nil, []string{"--frob", "images"}, "Usage: builder [--root DIR] COMMAND [ARGS]\nbuilder: unknown flag: --frob\n"},
		{"images with args", nil, []string{"images", "x", "y"}, "Usage: builder images [flags] [REPOSITORY[:TAG]]\nbuilder: unexpected argument \"y\": images takes at most one REPOSITORY[:TAG]\n"},
		{"images filter", nil, []string{"images", "--filter", "dangling=true"}, "Usage: builder images [flags] [REPOSITORY[:TAG]]\nbuilder: invalid --filter \"dangling=true\": only reference=PATTERN is supported\n"},
		{"inspect format", nil, []string{"inspect", "-f", "{{.Id", "x"}, "Usage: builder inspect [flags] IMAGE...\nbuilder: invalid --format \"{{.Id\": template: format:1: unclosed action\n"},
		{"history without image", nil, []string{"history"}, "Usage: builder history [flags] IMAGE\nbuilder: missing IMAGE\n"},
		{"inspect without image", nil, []string{"inspect"}, "Usage: builder inspect [flags] IMAGE...\nbuilder: missing IMAGE\n"},
		{"tag with one arg", nil, []string{"tag", "a"}, "Usage: builder tag SOURCE TARGET\nbuilder: missing SOURCE and TARGET\n"},
		{"rmi without image", nil, []string{"rmi"}, "Usage: builder rmi IMAGE...\nbuilder: missing IMAGE\n"},
		{"save without -o", nil, []string{"save", "app"}, "Usage: builder save [flags] IMAGE -o FILE\nbuilder: missing -o FILE (use -o - for stdout)\n"},
		{"save bad format", nil, []string{"save", "--format", "tar", "app", "-o", "x"}, "Usage: builder save [flags] IMAGE -o FILE\nbuilder: invalid --format \"tar\" (use docker or oci)\n"},
		{"prune bad size", nil, []string{"prune", "--keep-storage", "lots"},
			"Usage: builder prune [flags]\nbuilder: invalid --keep-storage: invalid size \"lots\": want a number with an optional unit (B, KB, MB, GB, TB, PB)\n"},
		{"prune bad filter", nil, []string{"prune", "--filter", "label=x"}, "Usage: builder prune [flags]\nbuilder: invalid --filter \"label=x\": use until=DURATION or type=exec.cachemount\n"},
		{"prune bad duration", nil, []string{"prune", "--filter", "until=soon"},
			"Usage: builder prune [flags]\nbuilder: invalid --filter \"until=soon\": invalid duration \"soon\" (e.g. 24h, 90m, 7d)\n"},
		{"pull bad platform", nil, []string{"pull", "--platform", "x", "ref"},
			"Usage: builder pull [flags] REF\nbuilder: invalid --platform \"x\": want OS/ARCH[/VARIANT], e.g. linux/arm64\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runWith(testEnv(tt.env...), tt.args...)
			if code != exitUsage || stderr != tt.want || stdout != "" {
				t.Errorf("builder %q = exit %d, stdout %q, stderr\n%s\nwant exit 2, no stdout, stderr\n%s", tt.args, code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, stdout, stderr := runWith(testEnv(), args...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, "Commands:\n  build ") {
			t.Errorf("builder %q = exit %d, stderr %q, stdout\n%s", args, code, stderr, stdout)
		}
	}
	for _, c := range commands {
		for _, args := range [][]string{{c.Name, "--help"}, {"help", c.Name}} {
			code, stdout, _ := runWith(testEnv(), args...)
			if code != 0 || !strings.HasPrefix(stdout, c.usageLine()) || !strings.Contains(stdout, "\nExample:\n  builder ") {
				t.Errorf("builder %q = exit %d, stdout\n%s\nwant the usage line first and an example", args, code, stdout)
			}
		}
	}
	code, _, stderr := runWith(testEnv())
	if code != exitUsage || !strings.Contains(stderr, "Commands:") {
		t.Errorf("builder with no arguments = exit %d, stderr\n%s\nwant exit 2 and the command list", code, stderr)
	}
}

func TestStoreRoot(t *testing.T) {
	tests := []struct {
		name string
		flag string
		euid int
		env  []string
		want string
	}{
		{"flag wins", "/flag", 0, []string{"BUILDER_ROOT=/env"}, "/flag"},
		{"env", "", 0, []string{"BUILDER_ROOT=/env"}, "/env"},
		{"root", "", 0, []string{"HOME=/root", "XDG_DATA_HOME=/xdg"}, "/var/lib/builder"},
		{"user with XDG", "", 1000, []string{"HOME=/home/u", "XDG_DATA_HOME=/xdg"}, "/xdg/builder"},
		{"user", "", 1000, []string{"HOME=/home/u"}, "/home/u/.local/share/builder"},
		{"relative XDG is ignored", "", 1000, []string{"HOME=/home/u", "XDG_DATA_HOME=rel"}, "/home/u/.local/share/builder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testEnv(tt.env...)
			env.root, env.euid = tt.flag, tt.euid
			got, err := env.storeRoot()
			if err != nil || got != tt.want {
				t.Errorf("storeRoot() = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
	if _, err := testEnv().storeRoot(); err == nil {
		t.Errorf("storeRoot() without HOME for a user succeeded, want an error")
	}
}

func TestRootFlagAfterCommand(t *testing.T) {
	env := testEnv()
	fs := pflag.NewFlagSet("images", pflag.ContinueOnError)
	registerGlobalFlags(fs, env)
	env.root = "/from-global"
	if err := fs.Parse([]string{"--root", "/from-command"}); err != nil {
		t.Fatal(err)
	}
	if env.root != "/from-command" {
		t.Errorf("--root after the command gave %q, want /from-command", env.root)
	}
	env.root = "/from-global"
	registerGlobalFlags(pflag.NewFlagSet("x", pflag.ContinueOnError), env)
	if env.root != "/from-global" {
		t.Errorf("defining --root again reset it to %q", env.root)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"4096", 4096, false},
		{"512b", 512, false},
		{"1k", 1024, false},
		{"1KB", 1024, false},
		{"1KiB", 1024, false},
		{"512MB", 512 << 20, false},
		{"10GB", 10 << 30, false},
		{"10 GB", 10 << 30, false},
		{"1.5g", 3 << 29, false},
		{"2TB", 2 << 40, false},
		{"", 0, true},
		{"lots", 0, true},
		{"-1GB", 0, true},
		{"1XB", 0, true},
		{"1iB", 0, true},
		{"10GBs", 0, true},
		{"99999999PB", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"24h", 24 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"0d", 0, false},
		{"", 0, true},
		{"soon", 0, true},
		{"-1h", 0, true},
		{"d", 0, true},
		{"1.5d", 0, true},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v, want %v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestMaxLayerSize(t *testing.T) {
	cases := []struct {
		value   string
		want    int64
		wantErr string
	}{
		{"", 0, ""},
		{"none", -1, ""},
		{"100GB", 100 << 30, ""},
		{"1.5MB", 3 << 19, ""},
		{"0", 0, `invalid BUILDER_MAX_LAYER_SIZE "0": want a size such as 100GB, or none`},
		{"-1", 0, `invalid BUILDER_MAX_LAYER_SIZE "-1": want a size such as 100GB, or none`},
		{"lots", 0, `invalid BUILDER_MAX_LAYER_SIZE "lots": want a size such as 100GB, or none`},
	}
	for _, c := range cases {
		got, err := testEnv("BUILDER_MAX_LAYER_SIZE=" + c.value).maxLayerSize()
		if c.wantErr != "" {
			if err == nil || err.Error() != c.wantErr {
				t.Errorf("maxLayerSize(%q) error = %v, want %q", c.value, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("maxLayerSize(%q) = %d, %v, want %d", c.value, got, err, c.want)
		}
	}
}
