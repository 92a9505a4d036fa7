package container

import (
	"context"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"
)

// waitIdle waits until s has a child waiting for key.
func waitIdle(t *testing.T, s *Starter, key startKey) *child {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		c := s.idle[key]
		s.mu.Unlock()
		if c != nil {
			return c
		}
	}
	t.Fatal("no child was started ahead")
	return nil
}

// TestStarter: a step runs on the child started ahead, in namespaces of
// its own (PID 1, nothing of the step before); a waiting child killed
// from outside is not used; Close reaps the waiting one. (Root.)
func TestStarter(t *testing.T) {
	s := NewStarter()
	defer s.Close()
	run := func(script string) runResult {
		t.Helper()
		var r runResult
		r.code, r.err = s.Run(context.Background(), newFixture(t, "").spec(sh(script)...), func(stream int, line string) {
			if stream == 1 {
				r.stdout = append(r.stdout, line)
			} else {
				r.stderr = append(r.stderr, line)
			}
		})
		return r
	}
	key := startKey{network: NetworkHost}

	if r := run("echo $$; echo one > /one; hostname"); r.err != nil || !slices.Equal(r.stdout, []string{"1", "builder"}) {
		t.Fatalf("first step: %v", r)
	}
	waiting := waitIdle(t, s, key)
	r := run("echo $$; cat /one 2>/dev/null || echo fresh")
	if r.err != nil || !slices.Equal(r.stdout, []string{"1", "fresh"}) {
		t.Fatalf("step on the waiting child: %v", r)
	}
	if waiting.alive() {
		t.Error("the step did not run on the child that was waiting")
	}

	killed := waitIdle(t, s, key)
	syscall.Kill(killed.cmd.Process.Pid, syscall.SIGKILL)
	for killed.alive() {
		time.Sleep(time.Millisecond)
	}
	if r := run("echo ok"); r.err != nil || r.code != 0 || !slices.Equal(r.stdout, []string{"ok"}) {
		t.Fatalf("step after the waiting child was killed: %v", r)
	}

	last := waitIdle(t, s, key)
	s.Close()
	if last.alive() {
		t.Error("Close left a waiting child running")
	}
	if err := syscall.Kill(last.cmd.Process.Pid, 0); err != syscall.ESRCH {
		t.Errorf("the waiting child's process after Close: %v, want ESRCH (reaped)", err)
	}
	if r := run("true"); r.err != nil || r.code != 0 {
		t.Errorf("a closed Starter still runs steps, on a child of their own: %v", r)
	}
}

// TestDeadChildIsNotAStep: a child that died before it read its spec
// (killed while it waited) reports that, not an exit status as if the
// command had run and been killed. (Root.)
func TestDeadChildIsNotAStep(t *testing.T) {
	f := newFixture(t, "")
	spec := f.spec("true")
	if err := prepare(context.Background(), &spec); err != nil {
		t.Fatal(err)
	}
	c, err := startChild(spec.Network, nil)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
	code, err := c.run(context.Background(), spec, func(int, string) {})
	if !errors.Is(err, errChildGone) {
		t.Errorf("run on a dead child = %d, %v; want errChildGone", code, err)
	}
}
