package registry_test

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/builderdev/builder/registry"
)

// loopbackHost is the test's own idea of a loopback registry host
// ("host" or "host:port"): localhost in any case, or an address that
// netip calls loopback (IPv4-mapped IPv6 included).
func loopbackHost(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// FuzzParseReference: ParseReference never panics; what it parses reads
// back the same from its full name; plain HTTP goes to loopback hosts and
// to hosts listed as insecure, and only to them.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"alpine", "user/app:1", "127.0.0.1:5000/x", "localhost:5000/x:2", "[::1]:5000/x",
		"insecure.example:5000/x", "ghcr.io/o/x:1", "LOCALHOST:5000/x", "[::ffff:127.0.0.1]:5000/x",
		"127.0.0.1.nip.io/x", "localhost.example/x", "0.0.0.0:5000/x",
		"x@sha256:" + strings.Repeat("ab", 32), "a.b/c/d:e@sha256:" + strings.Repeat("0", 64),
	} {
		f.Add(s, "insecure.example:5000")
	}
	f.Fuzz(func(t *testing.T, ref, insecureList string) {
		insecure := strings.Split(insecureList, ",")
		r, err := registry.ParseReference(ref, insecure)
		if err != nil {
			return
		}
		host, scheme := r.Context().RegistryStr(), r.Context().Scheme()
		again, err := registry.ParseReference(r.Name(), insecure)
		if err != nil {
			t.Fatalf("ParseReference(%q) = %s, which does not parse again: %v", ref, r.Name(), err)
		}
		if again.Name() != r.Name() || again.Context().Scheme() != scheme {
			t.Errorf("ParseReference(%q) = %s (%s), read back as %s (%s)", ref, r.Name(), scheme, again.Name(), again.Context().Scheme())
		}
		loopback, listed := loopbackHost(host), slices.Contains(insecure, host)
		if plain := registry.PlainHTTP(host, insecure); plain != (loopback || listed) {
			t.Errorf("PlainHTTP(%q) = %v (loopback %v, listed %v)", host, plain, loopback, listed)
		}
		// go-containerregistry picks plain HTTP for RFC 1918 addresses
		// and "localhost:" prefixes on its own; httpsOnly upgrades those
		// requests, which TestHTTPSOnly checks.
		if scheme == "http" && !registry.PlainHTTP(host, insecure) {
			return
		}
		switch {
		case scheme == "http" && !loopback && !listed:
			t.Errorf("ParseReference(%q) uses plain HTTP for %s, neither loopback nor listed insecure", ref, host)
		case scheme != "http" && (loopback || listed):
			t.Errorf("ParseReference(%q) uses %s for %s (loopback %v, listed %v), want http", ref, scheme, host, loopback, listed)
		}
	})
}
