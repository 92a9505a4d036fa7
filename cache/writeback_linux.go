//go:build linux && !arm

package cache

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to begin writing [off, off+n) of f to
// disk now, without waiting. PutLayer calls it as the layer grows so that
// the final fsync finds little left to write: on this machine's disk a
// 256 MiB fsync otherwise costs half a second after compression is done.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
	syscall.SyncFileRange(int(f.Fd()), off, n, syncFileRangeWrite)
}
