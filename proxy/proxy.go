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
//
// This file tells the story of one call; its steps live beside it: the
// decision pipeline in gate.go, reading a request target into the call to
// judge in target.go (with path.go, the one path parser), the header rules
// and elevate's token in headers.go, upstream credential parameters in
// credentials.go, routes and the one upstream transport in route.go, and
// bodies read and parsed to be judged in body.go (strict JSON in
// bodyjson.go, GraphQL in graphql.go).
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
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
	"github.com/elevate-pam/elevate/policy"
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
	// MaxJudgedBody bounds, in bytes, the body of a call that the route
	// tables say to judge, for every upstream that does not set its own
	// max_judged_body. Default DefaultMaxJudgedBody (1 MiB).
	MaxJudgedBody int64 `yaml:"max_judged_body"`
	// Bodies says which calls have their body judged (the policy
	// engine's route tables). Optional: without it no body is judged.
	Bodies BodyRules `yaml:"-"`
	// CA signs the leaf certificates of intercepted HTTPS in forward mode.
	// Without it, CONNECT is refused for every host.
	CA *tls.Certificate `yaml:"-"`
	// Logger receives operational messages. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate checks the configuration; errors name the key.
func (c Config) Validate() error {
	_, err := c.routes()
	return err
}

// routes checks the configuration and builds the routes of its upstreams,
// for Validate and, once, for New.
func (c Config) routes() ([]*route, error) {
	if len(c.Upstreams) == 0 {
		return nil, errors.New("upstreams: at least one upstream is required")
	}
	if c.UpstreamTimeout < 0 {
		return nil, errors.New("proxy.upstream_timeout: must not be negative")
	}
	if c.MaxJudgedBody < 0 {
		return nil, errors.New("proxy.max_judged_body: must not be negative")
	}
	routes, err := newRoutes(c.Upstreams)
	if err != nil {
		return nil, err
	}
	for _, rt := range routes {
		switch {
		case rt.maxJudged > 0:
		case c.MaxJudgedBody > 0:
			rt.maxJudged = c.MaxJudgedBody
		default:
			rt.maxJudged = DefaultMaxJudgedBody
		}
	}
	return routes, nil
}

// Proxy is the http.Handler of the proxy listener.
type Proxy struct {
	gp     *goproxy.ProxyHttpServer
	gate   *Gate
	routes []*route
	bodies BodyRules
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
	routes, err := cfg.routes()
	if err != nil {
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
	p := &Proxy{
		gate:   gate,
		routes: routes,
		bodies: cfg.Bodies,
		log:    cfg.Logger,
		tracer: otel.Tracer("github.com/elevate-pam/elevate/proxy"),
		prop:   propagation.TraceContext{},
	}
	for _, rt := range routes {
		tr := newTransport(rt.roots, cfg.UpstreamTimeout)
		rt.roundTripper = goproxy.RoundTripperFunc(func(req *http.Request, gctx *goproxy.ProxyCtx) (*http.Response, error) {
			return p.roundTrip(tr, req, gctx)
		})
	}
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	// Every allowed call goes out through its route's transport (set per
	// call in onRequest); the engine's own is set anyway, so that its
	// default, which follows proxy settings from the environment, never is.
	gp.Tr = newTransport(nil, cfg.UpstreamTimeout)
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
	p.gp.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, writerKey{}, sw)))
	if r.Method != http.MethodConnect {
		// An upgraded call's connection ends with it: the engine does not
		// close the connection it took over once the relay ends.
		sw.closeHijacked()
	}
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
	gctx.UserData = &callState{tunnel: &tunnel{host: host, token: token}}
	return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: p.mitm}, hostport
}

// callState is the one type elevate keeps in goproxy's per-call user data
// (ProxyCtx.UserData). onConnect leaves one holding the tunnel of an
// intercepted CONNECT, which goproxy hands on to every call read from the
// tunnel; onRequest gives each call its own, holding what roundTrip and
// onResponse need of what was judged.
type callState struct {
	// tunnel is the intercepted CONNECT the call came through; nil for a
	// call outside a tunnel.
	tunnel *tunnel
	// Set by onRequest:
	verdict Verdict
	call    Call   // as judged, without its token
	route   *route // nil when elevate answered the call itself
	start   time.Time
	// span is the server span of a call inside an intercepted tunnel,
	// which ServeHTTP does not see; it ends with the call.
	span    trace.Span
	endOnce sync.Once
}

