package registry

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{"Thu, 03 Dec 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Thu, 03 Dec 2026 11:00:00 GMT", 0, true}, // in the past: now
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// countingRT answers every request with status and Retry-After: 0.
type countingRT struct {
	n      int
	status int
}

func (c *countingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n++
	return &http.Response{StatusCode: c.status, Header: http.Header{"Retry-After": {"0"}},
		Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

// TestRetryAfterReplays: a request without a body, or with one GetBody
// makes again, is sent again after Retry-After; an upload PATCH, which
// appends to its session, never is.
func TestRetryAfterReplays(t *testing.T) {
	for _, tc := range []struct {
		method string
		body   bool
		want   int // requests sent
	}{
		{http.MethodHead, false, retryAfterAttempts + 1},
		{http.MethodPut, true, retryAfterAttempts + 1},
		{http.MethodPatch, true, 1},
	} {
		rt := &countingRT{status: http.StatusTooManyRequests}
		var body io.Reader
		if tc.body {
			body = bytes.NewReader([]byte("data"))
		}
		req, _ := http.NewRequest(tc.method, "http://127.0.0.1:1/v2/x/blobs/uploads/1", body)
		tr := retryAfter{next: rt, sleep: func(context.Context, time.Duration) error { return nil }}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if rt.n != tc.want {
			t.Errorf("%s: sent %d times, want %d", tc.method, rt.n, tc.want)
		}
	}
}

func TestParseCacheConfigRejects(t *testing.T) {
	good := v1.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 10,
		Digest:      v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)},
		Annotations: map[string]string{annDiffID: "sha256:" + strings.Repeat("b", 64)}}
	cfg := func(layer int) []byte {
		return []byte(`{"recipe":"` + cache.KeyRecipe + `","entries":[{"key":"` + strings.Repeat("c", 64) + `","layer":` + strconv.Itoa(layer) + `}]}`)
	}
	if _, err := parseCacheConfig(cfg(0), []v1.Descriptor{good}); err != nil {
		t.Fatalf("a good cache config: %v", err)
	}
	for name, tc := range map[string]struct {
		raw    []byte
		layers func(d v1.Descriptor) v1.Descriptor
	}{
		"negative size":    {cfg(0), func(d v1.Descriptor) v1.Descriptor { d.Size = -1; return d }},
		"not a layer type": {cfg(0), func(d v1.Descriptor) v1.Descriptor { d.MediaType = "text/html"; return d }},
		"no diff ID":       {cfg(0), func(d v1.Descriptor) v1.Descriptor { d.Annotations = nil; return d }},
		"layer index past": {cfg(1), func(d v1.Descriptor) v1.Descriptor { return d }},
		"other recipe":     {[]byte(`{"recipe":"builder-key-v0","entries":[]}`), func(d v1.Descriptor) v1.Descriptor { return d }},
		"bad key":          {[]byte(`{"recipe":"` + cache.KeyRecipe + `","entries":[{"key":"../x","layer":-1}]}`), func(d v1.Descriptor) v1.Descriptor { return d }},
	} {
		if _, err := parseCacheConfig(tc.raw, []v1.Descriptor{tc.layers(good)}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
