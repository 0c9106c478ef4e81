package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// Verifier turns a bearer token into an identity.
type Verifier interface {
	Verify(ctx context.Context, token string) (identity.Identity, error)
}

// GrantView is the in-memory view of live grants.
type GrantView interface {
	LiveGrants(subject string, now time.Time) []grants.Grant
	// UsedUpGrants are the grants of subject, within their window, whose
	// uses are all spent; a refusal looks for them to say why.
	UsedUpGrants(subject string, now time.Time) []grants.Grant
	Fresh() bool
}

// Decider evaluates the prepared Rego query.
type Decider interface {
	Eval(ctx context.Context, in policy.Input, now time.Time) (policy.Decision, error)
}

// Auditor makes a record durable.
type Auditor interface {
	Write(ctx context.Context, r audit.Record) (audit.Record, error)
}

// Appender is an Auditor that can also write a record without waiting for
// it to be durable (audit.Log.Append). Outcome records use it when the
// Auditor has it: they follow a decision record that is durable already.
type Appender interface {
	Append(ctx context.Context, r audit.Record) (audit.Record, error)
}

// GrantUser counts calls against grants that allow a limited number of
// uses; only those grants cost an etcd round trip. UseGrant calls spent
// once the use is recorded, and before it reports the request of a last
// use as used up.
type GrantUser interface {
	UseGrant(ctx context.Context, grantID string, spent func(grants.Use)) error
}

// BodyDigester digests a judged body for its audit record (audit.Log's
// BodyHMAC): equal bodies, equal digests; "" when it has no key.
type BodyDigester interface {
	BodyHMAC(body []byte) string
}

// GateConfig wires the parts one decision needs. The fields with a yaml key
// are in the proxy section of elevate's configuration file.
type GateConfig struct {
	Verifier Verifier  `yaml:"-"`
	Grants   GrantView `yaml:"-"`
	Policy   Decider   `yaml:"-"`
	Audit    Auditor   `yaml:"-"`
	// Uses counts uses of grants with a maximum number of uses. Optional;
	// without it such grants are refused.
	Uses GrantUser `yaml:"-"`
	// Digest digests judged bodies into their audit records (body_hmac).
	// Optional; without it records carry no digest.
	Digest BodyDigester `yaml:"-"`
	// Now is the clock every decision is taken at. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// ReadsWhenStale lets calls that need no grant through while the view of
	// etcd is not confirmed fresh. Default false (refused with 503).
	ReadsWhenStale bool `yaml:"reads_when_stale"`
	// ReadsWithoutAudit lets calls that need no grant through when their
	// audit record cannot be written. Default false (refused with 503).
	ReadsWithoutAudit bool `yaml:"reads_without_audit"`
	// Logger receives internal error detail that callers never see.
	Logger *slog.Logger `yaml:"-"`
}

// Gate is the one decision pipeline: verify identity, look up the caller's
// live grants in memory, evaluate Rego, write the audit record. The proxied
// call, POST /v1/check and `elevate check` all use it.
type Gate struct {
	cfg    GateConfig
	tracer trace.Tracer

	decisions metric.Int64Counter     // elevate.decisions{outcome}
	took      metric.Float64Histogram // elevate.decision.duration
	upstream  metric.Float64Histogram // elevate.upstream.duration
	outcomes  sync.WaitGroup          // outcome records being written
	// writeOutcome writes an outcome record: Append when the Auditor has
	// it, else Write.
	writeOutcome func(context.Context, audit.Record) (audit.Record, error)
}

