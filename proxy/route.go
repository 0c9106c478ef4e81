package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
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
	// CAFile is a PEM bundle trusted for this upstream's TLS certificate.
	// Default: the system roots. Upstream TLS is always verified.
	CAFile string `yaml:"ca_file"`
	// Credential is what elevate presents to the upstream. The caller's own
	// credentials (Authorization, the credential header, CredentialParams)
	// are removed first. Optional.
	Credential *Credential `yaml:"credential"`
	// PassThrough lets the caller's own Authorization reach the upstream in
	// forward mode (where elevate's token travels in Proxy-Authorization).
	// Default false: callers' upstream credentials are removed.
	PassThrough bool `yaml:"pass_through"`
	// CredentialParams name the parameters that carry an upstream
	// credential (for example "api_key"). They are matched without regard
	// to case and after percent-decoding ("API-KEY", "Api-Key" and
	// "api%2Dkey" are all "api-key"), in the query and in form bodies
	// (application/x-www-form-urlencoded, or without a Content-Type) alike,
	// because upstreams read parameter names in any case. Optional.
	CredentialParams []string `yaml:"credential_params"`
	// CredentialParamsAction is what happens to a call that carries one of
	// CredentialParams: strip (the default) removes the parameter and
	// forwards the rest, judged without it; refuse answers 400
	// credential-in-request, audited, and forwards nothing.
	CredentialParamsAction string `yaml:"credential_params_action"`
	// AllowWebsocket lets websocket upgrades through after the handshake
	// request is judged. Default false. h2c upgrades are always refused.
	AllowWebsocket bool `yaml:"allow_websocket"`
	// MaxJudgedBody bounds, in bytes, the body of a call that the route
	// tables say to judge (body: json, form, jsonrpc or graphql): elevate
	// reads it whole before judging, and refuses a larger one with 413
	// body-too-large. Default: proxy.max_judged_body.
	MaxJudgedBody int64 `yaml:"max_judged_body"`
	// Type is what kind of API the upstream is: "http" (the default), any
	// HTTP API judged by its route tables, or "kubernetes", a Kubernetes
	// API server: calls are read as the API server reads them (package
	// kubernetes) into input.kubernetes, elevate authenticates with its
	// own Credential and impersonates the caller (see Kubernetes), and
	// refusals are Kubernetes Status objects.
	Type string `yaml:"type"`
	// Kubernetes configures a kubernetes upstream.
	Kubernetes KubernetesOptions `yaml:"kubernetes"`
}

// Upstream types.
const (
	TypeHTTP       = "http"
	TypeKubernetes = "kubernetes"
)

// KubernetesOptions configure how elevate impersonates callers to a
// Kubernetes API server.
type KubernetesOptions struct {
	// Groups are the caller's groups (from the token, after GroupMap)
	// that elevate passes on as Impersonate-Group; every other group is
	// dropped. Empty: the caller is impersonated without groups (the API
	// server still adds system:authenticated). system:masters and every
	// other system: group may never be listed.
	Groups []string `yaml:"groups"`
	// GroupMap renames a token group to a Kubernetes group before Groups
	// is applied (for example "ops" to "cluster-operators").
	GroupMap map[string]string `yaml:"group_map"`
	// UserPrefix comes before the caller's subject in Impersonate-User
	// (for example "elevate:"), so that RBAC bindings name elevate's
	// callers apart from the cluster's own users. Optional.
	UserPrefix string `yaml:"user_prefix"`
}

// Credential is an upstream credential held by elevate, never by callers.
type Credential struct {
	// Type is basic, bearer, header or jsonrpc-token. A jsonrpc-token is
	// a secret that a JSON-RPC API takes in the body, as the first param
	// of every call (aria2's --rpc-secret): elevate inserts Prefix and
	// the secret as the first param of each call of a body judged as
	// jsonrpc, and refuses a call whose params already hold a string
	// starting with Prefix (400 credential-in-request). Calls whose body
	// is not judged as jsonrpc carry no token.
	Type string `yaml:"type"`
	// Prefix comes before the secret in a jsonrpc-token. Default
	// "token:" (aria2's).
	Prefix string `yaml:"prefix"`
	// Username for basic.
	Username string `yaml:"username"`
	// Header names the header for type header (for example X-Api-Key).
	Header string `yaml:"header"`
	// ValueEnv names the environment variable holding the secret (the
	// password for basic), or
	ValueEnv string `yaml:"value_env"`
	// ValueFile names a file holding it (surrounding white space trimmed).
	ValueFile string `yaml:"value_file"`
}

