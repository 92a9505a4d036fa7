package executor_test

import (
	"strings"
	"testing"

	"github.com/builderdev/builder/executor"
)

// TestRefuseEarly: everything a Dockerfile asks for that the build cannot
// give is reported at once, each place on its own line, before any step
// runs: the first RUN, which could run, does not.
func TestRefuseEarly(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox:test AS other
RUN --device=/dev/kvm true

FROM busybox:test
RUN touch /ran
RUN --network=host true
RUN --security=insecure true
RUN --device=/dev/kvm,required true
RUN --mount=type=ssh ssh-add -l
RUN --mount=type=secret,id=token,required cat /run/secrets/token
RUN --mount=type=secret,id=opt true
`
	want := []string{
		"Dockerfile:6: RUN --network=host is not allowed: it would give the step the host's network, loopback services included; pass --allow network.host to permit it",
		"Dockerfile:7: RUN --security=insecure is not supported: builder grants no privileged steps",
		"Dockerfile:8: RUN --device=/dev/kvm is not supported: builder gives RUN steps no host devices",
		"Dockerfile:9: RUN --mount=type=ssh needs --ssh (see builder build --help)",
		"Dockerfile:10: RUN --mount=type=secret,id=token,required needs --secret id=token (see builder build --help)",
	}
	var events []executor.Event
	_, err := e.build(t, t.TempDir(), df, &buildOpts{events: &events})
	if err == nil {
		t.Fatal("build succeeded")
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("error:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	for _, ev := range events {
		if ev.Kind == executor.StepStarted {
			t.Fatalf("a step started before the refusal: %+v", ev)
		}
	}
}

// TestRefuseEarlyTriggers: a base image's ONBUILD triggers are checked
// together, before the first of them runs.
func TestRefuseEarlyTriggers(t *testing.T) {
	e := newEnv(t)
	base := "FROM busybox:test\nONBUILD RUN touch /ran\nONBUILD RUN --device=/dev/kvm true\nONBUILD RUN --security=insecure true\n"
	if _, err := e.build(t, t.TempDir(), base, &buildOpts{tags: []string{"triggers:test"}}); err != nil {
		t.Fatal(err)
	}
	var events []executor.Event
	_, err := e.build(t, t.TempDir(), "FROM triggers:test\nRUN true\n", &buildOpts{events: &events})
	want := "Dockerfile:1: RUN --device=/dev/kvm is not supported: builder gives RUN steps no host devices\n" +
		"Dockerfile:1: RUN --security=insecure is not supported: builder grants no privileged steps"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
	for _, ev := range events {
		if ev.Kind == executor.StepStarted && ev.Name != "FROM triggers:test" {
			t.Fatalf("a step started before the refusal: %+v", ev)
		}
	}
}
