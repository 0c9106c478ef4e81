package proxy

// Target resolution: what a request line, a Host header or a CONNECT names,
// read once into the call the gate judges and the upstream it goes to.

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/elevate-pam/elevate/audit"
)

// connectHost is the normalised host of a CONNECT target, which must be in
// authority form (host:port, RFC 9110 9.3.6) as it arrived on the request
// line; goproxy's hostport is what Go's parser made of it, which may drop a
// path.
func connectHost(requestURI, hostport string) (string, bool) {
	if requestURI == "" {
		requestURI = hostport
	}
	h, port, err := net.SplitHostPort(requestURI)
	if err != nil || port == "" || len(port) > 5 {
		return "", false
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", false
		}
	}
	return normalHost(h)
}

// forwardHost reports whether host is one of the upstreams' hosts.
func (p *Proxy) forwardHost(host string) bool {
	for _, rt := range p.routes {
		if rt.hosts[host] {
			return true
		}
	}
	return false
}

// requestTarget is the path and query of a call inside a tunnel exactly as
// they arrived on the request line: the origin form as it is, the path and
// query of an absolute form as absoluteTarget reads them. What is not a
// request line target falls back to the parsed URL.
func requestTarget(r *http.Request) string {
	uri := r.RequestURI
	switch {
	case uri == "":
		target := r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		return target
	case strings.HasPrefix(uri, "/"):
		return uri
	}
	if _, _, target, prob := absoluteTarget(uri); prob == nil {
		return target
	}
	return uri // not a path: refused by parsePath
}

// absoluteTarget reads an absolute URL (an absolute-form request target,
// or the URL given to POST /v1/check) the one way both read it: scheme
// and authority as Go's request-line parser (url.ParseRequestURI, which
// the HTTP server ran on the request line) reads them; the path and query
// exactly as written after the authority, never re-encoded. The authority
// ends where that parser ends it, at the first "/" or "?"; an empty path
// stays empty (parsePath refuses it); "#" is part of the target, since a
// request target has no fragment. Only http and https are accepted; a URL
// holding a space cannot be a request line's target and is refused too.
func absoluteTarget(uri string) (scheme, hostport, target string, prob *Problem) {
	u, err := url.ParseRequestURI(uri)
	if err != nil || strings.ContainsRune(uri, ' ') || (u.Scheme != "http" && u.Scheme != "https") {
		return "", "", "", NewProblem(http.StatusBadRequest, "bad-url", "the URL must be an absolute http or https URL")
	}
	rest := uri[len(u.Scheme)+1:]
	if authority, ok := strings.CutPrefix(rest, "//"); ok {
		rest = ""
		if i := strings.IndexAny(authority, "/?"); i >= 0 {
			rest = authority[i:]
		}
	}
	return u.Scheme, u.Host, rest, nil
}

// resolved is a call target turned into what the gate judges.
type resolved struct {
	call     Call
	route    *route
	rawQuery string
}

// resolve parses a request target once and picks its upstream. forward
// means the target came in absolute form (or CONNECT) and must name one of
// the upstreams' hosts. On failure it returns the audit record and the
// problem to refuse with.
func (p *Proxy) resolve(method, target, hostport string, forward bool) (resolved, audit.Record, *Problem) {
	rec := audit.Record{Method: method}
	host, ok := normalHost(hostport)
	if !ok {
		rec.Event = audit.EventBadRequest
		return resolved{}, rec, NewProblem(http.StatusBadRequest, "bad-host", "the Host is not a valid host name")
	}
	rec.Host = host
	if !canonicalMethod(method) {
		rec.Event = audit.EventBadRequest
		return resolved{}, rec, NewProblem(http.StatusBadRequest, "bad-method", "the method must be an upper-case token such as GET")
	}
	rawPath, rawQuery, _ := strings.Cut(target, "?")
	segs, err := parsePath(rawPath)
	if err != nil {
		rec.Event, rec.Path = audit.EventBadRequest, truncate(rawPath, 512)
		detail := "the path is ambiguous and was refused"
		var pe *pathError
		if errors.As(err, &pe) {
			detail += ": " + pe.reason
		}
		return resolved{}, rec, NewProblem(http.StatusBadRequest, "ambiguous-path", detail)
	}
	rec.Path = escapeSegments(segs)
	query, err := url.ParseQuery(rawQuery)
	if err != nil || strings.ContainsRune(rawQuery, '#') {
		rec.Event = audit.EventBadRequest
		return resolved{}, rec, NewProblem(http.StatusBadRequest, "bad-query", "the query string is malformed")
	}
	for k := range query {
		if methodOverrideParams[strings.ToLower(k)] {
			rec.Event = audit.EventBadRequest
			return resolved{}, rec, NewProblem(http.StatusBadRequest, "method-override",
				"method override parameters are refused: send the method itself")
		}
	}
	rt, rest, err := match(p.routes, host, segs, forward)
	if err != nil {
		if forward {
			rec.Event = audit.EventDenied
			return resolved{}, rec, NewProblem(http.StatusForbidden, "forbidden-target", "elevate does not proxy to "+host)
		}
		rec.Event = audit.EventNotFound
		return resolved{}, rec, NewProblem(http.StatusNotFound, "no-route", "no upstream is configured for this path")
	}
	rec.Upstream = rt.Name
	if kept, name := stripParams(rawQuery, rt.params); name != "" {
		if rt.refuseParams {
			rec.Event, rec.Reason = audit.EventBadRequest, "the query carries the upstream credential parameter "+name
			rec.Query = kept
			return resolved{}, rec, credentialInRequest(name, "query")
		}
		// Credentials in the query are removed before the call is judged,
		// so that what is judged is what is forwarded.
		rawQuery = kept
		for k := range query {
			if _, ok := credentialName(k, rt.params); ok {
				delete(query, k)
			}
		}
	}
	rec.Query = rawQuery
	return resolved{
		call:     Call{Method: method, Upstream: rt.Name, Host: host, Path: rest, Query: query, RawQuery: rawQuery},
		route:    rt,
		rawQuery: rawQuery,
	}, rec, nil
}

// Resolve turns a method and URL into the call the gate would judge, for
// POST /v1/check, with the proxy listener's own parser: the URL is read as
// an absolute-form request target is (absoluteTarget), and the method, path
// and query by resolve, as typed. A URL whose host is one of an upstream's
// hosts resolves as in forward mode (an https URL as a call inside an
// intercepted tunnel); any other URL names elevate's proxy listener and
// resolves by its path as in reverse mode.
func (p *Proxy) Resolve(method, rawURL string) (Call, *Problem) {
	_, hostport, target, prob := absoluteTarget(rawURL)
	if prob != nil {
		return Call{}, prob
	}
	h, ok := normalHost(hostport)
	res, _, prob := p.resolve(method, target, hostport, ok && p.forwardHost(h))
	if prob == nil && res.route.kube {
		// Judged as the proxy listener judges it, without headers.
		prob = kubeCall(&res.call, http.Header{})
		res.call.vetIdentity = res.route.vetSubject
	}
	return res.call, prob
}

// canonicalMethod reports whether m is a method as catalogs list them: an
// upper-case token. A server that reads methods without regard to case
// would otherwise run "delete" as DELETE while it was judged as neither.
func canonicalMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// methodOverrideParams are query parameters that frameworks read as the
// method (compared in lower case). A call carrying one is refused: the
// query is forwarded as sent, and the upstream might run another method
// than the one judged.
var methodOverrideParams = map[string]bool{
	"_method": true, "x-http-method-override": true, "x-http-method": true, "x-method-override": true,
}
