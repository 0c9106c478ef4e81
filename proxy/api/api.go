// Package api serves elevate's control listener: the side API under /v1/,
// health and readiness, and the console's entry page.
//
// Every /v1/ call carries the same bearer tokens as proxied calls and is
// rate-limited per caller (Config.RateLimit). Bodies are read strictly:
// one JSON object, known fields each once, within Config.MaxBodyBytes. Bad
// input answers RFC 9457 problem+json and changes nothing; every change and
// every refused change is written to the audit log. A change is answered
// once this replica's in-memory view has applied it (waiting at most two
// seconds), so that the caller's next call through the same replica, proxied
// or not, sees it.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/notify"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// Store is the part of the grant store the side API uses.
type Store interface {
	Submit(ctx context.Context, n grants.NewRequest) (grants.Request, error)
	Approve(ctx context.Context, id string, by grants.Actor, comment string) (grants.Request, error)
	Deny(ctx context.Context, id string, by grants.Actor, comment string) (grants.Request, error)
	Revoke(ctx context.Context, id string, by grants.Actor, comment string) (grants.Request, error)
	BreakGlass(ctx context.Context, n grants.NewRequest) (grants.Request, error)
	Request(ctx context.Context, id string) (grants.Request, error)
	PolicyFor(ctx context.Context, scope grants.Scope, target string) (grants.Policy, bool, error)
	Requests(ctx context.Context, f grants.Filter) ([]grants.Request, error)
	CreatePolicy(ctx context.Context, p grants.Policy) (grants.Policy, error)
	DeletePolicy(ctx context.Context, id string) (grants.Policy, error)
	Policy(ctx context.Context, id string) (grants.Policy, error)
	Policies() []grants.Policy
	Control() grants.Control
	UpdateControl(ctx context.Context, p grants.ControlPatch) (grants.Control, grants.Control, error)
	// WaitRevision waits until this replica's view has applied etcd
	// revision rev, such as the Revision of a change's answer.
	WaitRevision(ctx context.Context, rev int64) error
}

// Catalog lists the tasks, roles and role groups the policy bundle knows.
type Catalog interface {
	Catalog() policy.Catalog
}

// Checker resolves and judges a call without forwarding it.
type Checker interface {
	Resolve(method, rawURL string) (proxy.Call, *proxy.Problem)
}

// Judge is the gate's decision pipeline.
type Judge interface {
	Check(ctx context.Context, c proxy.Call) proxy.Verdict
}

// AuditLog writes and reads audit records.
type AuditLog interface {
	Write(ctx context.Context, r audit.Record) (audit.Record, error)
	Query(ctx context.Context, f audit.Filter) (audit.Page, error)
}

// Notifier tells people about lifecycle changes; it never blocks.
type Notifier interface {
	Notify(e notify.Event)
}

// Config configures the control listener's handler. The fields with a yaml
// key are in the api section of elevate's configuration file.
type Config struct {
	// AdminsGroup may change control settings and approval policies.
	// Default "admins".
	AdminsGroup string `yaml:"admins_group"`
	// AuditorsGroup may read the whole audit log. Default "auditors".
	AuditorsGroup string `yaml:"auditors_group"`
	// MaxBodyBytes bounds request bodies. Default 64 KiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// BreakGlassGroup may grant itself a task at once, with a reason, for a
	// bounded time. Empty: break-glass is off.
	BreakGlassGroup string `yaml:"break_glass_group"`
	// RateLimit is the sustained number of /v1/ calls per second each
	// caller may make: per token subject, and per client address (IPv6:
	// per /64) for calls without a valid token. Over it, calls answer 429
	// with Retry-After. Default 20; a negative value turns the limit off.
	// /healthz, /readyz, /metrics and the console page are not limited.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is how many calls a caller may make at once before
	// RateLimit applies. Default twice RateLimit, at least 1.
	RateBurst int `yaml:"rate_burst"`

	Verifier proxy.Verifier `yaml:"-"`
	Store    Store          `yaml:"-"`
	Catalog  Catalog        `yaml:"-"`
	Resolver Checker        `yaml:"-"`
	Gate     Judge          `yaml:"-"`
	Audit    AuditLog       `yaml:"-"`
	// CACert is the PEM certificate of the forward-mode interception CA,
	// served at GET /v1/ca. Optional.
	CACert []byte `yaml:"-"`
	// ProxyURL is where callers reach the proxy listener.
	ProxyURL string `yaml:"-"`
	// Upstreams describe the configured routes to callers.
	Upstreams []UpstreamInfo `yaml:"-"`
	// Notifier, when set, is told about every lifecycle change.
	Notifier Notifier `yaml:"-"`
	// Ready reports whether the first etcd sync and policy load are done
	// and the view is fresh.
	Ready func() bool `yaml:"-"`
	// Metrics, when set, serves /metrics.
	Metrics http.Handler `yaml:"-"`
	// Console, when set, serves every path outside /v1/, /healthz,
	// /readyz and /metrics: the web console. Without it, GET / answers a
	// plain-text note.
	Console http.Handler     `yaml:"-"`
	Logger  *slog.Logger     `yaml:"-"`
	Now     func() time.Time `yaml:"-"`
}

