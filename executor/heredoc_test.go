package executor_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

// heredocDockerfile gathers BuildKit's own heredoc tests
// (frontend/dockerfile/dockerfile_heredoc_test.go: testRunBasicHeredoc,
// testRunFakeHeredoc, testRunShebangHeredoc, testRunComplexHeredoc,
// testHeredocIndent, testHeredocVarSubstitution, testCopyHeredoc) into
// one build (awk is /usr/bin/awk in the test image); heredocWant holds what those tests expect in /dest.
const heredocDockerfile = `FROM busybox:test
RUN echo 'user:x:1000:1000::/home/user:/bin/sh' >> /etc/passwd && echo 'user:x:1000:' >> /etc/group
WORKDIR /dest
ARG name=world

RUN <<EOF
echo "i am" >> /dest/basic
whoami >> /dest/basic
EOF

COPY <<EOF single
single file
EOF
COPY <<EOF <<EOF2 double/
first file
EOF
second file
EOF2
COPY --chmod=777 <<EOF /dest/perm-all
dummy content
EOF
COPY --chmod=0640 <<EOF /dest/perm-rw
dummy content
EOF
COPY --chmod=u+x,go-w <<EOF /dest/perm-sym
dummy content
EOF
COPY --chown=user:user <<EOF /dest/owned
dummy content
EOF

RUN <<EOF
#!/usr/bin/awk -f
BEGIN {
	print "hello" >> "./shebang1"
	print "world" >> "./shebang1"
}
EOF
RUN <<-EOF
	#!/usr/bin/awk -f
	BEGIN {
		print "hello" >> "./shebang2"
		print "world" >> "./shebang2"
	}
EOF
RUN <<EOF
#!/bin/sh
echo "run by $0" > /dest/shebang-sh
EOF

RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \
	cat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2
hello WORLD
EOF1
HELLO world
EOF2
RUN <<EOF 3<<IN1 4<<IN2 awk -f -
BEGIN {
	while ((getline line < "/proc/self/fd/3") > 0)
		print tolower(line) > "./fd3"
	while ((getline line < "/proc/self/fd/4") > 0)
		print toupper(line) > "./fd4"
}
EOF
hello WORLD
IN1
HELLO world
IN2
RUN sh <<EOF
echo fed to sh > /dest/fed
EOF

COPY <<EOF /dest/foo-copy
	foo
EOF
COPY <<-EOF /dest/bar-copy
	bar
EOF
RUN <<EOF
echo "
	foo" > /dest/foo-run
EOF
RUN <<-EOF
echo "
	bar" > /dest/bar-run
EOF
RUN <<-EOF
#!/bin/sh
echo "
	bar" > /dest/bar2-run
EOF
RUN <<EOF sh > /dest/foo3-run
echo "
	foo"
EOF
RUN <<-EOF sh > /dest/bar3-run
echo "
	bar"
EOF

COPY <<EOF /dest/c1
Hello ${name}!
EOF
COPY <<'EOF' /dest/c2
Hello ${name}!
EOF
COPY <<"EOF" /dest/c3
Hello ${name}!
EOF
COPY <<EOF /dest/q1
Hello '${name}'!
EOF
RUN <<EOF
greeting="Hello"
echo "${greeting} ${name}!" > /dest/r1
EOF
RUN <<EOF
name="new world"
echo "Hello ${name}!" > /dest/r2
EOF
RUN cat <<'EOF' > /dest/r3
Hello ${name}!
EOF

SHELL ["/usr/bin/awk"]
RUN <<EOF
BEGIN {
	print "foo" > "/dest/fake"
}
EOF
`

var heredocWant = map[string]string{
	"basic":       "i am\nroot\n",
	"single":      "single file\n",
	"double/EOF":  "first file\n",
	"double/EOF2": "second file\n",
	"shebang1":    "hello\nworld\n",
	"shebang2":    "hello\nworld\n",
	"shebang-sh":  "run by /dev/pipes/EOF\n",
	"out1":        "hello world\n",
	"out2":        "HELLO WORLD\n",
	"fd3":         "hello world\n",
	"fd4":         "HELLO WORLD\n",
	"fed":         "fed to sh\n",
	"foo-copy":    "\tfoo\n",
	"bar-copy":    "bar\n",
	"foo-run":     "\n\tfoo\n",
	"bar-run":     "\nbar\n",
	"bar2-run":    "\nbar\n",
	"foo3-run":    "\n\tfoo\n",
	"bar3-run":    "\nbar\n",
	"c1":          "Hello world!\n",
	"c2":          "Hello ${name}!\n",
	"c3":          "Hello ${name}!\n",
	"q1":          "Hello 'world'!\n",
	"r1":          "Hello world!\n",
	"r2":          "Hello new world!\n",
	"r3":          "Hello ${name}!\n",
	"fake":        "foo\n",
	"perm-all":    "dummy content\n",
	"perm-rw":     "dummy content\n",
	"perm-sym":    "dummy content\n",
	"owned":       "dummy content\n",
}

// TestHeredocs builds BuildKit's heredoc cases and compares every file
// with what BuildKit's tests expect, then modes and owners of COPY
// <<EOF --chmod/--chown, and that the script a shebang runs from is not
// left in the image.
func TestHeredocs(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	res, err := e.build(t, t.TempDir(), heredocDockerfile, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := unpack(t, e, umoci, res)
	for name, want := range heredocWant {
		got, err := os.ReadFile(filepath.Join(rootfs, "dest", name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]os.FileMode{"perm-all": 0o777, "perm-rw": 0o640, "perm-sym": 0o744, "single": 0o644} {
		fi, err := os.Stat(filepath.Join(rootfs, "dest", name))
		if err == nil && fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "dest/owned")); err == nil {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("owned: %d:%d, want user:user (1000:1000)", st.Uid, st.Gid)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(rootfs, "dev")); len(entries) != 0 {
		var names []string
		for _, d := range entries {
			names = append(names, d.Name())
		}
		t.Errorf("/dev in the image holds %s: a mount point of the shebang script leaked", strings.Join(names, " "))
	}
}

// TestHeredocCacheKey: a RUN run from a shebang script and a COPY of a
// heredoc miss the cache when only the heredoc's content changes.
func TestHeredocCacheKey(t *testing.T) {
	e := newEnv(t)
	ctx := t.TempDir()
	for _, tc := range []struct{ name, df string }{
		{"shebang", "FROM busybox:test\nRUN <<EOF\n#!/bin/sh\necho %s > /out\nEOF\n"},
		{"copy", "FROM busybox:test\nCOPY <<EOF /out\n%s\nEOF\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := e.build(t, ctx, strings.Replace(tc.df, "%s", "one", 1), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := e.build(t, ctx, strings.Replace(tc.df, "%s", "two", 1), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.Image.ID == b.Image.ID {
				t.Fatalf("a changed heredoc gave the same image %s: the cache key misses its content", a.Image.ID)
			}
		})
	}
}

// TestOnbuildHeredoc: a trigger recorded with its heredoc runs it in the
// image built FROM it (BuildKit's testOnBuildHeredoc).
func TestOnbuildHeredoc(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	base := "FROM busybox:test\nONBUILD RUN <<EOF\necho hello world > /dest\nEOF\n"
	if _, err := e.build(t, t.TempDir(), base, &buildOpts{tags: []string{"onbuild-heredoc:test"}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.build(t, t.TempDir(), "FROM onbuild-heredoc:test\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(unpack(t, e, umoci, res), "dest"))
	if err != nil || string(got) != "hello world\n" {
		t.Fatalf("/dest = %q, %v; want \"hello world\\n\"", got, err)
	}
}
