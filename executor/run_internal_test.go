package executor

import "testing"

func TestRunHistory(t *testing.T) {
	str := func(s string) *string { return &s }
	argv := []string{"/bin/sh", "-c", "make"}
	tests := []struct {
		name string
		args []argValue
		env  []string
		want string
	}{
		{"no ARG in scope", nil, []string{"PATH=/bin"}, "/bin/sh -c make"},
		{"values, and an ARG without one", []argValue{{"V", str("1.2")}, {"EMPTY", nil}}, nil, "|2 V=1.2 EMPTY= /bin/sh -c make"},
		{"an ENV of the same name wins", []argValue{{"V", str("arg")}}, []string{"V=env"}, "|1 V=env /bin/sh -c make"},
	}
	for _, tt := range tests {
		st := &imageState{args: tt.args}
		st.cfg.Config.Env = tt.env
		if got := runHistory(argv, st); got != tt.want {
			t.Errorf("%s: runHistory = %q, want %q", tt.name, got, tt.want)
		}
	}
}
