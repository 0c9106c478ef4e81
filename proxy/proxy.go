// Package proxy is elevate's front: it judges every call on the proxy
// listener and forwards only what the gate allows.
//
// One request, top to bottom: the goproxy engine hands the call to onRequest,
// which parses the path once into segments, picks the upstream, takes the
// caller's token, and asks the Gate (identity → live grants in memory → Rego
// → audit record). An allowed call is rebuilt from exactly what was judged
// and forwarded; a refused one answers RFC 9457 problem+json carrying the
// decision id that is also in the audit record. goproxy types stay inside
// this package.
package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/elevate-pam/elevate/audit"
)

// Config configures the proxy listener's handler.
type Config struct {
	// Upstreams are the admin APIs elevate fronts. At least one.
	Upstreams []Upstream `yaml:"upstreams"`
	// UpstreamTimeout bounds waiting for an upstream's response headers.
	// Default 60s.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// Logger receives operational messages. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	if len(c.Upstreams) == 0 {
		return errors.New("upstreams: at least one upstream is required")
	}
	if c.UpstreamTimeout < 0 {
		return errors.New("proxy.upstream_timeout: must not be negative")
	}
	_, err := newRoutes(c.Upstreams)
	return err
}

// Proxy is the http.Handler of the proxy listener.
type Proxy struct {
	gp     *goproxy.ProxyHttpServer
	gate   *Gate
	routes []*route
	tr     *http.Transport
	log    *slog.Logger
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// ctxKey marks a call that arrived in reverse mode, with its original target.
type ctxKey struct{}

type reverseCall struct {
	requestURI string
	host       string
}

// New builds the proxy around gate.
func New(cfg Config, gate *Gate) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if gate == nil {
		return nil, errors.New("proxy: a gate is required")
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	routes, _ := newRoutes(cfg.Upstreams)
	p := &Proxy{
		gate:   gate,
		routes: routes,
		log:    cfg.Logger,
		tracer: otel.Tracer("github.com/elevate-pam/elevate/proxy"),
		prop:   propagation.TraceContext{},
		tr: &http.Transport{
			Proxy:                 nil, // never chain to another proxy from the environment
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   128,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: cfg.UpstreamTimeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     false,
		},
	}
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	gp.Tr = p.tr
	gp.KeepAcceptEncoding = true
	gp.KeepDestinationHeaders = false
	gp.NonproxyHandler = http.HandlerFunc(p.reverse)
	gp.OnRequest().HandleConnectFunc(p.onConnect)
	gp.OnRequest().DoFunc(p.onRequest)
	gp.OnResponse().DoFunc(p.onResponse)
	p.gp = gp
	return p, nil
}

// ServeHTTP serves the proxy listener.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := p.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := p.tracer.Start(ctx, "elevate.proxy "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(r.Method),
			semconv.NetworkPeerAddress(remoteIP(r)),
		))
	defer span.End()
	sw := &statusWriter{ResponseWriter: w}
	p.gp.ServeHTTP(sw, r.WithContext(ctx))
	span.SetAttributes(semconv.HTTPResponseStatusCode(sw.status()))
	if sw.status() >= 500 {
		span.SetStatus(codes.Error, http.StatusText(sw.status()))
	}
}

// reverse turns an origin-form call into an absolute one for the engine,
// remembering the exact target it arrived with.
func (p *Proxy) reverse(w http.ResponseWriter, r *http.Request) {
	rc := reverseCall{requestURI: r.RequestURI, host: r.Host}
	r2 := r.Clone(context.WithValue(r.Context(), ctxKey{}, rc))
	// Any absolute URL will do: onRequest rebuilds the destination from the
	// route. The engine needs one to treat the call as proxied.
	r2.URL = &url.URL{Scheme: "http", Host: "elevate.invalid", Path: "/"}
	p.gp.ServeHTTP(w, r2)
}

// onConnect refuses CONNECT: forward-mode HTTPS interception is not
// configured, and elevate is never an open proxy.
func (p *Proxy) onConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	h, _ := normalHost(host)
	p.gate.Refuse(ctx.Req.Context(), audit.Record{Event: "denied", Method: http.MethodConnect, Host: h,
		Reason: "CONNECT to a host that is not intercepted"},
		NewProblem(http.StatusForbidden, "forbidden-target", "elevate does not tunnel to "+host))
	return goproxy.RejectConnect, host
}