// UpstreamInfo is what callers may know of an upstream: how to reach it
// through the proxy.
type UpstreamInfo struct {
	Name string `json:"name"`
	// Type is "http" or "kubernetes".
	Type   string   `json:"type"`
	Prefix string   `json:"prefix,omitempty"`
	Hosts  []string `json:"hosts,omitempty"`
}

// Validate fills in defaults and checks the settings; errors name the key.
// New also checks the wiring.
func (c *Config) Validate() error {
	if c.AdminsGroup == "" {
		c.AdminsGroup = "admins"
	}
	if c.AuditorsGroup == "" {
		c.AuditorsGroup = "auditors"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxBodyBytes < 1024 {
		return errors.New("api.max_body_bytes: must be at least 1024")
	}
	if math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		return errors.New("api.rate_limit: must be a number of calls per second (negative: no limit)")
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst < 0 {
		return errors.New("api.rate_burst: must not be negative")
	}
	if c.RateLimit > 0 && c.RateBurst == 0 {
		c.RateBurst = max(1, int(math.Ceil(2*c.RateLimit)))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Server is the control listener's http.Handler.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	tracer trace.Tracer
	// limits is nil when rate limiting is off.
	limits *limiter
}

// New builds the handler.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Verifier == nil || cfg.Store == nil || cfg.Catalog == nil || cfg.Resolver == nil || cfg.Gate == nil || cfg.Audit == nil || cfg.Ready == nil {
		return nil, errors.New("api: verifier, store, catalog, resolver, gate, audit and readiness are required")
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), tracer: otel.Tracer("github.com/elevate-pam/elevate/proxy/api")}
	if cfg.RateLimit > 0 {
		s.limits = newLimiter(cfg.RateLimit, cfg.RateBurst)
	}
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	m.HandleFunc("GET /readyz", s.readyz)
	if cfg.Metrics != nil {
		m.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Console != nil {
		m.Handle("/", cfg.Console)
	} else {
		m.HandleFunc("GET /{$}", s.home)
	}
	m.HandleFunc("GET /v1/whoami", s.auth(s.whoami))
	m.HandleFunc("GET /v1/ca", s.ca)
	m.HandleFunc("GET /v1/upstreams", s.auth(s.upstreams))
	m.HandleFunc("GET /v1/tasks", s.auth(s.tasks))
	m.HandleFunc("POST /v1/check", s.auth(s.check))
	m.HandleFunc("POST /v1/requests", s.auth(s.submit))
	m.HandleFunc("GET /v1/requests", s.auth(s.listRequests))
	m.HandleFunc("GET /v1/requests/{id}", s.auth(s.getRequest))
	m.HandleFunc("POST /v1/requests/{id}/{action}", s.auth(s.decide))
	m.HandleFunc("GET /v1/policies", s.auth(s.listPolicies))
	m.HandleFunc("POST /v1/policies", s.auth(s.createPolicy))
	m.HandleFunc("GET /v1/policies/{id}", s.auth(s.getPolicy))
	m.HandleFunc("DELETE /v1/policies/{id}", s.auth(s.deletePolicy))
	m.HandleFunc("GET /v1/control", s.auth(s.getControl))
	m.HandleFunc("PATCH /v1/control", s.auth(s.patchControl))
	m.HandleFunc("GET /v1/audit", s.auth(s.queryAudit))
	m.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		proxy.NewProblem(http.StatusNotFound, "not-found", "no such endpoint").Write(w)
	})
	return s, nil
}

