package policy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The proof a bundle passes before it is published.
//
// A bundle that compiles can still fail on every call that reaches a faulty
// rule: two files of one package (all catalogs share elevate.catalog) that
// define a helper with the same name make one rule whose definitions
// conflict; a built-in fails on the values calls carry; and so on. Such a
// bundle is refused at load, before any call reaches it, and a reload keeps
// the running bundle.
//
// The proof evaluates the decision, as the engine prepared it, for a
// representative call per catalogued route, in these access-control states:
// not loaded; disabled (which tells the call's task); then, per task, gated
// by policies on the task, its roles and its role groups, the caller holding
// no grant, then live and expired grants for each of them; the caller a
// system account; gated by a role only; by a role group only. With the
// grants held (or, for a call that is no task, disabled) it also evaluates
// in full every rule the decision depends on, so that a conflict behind a
// branch these states do not take is found too; there, a built-in error is
// left to the decision's own evaluation, since a rule may rely on its caller
// to guard it. Any error refuses the bundle; a conflict is reported with
// every definition of the conflicting rule, by file and line.
//
// A route is a rule body that tests input.upstream, input.method or
// input.path, as every rule a route table generates does:
// `input.path = ["mailboxes", id, "search"]` and `input.path[0] == "config"`
// give the segments, and each variable or free segment gets a sample value
// of its own (x0, x1, ...), so that helpers reading different segments see
// different values; a query parameter or body field the body reads
// (input.query.k, input.body.k) gets the value it is compared with, else
// "x". A GET route is also tried as HEAD, and each catalogued upstream and
// no upstream with an empty path. The proof cannot try every input: Eval
// still turns any error into a deny.

// proofTime is the instant of every proof evaluation, so that whether a
// bundle loads does not depend on when: a Monday, at noon UTC.
var proofTime = time.Date(2025, 6, 16, 12, 0, 0, 0, time.UTC)

// offline keeps the proof off the network: every http.send it makes is
// answered 503 at once, as an unavailable service would answer.
var offline = rego.EvalHTTPRoundTripper(func(*http.Transport) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		body := "elevate: no network while a policy bundle is proved"
		return &http.Response{
			Status: "503 Service Unavailable", StatusCode: http.StatusServiceUnavailable,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"text/plain"}},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			Request:       req,
		}, nil
	})
})

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// proofSubject is the caller of every proof call.
const proofSubject = "elevate-proof"

// prover evaluates one bundle before it is published. It writes states to
// the bundle's store; build writes the real state back afterwards.
type prover struct {
	compiler *ast.Compiler
	store    storage.Store
	decision rego.PreparedEvalQuery
	query    string                  // the decision's reference, for messages
	reach    *rego.PreparedEvalQuery // the rules the decision depends on that read input
	catalog  Catalog
	state    string // the state last written, for messages
}

// prove runs the proof on a bundle that compiled and whose catalog index was
// read, unless the bundle passed it before. It returns ErrInvalidBundle
// naming the call, the state and the rule that failed.
func prove(ctx context.Context, key [sha256.Size]byte, compiler *ast.Compiler, store storage.Store, decisionRef ast.Ref, decision rego.PreparedEvalQuery, cat Catalog) error {
	if proved.has(key) {
		return nil
	}
	if err := proveAll(ctx, compiler, store, decisionRef, decision, cat); err != nil {
		return err
	}
	proved.add(key)
	return nil
}

// proved remembers, by proofKey, the last bundles that passed the proof, so
// that loading one again (every engine a process starts on the same bundle,
// a SIGHUP that changed nothing) does not repeat it: the proof's calls,
// states and time are fixed, and http.send is answered offline, so a bundle
// that passed once passes again.
var proved = &provedSet{}

type provedSet struct {
	mu   sync.Mutex
	keys [][sha256.Size]byte // most recent last
}

const provedKept = 16

func (s *provedSet) has(key [sha256.Size]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.keys, key)
}

func (s *provedSet) add(key [sha256.Size]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.keys, key) {
		return
	}
	if len(s.keys) == provedKept {
		s.keys = slices.Delete(s.keys, 0, 1)
	}
	s.keys = append(s.keys, key)
}

