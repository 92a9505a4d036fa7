package units

import "testing"

func TestLimit(t *testing.T) {
	cases := []struct {
		n    int64
		want string
	}{
		{0, "0 bytes"}, {1000, "1000 bytes"}, {1024, "1 KiB"}, {1536, "1536 bytes"},
		{1 << 20, "1 MiB"}, {3 << 19, "1536 KiB"}, {64 << 30, "64 GiB"}, {1<<30 + 1, "1073741825 bytes"},
	}
	for _, c := range cases {
		if got := Limit(c.n); got != c.want {
			t.Errorf("Limit(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