// ServeHTTP serves the control listener, one server span per call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.tracer.Start(ctx, "elevate.api "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)))
	defer span.End()
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	r = r.WithContext(ctx)
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		// The caller is identified once, before the limit and the handler.
		a := s.authenticate(r)
		if !s.admit(w, r, a) {
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), authKey{}, a))
	}
	s.mux.ServeHTTP(w, r)
}

// authResult is the outcome of checking a call's bearer token.
type authResult struct {
	id     identity.Identity
	err    error // identity.ErrNoToken without a token
	hadTok bool
}

type authKey struct{}

// authenticate verifies the bearer token of r, if any.
func (s *Server) authenticate(r *http.Request) authResult {
	tok := bearerOf(r)
	if tok == "" {
		return authResult{err: identity.ErrNoToken}
	}
	id, err := s.cfg.Verifier.Verify(r.Context(), tok)
	return authResult{id: id, err: err, hadTok: true}
}

// admit applies the rate limit to a /v1/ call: by subject when the token
// is valid, by client address otherwise. A refusal answers 429 with
// Retry-After; the first refusal of a caller in each auditEvery is
// audited, with the count of those left out since the last record.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, a authResult) bool {
	if s.limits == nil {
		return true
	}
	key := clientKey(r.RemoteAddr)
	if a.err == nil {
		key = "sub:" + a.id.Subject
	}
	now := s.cfg.Now()
	v := s.limits.take(key, now)
	if v.allowed {
		return true
	}
	p := proxy.NewProblem(http.StatusTooManyRequests, "rate-limited",
		fmt.Sprintf("too many calls: at most %g per second (bursts of %d) per caller; retry later", s.cfg.RateLimit, s.cfg.RateBurst))
	if v.audit {
		reason := "rate limit exceeded by "
		if a.err == nil {
			reason += "subject " + a.id.Subject
		} else {
			reason += "client " + strings.TrimPrefix(strings.TrimPrefix(key, "addr:"), "net:")
		}
		if v.suppressed > 0 {
			reason += fmt.Sprintf(" (%d more refusals since the last record)", v.suppressed)
		}
		rec := audit.Record{Event: audit.EventAPIRateLimited, Time: now, Method: r.Method, Path: r.URL.Path, Status: p.Status, Reason: reason}
		if a.err == nil {
			rec.Subject, rec.Groups = a.id.Subject, a.id.Groups
		}
		if out, err := s.cfg.Audit.Write(r.Context(), withKind(rec)); err == nil {
			p.DecisionID = out.ID
		}
	}
	trace.SpanFromContext(r.Context()).SetAttributes(attribute.Bool("elevate.rate_limited", true))
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(v.retryAfter)))
	p.Write(w)
	return false
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Ready() {
		proxy.NewProblem(http.StatusServiceUnavailable, "not-ready", "elevate is not ready: waiting for etcd sync and policy load").Write(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "elevate control listener\n\nSide API under /v1/ (bearer token required), /healthz, /readyz, /metrics.\n")
}

// caller is an authenticated side-API caller.
type caller struct {
	identity.Identity
	admin, auditor bool
}

func (c caller) actor() grants.Actor {
	return grants.Actor{Subject: c.Subject, Groups: c.Groups, MFA: c.MFA(), Email: c.Email}
}

type handler func(w http.ResponseWriter, r *http.Request, c caller)