// NewGate checks that every part is present.
func NewGate(cfg GateConfig) (*Gate, error) {
	if cfg.Verifier == nil || cfg.Grants == nil || cfg.Policy == nil || cfg.Audit == nil {
		return nil, errors.New("proxy: gate needs a verifier, a grant view, a policy engine and an audit log")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gate{cfg: cfg, tracer: otel.Tracer("github.com/elevate-pam/elevate/proxy"), writeOutcome: cfg.Audit.Write}
	if a, ok := cfg.Audit.(Appender); ok {
		g.writeOutcome = a.Append
	}
	meter := otel.Meter("github.com/elevate-pam/elevate/proxy")
	var err error
	if g.decisions, err = meter.Int64Counter("elevate.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions on proxied calls, by outcome (the audit event).")); err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	if g.took, err = meter.Float64Histogram("elevate.decision.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to decide a proxied call: identity, grants, policy and the durable audit record.")); err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	if g.upstream, err = meter.Float64Histogram("elevate.upstream.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from forwarding an allowed call to the upstream's response headers.")); err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	return g, nil
}

// Call is one HTTP call as elevate judges it: the path already split into
// decoded segments after the route prefix.
type Call struct {
	Method   string
	Upstream string
	Host     string
	Path     []string
	Query    url.Values
	// RawQuery is the query as forwarded, the upstream's credential
	// parameters removed; the audit record keeps it.
	RawQuery string
	Token    string
	// DryRun judges without writing an audit record (POST /v1/check).
	DryRun bool
	// Body is the judged body as the caller sent it (a form's credential
	// parameters removed), digested into the audit record; nil when the
	// body is not judged.
	Body []byte
	// Operations are what a judged body holds, each judged on its own
	// with its Body as input.body: one for a JSON or form body, one per
	// call of a JSON-RPC request or batch, one per top-level field of a
	// GraphQL document. The call is allowed only if every one is. None
	// when the body is not judged: the call is judged once, without
	// input.body.
	Operations []Operation
	// Kubernetes is input.kubernetes for a call to a kubernetes upstream
	// (see kubeCall); nil otherwise.
	Kubernetes map[string]any
	// Attributes are what the call's catalog reads from it beyond its
	// path (a Kubernetes call's verb, resource, namespace, name, ...),
	// kept in its audit records.
	Attributes map[string]string

	// upgrade is the protocol a Kubernetes exec, attach or port-forward
	// call asks to switch to ("websocket" or spdyProtocol), "" for none;
	// stream marks a call whose answer lasts (a watch, a followed log, an
	// upgrade): a stream allowed by a grant is cut when the grant ends.
	upgrade string
	stream  bool
	// vetIdentity, when set, refuses a caller the upstream cannot take
	// (a Kubernetes subject that would impersonate a system: user): the
	// reason, or "".
	vetIdentity func(identity.Identity) string
}

// Operation is one part of a judged body, judged on its own.
type Operation struct {
	// Name is the JSON-RPC method or the GraphQL operation type and
	// field ("mutation deleteUser"); "" for a JSON or form body, which is
	// judged whole.
	Name string
	// Body is input.body for this operation.
	Body any
	// Fields are the body fields the route records in clear, as JSON.
	Fields map[string]json.RawMessage
}

// CanonicalPath is the judged path after the route prefix, escaped as it
// is forwarded: an encoded "/" inside a segment stays encoded.
func (c Call) CanonicalPath() string { return c.displayPath() }

// displayPath is the canonical form of the judged path, as forwarded.
func (c Call) displayPath() string {
	p := escapeSegments(c.Path)
	if p == "" {
		return "/"
	}
	return p
}

// Verdict is what the gate decided.
type Verdict struct {
	Allowed    bool
	Decision   policy.Decision
	Identity   identity.Identity
	DecisionID string
	// Problem is the refusal to send; nil when allowed.
	Problem *Problem
	// Unauthenticated marks a refusal for a missing or bad token, so that
	// the front end can add its challenge header.
	Unauthenticated bool
	// Grant is the grant that allowed the call, if any.
	Grant *grants.Grant
	// Event is the decision as the audit record names it: one of the
	// call events of package audit (audit.EventAllowed, ...).
	Event string
}