// end ends the server span of a call inside a tunnel, once.
func (st *callState) end(status int) {
	if st == nil || st.span == nil {
		return
	}
	st.endOnce.Do(func() {
		if status != 0 {
			st.span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
		if status >= 500 {
			st.span.SetStatus(codes.Error, http.StatusText(status))
		}
		st.span.End()
	})
}

// onRequest judges one call: where it arrived from (reverse mode, an
// absolute-form target, or inside an intercepted tunnel), its shape, its
// target resolved once, its form body, elevate's token, then the gate. An
// allowed call is handed back rebuilt for its route's transport; a refused
// one is answered here.
func (p *Proxy) onRequest(r *http.Request, gctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	ctx := r.Context()
	rc, isReverse := ctx.Value(ctxKey{}).(reverseCall)
	st := &callState{start: time.Now()}
	if parent, ok := gctx.UserData.(*callState); ok {
		st.tunnel = parent.tunnel
	}
	tn, inTunnel := st.tunnel, st.tunnel != nil
	if inTunnel {
		// A call read from an intercepted tunnel: ServeHTTP saw only the
		// CONNECT, so the call gets its own server span here.
		ctx = p.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
		ctx, st.span = p.tracer.Start(ctx, "elevate.proxy "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(serverAttrs(r)...))
		r = r.WithContext(ctx)
	}
	gctx.UserData = st
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
	// A kubernetes upstream's upgrades are judged once the call is read
	// (kubeCall), so that a refused exec names its task.
	kubeTarget := p.kubeTarget(target)
	if prob := refuseShape(r, nil, kubeTarget); prob != nil {
		prob.kube = kubeTarget
		return r, p.refuse(ctx, r, audit.Record{Event: audit.EventBadRequest, Method: r.Method}, prob)
	}
	res, rec, prob := p.resolve(r.Method, target, hostport, !isReverse)
	if prob != nil {
		prob.kube = p.kubeTarget(target)
		return r, p.refuse(ctx, r, rec, prob)
	}
	rt, rest := res.route, res.call.Path
	if prob := refuseShape(r, rt, rt.kube); prob != nil {
		rec.Event, prob.kube = audit.EventBadRequest, rt.kube
		return r, p.refuse(ctx, r, rec, prob)
	}
	call := res.call
	if rt.kube {
		if prob := kubeCall(&call, r.Header); prob != nil {
			rec.Event, prob.kube = audit.EventBadRequest, true
			return r, p.refuse(ctx, r, rec, prob)
		}
		call.vetIdentity = rt.vetSubject
	}
	var body []byte // forwarded in place of the caller's body when not nil
	if spec := p.bodySpec(call); spec.Kind != "" {
		jb, ref := readJudgedBody(r, rt, spec)
		if ref != nil {
			rec.Event, rec.Reason = audit.EventBadRequest, ref.reason
			if ref.prob.Status >= 500 {
				rec.Event = audit.EventError
			}
			if ref.digest != nil {
				rec.BodyHMAC = p.gate.bodyDigest(ref.digest)
			}
			ref.prob.kube = rt.kube
			return r, p.refuse(ctx, r, rec, ref.prob)
		}
		call.Body, call.Operations, body = jb.raw, jb.ops, jb.forward
		if len(call.Operations) == 0 {
			call.Body = nil // nothing sent: judged without input.body
		}
	} else {
		var prob *Problem
		var why string
		if body, prob, why = formBody(r, rt); prob != nil {
			rec.Event, rec.Reason, prob.kube = audit.EventBadRequest, why, rt.kube
			return r, p.refuse(ctx, r, rec, prob)
		}
	}
	span.SetAttributes(semconv.URLPath(escapeSegments(rest))) // the gate adds elevate.upstream
	if call.RawQuery != "" {
		span.SetAttributes(semconv.URLQuery(call.RawQuery))
	}

	var token string
	switch {
	case isReverse:
		token, _ = credentialToken(r.Header.Get("Authorization"))
	case r.Header.Get("Proxy-Authorization") != "":
		token, _ = credentialToken(r.Header.Get("Proxy-Authorization"))
	case inTunnel:
		token = tn.token
	}
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
		v.Problem.kube = rt.kube
		return r, v.Problem.response(r, extra)
	}

	out := p.outbound(ctx, r, rt, rest, res.rawQuery, body, call.Host, isReverse, inTunnel)
	if rt.kube {
		rt.impersonate(out.Header, v.Identity)
		if call.upgrade != "" {
			// kubeCall let this upgrade through: exec, attach or
			// port-forward, judged as its own task.
			out.Header.Set("Connection", "Upgrade")
			out.Header.Set("Upgrade", call.upgrade)
		}
	}
	call.Token = ""
	st.verdict, st.route, st.call = v, rt, call
	gctx.RoundTripper = rt.roundTripper
	return out, nil
}

