package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
)

// Whoami is the answer of GET /v1/whoami.
type Whoami struct {
	Subject   string    `json:"subject"`
	Groups    []string  `json:"groups"`
	AMR       []string  `json:"amr,omitempty"`
	MFA       bool      `json:"mfa"`
	Email     string    `json:"email,omitempty"`
	Issuer    string    `json:"issuer"`
	ExpiresAt time.Time `json:"expires_at"`
	Admin     bool      `json:"admin"`
	Auditor   bool      `json:"auditor"`
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, c caller) {
	groups := c.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, Whoami{
		Subject: c.Subject, Groups: groups, AMR: c.AMR, MFA: c.MFA(), Email: c.Email,
		Issuer: c.Issuer, ExpiresAt: c.ExpiresAt, Admin: c.admin, Auditor: c.auditor,
	})
}

// CheckRequest is the body of POST /v1/check.
type CheckRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// CheckResult says whether a call would pass for the caller, and why.
type CheckResult struct {
	Allowed        bool   `json:"allowed"`
	Status         int    `json:"status"`
	Outcome        string `json:"outcome"`
	Task           string `json:"task,omitempty"`
	Gated          bool   `json:"gated"`
	Reason         string `json:"reason"`
	GrantID        string `json:"grant_id,omitempty"`
	RequestID      string `json:"request_id,omitempty"`
	Upstream       string `json:"upstream,omitempty"`
	Path           string `json:"path,omitempty"`
	RequestCommand string `json:"request_command,omitempty"`
	// Problem is the type of the problem the proxy would refuse the call
	// with (urn:elevate:problem:SLUG); empty when it would pass.
	Problem string `json:"problem,omitempty"`
}

