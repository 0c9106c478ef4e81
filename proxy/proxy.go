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
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	// Upstreams are the admin APIs elevate fronts. At least one. In
	// elevate's configuration file they are the top-level key upstreams,
	// the other keys the proxy section.
	Upstreams []Upstream `yaml:"-"`
	// UpstreamTimeout bounds waiting for an upstream's response headers.
	// Default 60s.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// CA signs the leaf certificates of intercepted HTTPS in forward mode.
	// Without it, CONNECT is refused for every host.
	CA *tls.Certificate `yaml:"-"`
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
	mitm   func(host string, ctx *goproxy.ProxyCtx) (*tls.Config, error)
	log    *slog.Logger
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// tunnel is an intercepted CONNECT: every request inside it must be for
// host, and is judged with the token the CONNECT carried unless it brings
// its own.
type tunnel struct {
	host  string
	token string
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
	for _, rt := range routes {
		rt.transport.ResponseHeaderTimeout = cfg.UpstreamTimeout
		tr := rt.transport
		rt.roundTripper = goproxy.RoundTripperFunc(func(req *http.Request, gctx *goproxy.ProxyCtx) (*http.Response, error) {
			return p.roundTrip(tr, req, gctx)
		})
	}
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	gp.Tr = p.tr
	gp.KeepAcceptEncoding = true
	gp.KeepDestinationHeaders = false
	gp.NonproxyHandler = http.HandlerFunc(p.reverse)
	if cfg.CA != nil {
		gp.CertStore = &certCache{}
		p.mitm = goproxy.TLSConfigFromCA(cfg.CA)
	}
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
		trace.WithAttributes(serverAttrs(r)...))
	defer span.End()
	sw := &statusWriter{ResponseWriter: w}
	p.gp.ServeHTTP(sw, r.WithContext(ctx))
	span.SetAttributes(semconv.HTTPResponseStatusCode(sw.status()))
	if sw.status() >= 500 {
		span.SetStatus(codes.Error, http.StatusText(sw.status()))
	}
}

// serverAttrs are the HTTP semantic-convention attributes of a call's
// server span known before it is judged. Headers that may carry secrets
// are never read into a span.
func serverAttrs(r *http.Request) []attribute.KeyValue {
	scheme := "http"
	if r.TLS != nil || r.URL.Scheme == "https" {
		scheme = "https"
	}
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.NetworkPeerAddress(remoteIP(r)),
		semconv.URLScheme(scheme),
		semconv.NetworkProtocolVersion(strings.TrimPrefix(r.Proto, "HTTP/")),
	}
	if h, ok := normalHost(r.Host); ok {
		attrs = append(attrs, semconv.ServerAddress(h))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(truncate(ua, 256)))
	}
	return attrs
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

// onConnect intercepts CONNECT to the hosts of configured upstreams, after
// checking the caller's token; every other CONNECT is refused and audited,
// so elevate is never an open proxy.
func (p *Proxy) onConnect(hostport string, gctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := gctx.Req
	ctx := r.Context()
	host, ok := connectHost(r.RequestURI, hostport)
	rec := audit.Record{Event: audit.EventDenied, Method: http.MethodConnect, Host: host}
	reject := func(prob *Problem, extra http.Header) (*goproxy.ConnectAction, string) {
		gctx.Resp = prob.response(r, extra)
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, hostport
	}
	if !ok {
		rec.Event = audit.EventBadRequest
		return reject(p.gate.Refuse(ctx, rec, NewProblem(http.StatusBadRequest, "bad-host", "the CONNECT target is not a valid host")), nil)
	}
	if p.mitm == nil || !p.forwardHost(host) {
		rec.Reason = "CONNECT to a host that is not configured"
		return reject(p.gate.Refuse(ctx, rec, NewProblem(http.StatusForbidden, "forbidden-target", "elevate does not tunnel to "+host)), nil)
	}
	token, _ := credentialToken(r.Header.Get("Proxy-Authorization"))
	if _, err := p.gate.verify(ctx, token); err != nil {
		rec.Event, rec.Reason = audit.EventUnauthenticated, "CONNECT without a valid token"
		prob := p.gate.Refuse(ctx, rec, NewProblem(http.StatusProxyAuthRequired, "unauthenticated",
			"a valid elevate token is required in Proxy-Authorization (Bearer, or Basic with the token as password)"))
		return reject(prob, http.Header{"Proxy-Authenticate": {`Bearer realm="elevate"`, `Basic realm="elevate"`}})
	}
	gctx.UserData = &tunnel{host: host, token: token}
	return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: p.mitm}, hostport
}

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