// Check judges one call. It never returns an allow after an error in
// identity, grant state, policy or audit.
func (g *Gate) Check(ctx context.Context, c Call) Verdict {
	start := time.Now()
	// The decision's attributes go to the call's span at once: one
	// SetAttributes instead of one per step.
	attrs := make(spanAttrs, 0, 12)
	v := g.check(ctx, c, &attrs)
	trace.SpanFromContext(ctx).SetAttributes(attrs...)
	if !c.DryRun {
		outcome := metric.WithAttributes(attribute.String("outcome", v.Event))
		g.decisions.Add(ctx, 1, outcome)
		g.took.Record(ctx, time.Since(start).Seconds(), outcome)
	}
	return v
}

// spanAttrs collects attributes for the call's span.
type spanAttrs []attribute.KeyValue

func (a *spanAttrs) SetAttributes(kv ...attribute.KeyValue) { *a = append(*a, kv...) }

func (g *Gate) check(ctx context.Context, c Call, span *spanAttrs) Verdict {
	now := g.cfg.Now()
	v := Verdict{DecisionID: newID()}
	span.SetAttributes(attribute.String("elevate.decision_id", v.DecisionID), attribute.String("elevate.upstream", c.Upstream))

	rec := audit.Record{
		ID: v.DecisionID, Time: now, Kind: audit.KindCall, Upstream: c.Upstream,
		Method: c.Method, Host: c.Host, Path: c.displayPath(), Query: c.RawQuery, Attributes: c.Attributes,
	}
	if c.Body != nil {
		rec.BodyHMAC = g.bodyDigest(c.Body)
	}

	// 1. Identity.
	id, err := g.verify(ctx, c.Token)
	if err != nil {
		v.Unauthenticated = true
		// Only the verifier's Refusal may reach the caller: other errors
		// (a JWKS fetch, a missing token) say only what is needed.
		reason := "a valid bearer token is required"
		var why identity.Refusal
		if errors.As(err, &why) {
			reason = "token refused: " + string(why)
		}
		rec.Event, rec.Status, rec.Reason = audit.EventUnauthenticated, http.StatusUnauthorized, reason
		v.Problem = NewProblem(http.StatusUnauthorized, "unauthenticated", reason)
		return g.finish(ctx, span, v, rec, c.DryRun)
	}
	v.Identity = id
	rec.Subject, rec.Groups = id.Subject, id.Groups
	span.SetAttributes(attribute.String("elevate.subject", id.Subject))
	if c.vetIdentity != nil {
		if why := c.vetIdentity(id); why != "" {
			rec.Event, rec.Status, rec.Reason = audit.EventDenied, http.StatusForbidden, why
			v.Problem = NewProblem(http.StatusForbidden, "denied", why)
			v.Problem.Reason = why
			return g.finish(ctx, span, v, rec, c.DryRun)
		}
	}

	// 2. The caller's live grants, from memory.
	_, gs := g.tracer.Start(ctx, "elevate.grants")
	live := g.cfg.Grants.LiveGrants(id.Subject, now)
	fresh := g.cfg.Grants.Fresh()
	gs.SetAttributes(attribute.Int("elevate.live_grants", len(live)), attribute.Bool("elevate.state_fresh", fresh))
	gs.End()

	// 3. Policy: the call, or each operation of its judged body.
	in := policy.Input{
		Method: c.Method, Upstream: c.Upstream, Host: c.Host, Path: c.Path, Query: c.Query, Kubernetes: c.Kubernetes,
		Subject: policy.Subject{ID: id.Subject, Groups: id.Groups, MFA: id.MFA(), Email: id.Email},
		Grants:  make([]policy.Grant, 0, len(live)),
	}
	for i := range live {
		in.Grants = append(in.Grants, policyGrant(&live[i]))
	}
	pctx, ps := g.tracer.Start(ctx, "elevate.policy")
	ops, err := g.decide(pctx, c, &in, now)
	if err != nil {
		ps.RecordError(err)
		ps.SetStatus(codes.Error, "policy evaluation failed")
	}
	ps.End()
	if err != nil {
		g.cfg.Logger.Error("policy evaluation failed", "decision_id", v.DecisionID, "err", err)
		rec.Event, rec.Status, rec.Reason = audit.EventError, http.StatusInternalServerError, "policy evaluation failed"
		v.Problem = NewProblem(http.StatusInternalServerError, "policy-error", "the policy could not be evaluated; the call was refused")
		return g.finish(ctx, span, v, rec, c.DryRun)
	}
	d, at := verdictOf(ops)
	opName := ops[at].name
	in.Body = ops[at].body
	v.Decision = d
	rec.Task, rec.Reason = d.Task, d.Reason
	if len(ops) == 1 && opName == "" {
		rec.Fields = ops[0].fields
	} else if len(ops) > 0 {
		names := make([]string, len(ops))
		rec.Operations = make([]audit.Operation, len(ops))
		for i, op := range ops {
			names[i] = op.name
			rec.Operations[i] = audit.Operation{Name: op.name, Task: op.d.Task, Outcome: string(op.d.Outcome), GrantID: op.d.GrantID, Fields: op.fields}
		}
		span.SetAttributes(attribute.StringSlice("elevate.operations", names))
	}
	if rec.BodyHMAC != "" {
		span.SetAttributes(attribute.String("elevate.body_hmac", rec.BodyHMAC))
	}
	span.SetAttributes(attribute.String("elevate.task", d.Task), attribute.String("elevate.outcome", string(d.Outcome)),
		attribute.Bool("elevate.gated", d.Gated))

	switch d.Outcome {
	case policy.Allow:
		// Every grant that allowed an operation, in order; v.Grant, and
		// the record's grant, is the first.
		var used []*grants.Grant
		for _, op := range ops {
			if op.d.GrantID == "" {
				continue
			}
			gr := findGrant(live, op.d.GrantID)
			if gr == nil { // Rego named a grant we did not give it.
				rec.Event, rec.Status, rec.Reason = audit.EventError, http.StatusInternalServerError, "policy named an unknown grant"
				v.Problem = NewProblem(http.StatusInternalServerError, "policy-error", "the policy could not be evaluated; the call was refused")
				return g.finish(ctx, span, v, rec, c.DryRun)
			}
			used = append(used, gr)
		}
		if len(used) > 0 {
			v.Grant = used[0]
			d.GrantID = v.Grant.ID
			rec.GrantID, rec.RequestID, rec.Approvers = v.Grant.ID, v.Grant.RequestID, v.Grant.Approvers
			span.SetAttributes(attribute.String("elevate.grant_id", v.Grant.ID), attribute.String("elevate.request_id", v.Grant.RequestID),
				attribute.StringSlice("elevate.approvers", v.Grant.Approvers))
		}
		v.Decision = d
		reliesOnState := d.Gated || d.GrantID != ""
		if !fresh && (reliesOnState || !g.cfg.ReadsWhenStale) {
			rec.Event, rec.Status, rec.Reason = audit.EventUnavailable, http.StatusServiceUnavailable, "grant state is not confirmed with etcd"
			v.Problem = NewProblem(http.StatusServiceUnavailable, "state-unavailable", "elevate cannot confirm grant state right now; the call was refused, try again shortly")
			return g.finish(ctx, span, v, rec, c.DryRun)
		}
		if c.DryRun {
			v.Allowed, rec.Event = true, audit.EventAllowed
			return g.finish(ctx, span, v, rec, true)
		}
		// Write-ahead: the record of an allowed call is durable before the
		// call is forwarded. A limited grant's use is spent first; the
		// record is written once it is, and before the change a last use
		// makes to its request is recorded.
		rec.Event = audit.EventAllowed
		var limited []*grants.Grant
		for _, gr := range used {
			if gr.MaxUses > 0 {
				limited = append(limited, gr)
			}
		}
		var err error
		if len(limited) > 0 {
			if prob := g.useAll(ctx, d, limited, func() { err = g.write(ctx, rec) }); prob != nil {
				rec.Event, rec.Status, rec.Reason = audit.EventGrantRequired, prob.Status, prob.Reason
				if prob.Status == http.StatusServiceUnavailable {
					rec.Event, rec.Reason = audit.EventUnavailable, prob.Detail
				}
				v.Problem = prob
				return g.finish(ctx, span, v, rec, false)
			}
		} else {
			err = g.write(ctx, rec)
		}
		v.Allowed = true
		if err != nil && (reliesOnState || !g.cfg.ReadsWithoutAudit) {
			v.Allowed, v.Event = false, audit.EventUnavailable
			v.Problem = NewProblem(http.StatusServiceUnavailable, "audit-unavailable", "the audit log cannot be written; the call was refused")
			v.Problem.DecisionID = v.DecisionID
			span.SetAttributes(attribute.String("elevate.decision", audit.EventUnavailable))
			return v
		}
		v.Event = audit.EventAllowed
		span.SetAttributes(attribute.String("elevate.decision", audit.EventAllowed))
		return v
	case policy.GrantRequired:
		rec.Event, rec.Status = audit.EventGrantRequired, http.StatusForbidden
		// A Kubernetes call asks for a grant in its own namespace, not
		// the whole cluster.
		ns := c.Attributes["namespace"]
		if used := g.usedUp(ctx, in, now); used != nil {
			v.Problem = usedUpProblem(d, used, ns)
			rec.GrantID, rec.RequestID, rec.Reason = used.ID, used.RequestID, v.Problem.Reason
		} else {
			v.Problem = grantRequiredProblem(d, ns)
		}
	default: // policy.Deny and anything unexpected
		rec.Event, rec.Status = audit.EventDenied, http.StatusForbidden
		v.Problem = NewProblem(http.StatusForbidden, "denied", d.Reason)
		v.Problem.Task, v.Problem.Reason = d.Task, d.Reason
	}
	if opName != "" && len(ops) > 1 {
		v.Problem.Detail = fmt.Sprintf("call %d of %d (%s): %s", at+1, len(ops), opName, v.Problem.Detail)
	} else if opName != "" {
		v.Problem.Detail = opName + ": " + v.Problem.Detail
	}
	return g.finish(ctx, span, v, rec, c.DryRun)
}