// judged is what onRequest leaves for onResponse.
type judged struct {
	verdict Verdict
	route   *route
	start   time.Time
}

func (p *Proxy) onRequest(r *http.Request, gctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	ctx := r.Context()
	span := trace.SpanFromContext(ctx)
	rc, isReverse := ctx.Value(ctxKey{}).(reverseCall)

	var target, hostport string
	if isReverse {
		target, hostport = rc.requestURI, rc.host
	} else {
		// Absolute form: the request target names the host.
		target, hostport = r.URL.EscapedPath(), r.URL.Host
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		if r.URL.Scheme != "http" {
			return r, p.refuse(ctx, r, audit.Record{Event: "bad_request"}, NewProblem(http.StatusBadRequest, "bad-request", "only http:// targets may be proxied without CONNECT"))
		}
	}
	if prob := refuseShape(r); prob != nil {
		return r, p.refuse(ctx, r, audit.Record{Event: "bad_request", Method: r.Method}, prob)
	}
	res, rec, prob := p.resolve(r.Method, target, hostport, !isReverse)
	if prob != nil {
		return r, p.refuse(ctx, r, rec, prob)
	}
	rt, rest := res.route, res.call.Path
	span.SetAttributes(attribute.String("elevate.upstream", rt.Name), semconv.URLPath(escapeSegments(rest)))

	token, _ := bearer(r.Header.Get("Authorization"))
	if !isReverse {
		token, _ = bearer(r.Header.Get("Proxy-Authorization"))
	}
	call := res.call
	call.Token = token
	v := p.gate.Check(ctx, call)
	if !v.Allowed {
		extra := http.Header{}
		if v.Unauthenticated {
			if isReverse {
				extra.Set("WWW-Authenticate", `Bearer realm="elevate", error="invalid_token"`)
			} else {
				v.Problem.Status, v.Problem.Title = http.StatusProxyAuthRequired, http.StatusText(http.StatusProxyAuthRequired)
				extra.Set("Proxy-Authenticate", `Bearer realm="elevate"`)
			}
		}
		return r, v.Problem.response(r, extra)
	}

	out := p.outbound(ctx, r, rt, rest, res.rawQuery, call.Host, isReverse)
	gctx.UserData = &judged{verdict: v, route: rt, start: time.Now()}
	return out, nil
}

// outbound builds the forwarded request from exactly what was judged.
func (p *Proxy) outbound(ctx context.Context, r *http.Request, rt *route, rest []string, rawQuery, host string, isReverse bool) *http.Request {
	u := *rt.target
	full := make([]string, 0, len(rt.base)+len(rest))
	full = append(append(full, rt.base...), rest...)
	u.RawPath = escapeSegments(full)
	if u.RawPath == "" {
		u.RawPath = "/"
	}
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = rawQuery

	h := cleanHeaders(r.Header)
	if isReverse {
		h.Del("Authorization") // the caller's bearer token stays here
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	h.Set("X-Forwarded-For", remoteIP(r))
	h.Set("X-Forwarded-Host", host)
	h.Set("X-Forwarded-Proto", proto)
	p.prop.Inject(ctx, propagation.HeaderCarrier(h))

	out, _ := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	out.URL = &u
	out.Header = h
	out.Host = rt.target.Host
	out.Body = r.Body
	out.ContentLength = r.ContentLength
	if r.Body == nil || r.Body == http.NoBody {
		out.Body = http.NoBody
	}
	out.Close = false
	return out
}

func (p *Proxy) onResponse(resp *http.Response, gctx *goproxy.ProxyCtx) *http.Response {
	j, _ := gctx.UserData.(*judged)
	if resp == nil {
		// The upstream could not be reached or failed mid-way.
		r := gctx.Req
		span := trace.SpanFromContext(r.Context())
		if gctx.Error != nil {
			span.RecordError(gctx.Error)
		}
		p.log.Warn("upstream call failed", "err", gctx.Error)
		prob := NewProblem(http.StatusBadGateway, "upstream-unreachable", "the upstream did not answer")
		if j != nil {
			prob.DecisionID = j.verdict.DecisionID
		}
		return prob.response(r, nil)
	}
	stripHopHeaders(resp.Header)
	return resp
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
		rec.Event = "bad_request"
		return resolved{}, rec, NewProblem(http.StatusBadRequest, "bad-host", "the Host is not a valid host name")
	}
	rec.Host = host
	rawPath, rawQuery, _ := strings.Cut(target, "?")
	segs, err := parsePath(rawPath)
	if err != nil {
		rec.Event, rec.Path = "bad_request", truncate(rawPath, 512)
		detail := "the path is ambiguous and was refused"
		var pe *pathError
		if errors.As(err, &pe) {
			detail += ": " + pe.reason
		}
		return resolved{}, rec, NewProblem(http.StatusBadRequest, "ambiguous-path", detail)
	}
	rec.Path = escapeSegments(segs)
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		rec.Event = "bad_request"
		return resolved{}, rec, NewProblem(http.StatusBadRequest, "bad-query", "the query string is malformed")
	}
	rt, rest, err := match(p.routes, host, segs, forward)
	if err != nil {
		if forward {
			rec.Event = "denied"
			return resolved{}, rec, NewProblem(http.StatusForbidden, "forbidden-target", "elevate does not proxy to "+host)
		}
		rec.Event = "not_found"
		return resolved{}, rec, NewProblem(http.StatusNotFound, "no-route", "no upstream is configured for this path")
	}
	return resolved{
		call:     Call{Method: method, Upstream: rt.Name, Host: host, Path: rest, Query: query},
		route:    rt,
		rawQuery: rawQuery,
	}, rec, nil
}