// resolve reads the secret and returns the header to set, or for a
// jsonrpc-token the param to insert (name "").
func (c *Credential) resolve(key string) (name, value string, err error) {
	var secret string
	if c.Prefix != "" && c.Type != "jsonrpc-token" {
		return "", "", fmt.Errorf("%s.prefix: only for type jsonrpc-token", key)
	}
	switch {
	case c.ValueEnv != "" && c.ValueFile != "":
		return "", "", fmt.Errorf("%s: set value_env or value_file, not both", key)
	case c.ValueEnv != "":
		v, ok := os.LookupEnv(c.ValueEnv)
		if !ok || v == "" {
			return "", "", fmt.Errorf("%s.value_env: environment variable %s is empty or unset", key, c.ValueEnv)
		}
		secret = v
	case c.ValueFile != "":
		b, err := os.ReadFile(c.ValueFile)
		if err != nil {
			return "", "", fmt.Errorf("%s.value_file: %v", key, err)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return "", "", fmt.Errorf("%s.value_file: %s is empty", key, c.ValueFile)
		}
	default:
		return "", "", fmt.Errorf("%s: value_env or value_file is required", key)
	}
	if strings.ContainsAny(secret, "\r\n") {
		return "", "", fmt.Errorf("%s: the secret contains a line break", key)
	}
	switch c.Type {
	case "basic":
		if c.Username == "" {
			return "", "", fmt.Errorf("%s.username: required for basic", key)
		}
		return "Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+secret)), nil
	case "bearer":
		return "Authorization", "Bearer " + secret, nil
	case "header":
		if c.Header == "" || http.CanonicalHeaderKey(c.Header) == "Host" {
			return "", "", fmt.Errorf("%s.header: required for type header", key)
		}
		return http.CanonicalHeaderKey(c.Header), secret, nil
	case "jsonrpc-token":
		return "", c.prefix() + secret, nil
	}
	return "", "", fmt.Errorf("%s.type: must be basic, bearer, header or jsonrpc-token", key)
}

func (c *Credential) prefix() string {
	if c.Prefix == "" {
		return "token:"
	}
	return c.Prefix
}

// route is a validated Upstream.
type route struct {
	Upstream
	target    *url.URL
	origin    string   // scheme://host of the target, for Origin rewriting
	prefix    []string // decoded segments of Prefix
	base      []string // decoded segments of the target's path
	hosts     map[string]bool
	credName  string // header elevate sets; "" when none
	credValue string
	// rpcToken is the first param elevate inserts in every call of a
	// body judged as jsonrpc, rpcPrefix how it starts; "" when none.
	rpcToken, rpcPrefix string
	// maxJudged bounds a judged body (MaxJudgedBody or its default).
	maxJudged int64
	// params are CredentialParams in lower case; refuseParams is
	// CredentialParamsAction refuse.
	params       map[string]bool
	refuseParams bool
	// roots are trusted for the upstream's TLS certificate; nil means
	// the system roots.
	roots *x509.CertPool
	// kube is true for a kubernetes upstream; groups and groupMap are
	// its Kubernetes options, checked; kubePrefix is its Prefix as a raw
	// target starts with it ("/kubernetes/prod/"), "" without one.
	kube       bool
	groups     map[string]bool
	groupMap   map[string]string
	kubePrefix string
	// roundTripper sends through the route's own transport (newTransport);
	// New sets it and the engine takes it per call.
	roundTripper goproxy.RoundTripper
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
		r.origin = t.Scheme + "://" + t.Host
		if u.Credential != nil {
			if u.PassThrough {
				return nil, fmt.Errorf("%s: credential and pass_through exclude each other", key)
			}
			name, value, err := u.Credential.resolve(key + ".credential")
			if err != nil {
				return nil, err
			}
			if name == "" {
				r.rpcToken, r.rpcPrefix = value, u.Credential.prefix()
			} else {
				r.credName, r.credValue = name, value
			}
		}
		if err := r.checkType(key); err != nil {
			return nil, err
		}
		if u.MaxJudgedBody < 0 {
			return nil, fmt.Errorf("%s.max_judged_body: must not be negative", key)
		}
		r.maxJudged = u.MaxJudgedBody
		r.params = map[string]bool{}
		for j, p := range u.CredentialParams {
			if p == "" || strings.ContainsAny(p, "&=#? \t\r\n") {
				return nil, fmt.Errorf("%s.credential_params[%d]: %q is not a parameter name", key, j, p)
			}
			r.params[strings.ToLower(p)] = true
		}
		switch u.CredentialParamsAction {
		case "", "strip":
		case "refuse":
			r.refuseParams = true
		default:
			return nil, fmt.Errorf("%s.credential_params_action: %q must be strip or refuse", key, u.CredentialParamsAction)
		}
		if u.CAFile != "" {
			pemBytes, err := os.ReadFile(u.CAFile)
			if err != nil {
				return nil, fmt.Errorf("%s.ca_file: %v", key, err)
			}
			r.roots = x509.NewCertPool()
			if !r.roots.AppendCertsFromPEM(pemBytes) {
				return nil, fmt.Errorf("%s.ca_file: no PEM certificate in %s", key, u.CAFile)
			}
		}
		out = append(out, r)
	}
	// Longest prefix first so that /a/b/ wins over /a/.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].prefix) > len(out[j].prefix) })
	return out, nil
}