// judged is what onRequest leaves for onResponse.
type judged struct {
	verdict Verdict
	call    Call // as judged, without its token
	route   *route
	start   time.Time
	// span is the server span of a call inside an intercepted tunnel,
	// which ServeHTTP does not see; it ends with the call.
	span    trace.Span
	endOnce sync.Once
}

// end ends the server span of a call inside a tunnel, once.
func (j *judged) end(status int) {
	if j == nil || j.span == nil {
		return
	}
	j.endOnce.Do(func() {
		if status != 0 {
			j.span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
		if status >= 500 {
			j.span.SetStatus(codes.Error, http.StatusText(status))
		}
		j.span.End()
	})
}

func (p *Proxy) onRequest(r *http.Request, gctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	ctx := r.Context()
	rc, isReverse := ctx.Value(ctxKey{}).(reverseCall)
	tn, inTunnel := gctx.UserData.(*tunnel)
	j := &judged{start: time.Now()}
	if inTunnel {
		// A call read from an intercepted tunnel: ServeHTTP saw only the
		// CONNECT, so the call gets its own server span here.
		ctx = p.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
		ctx, j.span = p.tracer.Start(ctx, "elevate.proxy "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(serverAttrs(r)...))
		r = r.WithContext(ctx)
	}
	gctx.UserData = j
	span := trace.SpanFromContext(ctx)

	var target, hostport string
	switch {
	case isReverse:
		target, hostport = rc.requestURI, rc.host
	case !inTunnel:
		// Absolute form: read as POST /v1/check reads its URL. The path is
		// judged as it arrived on the request line, never as re-encoded by
		// a parser.
		uri := r.RequestURI
		if uri == "" {
			uri = r.URL.String()
		}
		scheme, hp, t, prob := absoluteTarget(uri)
		if prob == nil && scheme != "http" {
			prob = NewProblem(http.StatusBadRequest, "bad-request", "only http:// targets may be proxied without CONNECT")
		}
		if prob != nil {
			return r, p.refuse(ctx, r, audit.Record{Event: audit.EventBadRequest, Method: r.Method}, prob)
		}
		target, hostport = t, hp
	default:
		// Inside a tunnel: origin form (which goproxy made absolute from
		// the Host header), or absolute form. The Host header names the
		// host, and it must be a plain host: goproxy builds the URL by
		// pasting it before the path.
		target, hostport = requestTarget(r), r.URL.Host
		if r.Host != "" {
			hostport = r.Host
		}
		h, ok := normalHost(hostport)
		if !ok {
			return r, p.refuse(ctx, r, audit.Record{Event: audit.EventBadRequest, Method: r.Method},
				NewProblem(http.StatusBadRequest, "bad-host", "the Host is not a valid host name"))
		}
		if h != tn.host {
			return r, p.refuse(ctx, r, audit.Record{Event: audit.EventDenied, Method: r.Method, Host: h},
				NewProblem(http.StatusMisdirectedRequest, "misdirected", "the request's host is not the host of the tunnel"))
		}
	}
	if prob := refuseShape(r, nil); prob != nil {
		return r, p.refuse(ctx, r, audit.Record{Event: audit.EventBadRequest, Method: r.Method}, prob)
	}
	res, rec, prob := p.resolve(r.Method, target, hostport, !isReverse)
	if prob != nil {
		return r, p.refuse(ctx, r, rec, prob)
	}
	rt, rest := res.route, res.call.Path
	if prob := refuseShape(r, rt); prob != nil {
		rec.Event = audit.EventBadRequest
		return r, p.refuse(ctx, r, rec, prob)
	}
	body, prob, why := formBody(r, rt)
	if prob != nil {
		rec.Event, rec.Reason = audit.EventBadRequest, why
		return r, p.refuse(ctx, r, rec, prob)
	}
	span.SetAttributes(semconv.URLPath(escapeSegments(rest))) // the gate adds elevate.upstream

	var token string
	switch {
	case isReverse:
		token, _ = credentialToken(r.Header.Get("Authorization"))
	case r.Header.Get("Proxy-Authorization") != "":
		token, _ = credentialToken(r.Header.Get("Proxy-Authorization"))
	case inTunnel:
		token = tn.token
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
				extra["Proxy-Authenticate"] = []string{`Bearer realm="elevate"`, `Basic realm="elevate"`}
			}
		}
		return r, v.Problem.response(r, extra)
	}

	out := p.outbound(ctx, r, rt, rest, res.rawQuery, body, call.Host, isReverse, inTunnel)
	call.Token = ""
	j.verdict, j.route, j.call = v, rt, call
	gctx.RoundTripper = rt.roundTripper
	return out, nil
}

