// Package units formats byte counts for messages. It is a leaf that
// parser, snapshot and registry share, so that a limit reads the same in
// every error ("larger than the limit of 64 GiB").
package units

import "fmt"

// Limit writes a byte count the way limits are usually given: in whole
// GiB, MiB or KiB when it is a multiple of one, in bytes otherwise.
func Limit(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