// judged is the policy's decision on one operation of a call.
type judged struct {
	name   string
	body   any
	fields map[string]json.RawMessage
	d      policy.Decision
}

// decide evaluates the policy on c: once without input.body when its
// body is not judged, else once per operation of its body, each with its
// own input.body. The first error ends it.
func (g *Gate) decide(ctx context.Context, c Call, in *policy.Input, now time.Time) ([]judged, error) {
	if len(c.Operations) == 0 {
		d, err := g.cfg.Policy.Eval(ctx, *in, now)
		return []judged{{d: d}}, err
	}
	out := make([]judged, 0, len(c.Operations))
	for _, op := range c.Operations {
		in.Body = op.Body
		d, err := g.cfg.Policy.Eval(ctx, *in, now)
		if err != nil {
			return nil, err
		}
		out = append(out, judged{name: op.Name, body: op.Body, fields: op.Fields, d: d})
	}
	in.Body = nil
	return out, nil
}

// verdictOf combines the decisions on a call's operations: the call is
// allowed only if every operation is. Otherwise the first operation
// denied decides, else the first that needs a grant: a grant would not
// help a denied one. at is the deciding operation (the first when all are
// allowed). An allowed call names its task only when every operation has
// the same one, and is gated when any operation is.
func verdictOf(ops []judged) (d policy.Decision, at int) {
	first := -1
	for i, op := range ops {
		switch op.d.Outcome {
		case policy.Allow:
		case policy.GrantRequired:
			if first < 0 {
				first = i
			}
		default:
			return op.d, i
		}
	}
	if first >= 0 {
		return ops[first].d, first
	}
	d = ops[0].d
	for _, op := range ops[1:] {
		if op.d.Task != d.Task {
			d.Task = ""
		}
		d.Gated = d.Gated || op.d.Gated
	}
	if len(ops) > 1 {
		d.Reason = fmt.Sprintf("every one of %d calls allowed", len(ops))
	}
	return d, 0
}

