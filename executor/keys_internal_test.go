package executor

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
)

var updateKeys = flag.Bool("update-keys", false, "rewrite testdata/keys.golden (only with a new cache.KeyRecipe)")

// everyInstruction holds one of each instruction the parser knows.
const everyInstruction = `FROM scratch
RUN ["true"]
COPY --chown=1:2 --chmod=0644 a b /dst/
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 a /add
ENV A=1 B=2
ARG X Y=3
LABEL k=v
WORKDIR /w
USER u:g
CMD ["c"]
ENTRYPOINT e
EXPOSE 80/tcp
VOLUME /v
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=2 CMD ["h"]
SHELL ["/bin/sh", "-c"]
ONBUILD RUN x
MAINTAINER m
`

func expandAll(t *testing.T, df string) []parser.Instruction {
	t.Helper()
	plan, err := parser.Parse(strings.NewReader(df), parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out []parser.Instruction
	for _, s := range plan.Stages {
		for _, step := range s.Steps {
			ins, err := step.Expand(nil)
			if err != nil {
				t.Fatalf("%s: %v", step.Pos, err)
			}
			out = append(out, ins)
		}
	}
	return out
}

// TestEveryInstructionHasARecipe: an instruction type without a recipe
// would fail its build; this finds it first, and finds the types the
// parser gained since (the count is the Instruction doc's list).
func TestEveryInstructionHasARecipe(t *testing.T) {
	seen := map[string]bool{}
	for _, ins := range expandAll(t, everyInstruction) {
		seen[fmt.Sprintf("%T", ins)] = true
		if _, ok := ins.(*parser.Run); ok {
			continue // keyRun, from the executor's state
		}
		if _, err := keyMeta(cache.Key{}, ins); err != nil {
			t.Errorf("%T: %v", ins, err)
		}
	}
	if len(seen) != 16 {
		t.Errorf("the Dockerfile gives %d instruction types, want the 16 parser.Instruction lists: %v", len(seen), seen)
	}
}

// TestInstructionFieldsMatter: each field of an instruction changes its
// key, and the debug lines name it.
func TestInstructionFieldsMatter(t *testing.T) {
	pairs := []struct{ a, b, field string }{
		{"COPY a /d", "COPY b /d", "copy.sources"},
		{"COPY a /d", "COPY a /e", "copy.dest"},
		{"COPY a /d", "ADD a /d", "instruction"},
		{"COPY a /d", "COPY --chown=1 a /d", "copy.chown"},
		{"COPY a /d", "COPY --chmod=600 a /d", "copy.chmod"},
		{"COPY a /d", "COPY --link a /d", "copy.link"},
		{"COPY a /d", "COPY --from=img a /d", "copy.from"},
		{"COPY a /d", "COPY --parents a /d", "copy.parents"},
		{"COPY a /d", "COPY --exclude=x a /d", "copy.exclude"},
		{"ADD a /d", "ADD --unpack=false a /d", "copy.unpack"},
		{"COPY <<EOF /d\nx\nEOF", "COPY <<EOF /d\ny\nEOF", "copy.inline.data"},
		{"ENV A=1", "ENV A=2", "env.value"},
		{"ENV A=1", "ENV B=1", "env.key"},
		{"ARG A", "ARG A=", "arg.default"},
		{"LABEL a=1", "LABEL a=2", "label.value"},
		{"CMD a", `CMD ["a"]`, "cmd.shell"},
		{"ENTRYPOINT [\"a\"]", "ENTRYPOINT [\"b\"]", "entrypoint.args"},
		{"EXPOSE 80", "EXPOSE 81", "expose.ports"},
		{"HEALTHCHECK --retries=1 CMD a", "HEALTHCHECK --retries=2 CMD a", "healthcheck.retries"},
		{"HEALTHCHECK --interval=1s CMD a", "HEALTHCHECK --interval=2s CMD a", "healthcheck.interval"},
		{"USER a", "USER b", "user"},
		{"STOPSIGNAL 1", "STOPSIGNAL 2", "stopsignal"},
		{"SHELL [\"a\"]", "SHELL [\"b\"]", "shell"},
		{"VOLUME /a", "VOLUME /b", "volume.paths"},
		{"ONBUILD RUN a", "ONBUILD RUN b", "onbuild"},
		{"MAINTAINER a", "MAINTAINER b", "maintainer"},
	}
	for _, p := range pairs {
		ka, fa := metaKey(t, p.a)
		kb, fb := metaKey(t, p.b)
		if ka == kb {
			t.Errorf("%q and %q have the same key", p.a, p.b)
		}
		if !differsIn(fa, fb, p.field) {
			t.Errorf("%q and %q: field %s does not show the difference:\n%s\n%s", p.a, p.b, p.field, fa, fb)
		}
	}
}

func metaKey(t *testing.T, line string) (cache.Key, []string) {
	t.Helper()
	ins := expandAll(t, "FROM scratch\n"+line+"\n")
	kb, err := keyMeta(cache.Key{}, ins[0])
	if err != nil {
		t.Fatal(err)
	}
	return kb.Sum(), kb.Fields()
}

func differsIn(a, b []string, field string) bool {
	get := func(fields []string) []string {
		var v []string
		for _, f := range fields {
			if strings.HasPrefix(f, field+"=") {
				v = append(v, f)
			}
		}
		return v
	}
	return fmt.Sprint(get(a)) != fmt.Sprint(get(b))
}

// TestKeysGolden pins every recipe to its output for fixed inputs: a key
// that changes by accident (a renamed field, a reordered line) fails
// here. Changing a recipe on purpose means a new cache.KeyRecipe and
// -update-keys.
func TestKeysGolden(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	parent := cache.Key{1, 2, 3}
	var lines []string
	add := func(name string, kb *cache.KeyBuilder) {
		lines = append(lines, name+" "+kb.Sum().String())
	}
	add("scratch", keyScratch(v1.Platform{OS: "linux", Architecture: "amd64"}))
	add("image", keyImage(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}))
	add("run", keyRun(runKey{parent: parent, argv: []string{"/bin/sh", "-c", "make"}, env: []string{"PATH=/bin", "A=1"},
		user: "app", workdir: "/src", network: "default", platform: v1.Platform{OS: "linux", Architecture: "arm64"}, history: "|1 A=1 /bin/sh -c make"}))
	add("run-heredoc", keyRun(runKey{parent: parent, argv: []string{"/bin/sh", "-c", "/dev/pipes/EOF"},
		heredocs: []parser.Heredoc{{Name: "EOF", Data: "#!/bin/sh\necho hi\n", Chomp: true, Expand: true}}}))
	add("workdir", keyWorkdir(parent, "/w", "app"))
	diff := func(b string) cache.Layer {
		return cache.Layer{DiffID: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(b, 32)}}
	}
	add("merge", keyMerge([]cache.Layer{diff("01")}, []cache.Layer{diff("02"), diff("03")}))
	for i, ins := range expandAll(t, everyInstruction) {
		switch ins := ins.(type) {
		case *parser.Run:
		case *parser.Copy:
			kb := keyCopy(parent, ins, "/abs")
			addCopySources(kb, "feed")
			addEpoch(kb, &epoch)
			add(fmt.Sprintf("copy-%d", i), kb)
			kb = keyCopy(parent, ins, "/abs")
			addCopyFromLayers(kb, []cache.Layer{{DiffID: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}}})
			add(fmt.Sprintf("copy-from-%d", i), kb)
			add(fmt.Sprintf("previous-copy-%d", i), keyPreviousCopy("/ctx", "0", ins, "/abs"))
		default:
			kb, err := keyMeta(parent, ins)
			if err != nil {
				t.Fatal(err)
			}
			add(fmt.Sprintf("meta-%d-%T", i, ins), kb)
		}
	}
	got := cache.KeyRecipe + "\n" + strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", "keys.golden")
	if *updateKeys {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("cache keys changed:\n%s\nwant (testdata/keys.golden):\n%s\nA recipe change needs a new cache.KeyRecipe, then go test -run TestKeysGolden -update-keys", got, want)
	}
}