// auth requires a valid bearer token; a failure is 401 with a challenge and
// an audit record.
func (s *Server) auth(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := r.Context().Value(authKey{}).(authResult)
		if !ok {
			a = s.authenticate(r)
		}
		id, err := a.id, a.err
		if err != nil {
			slug, reason := "unauthenticated", "a valid bearer token is required"
			if a.hadTok {
				reason = "the bearer token was refused"
				if why := identity.Reason(err); why != "" {
					reason += ": " + why
				}
				if errors.Is(err, identity.ErrExpired) {
					// Its own type, so that clients can say how to get a
					// new one.
					slug = "token-expired"
				}
			}
			s.record(r.Context(), audit.Record{Event: audit.EventUnauthenticated, Method: r.Method, Path: r.URL.Path, Status: 401, Reason: reason})
			challenge := `Bearer realm="elevate"`
			if a.hadTok {
				challenge += `, error="invalid_token"` // RFC 6750, as the proxy says
			}
			w.Header().Set("WWW-Authenticate", challenge)
			proxy.NewProblem(http.StatusUnauthorized, slug, reason).Write(w)
			return
		}
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("elevate.subject", id.Subject))
		h(w, r, caller{Identity: id, admin: id.InGroup(s.cfg.AdminsGroup), auditor: id.InGroup(s.cfg.AuditorsGroup)})
	}
}

// EventSpan starts the span of a lifecycle event: a child of the side-API
// call that caused it, or a root span for changes nobody asked for
// (expiries). Its attributes name the event, never a secret.
func EventSpan(ctx context.Context, tracer trace.Tracer, rec audit.Record) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{attribute.String("elevate.event", rec.Event)}
	for _, kv := range [][2]string{{"elevate.subject", rec.Subject}, {"elevate.task", rec.Task},
		{"elevate.request_id", rec.RequestID}, {"elevate.policy_id", rec.PolicyID}, {"elevate.grant_id", rec.GrantID}} {
		if kv[1] != "" {
			attrs = append(attrs, attribute.String(kv[0], kv[1]))
		}
	}
	if len(rec.Approvers) > 0 {
		attrs = append(attrs, attribute.StringSlice("elevate.approvers", rec.Approvers))
	}
	return tracer.Start(ctx, "elevate.lifecycle "+rec.Event, trace.WithAttributes(attrs...))
}

// record writes a lifecycle audit record; it reports failure to the caller.
func (s *Server) record(ctx context.Context, rec audit.Record) error {
	rec.Kind = audit.KindLifecycle
	if rec.Time.IsZero() {
		rec.Time = s.cfg.Now()
	}
	ctx, span := EventSpan(ctx, s.tracer, rec)
	defer span.End()
	if _, err := s.cfg.Audit.Write(ctx, rec); err != nil {
		span.SetStatus(codes.Error, "audit write failed")
		s.cfg.Logger.Error("audit write failed", "event", rec.Event, "err", err)
		return err
	}
	return nil
}

// lifecycle records a lifecycle change and tells the people concerned.
// email is the requester's address when the caller is the requester.
func (s *Server) lifecycle(ctx context.Context, rec audit.Record, q grants.Request, email, by, comment string) {
	rec.Kind = audit.KindLifecycle
	if rec.Time.IsZero() {
		rec.Time = s.cfg.Now()
	}
	ctx, span := EventSpan(ctx, s.tracer, rec)
	defer span.End()
	out, err := s.cfg.Audit.Write(ctx, rec)
	if err != nil {
		span.SetStatus(codes.Error, "audit write failed")
		s.cfg.Logger.Error("audit write failed", "event", rec.Event, "request", q.ID, "err", err)
	}
	if s.cfg.Notifier != nil && notified[rec.Event] {
		s.cfg.Notifier.Notify(NotifyEvent(rec.Event, q, email, by, comment, out.ID, out.TraceID, rec.Time))
	}
}

// notified are the lifecycle events people are told about.
var notified = map[string]bool{
	audit.EventRequestSubmitted: true, audit.EventRequestApproved: true, audit.EventRequestDenied: true,
	audit.EventRequestRevoked: true, audit.EventRequestExpired: true, audit.EventRequestBreakGlass: true,
}