// proofKey identifies what the proof depends on: the bundle's files and the
// two queries.
func proofKey(digest [sha256.Size]byte, cfg Config) [sha256.Size]byte {
	h := sha256.New()
	_, _ = h.Write(digest[:])
	for _, q := range []string{cfg.Query, cfg.CatalogQuery} {
		_, _ = h.Write(binary.AppendUvarint(nil, uint64(len(q))))
		_, _ = h.Write([]byte(q))
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// proveAll runs the proof. Each state is written once and every call that
// needs it is evaluated in it: the calls of a task share its gated states,
// and the states that only choose between else branches (gated by a role or
// a role group only, a system account) are tried on one call per task.
func proveAll(ctx context.Context, compiler *ast.Compiler, store storage.Store, decisionRef ast.Ref, decision rego.PreparedEvalQuery, cat Catalog) error {
	p := &prover{compiler: compiler, store: store, decision: decision, query: decisionRef.String(), catalog: cat}
	once, perCall, err := reachQueries(ctx, compiler, store, decisionRef)
	if err != nil {
		return err
	}
	p.reach = perCall
	calls := sampleCalls(compiler, cat)

	if err := p.setState(ctx, nil, "with no access-control state"); err != nil {
		return err
	}
	for _, in := range calls {
		if _, err := p.eval(ctx, in); err != nil {
			return err
		}
	}

	// Disabled: every call, to learn its task.
	if err := p.setState(ctx, &State{}, "with access control disabled"); err != nil {
		return err
	}
	if err := p.evalRules(ctx, once, calls[0]); err != nil {
		return err
	}
	byTask := map[string][]Input{}
	for _, in := range calls {
		d, err := p.eval(ctx, in)
		if err != nil {
			return err
		}
		switch _, known := cat.Tasks[d.Task]; {
		case in.Method == "HEAD":
			// The decision reads a HEAD call as its GET call, which the
			// other states try.
		case known:
			byTask[d.Task] = append(byTask[d.Task], in)
		default:
			if err := p.evalReach(ctx, in); err != nil {
				return err
			}
		}
	}

	tasks := make([]string, 0, len(byTask))
	for t := range byTask {
		tasks = append(tasks, t)
	}
	slices.Sort(tasks)
	for _, t := range tasks {
		if err := p.proveTask(ctx, t, byTask[t]); err != nil {
			return err
		}
	}
	return nil
}

// proveTask evaluates the calls of task in the states where it is gated.
func (p *prover) proveTask(ctx context.Context, task string, calls []Input) error {
	var roles, groups []string
	for name, tasks := range p.catalog.Roles {
		if slices.Contains(tasks, task) {
			roles = append(roles, name)
		}
	}
	for name, tasks := range p.catalog.RoleGroups {
		if slices.Contains(tasks, task) {
			groups = append(groups, name)
		}
	}
	slices.Sort(roles)
	slices.Sort(groups)

	gated := func(scopes ...string) *State {
		st := &State{Control: Control{Enabled: true, DefaultApprovers: proofSubject}}
		add := func(scope string, targets ...string) {
			if !slices.Contains(scopes, scope) {
				return
			}
			for _, t := range targets {
				st.Policies = append(st.Policies, ApprovalPolicy{
					ID: "proof-" + strconv.Itoa(len(st.Policies)), Scope: scope, Target: t,
					Approval: "manual", Approvers: proofSubject,
				})
			}
		}
		add(ScopeTask, task)
		add(ScopeRole, roles...)
		add(ScopeRoleGroup, groups...)
		return st
	}

	// The caller's grants: live ones for the task, each of its roles and
	// role groups, and an expired one.
	var grants []Grant
	live := func(scope, target string) Grant {
		n := strconv.Itoa(len(grants))
		return Grant{ID: "proof-grant-" + n, RequestID: "proof-request-" + n, Scope: scope, Target: target,
			NotBefore: proofTime.Add(-time.Hour), ExpiresAt: proofTime.Add(time.Hour)}
	}
	grants = append(grants, live(ScopeTask, task))
	for _, r := range roles {
		grants = append(grants, live(ScopeRole, r))
	}
	for _, g := range groups {
		grants = append(grants, live(ScopeRoleGroup, g))
	}
	expired := live(ScopeTask, task)
	expired.NotBefore, expired.ExpiresAt = proofTime.Add(-2*time.Hour), proofTime.Add(-time.Hour)
	grants = append(grants, expired)

	all := gated(ScopeTask, ScopeRole, ScopeRoleGroup)
	if err := p.setState(ctx, all, "with the task gated"); err != nil {
		return err
	}
	for _, in := range calls {
		if _, err := p.eval(ctx, in); err != nil {
			return err
		}
		held := in
		held.Grants = grants
		if _, err := p.eval(ctx, held); err != nil {
			return err
		}
		if err := p.evalReach(ctx, held); err != nil {
			return err
		}
	}

	type variant struct {
		st   *State
		what string
	}
	system := *all
	system.Control.SystemAccounts = []string{proofSubject}
	others := []variant{{&system, "with the task gated and the caller a system account"}}
	if len(roles) > 0 {
		others = append(others, variant{gated(ScopeRole), "with the task gated by a role only"})
	}
	if len(groups) > 0 {
		others = append(others, variant{gated(ScopeRoleGroup), "with the task gated by a role group only"})
	}
	for _, o := range others {
		if err := p.setState(ctx, o.st, o.what); err != nil {
			return err
		}
		if _, err := p.eval(ctx, calls[0]); err != nil {
			return err
		}
	}
	return nil
}

// setState writes st to the store as SetState would, or removes the state
// when st is nil; what describes it in messages.
func (p *prover) setState(ctx context.Context, st *State, what string) error {
	p.state = what
	if st == nil {
		return writeState(ctx, p.store, nil)
	}
	doc, err := stateDocument(*st)
	if err != nil {
		return err
	}
	return writeState(ctx, p.store, doc)
}

// eval evaluates the decision for in. A decision of the wrong shape is not
// an error here (Eval reports it per call); the zero Decision is returned
// instead.
func (p *prover) eval(ctx context.Context, in Input) (Decision, error) {
	rs, err := p.decision.Eval(ctx, rego.EvalParsedInput(in.value()), rego.EvalTime(proofTime), offline)
	if err != nil {
		return Decision{}, p.refuse(p.query, in, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, nil
	}
	v, _ := rs[0].Expressions[0].Value.(ast.Value)
	d, err := parseDecision(v)
	if err != nil {
		return Decision{}, nil
	}
	return d, nil
}

// evalReach evaluates every rule the decision depends on that reads input,
// for in.
func (p *prover) evalReach(ctx context.Context, in Input) error {
	return p.evalRules(ctx, p.reach, in)
}

func (p *prover) evalRules(ctx context.Context, q *rego.PreparedEvalQuery, in Input) error {
	if q == nil {
		return nil
	}
	if _, err := q.Eval(ctx, rego.EvalParsedInput(in.value()), rego.EvalTime(proofTime), offline); err != nil {
		return p.refuse("the rules of "+p.query, in, err)
	}
	return nil
}

// refuse is the error for err, met evaluating what for in: "evaluating
// data.elevate.decision for the call DELETE /api/v1/repos/x3/x4 on upstream
// "gogs" with access control disabled: ...".
func (p *prover) refuse(what string, in Input, err error) error {
	held := ""
	if len(in.Grants) > 0 {
		held = ", the caller holding grants for it"
	}
	return fmt.Errorf("%w: evaluating %s for the call %s /%s on upstream %q %s%s: %s",
		ErrInvalidBundle, what, in.Method, strings.Join(in.Path, "/"), in.Upstream, p.state, held,
		explain(p.compiler, err))
}

// explain is err as one line. A conflict names every definition of the
// conflicting rule by file and line; OPA's own message names at most the
// two that disagreed first, over several lines.
func explain(compiler *ast.Compiler, err error) string {
	var tdErr *topdown.Error
	if !errors.As(err, &tdErr) {
		return oneLine(err.Error())
	}
	if tdErr.Code != topdown.ConflictErr || tdErr.Location == nil {
		return oneLine(tdErr.Error())
	}
	rule := ruleAt(compiler, tdErr.Location)
	if rule == nil {
		return oneLine(tdErr.Error())
	}
	kind := "rule"
	if len(rule.Head.Args) > 0 {
		kind = "function"
	}
	defs := definitions(compiler, rule)
	switch len(defs) {
	case 0, 1:
		return fmt.Sprintf("%s %s at %s produces conflicting values", kind, rule.Ref(), where(rule.Location))
	case 2:
		return fmt.Sprintf("%s %s is defined both at %s and at %s, and the two produce conflicting values",
			kind, rule.Ref(), defs[0], defs[1])
	}
	return fmt.Sprintf("%s %s is defined at %s and %s, and these produce conflicting values",
		kind, rule.Ref(), strings.Join(defs[:len(defs)-1], ", "), defs[len(defs)-1])
}

// ruleAt is the rule of compiler whose definition or head is at loc.
func ruleAt(compiler *ast.Compiler, loc *ast.Location) *ast.Rule {
	var found *ast.Rule
	same := func(l *ast.Location) bool {
		return l != nil && (l == loc || l.File == loc.File && l.Row == loc.Row && l.Col == loc.Col)
	}
	for _, m := range compiler.Modules {
		ast.WalkRules(m, func(r *ast.Rule) bool {
			if found == nil && (same(r.Location) || same(r.Head.Location)) {
				found = r
			}
			return found != nil
		})
		if found != nil {
			break
		}
	}
	return found
}

// definitions are the places, file:line in order, of the rules of compiler
// that define the same document as rule: the same reference, where a
// variable key may stand for any key, and for a function the same arity.
// Else branches are part of the definition they follow.
func definitions(compiler *ast.Compiler, rule *ast.Rule) []string {
	ref := rule.Ref()
	var locs []*ast.Location
	for _, m := range compiler.Modules {
		for _, r := range m.Rules {
			if len(r.Head.Args) == len(rule.Head.Args) && sameDocument(r.Ref(), ref) {
				locs = append(locs, r.Location)
			}
		}
	}
	slices.SortFunc(locs, func(a, b *ast.Location) int { return a.Compare(b) })
	out := make([]string, 0, len(locs))
	for _, l := range locs {
		out = append(out, where(l))
	}
	return slices.Compact(out)
}

func sameDocument(a, b ast.Ref) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		_, va := a[i].Value.(ast.Var)
		_, vb := b[i].Value.(ast.Var)
		if !va && !vb && !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func where(l *ast.Location) string {
	if l == nil {
		return "an unknown place"
	}
	return l.File + ":" + strconv.Itoa(l.Row)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// reachQueries prepare the queries that evaluate, in full, every rule that
// the rules of decisionRef depend on, directly or not (functions excepted:
// the rules that call them evaluate them): once, the rules whose value does
// not depend on input; for every call, the others. Each rule is wrapped in a
// comprehension, so that an undefined one does not end the query. A query
// is nil when it has no rule to evaluate.
func reachQueries(ctx context.Context, compiler *ast.Compiler, store storage.Store, decisionRef ast.Ref) (once, perCall *rego.PreparedEvalQuery, err error) {
	// readsInput reports whether r, or a rule it depends on, reads input.
	// Rules are not recursive, so the walk ends.
	reads := map[*ast.Rule]bool{}
	var readsInput func(r *ast.Rule) bool
	readsInput = func(r *ast.Rule) bool {
		if v, ok := reads[r]; ok {
			return v
		}
		v := false
		ast.WalkRefs(r, func(ref ast.Ref) bool {
			v = v || ref[0].Equal(ast.InputRootDocument)
			return v
		})
		for dep := range compiler.Graph.Dependencies(r) {
			if d, ok := dep.(*ast.Rule); ok && !v {
				v = readsInput(d)
			}
		}
		if r.Else != nil && !v {
			v = readsInput(r.Else)
		}
		reads[r] = v
		return v
	}

	seen := map[*ast.Rule]bool{}
	queue := slices.Clone(compiler.GetRules(decisionRef))
	var static, dynamic []ast.Ref
	has := func(refs []ast.Ref, ref ast.Ref) bool {
		return slices.ContainsFunc(refs, func(r ast.Ref) bool { return r.Equal(ref) })
	}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if seen[r] {
			continue
		}
		seen[r] = true
		if len(r.Head.Args) == 0 {
			ref := r.Ref().GroundPrefix()
			if readsInput(r) {
				static = slices.DeleteFunc(static, func(s ast.Ref) bool { return s.Equal(ref) })
				if !has(dynamic, ref) {
					dynamic = append(dynamic, ref)
				}
			} else if !has(static, ref) && !has(dynamic, ref) {
				static = append(static, ref)
			}
		}
		if r.Else != nil {
			queue = append(queue, r.Else)
		}
		for dep := range compiler.Graph.Dependencies(r) {
			if d, ok := dep.(*ast.Rule); ok && !seen[d] {
				queue = append(queue, d)
			}
		}
	}
	if once, err = evalAll(ctx, compiler, store, static); err != nil {
		return nil, nil, fmt.Errorf("%w: prepare the rules of %s: %w", ErrInvalidBundle, decisionRef, err)
	}
	if perCall, err = evalAll(ctx, compiler, store, dynamic); err != nil {
		return nil, nil, fmt.Errorf("%w: prepare the rules of %s: %w", ErrInvalidBundle, decisionRef, err)
	}
	return once, perCall, nil
}

// evalAll prepares a query that evaluates each of refs in full.
func evalAll(ctx context.Context, compiler *ast.Compiler, store storage.Store, refs []ast.Ref) (*rego.PreparedEvalQuery, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	slices.SortFunc(refs, func(a, b ast.Ref) int { return a.Compare(b) })
	body := make(ast.Body, 0, len(refs))
	for i, ref := range refs {
		body = append(body, ast.Equality.Expr(
			ast.VarTerm("proof_"+strconv.Itoa(i)),
			ast.ArrayComprehensionTerm(ast.BooleanTerm(true), ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))),
		))
	}
	pq, err := rego.New(
		rego.ParsedQuery(body),
		rego.Compiler(compiler),
		rego.Store(store),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &pq, nil
}

// sampleCalls returns a representative call for every route of the bundle
// (see the top of this file), a HEAD call for every GET route, and a call
// to no route for each catalogued upstream and for none.
func sampleCalls(compiler *ast.Compiler, cat Catalog) []Input {
	var calls []Input
	seen := map[string]bool{}
	var add func(in Input)
	add = func(in Input) {
		if in.Host == "" {
			in.Host = "proof.invalid"
		}
		in.Subject = Subject{ID: proofSubject, Groups: []string{proofSubject}, MFA: true, Email: proofSubject + "@proof.invalid"}
		pv, _ := in.parse()
		key := string(in.key(nil, pv))
		if seen[key] {
			return
		}
		seen[key] = true
		calls = append(calls, in)
		if in.Method == "GET" {
			in.Method = "HEAD"
			add(in)
		}
	}

	add(Input{Method: "GET"})
	upstreams := make([]string, 0, len(cat.Tasks))
	for _, info := range cat.Tasks {
		upstreams = append(upstreams, info.Upstream)
	}
	slices.Sort(upstreams)
	for _, u := range slices.Compact(upstreams) {
		add(Input{Method: "GET", Upstream: u})
	}

	names := make([]string, 0, len(compiler.Modules))
	for name := range compiler.Modules {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ast.WalkBodies(compiler.Modules[name], func(b ast.Body) bool {
			for _, in := range routeOf(b) {
				add(in)
			}
			return false
		})
	}
	return calls
}

// routeOf reads the constraints a body puts on the call and returns the
// calls that meet them, none if the body tests neither the upstream, the
// method nor the path.
func routeOf(b ast.Body) []Input {
	var (
		methods, upstreams []string
		host               string
		path               []string // the whole path, when the body gives it
		at                 = map[int]string{}
		length             int
		query              = map[string][]string{}
		body               = map[string]any{}
		route              bool
	)
	sample := func(i int) string { return "x" + strconv.Itoa(i) }

	for _, e := range b {
		if e.Negated {
			continue
		}
		// Every input.path[i] and input.query.k the expression reads.
		ast.WalkRefs(e, func(r ast.Ref) bool {
			field, ok := inputField(r)
			if !ok || len(r) < 3 {
				return false
			}
			switch field {
			case "path":
				if n, ok := r[2].Value.(ast.Number); ok {
					if i, ok := n.Int(); ok && i >= 0 && i < 64 {
						length = max(length, i+1)
						route = true
					}
				}
			case "query":
				if k, ok := r[2].Value.(ast.String); ok {
					if _, set := query[string(k)]; !set {
						query[string(k)] = []string{"x"}
					}
				}
			case "body":
				if k, ok := r[2].Value.(ast.String); ok {
					if _, set := body[string(k)]; !set {
						body[string(k)] = "x"
					}
				}
			}
			return false
		})
		if !e.IsCall() || len(e.Operands()) != 2 {
			continue
		}
		a, v := e.Operands()[0], e.Operands()[1]
		switch e.Operator().String() {
		case "eq", "equal":
			if _, ok := a.Value.(ast.Ref); !ok {
				a, v = v, a
			}
		case "internal.member_2":
			a, v = v, a // x in coll: the element is the first operand
			r, ok := v.Value.(ast.Ref)
			if !ok {
				continue
			}
			field, ok := inputField(r)
			if !ok || len(r) != 2 || (field != "method" && field != "upstream") {
				continue
			}
			var alts []string
			collect := func(t *ast.Term) {
				if s, ok := t.Value.(ast.String); ok {
					alts = append(alts, string(s))
				}
			}
			switch c := a.Value.(type) {
			case ast.Set:
				c.Foreach(collect)
			case *ast.Array:
				c.Foreach(collect)
			}
			if field == "method" {
				methods = append(methods, alts...)
			} else {
				upstreams = append(upstreams, alts...)
			}
			route = route || len(alts) > 0
			continue
		default:
			continue
		}
		r, ok := a.Value.(ast.Ref)
		if !ok {
			continue
		}
		field, ok := inputField(r)
		if !ok {
			continue
		}
		switch {
		case len(r) == 2 && (field == "method" || field == "upstream" || field == "host"):
			s, ok := v.Value.(ast.String)
			if !ok {
				continue
			}
			switch field {
			case "method":
				methods = append(methods, string(s))
			case "upstream":
				upstreams = append(upstreams, string(s))
			default:
				host = string(s)
			}
			route = true
		case len(r) == 2 && field == "path":
			arr, ok := v.Value.(*ast.Array)
			if !ok {
				continue
			}
			path = make([]string, arr.Len())
			for i := range path {
				if s, ok := arr.Elem(i).Value.(ast.String); ok {
					path[i] = string(s)
				} else {
					path[i] = sample(i)
				}
			}
			route = true
		case len(r) == 3 && field == "path":
			n, ok1 := r[2].Value.(ast.Number)
			s, ok2 := v.Value.(ast.String)
			if i, ok := n.Int(); ok1 && ok2 && ok && i >= 0 && i < 64 {
				at[i] = string(s)
			}
		case len(r) == 3 && field == "query":
			k, ok1 := r[2].Value.(ast.String)
			arr, ok2 := v.Value.(*ast.Array)
			if !ok1 || !ok2 {
				continue
			}
			vals := make([]string, arr.Len())
			for i := range vals {
				if s, ok := arr.Elem(i).Value.(ast.String); ok {
					vals[i] = string(s)
				} else {
					vals[i] = "x"
				}
			}
			query[string(k)] = vals
		case len(r) == 3 && field == "body":
			k, ok := r[2].Value.(ast.String)
			if !ok || !v.IsGround() {
				continue
			}
			if doc, err := ast.JSON(v.Value); err == nil {
				body[string(k)] = doc
			}
		}
	}
	if !route {
		return nil
	}
	if path == nil {
		path = make([]string, length)
		for i := range path {
			if s, ok := at[i]; ok {
				path[i] = s
			} else {
				path[i] = sample(i)
			}
		}
	}
	if len(methods) == 0 {
		methods = []string{"GET"}
	}
	if len(upstreams) == 0 {
		upstreams = []string{""}
	}
	if len(query) == 0 {
		query = nil
	}
	var in Input
	if len(body) > 0 {
		in.Body = body
	}
	slices.Sort(methods)
	slices.Sort(upstreams)
	var out []Input
	for _, m := range slices.Compact(methods) {
		for _, u := range slices.Compact(upstreams) {
			in.Method, in.Upstream, in.Host, in.Path, in.Query = m, u, host, path, query
			out = append(out, in)
		}
	}
	return out
}

// inputField is the field of input that r reads: "path" for input.path[0].
func inputField(r ast.Ref) (string, bool) {
	if len(r) < 2 || !r[0].Equal(ast.InputRootDocument) {
		return "", false
	}
	s, ok := r[1].Value.(ast.String)
	return string(s), ok
}