// Resolve turns a method and URL into the call the gate would judge, for
// POST /v1/check. A URL whose host is one of an upstream's hosts resolves as
// in forward mode; any other URL resolves by its path as in reverse mode.
func (p *Proxy) Resolve(method, rawURL string) (Call, *Problem) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return Call{}, NewProblem(http.StatusBadRequest, "bad-url", "url must be an absolute http or https URL")
	}
	target := u.EscapedPath()
	if target == "" {
		target = "/"
	}
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	method = strings.ToUpper(method)
	if h, ok := normalHost(u.Host); ok {
		for _, rt := range p.routes {
			if rt.hosts[h] && len(rt.prefix) == 0 {
				res, _, prob := p.resolve(method, target, u.Host, true)
				return res.call, prob
			}
		}
	}
	res, _, prob := p.resolve(method, target, u.Host, false)
	return res.call, prob
}

func (p *Proxy) refuse(ctx context.Context, r *http.Request, rec audit.Record, prob *Problem) *http.Response {
	return p.gate.Refuse(ctx, rec, prob).response(r, nil)
}

// refuseShape rejects requests whose framing or protocol could let bytes past
// the gate that were not judged.
func refuseShape(r *http.Request) *Problem {
	if r.Header.Get("Upgrade") != "" || r.Header.Get("HTTP2-Settings") != "" {
		return NewProblem(http.StatusBadRequest, "upgrade-refused", "protocol upgrades are not allowed through elevate")
	}
	if len(r.Header.Values("Content-Length")) > 1 {
		return NewProblem(http.StatusBadRequest, "bad-framing", "duplicate Content-Length")
	}
	if len(r.TransferEncoding) > 0 && r.Header.Get("Content-Length") != "" {
		return NewProblem(http.StatusBadRequest, "bad-framing", "both Content-Length and Transfer-Encoding")
	}
	return nil
}

// hopHeaders are connection-scoped and never forwarded (RFC 9110 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// spoofable are headers a caller could use to lie about where a call came
// from or what it is; they are dropped and, where meaningful, set fresh.
var spoofable = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Path", "X-Real-Ip", "X-Original-Url",
	"X-Rewrite-Url", "X-Original-Uri", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
}

// cleanHeaders copies h without hop-by-hop headers, without every header the
// Connection header names, and without spoofable ones.
func cleanHeaders(h http.Header) http.Header {
	out := h.Clone()
	stripHopHeaders(out)
	for _, k := range spoofable {
		out.Del(k)
	}
	return out
}

func stripHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// bearer extracts the token of an "Authorization: Bearer x" value.
func bearer(v string) (string, bool) {
	const p = "bearer "
	if len(v) < len(p) || !strings.EqualFold(v[:len(p)], p) {
		return "", false
	}
	t := strings.TrimSpace(v[len(p):])
	return t, t != ""
}

func remoteIP(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes through to the connection.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets the engine take over CONNECT tunnels.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