// outbound builds the forwarded request from exactly what was judged: the
// upstream's own URL, Host and Origin, the caller's credentials removed and
// the upstream credential, if any, set. body, when not nil, is the body
// read to be judged (readJudgedBody) or for credential parameters
// (formBody), forwarded in place of the caller's with its own length.
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
	st, _ := gctx.UserData.(*callState)
	if st != nil && st.route == nil && resp != nil {
		// elevate's own answer (a refusal): the call ends here. A
		// forwarded call ends with its response body (see roundTrip).
		defer st.end(resp.StatusCode)
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
		if st != nil {
			prob.DecisionID = st.verdict.DecisionID
			prob.kube = st.route != nil && st.route.kube
		}
		resp = prob.response(r, nil)
		return resp
	}
	if st != nil && st.route != nil && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Header.Set("Elevate-Decision-Id", st.verdict.DecisionID)
		if st.call.upgrade == spdyProtocol {
			// The engine relays WebSocket itself, not SPDY.
			return p.relayUpgrade(resp, writerFrom(gctx.Req.Context()))
		}
	}
	if st != nil && st.route != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		// An upstream's answer; elevate's own refusals keep their
		// challenge headers.
		stripHopHeaders(resp.Header)
		// The caller can quote the decision, as with a refusal.
		resp.Header.Set("Elevate-Decision-Id", st.verdict.DecisionID)
	}
	if st != nil && st.route != nil && resp.ContentLength < 0 && resp.StatusCode != http.StatusSwitchingProtocols &&
		gctx.Req.ProtoAtLeast(1, 1) && gctx.Req.Method != http.MethodHead {
		// An answer of unknown length may be a stream (a Kubernetes watch,
		// a followed log): the engine relays it chunk by chunk, flushing
		// each, when it is marked chunked; the server then writes the
		// chunked encoding itself.
		resp.Header.Set("Transfer-Encoding", "chunked")
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
	st, _ := gctx.UserData.(*callState)
	attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(req.Method), semconv.ServerAddress(req.URL.Hostname()),
		semconv.URLPath(req.URL.EscapedPath()), semconv.URLScheme(req.URL.Scheme)}
	if req.URL.RawQuery != "" {
		attrs = append(attrs, semconv.URLQuery(req.URL.RawQuery))
	}
	if port, err := strconv.Atoi(req.URL.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	ctx, span := p.tracer.Start(req.Context(), "elevate.upstream "+req.Method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	p.prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	// A stream allowed by a grant lasts no longer than the grant: hold
	// cancels the call (and closes an upgraded connection) when it ends.
	var hold *grantHold
	if st != nil && st.call.stream && st.verdict.Grant != nil {
		ctx, hold = p.holdGrant(ctx, st.verdict, st.call)
	}
	start := time.Now()
	resp, err := tr.RoundTrip(req.WithContext(ctx))
	if st != nil && st.route != nil {
		p.gate.observeUpstream(ctx, st.route.Name, time.Since(start))
	}
	done := func(status int, n int64, reason string) {
		if hold != nil && status != http.StatusSwitchingProtocols {
			if why := hold.stop(); why != "" {
				reason = why
			}
		}
		span.End()
		if st == nil || st.route == nil {
			return
		}
		p.gate.Outcome(ctx, st.verdict, st.call, Outcome{Status: status, Bytes: n, Duration: time.Since(st.start), Reason: reason})
		st.end(status)
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
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection's body is the connection itself: the
		// outcome is the switch. A held one is closed, both ways, when
		// its grant ends.
		done(resp.StatusCode, 0, "")
		if hold != nil {
			hold.upgraded(resp.Body, writerFrom(req.Context()))
		}
		return resp, nil
	}
	if resp.Body == nil || resp.Body == http.NoBody {
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

// bodySpec says how the body of call is judged; not at all without
// Config.Bodies.
func (p *Proxy) bodySpec(c Call) policy.BodySpec {
	if p.bodies == nil {
		return policy.BodySpec{}
	}
	return p.bodies.Body(c.Upstream, c.Method, c.Path)
}

func (p *Proxy) refuse(ctx context.Context, r *http.Request, rec audit.Record, prob *Problem) *http.Response {
	return p.gate.Refuse(ctx, rec, prob).response(r, nil)
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