// outbound builds the forwarded request from exactly what was judged: the
// upstream's own URL, Host and Origin, the caller's credentials removed and
// the upstream credential, if any, set. body, when not nil, is the form
// body read by formBody, forwarded in place of the caller's.
func (p *Proxy) outbound(ctx context.Context, r *http.Request, rt *route, rest []string, rawQuery string, body []byte, host string, isReverse, inTunnel bool) *http.Request {
	u := *rt.target
	u.RawPath = forwardPath(rt, rest)
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = rawQuery

	h := cleanHeaders(r.Header)
	if isReverse || !rt.PassThrough {
		// In reverse mode Authorization carries elevate's token; otherwise
		// it is the caller's own upstream credential.
		h.Del("Authorization")
	}
	if !rt.PassThrough {
		h.Del("Cookie")
		if rt.Credential != nil && rt.Credential.Type == "header" {
			delHeader(h, rt.credName)
		}
	}
	if rt.credName != "" {
		h.Set(rt.credName, rt.credValue)
	}
	if rt.AllowWebsocket && strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket") {
		// refuseShape let this upgrade through for this route; the
		// handshake itself was judged like any call.
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
	}
	if h.Get("Origin") != "" {
		// Upstreams that check Origin (Caddy's admin API) see their own.
		h.Set("Origin", rt.origin)
	}
	proto := "http"
	if r.TLS != nil || inTunnel && r.URL.Scheme == "https" {
		proto = "https"
	}
	h.Set("X-Forwarded-For", remoteIP(r))
	h.Set("X-Forwarded-Host", host)
	h.Set("X-Forwarded-Proto", proto)

	out, _ := http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	out.URL = &u
	out.Header = h
	out.Host = rt.target.Host
	out.Body = r.Body
	out.ContentLength = r.ContentLength
	switch {
	case body != nil:
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		if len(body) == 0 {
			out.Body = http.NoBody
		}
	case r.Body == nil || r.Body == http.NoBody:
		out.Body = http.NoBody
	}
	out.Close = false
	return out
}

// forwardPath is the escaped path an allowed call is forwarded to: the
// upstream URL's own path, then the judged segments after the prefix, in
// the one canonical encoding.
func forwardPath(rt *route, rest []string) string {
	full := make([]string, 0, len(rt.base)+len(rest))
	full = append(append(full, rt.base...), rest...)
	if p := escapeSegments(full); p != "" {
		return p
	}
	return "/"
}

