package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Engine evaluates the decision of a policy bundle. It is safe for
// concurrent use: Eval never blocks on SetState or Reload.
type Engine struct {
	cfg Config
	cur atomic.Pointer[snapshot]

	reloading sync.Mutex // serialises Reload
	mu        sync.Mutex // serialises SetState and the swap of a snapshot
	state     ast.Value  // the last state written, carried over by Reload; nil before SetState
	// gen counts states written. A cached decision carries the generation
	// read before it was evaluated and is served only in that generation.
	gen atomic.Uint64
}

// New loads cfg.Bundle, compiles it in strict mode, prepares the decision
// query, reads the catalog index and proves the bundle (see the package
// documentation). Until SetState is first called, data.elevate_state is
// undefined (the default bundle then denies every call).
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	snap, err := build(ctx, cfg, cfg.Bundle, nil)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg}
	e.cur.Store(snap)
	return e, nil
}

// Reload builds an engine state from bundle as New does, carrying over the
// last State, and swaps it in atomically. On error the engine keeps the
// bundle it had. SetState does not wait for the build (the proof takes a
// while): a state set meanwhile is written to the new bundle before the
// swap.
func (e *Engine) Reload(ctx context.Context, bundle fs.FS) error {
	e.reloading.Lock()
	defer e.reloading.Unlock()
	e.mu.Lock()
	state, gen := e.state, e.gen.Load()
	e.mu.Unlock()

	snap, err := build(ctx, e.cfg, bundle, state)
	if err != nil {
		return err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen.Load() != gen {
		if err := writeState(ctx, snap.store, e.state); err != nil {
			return err
		}
	}
	e.cur.Store(snap)
	return nil
}

// SetState makes st visible to Rego as data.elevate_state (see the package
// documentation for its shape), for every Eval that starts after SetState
// returns. It refuses, with ErrInvalidState, a policy with an unknown scope,
// an empty id or target, a repeated policy id, or an empty system account;
// the engine then keeps the state it had.
func (e *Engine) SetState(ctx context.Context, st State) error {
	doc, err := stateDocument(st)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := storage.WriteOne(ctx, e.cur.Load().store, storage.AddOp, statePath, doc); err != nil {
		return fmt.Errorf("policy: write state: %w", err)
	}
	e.state = doc
	e.gen.Add(1)
	return nil
}

// Cacheable reports whether the current bundle's decisions are cached and,
// when they are not, why: a bundle that reads the clock other than to
// compare it with a grant's window, or calls another nondeterministic
// built-in, is evaluated afresh for every call.
func (e *Engine) Cacheable() (bool, string) {
	snap := e.cur.Load()
	switch {
	case snap.cache != nil:
		return true, ""
	case !snap.clock.cacheable:
		return false, snap.clock.why
	}
	return false, "the decision cache is turned off"
}

// Eval evaluates the decision for in at time now, which Rego sees as
// time.now_ns(). On any error the Decision's Outcome is Deny.
func (e *Engine) Eval(ctx context.Context, in Input, now time.Time) (Decision, error) {
	if now.IsZero() {
		return failed(), fmt.Errorf("%w: evaluation time is zero", ErrInvalidInput)
	}
	if err := ctx.Err(); err != nil {
		return failed(), fmt.Errorf("policy: evaluate %s: %w", e.cfg.Query, err)
	}
	pv, err := in.parse()
	if err != nil {
		return failed(), err
	}
	snap := e.cur.Load()
	var key []byte
	gen, nowNS := e.gen.Load(), cacheTime(now)
	if snap.cache != nil {
		kb := keyBuffers.Get().(*[]byte)
		key = in.key((*kb)[:0], pv)
		defer func() { *kb = key[:0]; keyBuffers.Put(kb) }()
		if d, ok := snap.cache.get(key, gen, nowNS); ok {
			return d, nil
		}
	}
	rs, err := snap.decision.Eval(ctx,
		rego.EvalParsedInput(in.valueWith(pv)),
		rego.EvalTime(now),
	)
	if err != nil {
		return failed(), fmt.Errorf("policy: evaluate %s: %w", e.cfg.Query, err)
	}
	if len(rs) == 0 {
		return failed(), ErrUndefined
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return failed(), fmt.Errorf("%w: more than one result", ErrBadDecision)
	}
	v, _ := rs[0].Expressions[0].Value.(ast.Value)
	d, err := parseDecision(v)
	if err != nil {
		return failed(), err
	}
	if snap.cache != nil {
		if lo, hi, ok := in.window(nowNS); ok {
			snap.cache.put(key, cached{d: d.clone(), gen: gen, lo: lo, hi: hi})
		}
	}
	return d, nil
}

// Catalog returns a copy of the catalog of the current bundle.
func (e *Engine) Catalog() Catalog {
	return e.cur.Load().catalog.clone()
}

// Body says whether and how the proxy reads the body of a call to upstream
// with method (HEAD is read as GET) and path (decoded segments, as in
// Input.Path), from the route tables of the current bundle: the body kind of
// a route the call matches that declares one, else that of the upstream's
// table, else none; and the fields every route the call may match records.
// The query and body conditions of routes are not consulted. Its cost does
// not grow with the number of routes.
func (e *Engine) Body(upstream, method string, path []string) BodySpec {
	return e.cur.Load().routes.body(upstream, method, path)
}

// Warnings are what loading the current bundle found worth saying without
// refusing it, each naming the file and line it is about where there is
// one: a route table without routes, a configured upstream (Config.Upstreams)
// that no route reaches.
func (e *Engine) Warnings() []string {
	return slices.Clone(e.cur.Load().warnings)
}

func failed() Decision {
	return Decision{Outcome: Deny, Reason: "policy evaluation failed"}
}

var (
	keyOutcome = ast.StringTerm("outcome")
	keyTask    = ast.StringTerm("task")
	keyGated   = ast.StringTerm("gated")
	keyGrant   = ast.StringTerm("grant")
	keyReason  = ast.StringTerm("reason")
	keyRequest = ast.StringTerm("request")
)

// parseDecision reads the decision document: outcome and reason are
// required strings; task and grant optional strings; gated an optional
// boolean. Other keys are ignored.
func parseDecision(v ast.Value) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return failed(), fmt.Errorf("%w: not an object", ErrBadDecision)
	}
	var d Decision
	outcome, ok := stringField(obj, keyOutcome, true)
	if !ok {
		return failed(), fmt.Errorf("%w: outcome is not a string", ErrBadDecision)
	}
	switch d.Outcome = Outcome(outcome); d.Outcome {
	case Allow, Deny, GrantRequired:
	default:
		return failed(), fmt.Errorf("%w: unknown outcome %q", ErrBadDecision, outcome)
	}
	if d.Reason, ok = stringField(obj, keyReason, true); !ok {
		return failed(), fmt.Errorf("%w: reason is not a string", ErrBadDecision)
	}
	if d.Task, ok = stringField(obj, keyTask, false); !ok {
		return failed(), fmt.Errorf("%w: task is not a string", ErrBadDecision)
	}
	if d.GrantID, ok = stringField(obj, keyGrant, false); !ok {
		return failed(), fmt.Errorf("%w: grant is not a string", ErrBadDecision)
	}
	if t := obj.Get(keyRequest); t != nil {
		ro, ok := t.Value.(ast.Object)
		if !ok {
			return failed(), fmt.Errorf("%w: request is not an object", ErrBadDecision)
		}
		scope, ok1 := stringField(ro, keyScope, true)
		target, ok2 := stringField(ro, keyTarget, true)
		if !ok1 || !ok2 {
			return failed(), fmt.Errorf("%w: request needs scope and target strings", ErrBadDecision)
		}
		d.Request = &Target{Scope: scope, Target: target}
	}
	if t := obj.Get(keyGated); t != nil {
		b, ok := t.Value.(ast.Boolean)
		if !ok {
			return failed(), fmt.Errorf("%w: gated is not a boolean", ErrBadDecision)
		}
		d.Gated = bool(b)
	}
	return d, nil
}

