package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/builderdev/builder/internal/units"
)

// DefaultMaxLayerSize caps what one layer or ADD archive may unpack to
// when no other limit is set: generous, since real layers of many GiB
// exist, but finite, so that a small compressed blob cannot fill the disk.
const DefaultMaxLayerSize int64 = 64 << 30

// SizeLimitError is returned when a layer or archive is larger than the
// limit: its uncompressed stream, or the files it makes (a sparse entry
// may claim far more than it holds).
type SizeLimitError struct {
	Limit int64
}

func (e *SizeLimitError) Error() string {
	return fmt.Sprintf("layer is larger than the limit of %s uncompressed (raise it with BUILDER_MAX_LAYER_SIZE if the layer is genuine)", units.Limit(e.Limit))
}

// effectiveLimit turns an option value into a limit: 0 is the default,
// a negative value means none.
func effectiveLimit(n int64) int64 {
	if n == 0 {
		return DefaultMaxLayerSize
	}
	return n
}

// layerStream is the uncompressed stream of a layer or archive as the
// extractor reads it: every byte counts against the limit, and is hashed
// when the stream has a diff ID to match.
type layerStream struct {
	r     io.Reader
	limit int64 // < 0: none
	n     int64
	h     hash.Hash // nil: not hashed
}

func newLayerStream(r io.Reader, limit int64, hashed bool) *layerStream {
	s := &layerStream{r: r, limit: effectiveLimit(limit)}
	if hashed {
		s.h = sha256.New()
	}
	return s
}

func (s *layerStream) Read(p []byte) (int, error) {
	if s.limit >= 0 && s.n > s.limit {
		return 0, &SizeLimitError{Limit: s.limit}
	}
	if s.limit >= 0 && int64(len(p)) > s.limit-s.n+1 {
		// Read at most one byte past the limit: enough to know it is
		// exceeded, without passing more on.
		p = p[:s.limit-s.n+1]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.limit >= 0 && s.n > s.limit {
		return 0, &SizeLimitError{Limit: s.limit}
	}
	if s.h != nil {
		s.h.Write(p[:n])
	}
	return n, err
}

// drain reads the rest of the stream: whatever follows the tar's end
// (padding, or bytes appended to it) is part of the layer and of its
// diff ID too.
func (s *layerStream) drain(ctx context.Context) error {
	buf := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := s.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// sum is the hex sha256 of what was read.
func (s *layerStream) sum() string { return hex.EncodeToString(s.h.Sum(nil)) }