func findGrant(live []grants.Grant, id string) *grants.Grant {
	for i := range live {
		if live[i].ID == id {
			return &live[i]
		}
	}
	return nil
}

// bodyDigest is a judged body's digest for its audit record; "" without
// a Digest.
func (g *Gate) bodyDigest(body []byte) string {
	if g.cfg.Digest == nil {
		return ""
	}
	return g.cfg.Digest.BodyHMAC(body)
}

// useAll spends one use of each limited grant in gs, one after the other
// (a grant that allowed several operations of a call is in gs once per
// operation), and calls allowed once the last is spent. The first that
// cannot be spent refuses the call; the uses spent before it stay spent.
func (g *Gate) useAll(ctx context.Context, d policy.Decision, gs []*grants.Grant, allowed func()) *Problem {
	if len(gs) == 1 {
		return g.use(ctx, d, gs[0], allowed)
	}
	var prob *Problem
	if p := g.use(ctx, d, gs[0], func() { prob = g.useAll(ctx, d, gs[1:], allowed) }); p != nil {
		return p
	}
	return prob
}

// use spends one use of the limited grant gr that allowed a call decided
// as d, and calls allowed once it is spent. A grant found used up (by a
// call through any replica since the view was read) refuses the call with
// grant-used-up, one found gone with grant-required.
func (g *Gate) use(ctx context.Context, d policy.Decision, gr *grants.Grant, allowed func()) *Problem {
	if g.cfg.Uses == nil {
		p := grantRequiredProblem(d, "")
		p.Detail = "this grant allows a limited number of calls and uses cannot be counted here; the call was refused"
		return p
	}
	uctx, s := g.tracer.Start(ctx, "elevate.grant_use")
	defer s.End()
	err := g.cfg.Uses.UseGrant(uctx, gr.ID, func(u grants.Use) {
		s.SetAttributes(attribute.Int("elevate.grant_use", u.N), attribute.Int("elevate.grant_max_uses", u.MaxUses))
		allowed()
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, grants.ErrUsedUp):
		return usedUpProblem(d, gr, "")
	case errors.Is(err, grants.ErrNotApproved) || errors.Is(err, grants.ErrNotFound):
		return grantRequiredProblem(d, "")
	default:
		s.SetStatus(codes.Error, "grant use not recorded")
		g.cfg.Logger.Error("grant use failed", "grant", gr.ID, "err", err)
		return NewProblem(http.StatusServiceUnavailable, "state-unavailable", "the grant's use could not be recorded; the call was refused")
	}
}