func stringField(obj ast.Object, key *ast.Term, required bool) (string, bool) {
	t := obj.Get(key)
	if t == nil {
		return "", !required
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

var (
	keyMethod      = ast.StringTerm("method")
	keyUpstream    = ast.StringTerm("upstream")
	keyHost        = ast.StringTerm("host")
	keyPath        = ast.StringTerm("path")
	keyQuery       = ast.StringTerm("query")
	keySubject     = ast.StringTerm("subject")
	keyGrants      = ast.StringTerm("grants")
	keyID          = ast.StringTerm("id")
	keyGroups      = ast.StringTerm("groups")
	keyMFA         = ast.StringTerm("mfa")
	keyEmail       = ast.StringTerm("email")
	keyRequestID   = ast.StringTerm("request_id")
	keyScope       = ast.StringTerm("scope")
	keyTarget      = ast.StringTerm("target")
	keyNotBefore   = ast.StringTerm("not_before_ns")
	keyExpiresAt   = ast.StringTerm("expires_at_ns")
	keyControl     = ast.StringTerm("control")
	keyEnabled     = ast.StringTerm("enabled")
	keyDefaultAppr = ast.StringTerm("default_approvers")
	keySystemAccts = ast.StringTerm("system_accounts")
	keyPolicies    = ast.StringTerm("policies")
	keyApproval    = ast.StringTerm("approval")
	keyApprovers   = ast.StringTerm("approvers")
	keyBody        = ast.StringTerm("body")
	keyConstraint  = ast.StringTerm("constraint")
	keyKubernetes  = ast.StringTerm("kubernetes")
)

// bodyValue is in.Body as Rego sees it; nil when there is no body.
func (in Input) bodyValue() (ast.Value, error) {
	if in.Body == nil {
		return nil, nil
	}
	v, err := ast.InterfaceToValue(in.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: body: %w", ErrInvalidInput, err)
	}
	return v, nil
}

// kubernetesValue is in.Kubernetes as Rego sees it; nil when it is nil.
func (in Input) kubernetesValue() (ast.Value, error) {
	if in.Kubernetes == nil {
		return nil, nil
	}
	v, err := ast.InterfaceToValue(in.Kubernetes)
	if err != nil {
		return nil, fmt.Errorf("%w: kubernetes: %w", ErrInvalidInput, err)
	}
	return v, nil
}

// constraintTerm is a grant's constraint as a Rego object.
func constraintTerm(c map[string]string) *ast.Term {
	obj := ast.NewObjectWithCapacity(len(c))
	for k, v := range c {
		obj.Insert(ast.StringTerm(k), ast.StringTerm(v))
	}
	return ast.NewTerm(obj)
}

// parsed are the parts of an input that are converted to Rego values
// whole: input.body and input.kubernetes, nil when absent.
type parsed struct{ body, kube ast.Value }

// parse converts in.Body and in.Kubernetes.
func (in Input) parse() (parsed, error) {
	body, err := in.bodyValue()
	if err != nil {
		return parsed{}, err
	}
	kube, err := in.kubernetesValue()
	return parsed{body: body, kube: kube}, err
}

// value is in as the Rego input document; in.Body and in.Kubernetes must
// convert (parse).
func (in Input) value() ast.Value {
	pv, _ := in.parse()
	return in.valueWith(pv)
}

// valueWith is in as the Rego input document, with pv (from parse) as
// input.body and input.kubernetes, built directly as AST so that no JSON
// round trip happens per call.
func (in Input) valueWith(pv parsed) ast.Value {
	subject := []([2]*ast.Term){
		ast.Item(keyID, ast.StringTerm(in.Subject.ID)),
		ast.Item(keyGroups, stringArray(in.Subject.Groups)),
		ast.Item(keyMFA, ast.InternedTerm(in.Subject.MFA)),
	}
	if in.Subject.Email != "" {
		subject = append(subject, ast.Item(keyEmail, ast.StringTerm(in.Subject.Email)))
	}

	query := ast.NewObjectWithCapacity(len(in.Query))
	for k, vs := range in.Query {
		query.Insert(ast.StringTerm(k), stringArray(vs))
	}

	grants := make([]*ast.Term, len(in.Grants))
	for i, g := range in.Grants {
		grants[i] = ast.ObjectTerm(
			ast.Item(keyID, ast.StringTerm(g.ID)),
			ast.Item(keyRequestID, ast.StringTerm(g.RequestID)),
			ast.Item(keyScope, ast.StringTerm(g.Scope)),
			ast.Item(keyTarget, ast.StringTerm(g.Target)),
			ast.Item(keyConstraint, constraintTerm(g.Constraint)),
			ast.Item(keyNotBefore, intTerm(unixNano(g.NotBefore))),
			ast.Item(keyExpiresAt, intTerm(unixNano(g.ExpiresAt))),
		)
	}

	items := []([2]*ast.Term){
		ast.Item(keyMethod, ast.StringTerm(in.Method)),
		ast.Item(keyUpstream, ast.StringTerm(in.Upstream)),
		ast.Item(keyHost, ast.StringTerm(in.Host)),
		ast.Item(keyPath, stringArray(in.Path)),
		ast.Item(keyQuery, ast.NewTerm(query)),
		ast.Item(keySubject, ast.ObjectTerm(subject...)),
		ast.Item(keyGrants, ast.ArrayTerm(grants...)),
	}
	if pv.body != nil {
		items = append(items, ast.Item(keyBody, ast.NewTerm(pv.body)))
	}
	if pv.kube != nil {
		items = append(items, ast.Item(keyKubernetes, ast.NewTerm(pv.kube)))
	}
	return ast.NewObject(items...)
}

func stringArray(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

func intTerm(n int64) *ast.Term {
	return ast.NumberTerm(json.Number(strconv.FormatInt(n, 10)))
}

// stateDocument checks st and builds data.elevate_state from it.
func stateDocument(st State) (ast.Value, error) {
	accounts := ast.NewObjectWithCapacity(len(st.Control.SystemAccounts))
	for _, id := range st.Control.SystemAccounts {
		if id == "" {
			return nil, fmt.Errorf("%w: control.system_accounts: empty subject id", ErrInvalidState)
		}
		accounts.Insert(ast.StringTerm(id), ast.InternedTerm(true))
	}

	// scope -> target -> policies
	byTarget := map[string]map[string][]ApprovalPolicy{ScopeTask: {}, ScopeRole: {}, ScopeRoleGroup: {}}
	seen := make(map[string]bool, len(st.Policies))
	for i, p := range st.Policies {
		targets, ok := byTarget[p.Scope]
		switch {
		case p.ID == "":
			return nil, fmt.Errorf("%w: policies[%d].id: empty", ErrInvalidState, i)
		case seen[p.ID]:
			return nil, fmt.Errorf("%w: policies[%d].id: %q is repeated", ErrInvalidState, i, p.ID)
		case !ok:
			return nil, fmt.Errorf("%w: policies[%d].scope: %q is not task, role or rolegroup", ErrInvalidState, i, p.Scope)
		case p.Target == "":
			return nil, fmt.Errorf("%w: policies[%d].target: empty", ErrInvalidState, i)
		}
		seen[p.ID] = true
		targets[p.Target] = append(targets[p.Target], p)
	}

	policies := ast.NewObjectWithCapacity(len(byTarget))
	for _, scope := range []string{ScopeTask, ScopeRole, ScopeRoleGroup} {
		targets := ast.NewObjectWithCapacity(len(byTarget[scope]))
		for target, ps := range byTarget[scope] {
			byID := ast.NewObjectWithCapacity(len(ps))
			for _, p := range ps {
				byID.Insert(ast.StringTerm(p.ID), ast.ObjectTerm(
					ast.Item(keyID, ast.StringTerm(p.ID)),
					ast.Item(keyScope, ast.StringTerm(p.Scope)),
					ast.Item(keyTarget, ast.StringTerm(p.Target)),
					ast.Item(keyApproval, ast.StringTerm(p.Approval)),
					ast.Item(keyApprovers, ast.StringTerm(p.Approvers)),
				))
			}
			targets.Insert(ast.StringTerm(target), ast.NewTerm(byID))
		}
		policies.Insert(ast.StringTerm(scope), ast.NewTerm(targets))
	}

	return ast.NewObject(
		ast.Item(keyControl, ast.ObjectTerm(
			ast.Item(keyEnabled, ast.InternedTerm(st.Control.Enabled)),
			ast.Item(keyDefaultAppr, ast.StringTerm(st.Control.DefaultApprovers)),
			ast.Item(keySystemAccts, ast.NewTerm(accounts)),
		)),
		ast.Item(keyPolicies, ast.NewTerm(policies)),
	), nil
}