// NotifyEvent shapes a lifecycle change for notification.
func NotifyEvent(kind string, q grants.Request, email, by, comment, decisionID, traceID string, at time.Time) notify.Event {
	e := notify.Event{
		Kind: kind, RequestID: q.ID, Requester: q.Requester, RequesterEmail: email, Scope: string(q.Scope),
		Target: q.Target, Constraint: q.Constraint.String(), Reason: q.Reason, Approvers: q.Approvers, By: by, Comment: comment,
		Status: string(q.Status), At: at, DecisionID: decisionID, TraceID: traceID,
	}
	if e.RequesterEmail == "" {
		e.RequesterEmail = q.RequesterEmail
	}
	if q.GrantEnd != nil {
		e.GrantEnd = *q.GrantEnd
	}
	return e
}

// refuse answers a problem and records the refused call.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, c caller, p *proxy.Problem) {
	rec := audit.Record{Event: audit.EventAPIRefused, Subject: c.Subject, Groups: c.Groups, Method: r.Method, Path: r.URL.Path, Status: p.Status, Reason: p.Detail}
	if id := r.PathValue("id"); id != "" && strings.HasPrefix(r.URL.Path, "/v1/requests/") {
		rec.RequestID = id
	}
	if rec2, err := s.cfg.Audit.Write(r.Context(), withKind(rec)); err == nil {
		p.DecisionID = rec2.ID
	}
	p.Write(w)
}

func withKind(r audit.Record) audit.Record {
	r.Kind = audit.KindLifecycle
	return r
}

// fail maps store and validation errors to problems.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, c caller, err error) {
	var dup *grants.DuplicateError
	var p *proxy.Problem
	switch {
	case errors.As(err, &dup):
		p = proxy.NewProblem(http.StatusConflict, "duplicate-request", "a pending request for this target already exists: "+dup.ExistingID)
		p.ExistingID = dup.ExistingID
	case errors.Is(err, grants.ErrNotFound):
		p = proxy.NewProblem(http.StatusNotFound, "not-found", "no such record")
	case errors.Is(err, grants.ErrForbidden):
		p = proxy.NewProblem(http.StatusForbidden, "forbidden", userText(err))
	case errors.Is(err, grants.ErrConflict):
		p = proxy.NewProblem(http.StatusConflict, "conflict", userText(err))
	case errors.Is(err, grants.ErrInvalid):
		p = proxy.NewProblem(http.StatusBadRequest, "invalid", userText(err))
	case errors.Is(err, grants.ErrUnavailable):
		s.cfg.Logger.Error("store unavailable", "err", err)
		p = proxy.NewProblem(http.StatusServiceUnavailable, "unavailable", "the state store is unavailable; nothing was changed")
	default:
		s.cfg.Logger.Error("side API error", "err", err)
		p = proxy.NewProblem(http.StatusInternalServerError, "internal", "internal error; nothing was changed")
	}
	s.refuse(w, r, c, p)
}

// viewWait bounds how long the answer to a change waits for this
// replica's view to apply it (see awaitView).
const viewWait = 2 * time.Second

// awaitView holds the answer to a change until this replica's in-memory
// view, and the policy state it feeds, have applied revision rev, the
// change's, so that the caller's next call through this replica (a proxied
// call, a check, a list of policies) sees the change. After viewWait, or
// once the caller has gone, the answer goes out all the same, as it would
// without the wait: the view follows within its freshness bound, past which
// the gate refuses gated calls.
func (s *Server) awaitView(ctx context.Context, rev int64) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.Int64("elevate.revision", rev))
	ctx, cancel := context.WithTimeout(ctx, viewWait)
	defer cancel()
	if err := s.cfg.Store.WaitRevision(ctx, rev); err != nil {
		span.SetAttributes(attribute.Bool("elevate.view_behind", true))
		s.cfg.Logger.Warn("answering a change before this replica's view has it", "revision", rev, "err", err)
	}
}

// userText is the message of a store rule error; store errors are written
// for users (they name the rule), etcd detail is wrapped in ErrUnavailable
// and never reaches here.
func userText(err error) string {
	return err.Error()
}

// writeJSON answers v as indented JSON. Nothing is HTML-escaped: `<`, `>`
// and `&` in reasons and commands stay as they are.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// marshal is for before/after snapshots in audit records.
func marshal(v any) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