// usedUp returns, for a call that needs a grant, the used-up grant of the
// caller's that would have allowed it, if any: the policy judges the call
// once more as if the caller's used-up grants were live. Only the refusals
// of callers who hold a used-up grant pay for the second evaluation.
func (g *Gate) usedUp(ctx context.Context, in policy.Input, now time.Time) *grants.Grant {
	spent := g.cfg.Grants.UsedUpGrants(in.Subject.ID, now)
	if len(spent) == 0 {
		return nil
	}
	ctx, s := g.tracer.Start(ctx, "elevate.grants_used_up")
	defer s.End()
	in.Grants = slices.Clip(in.Grants)
	for i := range spent {
		in.Grants = append(in.Grants, policyGrant(&spent[i]))
	}
	d, err := g.cfg.Policy.Eval(ctx, in, now)
	if err != nil || d.Outcome != policy.Allow {
		return nil
	}
	for i := range spent {
		if spent[i].ID == d.GrantID {
			s.SetAttributes(attribute.String("elevate.grant_id", spent[i].ID))
			return &spent[i]
		}
	}
	return nil
}

// grantRequiredProblem refuses a call that needs a grant the caller does
// not hold, naming the task and the command that requests it.
func grantRequiredProblem(d policy.Decision, namespace string) *Problem {
	cmd, what := requestCommand(d.Task, d.Request, namespace), d.Task
	if namespace != "" {
		what += " in namespace " + namespace
	}
	p := NewProblem(http.StatusForbidden, "grant-required", fmt.Sprintf("%s needs an approved grant. Request one with: %s", what, cmd))
	p.Task, p.Reason, p.Request = d.Task, d.Reason, cmd
	return p
}

