package registry

import (
	"net/http"
	"testing"
)

type recordScheme struct{ got []string }

func (r *recordScheme) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = append(r.got, req.URL.Scheme+"://"+req.URL.Host)
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// TestHTTPSOnly: go-containerregistry sends plain HTTP to RFC 1918
// addresses and to names starting "localhost:"; the transport upgrades
// every such request to HTTPS unless the host is loopback or listed
// insecure, so credentials never cross a network in the clear.
func TestHTTPSOnly(t *testing.T) {
	cases := []struct{ url, want string }{
		{"http://10.0.0.5:5000/v2/", "https://10.0.0.5:5000"},
		{"http://192.168.1.2/v2/", "https://192.168.1.2"},
		{"http://localhost.evil.example:5000/v2/", "https://localhost.evil.example:5000"},
		{"http://registry.example/v2/", "https://registry.example"},
		{"https://registry.example/v2/", "https://registry.example"},
		{"http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000"},
		{"http://LOCALHOST:5000/v2/", "http://LOCALHOST:5000"},
		{"http://[::1]:5000/v2/", "http://[::1]:5000"},
		{"http://insecure.example:5000/v2/", "http://insecure.example:5000"},
	}
	for _, c := range cases {
		rec := &recordScheme{}
		req, err := http.NewRequest(http.MethodGet, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (httpsOnly{rec, []string{"insecure.example:5000"}}).RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if len(rec.got) != 1 || rec.got[0] != c.want {
			t.Errorf("request to %s went to %v, want %s", c.url, rec.got, c.want)
		}
		if req.URL.Scheme+"://"+req.URL.Host != c.url[:len(c.url)-len("/v2/")] {
			t.Errorf("the caller's request was changed: %s", req.URL)
		}
	}
}
