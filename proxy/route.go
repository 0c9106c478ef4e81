package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
)

// Upstream is one admin API behind elevate.
type Upstream struct {
	// Name identifies the upstream to Rego (input.upstream) and in audit
	// records. Required; letters, digits, "-" and "_".
	Name string `yaml:"name"`
	// URL is where calls are forwarded: scheme, host, optional base path.
	// Required.
	URL string `yaml:"url"`
	// Prefix routes reverse-mode calls whose path starts with it
	// ("/exchange/"), whatever their Host; it is removed before the call is
	// judged and forwarded. Optional when Hosts is set.
	Prefix string `yaml:"prefix"`
	// Hosts names the hosts forward mode serves for this upstream; a route
	// without Prefix also takes reverse-mode calls whose Host is one of
	// them. Optional when Prefix is set.
	Hosts []string `yaml:"hosts"`
}

// route is a validated Upstream.
type route struct {
	Upstream
	target *url.URL
	prefix []string // decoded segments of Prefix
	base   []string // decoded segments of the target's path
	hosts  map[string]bool
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// newRoutes validates the upstreams; errors name the key.
func newRoutes(ups []Upstream) ([]*route, error) {
	seen := map[string]bool{}
	var out []*route
	for i, u := range ups {
		key := fmt.Sprintf("upstreams[%d]", i)
		if !validName(u.Name) {
			return nil, fmt.Errorf("%s.name: required, letters, digits, - and _ only", key)
		}
		if seen[u.Name] {
			return nil, fmt.Errorf("%s.name: %q is used twice", key, u.Name)
		}
		seen[u.Name] = true
		t, err := url.Parse(u.URL)
		if err != nil || (t.Scheme != "http" && t.Scheme != "https") || t.Host == "" || t.RawQuery != "" || t.Fragment != "" || t.User != nil {
			return nil, fmt.Errorf("%s.url: must be an http or https URL without user, query or fragment", key)
		}
		r := &route{Upstream: u, target: t, hosts: map[string]bool{}}
		if t.EscapedPath() != "" && t.EscapedPath() != "/" {
			r.base, err = parsePath(strings.TrimSuffix(t.EscapedPath(), "/"))
			if err != nil {
				return nil, fmt.Errorf("%s.url: %v", key, err)
			}
		}
		if u.Prefix != "" {
			p := strings.TrimSuffix(u.Prefix, "/")
			segs, err := parsePath(p)
			if err != nil || p == "" {
				return nil, fmt.Errorf("%s.prefix: must be a path such as /exchange/", key)
			}
			r.prefix = segs
		}
		for j, h := range u.Hosts {
			n, ok := normalHost(h)
			if !ok || strings.Contains(h, ":") {
				return nil, fmt.Errorf("%s.hosts[%d]: %q is not a host name", key, j, h)
			}
			r.hosts[n] = true
		}
		if len(r.prefix) == 0 && len(r.hosts) == 0 {
			return nil, fmt.Errorf("%s: set prefix, hosts or both", key)
		}
		out = append(out, r)
	}
	// Longest prefix first so that /a/b/ wins over /a/.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].prefix) > len(out[j].prefix) })
	return out, nil
}

// normalHost lower-cases a host, drops the port and one trailing dot, and
// rejects anything that is not a plain DNS name or IP literal.
func normalHost(hostport string) (string, bool) {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" || len(h) > 253 {
		return "", false
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.String(), true
	}
	for _, c := range h {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return "", false
		}
	}
	return h, true
}

var errNoRoute = errors.New("no upstream serves this call")

// match picks the upstream for a call and returns the segments after the
// prefix: longest prefix first, then routes by Host alone. forward is
// forward mode: the host must be one of the
// upstream's hosts and no prefix is removed.
func match(routes []*route, host string, segs []string, forward bool) (*route, []string, error) {
	for _, r := range routes {
		if forward {
			if r.hosts[host] {
				return r, segs, nil
			}
			continue
		}
		if len(r.prefix) == 0 {
			if r.hosts[host] {
				return r, segs, nil
			}
			continue
		}
		if hasPrefix(segs, r.prefix) {
			return r, segs[len(r.prefix):], nil
		}
	}
	return nil, nil, errNoRoute
}

func hasPrefix(segs, prefix []string) bool {
	if len(segs) < len(prefix) {
		return false
	}
	for i := range prefix {
		if segs[i] != prefix[i] {
			return false
		}
	}
	return true
}