func (p *Proxy) onResponse(resp *http.Response, gctx *goproxy.ProxyCtx) *http.Response {
	j, _ := gctx.UserData.(*judged)
	if j != nil && j.route == nil && resp != nil {
		// elevate's own answer (a refusal): the call ends here. A
		// forwarded call ends with its response body (see roundTrip).
		defer j.end(resp.StatusCode)
	}
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
		resp = prob.response(r, nil)
		return resp
	}
	if j != nil && j.route != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		// An upstream's answer; elevate's own refusals keep their
		// challenge headers.
		stripHopHeaders(resp.Header)
		// The caller can quote the decision, as with a refusal.
		resp.Header.Set("Elevate-Decision-Id", j.verdict.DecisionID)
	}
	if len(gctx.Req.TransferEncoding) > 0 && resp.StatusCode != http.StatusSwitchingProtocols {
		// A chunked request may also have carried a Content-Length, which
		// the HTTP server drops without telling; RFC 9112 6.3 then asks
		// for the connection to be closed after the response, so that no
		// byte of a disputed body can be read as the next request.
		resp.Header.Set("Connection", "close")
	}
	return resp
}

// roundTrip forwards an allowed call to its upstream inside a client span
// whose context travels to the upstream as traceparent, and arranges for
// the call's outcome record once the response body has been relayed.
func (p *Proxy) roundTrip(tr http.RoundTripper, req *http.Request, gctx *goproxy.ProxyCtx) (*http.Response, error) {
	j, _ := gctx.UserData.(*judged)
	attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(req.Method), semconv.ServerAddress(req.URL.Hostname()),
		semconv.URLPath(req.URL.EscapedPath()), semconv.URLScheme(req.URL.Scheme)}
	if port, err := strconv.Atoi(req.URL.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	ctx, span := p.tracer.Start(req.Context(), "elevate.upstream "+req.Method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	p.prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	start := time.Now()
	resp, err := tr.RoundTrip(req.WithContext(ctx))
	if j != nil && j.route != nil {
		p.gate.observeUpstream(ctx, j.route.Name, time.Since(start))
	}
	done := func(status int, n int64, reason string) {
		span.End()
		if j == nil || j.route == nil {
			return
		}
		p.gate.Outcome(ctx, j.verdict, j.call, Outcome{Status: status, Bytes: n, Duration: time.Since(j.start), Reason: reason})
		j.end(status)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "the upstream did not answer")
		done(http.StatusBadGateway, 0, "the upstream did not answer")
		return nil, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil || resp.Body == http.NoBody {
		// An upgraded connection's body is the connection itself: the
		// outcome is the switch.
		done(resp.StatusCode, 0, "")
		return resp, nil
	}
	resp.Body = &countingBody{rc: resp.Body, done: func(n int64, reason string) { done(resp.StatusCode, n, reason) }}
	return resp, nil
}

// countingBody counts the bytes of a response body as they are relayed and
// reports once, at its end or when it is closed.
type countingBody struct {
	rc   io.ReadCloser
	n    int64
	once sync.Once
	done func(n int64, reason string)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		b.finish("")
	case err != nil:
		b.finish("the upstream's response was cut short")
	}
	return n, err
}

func (b *countingBody) Close() error {
	err := b.rc.Close()
	b.finish("the response was not relayed in full")
	return err
}

