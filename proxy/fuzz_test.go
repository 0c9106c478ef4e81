// Fuzzing of the resolve step: method, request target and host in, the
// call the gate judges out. Threats proved mitigated: path confusion
// (dot segments, encoded separators, double encoding reaching the upstream
// as another path) and non-canonical forms that a second parse would read
// differently; see also TestRequestShapes in test/.
package proxy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fuzzProxy has a prefix route with a base path in its URL, a prefix
// route with credential parameters and a route by host alone.
func fuzzProxy(t testing.TB) *Proxy {
	t.Helper()
	routes, err := newRoutes([]Upstream{
		{Name: "exchange", URL: "http://127.0.0.1:1/base/", Prefix: "/exchange/", Hosts: []string{"exchange.elevate.test"}},
		{Name: "rabbitmq", URL: "http://127.0.0.1:2", Prefix: "/rmq/api/", Hosts: []string{"rabbitmq.elevate.test"}, CredentialParams: []string{"access_token"}},
		{Name: "caddy", URL: "http://127.0.0.1:3", Hosts: []string{"caddy.elevate.test"}},
	})
	require.NoError(t, err)
	return &Proxy{routes: routes}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []struct {
		method, target, host string
		forward              bool
	}{
		{"GET", "/exchange/mailboxes", "elevate.test", false},
		{"POST", "/exchange/mailboxes/alice/move-requests", "elevate.test", false},
		{"GET", "/rmq/api/vhosts/%2F", "elevate.test", false},
		{"DELETE", "/rmq/api/queues/%2f/q/contents?access_token=x&columns=a", "elevate.test", false},
		{"GET", "/rmq/api/overview?ACCESS%5FTOKEN=x&Access_Token=y&columns=a", "elevate.test", false},
		{"GET", "/config/apps", "caddy.elevate.test", false},
		{"GET", "/mailboxes", "exchange.elevate.test:80", true},
		{"GET", "/api/overview", "RABBITMQ.elevate.test.", true},
		{"GET", "/exchange/", "elevate.test", false},
		{"GET", "/exchange", "elevate.test", false},
		{"GET", "/exchange/mailboxes/..%2F..%2Fx", "elevate.test", false},
		{"GET", "/exchange/mailboxes/%2e%2e/x", "elevate.test", false},
		{"GET", "/exchange/mailboxes/%252e", "elevate.test", false},
		{"GET", "/exchange//mailboxes", "elevate.test", false},
		{"GET", "//exchange.elevate.test/x", "elevate.test", false},
		{"GET", "/exchange/a;x/%3Bb", "elevate.test", false},
		{"GET", "/exchange/%EF%BC%8F/%C0%AE", "elevate.test", false},
		{"GET", "/exchange/caf%C3%A9/%7E", "elevate.test", false},
		{"get", "/exchange/mailboxes", "elevate.test", false},
		{"POST", "/exchange/x?_method=DELETE", "elevate.test", false},
		{"GET", "/exchange/x?a=1#b", "elevate.test", false},
		{"GET", "*", "elevate.test", false},
		{"GET", "", "", false},
	} {
		f.Add(s.method, s.target, s.host, s.forward)
	}
	p := fuzzProxy(f)
	f.Fuzz(func(t *testing.T, method, target, host string, forward bool) {
		res, rec, prob := p.resolve(method, target, host, forward)
		if prob != nil {
			require.True(t, prob.Status >= 400 && prob.Status < 500, "a refusal is a 4xx: %d", prob.Status)
			require.NotEmpty(t, rec.Event, "every refusal is recorded with its event")
			require.Equal(t, method, rec.Method)
			return
		}
		call, rt := res.call, res.route
		require.NotNil(t, rt)
		require.Equal(t, rt.Name, call.Upstream)
		require.True(t, canonicalMethod(call.Method), "judged method %q", call.Method)
		h, ok := normalHost(call.Host)
		require.True(t, ok)
		require.Equal(t, h, call.Host, "the judged host is already normal")

		// The canonical form is stable: the judged segments re-encode to a
		// path that parses back to them, and resolving that canonical
		// target judges the same call.
		var prefix []string
		if !forward {
			prefix = rt.prefix
		}
		full := append(append([]string{}, prefix...), call.Path...)
		canonical := escapeSegments(full)
		if canonical == "" {
			canonical = "/"
		}
		if len(canonical) <= maxPathBytes {
			back, err := parsePath(canonical)
			require.NoError(t, err, "canonical path %q of %q", canonical, target)
			require.Equal(t, full, normalEmpty(back))
			again, _, prob := p.resolve(method, canonical+queryPart(res.rawQuery), host, forward)
			require.Nil(t, prob, "the canonical target %q is refused", canonical)
			require.Equal(t, rt.Name, again.route.Name)
			require.Equal(t, normalEmpty(call.Path), normalEmpty(again.call.Path))
			require.Equal(t, res.rawQuery, again.rawQuery)
		}

		// What is forwarded holds no dot segment and no empty segment but
		// a trailing one, in any encoding.
		fwd := forwardPath(rt, call.Path)
		require.True(t, strings.HasPrefix(fwd, "/"))
		require.NotContains(t, fwd, "//", "forwarded %q for %q", fwd, target)
		for _, piece := range strings.Split(fwd[1:], "/") {
			dec, err := url.PathUnescape(piece)
			require.NoError(t, err)
			require.False(t, isDotSegment(dec), "forwarded %q for %q", fwd, target)
			require.NotContains(t, dec, "\\")
		}
		for _, seg := range call.Path {
			require.False(t, isDotSegment(seg))
			require.NotContains(t, seg, "\x00")
			require.NotContains(t, seg, "?")
			require.NotContains(t, seg, "#")
		}
		for k := range call.Query {
			require.False(t, methodOverrideParams[strings.ToLower(k)])
		}
		forwarded, err := url.ParseQuery(res.rawQuery)
		require.NoError(t, err, "the forwarded query %q", res.rawQuery)
		for _, q := range []url.Values{call.Query, forwarded} {
			for k := range q {
				_, cred := credentialName(k, rt.params)
				require.False(t, cred, "a credential parameter %q is judged or forwarded", k)
			}
		}
	})
}

// normalEmpty treats a nil and an empty segment list alike.
func normalEmpty(s []string) []string {
	if len(s) == 0 {
		return []string{}
	}
	return s
}

func queryPart(raw string) string {
	if raw == "" {
		return ""
	}
	return "?" + raw
}
