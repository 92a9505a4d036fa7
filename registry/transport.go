package registry

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"
)

// DefaultResponseTimeout bounds the wait for a registry's response
// headers once a request is sent. go-containerregistry's transport has no
// such bound, so a registry that stops answering hung a pull or a push
// for ever. It is generous because a registry may verify a large blob
// before it answers the request that commits it.
const DefaultResponseTimeout = 2 * time.Minute

// DefaultIdleTimeout bounds a body that stops arriving (see
// Options.IdleTimeout): the header bound does not cover a registry that
// answers and then sends nothing more.
const DefaultIdleTimeout = time.Minute

// newTransport is http.DefaultTransport with a bound on the response.
func newTransport(responseTimeout time.Duration) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = responseTimeout
	return t
}

// Retry-After bounds: a registry asking for longer than maxRetryAfter is
// not waited for (go-containerregistry's own backoff takes over), and at
// most retryAfterAttempts waits are made for one request.
const (
	maxRetryAfter      = 60 * time.Second
	retryAfterAttempts = 5
)

// retryAfter honours Retry-After on 429 and 503 answers, which
// go-containerregistry ignores (it backs off by its own clock, 1 s then
// 3 s, and gives up while the registry is still asking it to wait). A
// request is sent again only when its body can be made again (no body,
// or a GetBody) and it is not an upload PATCH (see replayable).
type retryAfter struct {
	next http.RoundTripper
	// sleep waits for d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

func (t retryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		if err != nil || attempt > retryAfterAttempts {
			return resp, err
		}
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
			return resp, nil
		}
		wait, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if !ok || wait > maxRetryAfter || !replayable(req) {
			return resp, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err := t.sleep(req.Context(), wait); err != nil {
			return nil, err
		}
		if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// replayable: no body, or one that GetBody makes again, and not a
// blob-upload PATCH, which appends to an upload session: sent twice into
// one session it would store the bytes twice. go-containerregistry
// retries an upload whole, in a new session.
func replayable(req *http.Request) bool {
	if req.Method == http.MethodPatch {
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// parseRetryAfter reads a Retry-After value: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