func (b *countingBody) finish(reason string) {
	b.once.Do(func() { b.done(b.n, reason) })
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
	return resolved{
		call:     Call{Method: method, Upstream: rt.Name, Host: host, Path: rest, Query: query},
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

func (p *Proxy) refuse(ctx context.Context, r *http.Request, rec audit.Record, prob *Problem) *http.Response {
	return p.gate.Refuse(ctx, rec, prob).response(r, nil)
}

// refuseShape rejects requests whose framing or protocol could let bytes past
// the gate that were not judged. With rt nil it applies the rules for every
// call; with the call's route, websocket upgrades pass where the route
// allows them.
func refuseShape(r *http.Request, rt *route) *Problem {
	if up := r.Header.Get("Upgrade"); up != "" || r.Header.Get("HTTP2-Settings") != "" {
		websocket := strings.EqualFold(strings.TrimSpace(up), "websocket") && r.Header.Get("HTTP2-Settings") == ""
		if !websocket || (rt != nil && !rt.AllowWebsocket) {
			return NewProblem(http.StatusBadRequest, "upgrade-refused", "protocol upgrades are not allowed through elevate for this upstream")
		}
	}
	if headerBytes(r.Header) > MaxHeaderBytes {
		return NewProblem(http.StatusRequestHeaderFieldsTooLarge, "headers-too-large",
			fmt.Sprintf("the request headers exceed %d bytes", MaxHeaderBytes))
	}
	if len(r.Header.Values("Content-Length")) > 1 {
		return NewProblem(http.StatusBadRequest, "bad-framing", "duplicate Content-Length")
	}
	if len(r.TransferEncoding) > 0 && r.Header.Get("Content-Length") != "" {
		return NewProblem(http.StatusBadRequest, "bad-framing", "both Content-Length and Transfer-Encoding")
	}
	return nil
}

// MaxHeaderBytes bounds the request headers elevate accepts, on the
// listener and inside intercepted tunnels alike.
const MaxHeaderBytes = 64 << 10

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// credentialName reports whether the parameter name k is one of names
// (lower case), and which: compared with Unicode case folding (so that
// "API-KEY", "Api-Key" and Java's equalsIgnoreCase reading of "ſ" as "s"
// all match), and again after each further percent-decoding, for upstreams
// that decode twice.
func credentialName(k string, names map[string]bool) (string, bool) {
	for range 3 {
		if l := strings.ToLower(k); names[l] {
			return l, true
		}
		for n := range names {
			if strings.EqualFold(k, n) {
				return n, true
			}
		}
		d := lenientUnescape(k)
		if d == k {
			break
		}
		k = d
	}
	return "", false
}

// lenientUnescape decodes a query or form name as the most lenient
// servers do: "+" is a space, valid escapes are decoded, invalid ones are
// kept as they are.
func lenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// credentialInRequest is the refusal of a call that carries an upstream
// credential parameter where the route says refuse.
func credentialInRequest(name, where string) *Problem {
	return NewProblem(http.StatusBadRequest, "credential-in-request",
		"the "+where+" carries the upstream credential parameter "+name+
			"; elevate presents the upstream's credential itself: send the call without it")
}

// stripParams removes from a raw query or form body every "&"-separated
// pair whose name is one of names (see credentialName), keeping every
// other pair exactly as sent. A pair is also removed when a ";"-separated
// part of it names one, for servers that split on ";" too. found is the
// first name removed.
func stripParams(raw string, names map[string]bool) (kept, found string) {
	if raw == "" || len(names) == 0 {
		return raw, ""
	}
	var out []string
	for _, pair := range strings.Split(raw, "&") {
		if name, ok := credentialPair(pair, names); ok {
			if found == "" {
				found = name
			}
			continue
		}
		out = append(out, pair)
	}
	if found == "" {
		return raw, ""
	}
	return strings.Join(out, "&"), found
}

func credentialPair(pair string, names map[string]bool) (string, bool) {
	for _, part := range strings.Split(pair, ";") {
		k, _, _ := strings.Cut(part, "=")
		if name, ok := credentialName(lenientUnescape(k), names); ok {
			return name, true
		}
	}
	return "", false
}

// maxFormBytes bounds a form body read to find credential parameters:
// forms of parameters are small, and anything else should say what it is.
const maxFormBytes = 1 << 20

// formBody applies a route's credential parameters to a request body that
// its upstream may read as form parameters: one typed
// application/x-www-form-urlencoded, or one without a Content-Type (Rack
// reads those as forms). Such a body is read whole (at most maxFormBytes)
// and returned to forward in place of r.Body, without the credential
// parameters, or the call is refused. nil means forward r.Body as it is.
func formBody(r *http.Request, rt *route) ([]byte, *Problem, string) {
	if len(rt.params) == 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || !formType(r.Header.Values("Content-Type")) {
		return nil, nil, ""
	}
	if ce := r.Header.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return nil, NewProblem(http.StatusBadRequest, "bad-body",
			"a form body sent to this upstream must not be compressed: elevate reads it for credential parameters"), "a compressed form body"
	}
	tooLarge := NewProblem(http.StatusRequestEntityTooLarge, "body-too-large",
		fmt.Sprintf("a form body (or a body without Content-Type) sent to this upstream may hold at most %d bytes: "+
			"elevate reads it for credential parameters; send other bodies with their own Content-Type", maxFormBytes))
	if r.ContentLength > maxFormBytes {
		return nil, tooLarge, "a form body over the limit"
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	switch {
	case err != nil:
		return nil, NewProblem(http.StatusBadRequest, "bad-body", "the request body could not be read"), "an unreadable body"
	case len(b) > maxFormBytes:
		return nil, tooLarge, "a form body over the limit"
	}
	kept, name := stripParams(string(b), rt.params)
	switch {
	case name == "":
		return b, nil, ""
	case rt.refuseParams:
		return nil, credentialInRequest(name, "form body"), "the form body carries the upstream credential parameter " + name
	}
	return []byte(kept), nil, ""
}

// formType reports whether a body with these Content-Type values may be
// read as form parameters by some upstream: no type at all, or any value
// whose media type is application/x-www-form-urlencoded, however it is
// cased or parameterised.
func formType(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		mt, _, _ := strings.Cut(v, ";")
		if mt = strings.TrimSpace(mt); mt == "" || strings.EqualFold(mt, "application/x-www-form-urlencoded") {
			return true
		}
	}
	return false
}

// hopHeaders are connection-scoped and never forwarded (RFC 9110 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// spoofable are headers a caller could use to lie about where a call came
// from or what it is, as headerName spells them; they are dropped and,
// where meaningful, set fresh.
var spoofable = headerNames(
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Path", "X-Real-Ip", "X-Original-Url",
	"X-Rewrite-Url", "X-Original-Uri", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	"X-Forwarded-Method", "X-Original-Method", "X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Ssl",
	"X-Url-Scheme", "X-Client-Ip", "True-Client-Ip", "X-Cluster-Client-Ip",
)

func headerNames(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, k := range names {
		m[headerName(k)] = true
	}
	return m
}

// headerName is a header's name as the most lenient upstream reads it:
// without regard to case, and with "_" read as "-" (CGI-style servers
// turn both into "_", so "X_Api_Key" reaches them as X-Api-Key). Go
// canonicalises the case of names it receives, not their underscores.
func headerName(k string) string {
	return strings.ToLower(strings.ReplaceAll(k, "_", "-"))
}

// delHeader removes every header that an upstream may read as name.
func delHeader(h http.Header, name string) {
	n := headerName(name)
	for k := range h {
		if headerName(k) == n {
			delete(h, k)
		}
	}
}

// cleanHeaders copies h without hop-by-hop headers, without every header the
// Connection header names, and without spoofable ones in any spelling.
func cleanHeaders(h http.Header) http.Header {
	out := h.Clone()
	stripHopHeaders(out)
	for k := range out {
		if spoofable[headerName(k)] {
			delete(out, k)
		}
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

// credentialToken extracts elevate's token from an Authorization or
// Proxy-Authorization value: a Bearer token, or the password of Basic
// credentials, for tools that can only send a user name and a password
// (the user name is ignored: the token names the caller).
func credentialToken(v string) (string, bool) {
	if t, ok := bearer(v); ok {
		return t, true
	}
	const p = "basic "
	if len(v) < len(p) || !strings.EqualFold(v[:len(p)], p) {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[len(p):]))
	if err != nil {
		return "", false
	}
	_, pass, ok := strings.Cut(string(raw), ":")
	return pass, ok && pass != ""
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

// ReadFrom relays a response body with the connection's own pooled
// buffer instead of a new one per call.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
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
