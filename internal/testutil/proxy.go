package testutil

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what the proxy does to one request instead of forwarding it
// plainly. The zero Fault forwards.
type Fault struct {
	// Status, with Upstream false, answers at once with this status and
	// Header, and the registry never sees the request.
	Status int
	Header http.Header
	// Upstream forwards the request, lets the registry act on it, then
	// answers Status instead of the registry's answer: a commit that
	// failed after the registry stored the blob.
	Upstream bool
	// ResetAfter, if > 0, reads that many bytes of the request body and
	// resets the connection.
	ResetAfter int64
	// Stall holds the request this long (or until the client gives up)
	// before forwarding it.
	Stall time.Duration
	// StallBodyAfter, if > 0, forwards the request and sends the
	// response's headers and that many bytes of its body, then nothing
	// more until the client gives up: a registry that stops mid-blob.
	StallBodyAfter int64
}

// Proxy is a loopback HTTP proxy in front of a registry that counts the
// bytes each way and injects faults.
type Proxy struct {
	Addr string // 127.0.0.1:PORT

	sent, received atomic.Int64
	mu             sync.Mutex
	fault          func(r *http.Request) Fault
	log            []string
	rp             *httputil.ReverseProxy
	srv            *http.Server
	target         string
}

// StartProxy starts a proxy to the registry at target (host:port), and
// stops it when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewProxy starts a proxy to target; Close stops it. The registry builds
// upload locations from the Host header, which the proxy passes on, so
// they keep pointing at the proxy.
func NewProxy(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: l.Addr().String(), target: target}
	p.rp = httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	// A client that gives up (a fault test) is not news.
	p.rp.ErrorLog = log.New(io.Discard, "", 0) //nolint:forbidigo // discards: the proxy never prints
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(l)
	return p, nil
}

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.Close() }

// SetFault installs f, called for every request; nil removes it.
func (p *Proxy) SetFault(f func(r *http.Request) Fault) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

// Sent is the request-body bytes forwarded to the registry so far.
func (p *Proxy) Sent() int64 { return p.sent.Load() }

// Received is the response-body bytes returned to clients so far.
func (p *Proxy) Received() int64 { return p.received.Load() }

// Reset zeroes the byte counters and the log.
func (p *Proxy) Reset() {
	p.sent.Store(0)
	p.received.Store(0)
	p.mu.Lock()
	p.log = nil
	p.mu.Unlock()
}

// Log is every request seen, as "METHOD PATH".
func (p *Proxy) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.log = append(p.log, r.Method+" "+r.URL.Path)
	fn := p.fault
	p.mu.Unlock()
	var f Fault
	if fn != nil {
		f = fn(r)
	}
	if f.Stall > 0 {
		select {
		case <-time.After(f.Stall):
		case <-r.Context().Done():
			return
		}
	}
	if f.StallBodyAfter > 0 {
		p.stallBody(w, r, f.StallBodyAfter)
		return
	}
	if f.ResetAfter > 0 {
		io.CopyN(io.Discard, r.Body, f.ResetAfter)
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // close with RST
				}
				c.Close()
			}
		}
		return
	}
	if f.Status != 0 && !f.Upstream {
		for k, v := range f.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(f.Status)
		return
	}
	if r.Body != nil {
		r.Body = &countReader{r: r.Body, n: &p.sent}
	}
	if f.Status != 0 {
		rec := &discardWriter{header: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		for k, v := range f.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(f.Status)
		return
	}
	p.rp.ServeHTTP(&countWriter{ResponseWriter: w, n: &p.received}, r)
}

type countReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countReader) Close() error { return c.r.Close() }

type countWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func (p *Proxy) stallBody(w http.ResponseWriter, r *http.Request, n int64) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.target+r.URL.RequestURI(), nil)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.CopyN(w, resp.Body, n)
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	<-r.Context().Done()
}