// usedUpProblem refuses a call that the caller's grant gr would allow but
// for its uses, all spent; it names the task and the command that requests
// a new grant.
func usedUpProblem(d policy.Decision, gr *grants.Grant, namespace string) *Problem {
	cmd := requestCommand(d.Task, d.Request, namespace)
	reason := fmt.Sprintf("the grant of request %s allowed %d %s, all spent", gr.RequestID, gr.MaxUses, plural(gr.MaxUses, "call", "calls"))
	p := NewProblem(http.StatusForbidden, "grant-used-up", fmt.Sprintf("%s: %s. Request a new grant with: %s", d.Task, reason, cmd))
	p.Task, p.Reason, p.Request = d.Task, reason, cmd
	return p
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// policyGrant is a grant as the policy sees it.
func policyGrant(gr *grants.Grant) policy.Grant {
	return policy.Grant{
		ID: gr.ID, RequestID: gr.RequestID, Scope: string(gr.Scope), Target: gr.Target,
		Constraint: gr.Constraint, NotBefore: gr.NotBefore, ExpiresAt: gr.ExpiresAt,
	}
}

// Refuse records a call refused before it could be judged (bad path,
// unknown route, forbidden proxy target) and returns its problem.
func (g *Gate) Refuse(ctx context.Context, rec audit.Record, p *Problem) *Problem {
	rec.ID, rec.Time, rec.Kind, rec.Status = newID(), g.cfg.Now(), audit.KindCall, p.Status
	if rec.Reason == "" {
		rec.Reason = p.Detail
	}
	v := Verdict{DecisionID: rec.ID, Problem: p}
	var attrs spanAttrs
	if rec.Upstream != "" {
		attrs.SetAttributes(attribute.String("elevate.upstream", rec.Upstream))
	}
	v = g.finish(ctx, &attrs, v, rec, false)
	trace.SpanFromContext(ctx).SetAttributes(attrs...)
	outcome := metric.WithAttributes(attribute.String("outcome", v.Event))
	g.decisions.Add(ctx, 1, outcome)
	return v.Problem
}

func (g *Gate) finish(ctx context.Context, span *spanAttrs, v Verdict, rec audit.Record, dry bool) Verdict {
	v.Event = rec.Event
	span.SetAttributes(attribute.String("elevate.decision", rec.Event))
	if v.Problem != nil {
		v.Problem.DecisionID = v.DecisionID
	}
	if !dry {
		// A refusal stays a refusal when its record cannot be written.
		_ = g.write(ctx, rec)
	}
	return v
}

func (g *Gate) write(ctx context.Context, rec audit.Record) error {
	actx, as := g.tracer.Start(ctx, "elevate.audit")
	defer as.End()
	if _, err := g.cfg.Audit.Write(actx, rec); err != nil {
		as.RecordError(err)
		as.SetStatus(codes.Error, "audit write failed")
		g.cfg.Logger.Error("audit write failed", "decision_id", rec.ID, "event", rec.Event, "err", err)
		return err
	}
	return nil
}

func (g *Gate) verify(ctx context.Context, token string) (identity.Identity, error) {
	ictx, s := g.tracer.Start(ctx, "elevate.identity")
	defer s.End()
	if token == "" {
		return identity.Identity{}, identity.ErrNoToken
	}
	id, err := g.cfg.Verifier.Verify(ictx, token)
	if err != nil {
		s.SetStatus(codes.Error, "token refused")
	}
	return id, err
}

// requestCommand is the command line that asks for a grant covering task:
// for what the covering approval policy names, a role or role group
// included, narrowed to namespace unless it is "". A namespace is a
// DNS label (package kubernetes refuses any other), so it needs no quotes.
func requestCommand(task string, t *policy.Target, namespace string) string {
	flag, target := "--task", task
	if t != nil && t.Target != "" {
		switch t.Scope {
		case policy.ScopeRole:
			flag, target = "--role", t.Target
		case policy.ScopeRoleGroup:
			flag, target = "--role-group", t.Target
		}
	}
	narrow := ""
	if namespace != "" {
		narrow = " --namespace " + namespace
	}
	return "elevate request new " + flag + " '" + strings.ReplaceAll(target, "'", `'\''`) + "'" + narrow + " --reason '<why>'"
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// Outcome is how a forwarded call ended at its upstream.
type Outcome struct {
	Status   int           // the upstream's status; 502 when it did not answer
	Bytes    int64         // response body bytes relayed to the caller
	Duration time.Duration // from the decision to the end of the response
	Reason   string        // why the call did not complete, if it did not
}

// Outcome records how an allowed call ended, as a second record linked to
// its decision record by Ref. It does not wait for the record to be
// durable: the caller has had its answer already. Drain waits for the
// records still being written.
func (g *Gate) Outcome(ctx context.Context, v Verdict, c Call, o Outcome) {
	rec := audit.Record{
		Time: g.cfg.Now(), Kind: audit.KindCall, Event: audit.EventOutcome, Ref: v.DecisionID,
		Subject: v.Identity.Subject, Task: v.Decision.Task, Upstream: c.Upstream,
		Method: c.Method, Host: c.Host, Path: c.displayPath(), Query: c.RawQuery, Attributes: c.Attributes,
		Status: o.Status, Bytes: o.Bytes, DurationMS: float64(o.Duration.Microseconds()) / 1000, Reason: o.Reason,
	}
	if v.Grant != nil {
		rec.GrantID, rec.RequestID = v.Grant.ID, v.Grant.RequestID
	}
	ctx = context.WithoutCancel(ctx)
	g.outcomes.Add(1)
	go func() {
		defer g.outcomes.Done()
		if _, err := g.writeOutcome(ctx, rec); err != nil {
			g.cfg.Logger.Error("audit write failed", "decision_id", v.DecisionID, "event", rec.Event, "err", err)
		}
	}()
}

// Drain waits until the outcome records handed to Outcome are written (or
// have failed). Call it after the listeners are shut down and before the
// audit log is closed.
func (g *Gate) Drain() { g.outcomes.Wait() }

// observeUpstream records the time an upstream took to answer.
func (g *Gate) observeUpstream(ctx context.Context, upstream string, d time.Duration) {
	g.upstream.Record(ctx, d.Seconds(), metric.WithAttributes(attribute.String("upstream", upstream)))
}

// PolicyState is the Rego engine's view of the grant store's state: the
// access-control settings and approval policies that the store reports to
// its OnState, as the Decider is handed them.
func PolicyState(c grants.Control, ps []grants.Policy) policy.State {
	st := policy.State{Control: policy.Control{Enabled: c.Enabled, DefaultApprovers: c.DefaultApprovers, SystemAccounts: c.SystemAccounts}}
	for _, p := range ps {
		st.Policies = append(st.Policies, policy.ApprovalPolicy{ID: p.ID, Scope: string(p.Scope), Target: p.Target, Approval: p.Approval, Approvers: p.Approvers})
	}
	return st
}
