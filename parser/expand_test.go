package parser

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// oneStep parses "FROM base" plus src and returns the first step.
func oneStep(t *testing.T, src string, opts Options) Step {
	t.Helper()
	p, err := Parse(strings.NewReader("FROM base\n"+src+"\n"), opts)
	if err != nil {
		t.Fatalf("Parse(%q) = %v", src, err)
	}
	if len(p.Stages[0].Steps) == 0 {
		t.Fatalf("Parse(%q) has no step", src)
	}
	return p.Stages[0].Steps[0]
}

func strp(s string) *string { return &s }

func TestExpand(t *testing.T) {
	env := []string{"A=alpha", "EMPTY=", "DIR=/srv", "A2=x", "A=again"}
	tests := []struct {
		name string
		src  string
		env  []string
		opts Options
		want Instruction
	}{
		{"default when unset", "WORKDIR ${NOPE:-/def}", env, Options{}, &Workdir{Path: "/def"}},
		{"default when empty", "WORKDIR ${EMPTY:-/def}", env, Options{}, &Workdir{Path: "/def"}},
		{"no default when set", "WORKDIR ${DIR:-/def}", env, Options{}, &Workdir{Path: "/srv"}},
		{"dash without colon keeps empty", "WORKDIR /x${EMPTY-def}", env, Options{}, &Workdir{Path: "/x"}},
		{"alternative when set", "WORKDIR /${DIR:+alt}", env, Options{}, &Workdir{Path: "/alt"}},
		{"no alternative when unset", "WORKDIR /${NOPE:+alt}", env, Options{}, &Workdir{Path: "/"}},
		{"escaped dollar", `WORKDIR /\$DIR`, env, Options{}, &Workdir{Path: "/$DIR"}},
		{"single quotes", `WORKDIR '/$DIR'`, env, Options{}, &Workdir{Path: "/$DIR"}},
		{"double quotes", `WORKDIR "/a b/$DIR"`, env, Options{}, &Workdir{Path: "/a b//srv"}},
		{"undefined is empty", "WORKDIR /x$NOPE/y", env, Options{}, &Workdir{Path: "/x/y"}},
		{"last value wins", "USER $A", env, Options{}, &User{User: "again"}},
		{"longest name", "USER $A2-${A}2", env, Options{}, &User{User: "x-again2"}},
		{"no env", "USER ${A:-nobody}", nil, Options{}, &User{User: "nobody"}},
		{"ENV sees the env from before the instruction", "ENV A=new B=$A C=${B:-unset}", env, Options{},
			&Env{Pairs: []KV{{"A", "new"}, {"B", "again"}, {"C", "unset"}}}},
		{"LABEL keys expand", `LABEL "$A.key"=v`, env, Options{}, &Label{Pairs: []KV{{"again.key", "v"}}}},
		{"ARG default expands, key does not", "ARG X=$DIR/x Y", env, Options{},
			&Arg{Args: []ArgDef{{Key: "X", Value: strp("/srv/x"), Resolved: strp("/srv/x")}, {Key: "Y"}}}},
		{"ARG default replaced by a build arg is not expanded", "ARG X=${NEED:?required}", env,
			Options{BuildArgs: map[string]string{"X": "given"}},
			&Arg{Args: []ArgDef{{Key: "X", Value: strp("${NEED:?required}"), Resolved: strp("given")}}}},
		{"RUN is not expanded", "RUN echo $A ${B:-x}", env, Options{},
			&Run{Args: []string{"echo $A ${B:-x}"}, Shell: true, Network: "default", Security: "sandbox"}},
		{"RUN exec form is not expanded", `RUN ["echo", "$A"]`, env, Options{},
			&Run{Args: []string{"echo", "$A"}, Network: "default", Security: "sandbox"}},
		{"CMD is not expanded", "CMD echo $A", env, Options{}, &Cmd{Args: []string{"echo $A"}, Shell: true}},
		{"COPY sources, dest and chown", "COPY --chown=$A:${G:-0} --chmod=$M $DIR/*.go '$A' /dst/$A/", env, Options{},
			&Copy{Sources: []string{"/srv/*.go", "$A"}, Dest: "/dst/again/", Chown: "again:0"}},
		{"COPY --exclude is not expanded", "COPY --exclude=$A a b", env, Options{},
			&Copy{Sources: []string{"a"}, Dest: "b", Exclude: []string{"$A"}}},
		{"COPY heredoc keeps quotes and backslashes", "COPY <<f /f\n\"$A\" '$DIR' \\$A\nf", env, Options{},
			&Copy{Inline: []Heredoc{{Name: "f", Data: "\"again\" '/srv' $A\n", Expand: true}}, Dest: "/f"}},
		{"COPY quoted heredoc is not expanded", "COPY <<'f' /f\n$A\nf", env, Options{},
			&Copy{Inline: []Heredoc{{Name: "f", Data: "$A\n"}}, Dest: "/f"}},
		{"STOPSIGNAL", "STOPSIGNAL ${SIG:-SIGQUIT}", env, Options{}, &StopSignal{Signal: "SIGQUIT"}},
		{"VOLUME", "VOLUME $DIR/a ${NOPE}", env, Options{}, &Volume{Paths: []string{"/srv/a", ""}}},
		{"EXPOSE splits words", `EXPOSE $PORTS ${ONE:-1}`, []string{"PORTS=80  443/udp"}, Options{},
			&Expose{Ports: []string{"80", "443/udp", "1"}}},
		{"RUN --mount options", "RUN --mount=type=cache,id=$A,target=${DIR}/c,uid=${U:-7} make", env, Options{},
			&Run{Args: []string{"make"}, Shell: true, Network: "default", Security: "sandbox",
				Mounts: []RunMount{{Type: "cache", ID: "again", Target: "/srv/c", UID: intp(7), Stage: -1}}}},
		{"ONBUILD is not expanded", "ONBUILD RUN echo $A", env, Options{}, &Onbuild{Expression: "RUN echo $A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step := oneStep(t, tt.src, tt.opts)
			got, err := step.Expand(tt.env)
			if err != nil {
				t.Fatalf("Expand(%q) = %v", tt.src, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Expand(%q) = %s, want %s", tt.src, dump(got), dump(tt.want))
			}
		})
	}
}

func intp(i int) *int { return &i }

// dump shows pointers' targets, which %+v would print as addresses.
func dump(ins Instruction) string {
	s := fmt.Sprintf("%+v", ins)
	if r, ok := ins.(*Run); ok {
		for _, m := range r.Mounts {
			if m.UID != nil {
				s += fmt.Sprintf(" uid=%d", *m.UID)
			}
		}
	}
	if a, ok := ins.(*Arg); ok {
		for _, d := range a.Args {
			if d.Value != nil {
				s += fmt.Sprintf(" %s=%q", d.Key, *d.Value)
			}
			if d.Resolved != nil {
				s += fmt.Sprintf(" resolved %s=%q", d.Key, *d.Resolved)
			}
		}
	}
	return s
}

func TestExpandEscapeToken(t *testing.T) {
	p, err := Parse(strings.NewReader("# escape=`\nFROM base\nWORKDIR C:\\$D\\`$D\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Stages[0].Steps[0].Expand([]string{"D=x"})
	if want := (&Workdir{Path: `C:\x\$D`}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Expand = %+v, %v; want %+v", got, err, want)
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"WORKDIR ${NEED:?is required}", `Dockerfile:3: failed to process "${NEED:?is required}": NEED: is required`},
		{"USER ${A:?}", `Dockerfile:3: failed to process "${A:?}": A: is not allowed to be unset`},
		{"USER ${A", `Dockerfile:3: failed to process "${A": unsupported modifier (` + "\uFFFD" + `) in substitution`},
		// Without a variable, TestMountFlagErrors: Parse finds it.
		{"RUN --mount=type=bogus$NONE true", `Dockerfile:3: unsupported mount type "bogus"`},
		{"RUN --mount=type=cache,uid=$U,target=/c true", "Dockerfile:3: invalid value  for uid"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			step := oneStep(t, "# line 2\n"+tt.src, Options{})
			_, err := step.Expand(nil)
			var e *Error
			if !errors.As(err, &e) || err.Error() != tt.want || e.Pos != step.Pos {
				t.Errorf("Expand(%q) = %v, want *Error %q at %v", tt.src, err, tt.want, step.Pos)
			}
		})
	}
}

// TestExpandRepeated checks that expanding does not change the step: the
// executor expands a step again for each build and each cache check.
func TestExpandRepeated(t *testing.T) {
	step := oneStep(t, "COPY --chown=$U <<f $SRC /dst/$U/\n$U\nf", Options{})
	for _, env := range [][]string{{"U=a", "SRC=s1"}, {"U=b", "SRC=s2"}, nil, {"U=a", "SRC=s1"}} {
		got, err := step.Expand(env)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := envList(env).Get("U")
		src, _ := envList(env).Get("SRC")
		want := &Copy{Sources: []string{src}, Dest: "/dst/" + u + "/", Chown: u,
			Inline: []Heredoc{{Name: "f", Data: u + "\n", Expand: true}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Expand(%q) = %+v, want %+v", env, got, want)
		}
	}
}

// TestExpandConcurrent expands one step from several goroutines, as
// parallel stages sharing a base can; run it with -race.
func TestExpandConcurrent(t *testing.T) {
	step := oneStep(t, "RUN --mount=type=cache,id=$ID,target=/c --network=none make $ID", Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("g%d-%d", g, i)
				ins, err := step.Expand([]string{"ID=" + id})
				if err != nil {
					errs <- err
					return
				}
				r := ins.(*Run)
				if r.Mounts[0].ID != id || r.Args[0] != "make $ID" {
					errs <- fmt.Errorf("Expand(ID=%s) = %+v", id, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNeeded(t *testing.T) {
	const src = `FROM alpine AS a
FROM a AS b
FROM alpine AS c
COPY --from=a /x /x
FROM alpine AS d
RUN --mount=from=c,target=/c true
FROM scratch AS e
COPY --from=b /x /x
COPY --from=d /y /y
`
	tests := []struct {
		target string
		want   []int
	}{
		{"", []int{0, 1, 2, 3, 4}},
		{"a", []int{0}},
		{"B", []int{0, 1}},
		{"c", []int{0, 2}},
		{"d", []int{0, 2, 3}},
	}
	for _, tt := range tests {
		t.Run("target "+tt.target, func(t *testing.T) {
			p, err := Parse(strings.NewReader(src), Options{Target: tt.target})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Needed(); !slices.Equal(got, tt.want) {
				t.Errorf("Needed() with target %q = %v, want %v", tt.target, got, tt.want)
			}
		})
	}
}

func TestParseTrigger(t *testing.T) {
	pos := Pos{File: "Dockerfile", Line: 4, EndLine: 4}
	tests := []struct {
		expr   string
		escape rune
		want   Instruction
		err    string
	}{
		{expr: "COPY . /app/$NAME", escape: '\\', want: &Copy{Sources: []string{"."}, Dest: "/app/world"}},
		{expr: "COPY --from=builder:1 /x /y", escape: '\\',
			want: &Copy{Sources: []string{"/x"}, Dest: "/y", From: &CopyFrom{Stage: -1, Image: "builder:1"}}},
		{expr: "RUN make $NAME", escape: '\\', want: &Run{Args: []string{"make $NAME"}, Shell: true, Network: "default", Security: "sandbox"}},
		{expr: "WORKDIR C:\\$NAME", escape: '`', want: &Workdir{Path: `C:\world`}},
		{expr: "ONBUILD RUN x", escape: '\\', err: "Dockerfile:4: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{expr: "FROM alpine", escape: '\\', err: "Dockerfile:4: FROM isn't allowed as an ONBUILD trigger"},
		{expr: "MAINTAINER me", escape: '\\', err: "Dockerfile:4: MAINTAINER isn't allowed as an ONBUILD trigger"},
		{expr: "COPPY a b", escape: '\\', err: "Dockerfile:4: unknown instruction: COPPY (did you mean COPY?)"},
		{expr: "RUN a\nRUN b", escape: '\\', err: "Dockerfile:4: ONBUILD trigger \"RUN a\\nRUN b\" is not one instruction"},
		{expr: "", escape: '\\', err: "Dockerfile:4: file with no instructions"},
	}
	// The trigger's escape token is the building Dockerfile's.
	plans := map[rune]*Plan{}
	for _, src := range []string{"FROM a\n", "# escape=`\nFROM a\n"} {
		p, err := Parse(strings.NewReader(src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		plans[p.Escape] = p
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			step, err := plans[tt.escape].ParseTrigger(tt.expr, pos)
			if tt.err != "" {
				var e *Error
				if !errors.As(err, &e) || err.Error() != tt.err || e.Pos != pos {
					t.Errorf("ParseTrigger(%q) = %v, want *Error %q at %v", tt.expr, err, tt.err, pos)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTrigger(%q) = %v", tt.expr, err)
			}
			if step.Pos != pos || step.Text != tt.expr {
				t.Errorf("ParseTrigger(%q) = step at %v text %q", tt.expr, step.Pos, step.Text)
			}
			got, err := step.Expand([]string{"NAME=world"})
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseTrigger(%q).Expand = %+v, %v; want %+v", tt.expr, got, err, tt.want)
			}
		})
	}
}

func TestUnexpandedStep(t *testing.T) {
	var s Step
	_, err := s.Expand(nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("zero Step.Expand = %v, want an *Error", err)
	}
}