// checkType checks the upstream's Type and the options of its type.
func (r *route) checkType(key string) error {
	k := r.Kubernetes
	switch r.Type {
	case "", TypeHTTP:
		if len(k.Groups) > 0 || len(k.GroupMap) > 0 || k.UserPrefix != "" {
			return fmt.Errorf("%s.kubernetes: only for type kubernetes", key)
		}
		return nil
	case TypeKubernetes:
	default:
		return fmt.Errorf("%s.type: %q must be http or kubernetes", key, r.Type)
	}
	r.kube = true
	if r.Prefix != "" {
		r.kubePrefix = "/" + strings.Trim(r.Prefix, "/") + "/"
	}
	if r.PassThrough {
		return fmt.Errorf("%s.pass_through: a kubernetes upstream never passes callers' credentials", key)
	}
	if r.Credential == nil || r.Credential.Type == "jsonrpc-token" {
		return fmt.Errorf("%s.credential: a kubernetes upstream needs elevate's own credential (type bearer, a service-account token)", key)
	}
	if r.AllowWebsocket {
		return fmt.Errorf("%s.allow_websocket: a kubernetes upstream upgrades only exec, attach and portforward, by itself", key)
	}
	if len(r.CredentialParams) > 0 {
		return fmt.Errorf("%s.credential_params: not for a kubernetes upstream", key)
	}
	if strings.ContainsAny(k.UserPrefix, " \t\r\n") {
		return fmt.Errorf("%s.kubernetes.user_prefix: no white space", key)
	}
	if strings.HasPrefix(strings.ToLower(k.UserPrefix), "system:") {
		return fmt.Errorf("%s.kubernetes.user_prefix: %q would make every caller a Kubernetes system: user", key, k.UserPrefix)
	}
	r.groups = map[string]bool{}
	for i, g := range k.Groups {
		if err := kubeGroupAllowed(g); err != nil {
			return fmt.Errorf("%s.kubernetes.groups[%d]: %v", key, i, err)
		}
		r.groups[g] = true
	}
	r.groupMap = map[string]string{}
	for from, to := range k.GroupMap {
		if from == "" {
			return fmt.Errorf("%s.kubernetes.group_map: an empty group name", key)
		}
		if err := kubeGroupAllowed(to); err != nil {
			return fmt.Errorf("%s.kubernetes.group_map[%q]: %v", key, from, err)
		}
		r.groupMap[from] = to
	}
	return nil
}

// kubeGroupAllowed refuses a Kubernetes group elevate may never pass on:
// system:masters bypasses RBAC, and the other system: groups name the
// cluster's own components.
func kubeGroupAllowed(g string) error {
	switch {
	case strings.TrimSpace(g) != g || g == "":
		return fmt.Errorf("%q is not a group name", g)
	case strings.HasPrefix(strings.ToLower(g), "system:"):
		return fmt.Errorf("%q: system: groups (system:masters above all) are never impersonated", g)
	case strings.ContainsAny(g, "\r\n"):
		return fmt.Errorf("%q is not a group name", g)
	}
	return nil
}

// newTransport is the one definition of how elevate reaches an upstream:
// never through a proxy named by the environment, TLS 1.2 or later
// verified against roots (nil: the system roots), HTTP/1.1, and at most
// responseHeaderTimeout waiting for the headers of an answer.
func newTransport(roots *x509.CertPool, responseHeaderTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never chain to another proxy from the environment
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// normalHost lower-cases a host, drops the port and one trailing dot, and
// rejects anything that is not a plain DNS name (letters, digits, "-" and
// "." between non-empty labels) or IP literal.
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
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
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