func (s *Server) check(w http.ResponseWriter, r *http.Request, c caller) {
	var in CheckRequest
	if p := s.readBody(w, r, &in, false); p != nil {
		s.refuse(w, r, c, p)
		return
	}
	call, prob := s.cfg.Resolver.Resolve(in.Method, in.URL)
	if prob != nil {
		out := CheckResult{Status: prob.Status, Outcome: "refused", Reason: prob.Detail, Problem: prob.Type}
		writeJSON(w, http.StatusOK, out)
		return
	}
	call.Token = bearerOf(r)
	call.DryRun = true
	v := s.cfg.Gate.Check(r.Context(), call)
	out := CheckResult{
		Allowed: v.Allowed, Outcome: string(v.Decision.Outcome), Task: v.Decision.Task, Gated: v.Decision.Gated,
		Reason: v.Decision.Reason, GrantID: v.Decision.GrantID, Upstream: call.Upstream, Path: call.CanonicalPath(),
		Status: http.StatusOK,
	}
	if v.Grant != nil {
		out.RequestID = v.Grant.RequestID
	}
	if v.Problem != nil {
		out.Status, out.Problem = v.Problem.Status, v.Problem.Type
		out.RequestCommand = v.Problem.Request
		if out.Reason == "" {
			out.Reason = v.Problem.Detail
		}
		if out.Outcome == "" {
			out.Outcome = "refused"
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func bearerOf(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// NewRequestBody is the body of POST /v1/requests.
type NewRequestBody struct {
	Scope    string    `json:"scope"`
	Target   string    `json:"target"`
	Reason   string    `json:"reason"`
	Duration string    `json:"duration,omitempty"`
	StartAt  time.Time `json:"start_at,omitempty"`
	// Constraint narrows the grant to calls with these attributes, for
	// example {"namespace": "prod"}.
	Constraint map[string]string `json:"constraint,omitempty"`
	// BreakGlass grants at once, without a policy, to members of the
	// break-glass group; every approver is told and the grant is marked
	// for review.
	BreakGlass bool `json:"break_glass,omitempty"`
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, c caller) {
	var in NewRequestBody
	if p := s.readBody(w, r, &in, false); p != nil {
		s.refuse(w, r, c, p)
		return
	}
	d, _ := positiveDuration("duration", in.Duration, "") // validated
	if in.BreakGlass {
		s.breakGlass(w, r, c, in, d)
		return
	}
	pol, ok, err := s.cfg.Store.PolicyFor(r.Context(), grants.Scope(in.Scope), in.Target)
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	if !ok {
		s.refuse(w, r, c, proxy.NewProblem(http.StatusBadRequest, "not-covered", "target: no approval policy covers "+in.Scope+" "+strconv.Quote(in.Target)+"; nothing to request"))
		return
	}
	req, err := s.cfg.Store.Submit(r.Context(), grants.NewRequest{
		Requester: c.actor(), Scope: grants.Scope(in.Scope), Target: in.Target, Reason: in.Reason,
		Duration: d, StartAt: in.StartAt, PolicyID: pol.ID, Constraint: in.Constraint,
	})
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	s.lifecycle(r.Context(), audit.Record{Event: audit.EventRequestSubmitted, Subject: c.Subject, Groups: c.Groups, Task: req.Target,
		RequestID: req.ID, PolicyID: req.PolicyID, Reason: req.Reason, After: marshal(req)}, req, c.Email, c.Subject, "")
	if req.Status == grants.StatusApproved {
		s.lifecycle(r.Context(), audit.Record{Event: audit.EventRequestApproved, Subject: grants.AutoApprover, Task: req.Target, RequestID: req.ID,
			PolicyID: req.PolicyID, Approvers: []string{grants.AutoApprover}, After: marshal(req)}, req, c.Email, grants.AutoApprover, "")
	}
	s.awaitView(r.Context(), req.Revision)
	w.Header().Set("Location", "/v1/requests/"+req.ID)
	writeJSON(w, http.StatusCreated, req)
}

func validScope(s string) bool { return s == "task" || s == "role" || s == "rolegroup" }

// checkTarget refuses a scope that does not exist or a target the loaded
// catalog does not know, naming the nearest name it does know.
func checkTarget(cat policy.Catalog, scope, target string) *proxy.Problem {
	if !validScope(scope) {
		return proxy.NewProblem(http.StatusBadRequest, "invalid", `scope: must be "task", "role" or "rolegroup"`)
	}
	if !cat.Has(scope, target) {
		return proxy.NewProblem(http.StatusBadRequest, "unknown-target", "target: no "+scope+" named "+strconv.Quote(target)+" in the policy catalog"+didYouMean(targetNames(cat, scope), target))
	}
	return nil
}

// positiveDuration parses an optional duration field; "" is 0.
func positiveDuration(field, v, example string) (time.Duration, *proxy.Problem) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, proxy.NewProblem(http.StatusBadRequest, "invalid", field+": must be a positive duration such as "+example)
	}
	return d, nil
}

func (s *Server) breakGlass(w http.ResponseWriter, r *http.Request, c caller, in NewRequestBody, d time.Duration) {
	if s.cfg.BreakGlassGroup == "" || !c.InGroup(s.cfg.BreakGlassGroup) {
		s.refuse(w, r, c, proxy.NewProblem(http.StatusForbidden, "forbidden", "break-glass is for members of "+strconv.Quote(s.cfg.BreakGlassGroup)+" only"))
		return
	}
	req, err := s.cfg.Store.BreakGlass(r.Context(), grants.NewRequest{
		Requester: c.actor(), Scope: grants.Scope(in.Scope), Target: in.Target, Reason: in.Reason, Duration: d, StartAt: in.StartAt,
		Constraint: in.Constraint,
	})
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	s.lifecycle(r.Context(), audit.Record{Event: audit.EventRequestBreakGlass, Subject: c.Subject, Groups: c.Groups, Task: req.Target,
		RequestID: req.ID, Reason: req.Reason, After: marshal(req)}, req, c.Email, c.Subject, "")
	s.awaitView(r.Context(), req.Revision)
	w.Header().Set("Location", "/v1/requests/"+req.ID)
	writeJSON(w, http.StatusCreated, req)
}

// canSee says whether c may read request q: admins and auditors see all,
// others their own and those they may decide.
func (c caller) canSee(q grants.Request) bool {
	return c.admin || c.auditor || q.Requester == c.Subject || (q.Approvers != "" && c.InGroup(q.Approvers))
}

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	// The store checks the status: it knows them all.
	f := grants.Filter{Status: grants.Status(q.Get("status")), Requester: q.Get("requester"), Target: q.Get("target")}
	if q.Get("mine") == "true" {
		f.Requester = c.Subject
	}
	f.BreakGlass = q.Get("break_glass") == "true"
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.refuse(w, r, c, proxy.NewProblem(http.StatusBadRequest, "invalid", "limit: must be 1 to 1000"))
			return
		}
		f.Limit = n
	}
	list, err := s.cfg.Store.Requests(r.Context(), f)
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	out := make([]grants.Request, 0, len(list))
	for _, q := range list {
		if c.canSee(q) {
			out = append(out, q)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request, c caller) {
	q, err := s.cfg.Store.Request(r.Context(), r.PathValue("id"))
	if err == nil && !c.canSee(q) {
		err = grants.ErrNotFound
	}
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// DecisionBody is the body of approve, deny and revoke.
type DecisionBody struct {
	Comment string `json:"comment,omitempty"`
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request, c caller) {
	action := r.PathValue("action")
	var op func(ctx context.Context, id string, by grants.Actor, comment string) (grants.Request, error)
	var event string
	switch action {
	case "approve":
		op, event = s.cfg.Store.Approve, audit.EventRequestApproved
	case "deny":
		op, event = s.cfg.Store.Deny, audit.EventRequestDenied
	case "revoke":
		op, event = s.cfg.Store.Revoke, audit.EventRequestRevoked
	default:
		proxy.NewProblem(http.StatusNotFound, "not-found", "no such endpoint").Write(w)
		return
	}
	var in DecisionBody
	if p := s.readBody(w, r, &in, true); p != nil {
		s.refuse(w, r, c, p)
		return
	}
	id := r.PathValue("id")
	before, _ := s.cfg.Store.Request(r.Context(), id)
	q, err := op(r.Context(), id, c.actor(), in.Comment)
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	if action == "approve" && q.Status != grants.StatusApproved {
		event = audit.EventRequestApprovalRecorded // more approvals are still needed
	}
	rec := audit.Record{Event: event, Subject: c.Subject, Groups: c.Groups, Task: q.Target, RequestID: q.ID,
		PolicyID: q.PolicyID, Comment: in.Comment, Before: marshal(before), After: marshal(q)}
	for _, a := range q.Approvals {
		rec.Approvers = append(rec.Approvers, a.By)
	}
	s.lifecycle(r.Context(), rec, q, "", c.Subject, in.Comment)
	s.awaitView(r.Context(), q.Revision)
	writeJSON(w, http.StatusOK, q)
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request, c caller) {
	list := s.cfg.Store.Policies()
	if list == nil {
		list = []grants.Policy{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"policies": list})
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request, c caller) {
	p, err := s.cfg.Store.Policy(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// PolicyBody is the body of POST /v1/policies.
type PolicyBody struct {
	Scope     string `json:"scope"`
	Target    string `json:"target"`
	Approval  string `json:"approval"`
	Approvers string `json:"approvers,omitempty"`
	// Approvals is the number of distinct approvers required: at least 1;
	// left out (nil), 1.
	Approvals   *int   `json:"approvals,omitempty"`
	MaxDuration string `json:"max_duration,omitempty"`
	// RequireMFA: approvers must have signed in with MFA.
	RequireMFA bool `json:"require_mfa,omitempty"`
	// RequireRequesterMFA: requesters must have signed in with MFA.
	RequireRequesterMFA bool   `json:"require_requester_mfa,omitempty"`
	MinReasonLength     int    `json:"min_reason_length,omitempty"`
	ReasonPattern       string `json:"reason_pattern,omitempty"`
	MaxUses             int    `json:"max_uses,omitempty"`
	// RequireConstraint names the attributes every request must narrow
	// its grant by, for example ["namespace"].
	RequireConstraint []string `json:"require_constraint,omitempty"`
}

func (s *Server) createPolicy(w http.ResponseWriter, r *http.Request, c caller) {
	if !c.admin {
		s.refuse(w, r, c, proxy.NewProblem(http.StatusForbidden, "forbidden", "only members of "+s.cfg.AdminsGroup+" manage approval policies"))
		return
	}
	var in PolicyBody
	if p := s.readBody(w, r, &in, false); p != nil {
		s.refuse(w, r, c, p)
		return
	}
	maxd, _ := positiveDuration("max_duration", in.MaxDuration, "") // validated

	// Left out, the store's default; given, validated to be at least 1.
	approvals := 0
	if in.Approvals != nil {
		approvals = *in.Approvals
	}
	p, err := s.cfg.Store.CreatePolicy(r.Context(), grants.Policy{
		Scope: grants.Scope(in.Scope), Target: in.Target, Approval: in.Approval, Approvers: in.Approvers,
		Approvals: approvals, MaxDuration: grants.Duration(maxd), RequireMFA: in.RequireMFA, CreatedBy: c.Subject,
		RequireRequesterMFA: in.RequireRequesterMFA, MinReasonLength: in.MinReasonLength,
		ReasonPattern: in.ReasonPattern, MaxUses: in.MaxUses, RequireConstraint: in.RequireConstraint,
	})
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	s.record(r.Context(), audit.Record{Event: audit.EventPolicyCreated, Subject: c.Subject, Groups: c.Groups, Task: p.Target, PolicyID: p.ID, After: marshal(p)})
	s.awaitView(r.Context(), p.Revision)
	w.Header().Set("Location", "/v1/policies/"+p.ID)
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request, c caller) {
	if !c.admin {
		s.refuse(w, r, c, proxy.NewProblem(http.StatusForbidden, "forbidden", "only members of "+s.cfg.AdminsGroup+" manage approval policies"))
		return
	}
	p, err := s.cfg.Store.DeletePolicy(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	s.record(r.Context(), audit.Record{Event: audit.EventPolicyDeleted, Subject: c.Subject, Groups: c.Groups, Task: p.Target, PolicyID: p.ID, Before: marshal(p)})
	s.awaitView(r.Context(), p.Revision)
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) getControl(w http.ResponseWriter, r *http.Request, c caller) {
	writeJSON(w, http.StatusOK, controlView(s.cfg.Store.Control()))
}

// ControlBody is the body of PATCH /v1/control; absent fields stay as they are.
type ControlBody struct {
	Enabled          *bool     `json:"enabled,omitempty"`
	DefaultApprovers *string   `json:"default_approvers,omitempty"`
	SystemAccounts   *[]string `json:"system_accounts,omitempty"`
}

// ControlView is control settings as the API shows them.
type ControlView struct {
	Enabled          bool     `json:"enabled"`
	DefaultApprovers string   `json:"default_approvers"`
	SystemAccounts   []string `json:"system_accounts"`
}

func controlView(c grants.Control) ControlView {
	v := ControlView{Enabled: c.Enabled, DefaultApprovers: c.DefaultApprovers, SystemAccounts: c.SystemAccounts}
	if v.SystemAccounts == nil {
		v.SystemAccounts = []string{}
	}
	return v
}

func (s *Server) patchControl(w http.ResponseWriter, r *http.Request, c caller) {
	if !c.admin {
		s.refuse(w, r, c, proxy.NewProblem(http.StatusForbidden, "forbidden", "only members of "+s.cfg.AdminsGroup+" change control settings"))
		return
	}
	var in ControlBody
	if p := s.readBody(w, r, &in, false); p != nil {
		s.refuse(w, r, c, p)
		return
	}
	before, after, err := s.cfg.Store.UpdateControl(r.Context(), grants.ControlPatch{
		Enabled: in.Enabled, DefaultApprovers: in.DefaultApprovers, SystemAccounts: in.SystemAccounts,
	})
	if err != nil {
		s.fail(w, r, c, err)
		return
	}
	s.record(r.Context(), audit.Record{Event: audit.EventControlChanged, Subject: c.Subject, Groups: c.Groups,
		Before: marshal(controlView(before)), After: marshal(controlView(after))})
	s.awaitView(r.Context(), after.Revision)
	writeJSON(w, http.StatusOK, controlView(after))
}

func (s *Server) queryAudit(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	f := audit.Filter{Subject: q.Get("subject"), Task: q.Get("task"), Upstream: q.Get("upstream"), Event: q.Get("decision"),
		RequestID: q.Get("request"), TraceID: q.Get("trace"), Cursor: q.Get("cursor")}
	if f.Event == "" {
		f.Event = q.Get("event")
	}
	if f.RequestID == "" {
		f.RequestID = q.Get("request_id")
	}
	if f.TraceID == "" {
		f.TraceID = q.Get("trace_id")
	}
	for key, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(key); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				s.refuse(w, r, c, proxy.NewProblem(http.StatusBadRequest, "invalid", key+": must be an RFC 3339 time"))
				return
			}
			*dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.refuse(w, r, c, proxy.NewProblem(http.StatusBadRequest, "invalid", "limit: must be 1 to 1000"))
			return
		}
		f.Limit = n
	}
	if !c.auditor {
		if f.Subject != "" && f.Subject != c.Subject {
			s.refuse(w, r, c, proxy.NewProblem(http.StatusForbidden, "forbidden", "only members of "+s.cfg.AuditorsGroup+" read other people's records"))
			return
		}
		f.Subject = c.Subject
	}
	page, err := s.cfg.Audit.Query(r.Context(), f)
	if err != nil {
		s.refuse(w, r, c, proxy.NewProblem(http.StatusBadRequest, "invalid", "the audit query was refused"))
		return
	}
	if page.Records == nil {
		page.Records = []audit.Record{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": page.Records, "next": page.Next})
}

// ca serves the interception CA's certificate; it is public.
func (s *Server) ca(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.CACert) == 0 {
		proxy.NewProblem(http.StatusNotFound, "not-found", "forward-mode interception has no CA here").Write(w)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(s.cfg.CACert)
}

// upstreams tells callers where the proxy is and how each upstream is
// routed.
func (s *Server) upstreams(w http.ResponseWriter, r *http.Request, c caller) {
	ups := s.cfg.Upstreams
	if ups == nil {
		ups = []UpstreamInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"proxy_url": s.cfg.ProxyURL, "upstreams": ups})
}
