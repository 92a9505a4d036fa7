package executor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
)

// TestCopyOwners: COPY --from keeps the owners files have in their stage
// unless --chown says otherwise, and --chown=user without a group takes
// the user's primary group from the image's /etc/passwd, as BuildKit
// does (a uid given by number gets the group of the same number).
func TestCopyOwners(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	df := `FROM busybox:test AS src
RUN echo 'app:x:1000:2000::/home/app:/bin/sh' >> /etc/passwd && echo 'staff2:x:2000:' >> /etc/group && \
	mkdir -p /data/sub && echo x > /data/f && echo y > /data/sub/g && ln -s f /data/link && \
	chown -R 1000:2000 /data && chown -h 7:8 /data/link && chown 33:44 /data/sub/g && \
	echo z > /one && chown 5:6 /one

FROM src
COPY --from=src /data /copied
COPY --from=src /one /one-copied
COPY --from=src --chown=0:0 /data /chowned
COPY --from=src --chown=app /one /one-app
COPY --chown=app <<EOF /primary
x
EOF
COPY --chown=1000 <<EOF /numeric
x
EOF
COPY --chown=app:0 <<EOF /explicit
x
EOF
`
	res, err := e.build(t, t.TempDir(), df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := unpack(t, e, umoci, res)
	for _, tc := range []struct {
		path, want string
	}{
		{"copied/f", "1000:2000"},
		{"copied/sub", "1000:2000"},
		{"copied/sub/g", "33:44"},
		{"copied/link", "7:8"},
		{"one-copied", "5:6"},
		{"chowned/f", "0:0"},
		{"chowned/sub/g", "0:0"},
		{"one-app", "1000:2000"},
		{"primary", "1000:2000"},
		{"numeric", "1000:1000"},
		{"explicit", "1000:0"},
	} {
		fi, err := os.Lstat(filepath.Join(rootfs, tc.path))
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != tc.want {
			t.Errorf("/%s owned by %s, want %s", tc.path, got, tc.want)
		}
	}
}

// TestForeignPlatformRefused: --platform for an architecture this machine
// cannot run fails before any step, at the first RUN of each stage that
// would run its programs, saying what to install; a stage FROM
// --platform=$BUILDPLATFORM still builds.
func TestForeignPlatformRefused(t *testing.T) {
	e := newEnv(t)
	target := v1.Platform{OS: "linux", Architecture: "arm64"}
	qemu := "aarch64"
	if runtime.GOARCH == "arm64" {
		target.Architecture, qemu = "amd64", "x86_64"
	}
	df := "FROM --platform=$BUILDPLATFORM busybox:test AS tools\nRUN true\nFROM busybox:test\nCOPY --from=tools /bin/busybox /x\nRUN true\n"
	var events []executor.Event
	_, err := e.build(t, t.TempDir(), df, &buildOpts{platform: target, events: &events})
	if _, statErr := os.Stat("/proc/sys/fs/binfmt_misc/qemu-" + qemu); statErr == nil {
		t.Logf("an emulator for %s is registered here: the build runs under it (%v)", target.Architecture, err)
		return
	}
	want := "Dockerfile:5: RUN for linux/" + target.Architecture + " cannot run on this linux/" + runtime.GOARCH +
		" machine: install an emulator (Debian: apt-get install qemu-user-static, which registers qemu-" + qemu +
		" with binfmt_misc), or build for linux/" + runtime.GOARCH
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
	if len(events) != 0 {
		t.Errorf("events before the refusal: %+v", events)
	}
}

// TestHealthcheckStartIntervalWarns: the one HEALTHCHECK option the image
// config cannot hold is said to be dropped, not dropped silently.
func TestHealthcheckStartIntervalWarns(t *testing.T) {
	e := newEnv(t)
	var events []executor.Event
	_, err := e.build(t, t.TempDir(), "FROM busybox:test\nHEALTHCHECK --interval=5s --start-interval=1s CMD true\n", &buildOpts{events: &events})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Kind == executor.BuildWarning && strings.Contains(ev.Line, "Dockerfile:2: HEALTHCHECK --start-interval is not recorded") {
			return
		}
	}
	t.Error("no warning that --start-interval was dropped")
}
