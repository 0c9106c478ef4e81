package console

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/proxy/api"
)

// validID accepts the ids the API hands out (requests, policies); anything
// else is not looked up.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// templateFuncs are the template helpers: now is the clock, traceURL the
// template of links to traces ("" for none).
func templateFuncs(now func() time.Time, traceURL string) template.FuncMap {
	return template.FuncMap{
		"ts":   formatTime,
		"iso":  isoTime,
		"left": func(t time.Time) string { return timeLeft(t, now()) },
		"trace": func(id string) string {
			if traceURL == "" || id == "" {
				return ""
			}
			return strings.ReplaceAll(traceURL, "{trace_id}", url.PathEscape(id))
		},
		"short": func(id string) string {
			if len(id) > 12 {
				return id[:8] + "…"
			}
			return id
		},
		"dur":   shortDuration,
		"join":  strings.Join,
		"count": func(ds []grants.Decision) int { return len(ds) },
		// The statuses the pages test, as grants names them.
		"pending":  func(s grants.Status) bool { return s == grants.StatusPending },
		"approved": func(s grants.Status) bool { return s == grants.StatusApproved },
	}
}

// formatTime shows a time in UTC to the second; nil or zero is empty.
func formatTime(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// isoTime is a time for a datetime attribute.
func isoTime(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case *time.Time:
		if x != nil {
			return x.UTC().Format(time.RFC3339)
		}
	}
	return ""
}

// shortDuration drops the zero units at the end: 10m, 4h, 1h30m.
func shortDuration(d grants.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// timeLeft says how long until t, in words a person reads at a glance.
func timeLeft(t, now time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "ended"
	}
	d = d.Round(time.Minute)
	if d < time.Minute {
		return "under a minute"
	}
	h, m := int(d.Hours()), int(d.Minutes())%60
	switch {
	case h >= 48:
		return fmt.Sprintf("%dd %dh", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	}
	return fmt.Sprintf("%dm", m)
}

// decidable reports whether u may approve or deny q, as the store's rules
// say; the API judges anyway.
func decidable(u *user, q grants.Request, approvers string) bool {
	return q.Status == grants.StatusPending && q.Requester != u.Subject && u.InGroup(approvers) && !approvedBy(q, u.Subject)
}

func approvedBy(q grants.Request, subject string) bool {
	return slices.ContainsFunc(q.Approvals, func(d grants.Decision) bool { return d.By == subject })
}

// approverGroup is q's approver group: its own, else the control
// settings' default, read only when needed.
func (c *Console) approverGroup(r *http.Request, ses *session, q grants.Request, ctl **api.ControlView) string {
	if q.Approvers != "" {
		return q.Approvers
	}
	if *ctl == nil {
		var v api.ControlView
		if p := c.do(r, ses, http.MethodGet, "/v1/control", nil, &v); p != nil {
			return ""
		}
		*ctl = &v
	}
	return (*ctl).DefaultApprovers
}

// inbox lists the pending requests the user may decide.
func (c *Console) inbox(w http.ResponseWriter, r *http.Request, ses *session) {
	v := view{Title: "Approvals inbox", Nav: "inbox"}
	var list struct {
		Requests []grants.Request `json:"requests"`
	}
	if p := c.do(r, ses, http.MethodGet, "/v1/requests?status="+string(grants.StatusPending), nil, &list); p != nil {
		c.refused(w, r, ses, p, "inbox", v)
		return
	}
	var ctl *api.ControlView
	rows := []grants.Request{}
	for _, q := range list.Requests {
		if decidable(&ses.user, q, c.approverGroup(r, ses, q, &ctl)) {
			rows = append(rows, q)
		}
	}
	// Soonest to expire first.
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].ExpiresAt.Before(rows[j].ExpiresAt) })
	v.Data = rows
	c.render(w, r, http.StatusOK, "inbox", c.viewFor(ses, v))
}

// targetOption is one entry of the new-request target picker.
type targetOption struct {
	Value    string // scope:target
	Label    string
	Selected bool
}

// requestForm is the new-request form as the user filled it.
type requestForm struct {
	Target, Reason, Duration, Start, Constraint string
}

type requestsData struct {
	Mine    []grants.Request
	Targets []targetOption
	Form    requestForm
}

// requestsPage lists the user's requests and offers the new-request form.
func (c *Console) requestsPage(w http.ResponseWriter, r *http.Request, ses *session) {
	c.showRequests(w, r, ses, http.StatusOK, requestForm{Target: r.URL.Query().Get("target")}, "")
}

// showRequests renders the requests page; a non-empty msg is an alert.
func (c *Console) showRequests(w http.ResponseWriter, r *http.Request, ses *session, status int, form requestForm, msg string) {
	v := view{Title: "My requests", Nav: "requests"}
	d := requestsData{Form: form}
	var mine struct {
		Requests []grants.Request `json:"requests"`
	}
	if p := c.do(r, ses, http.MethodGet, "/v1/requests?mine=true", nil, &mine); p != nil {
		c.refused(w, r, ses, p, "requests", v)
		return
	}
	// Newest first.
	d.Mine = mine.Requests
	sort.SliceStable(d.Mine, func(i, j int) bool { return d.Mine[i].CreatedAt.After(d.Mine[j].CreatedAt) })
	var pols struct {
		Policies []grants.Policy `json:"policies"`
	}
	if p := c.do(r, ses, http.MethodGet, "/v1/policies", nil, &pols); p != nil {
		c.refused(w, r, ses, p, "requests", v)
		return
	}
	d.Targets = targetOptions(pols.Policies, form.Target)
	v.Data, v.Error = d, msg
	c.render(w, r, status, "requests", c.viewFor(ses, v))
}

// scopeNames are the scopes as people read them.
var scopeNames = map[grants.Scope]string{grants.ScopeTask: "task", grants.ScopeRole: "role", grants.ScopeRoleGroup: "role group"}

// targetOptions are what approval policies cover: all a request can name.
func targetOptions(ps []grants.Policy, selected string) []targetOption {
	out := make([]targetOption, 0, len(ps))
	for _, p := range ps {
		val := string(p.Scope) + ":" + p.Target
		label := p.Target + " (" + scopeNames[p.Scope] + ", "
		if p.Approval == grants.ApprovalAuto {
			label += "approved automatically)"
		} else {
			label += "needs approval)"
		}
		out = append(out, targetOption{Value: val, Label: label, Selected: val == selected})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}

// parseConstraint reads "namespace=prod, name=web" into a constraint; the
// side API checks the names and values.
func parseConstraint(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", strings.TrimSpace(part))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// submitRequest asks for a task, role or role group.
func (c *Console) submitRequest(w http.ResponseWriter, r *http.Request, ses *session) {
	f := requestForm{Target: r.PostForm.Get("target"), Reason: strings.TrimSpace(r.PostForm.Get("reason")),
		Duration: strings.TrimSpace(r.PostForm.Get("duration")), Start: strings.TrimSpace(r.PostForm.Get("start")),
		Constraint: strings.TrimSpace(r.PostForm.Get("constraint"))}
	scope, target, ok := strings.Cut(f.Target, ":")
	if !ok || target == "" {
		c.showRequests(w, r, ses, http.StatusBadRequest, f, "Choose what to request.")
		return
	}
	body := api.NewRequestBody{Scope: scope, Target: target, Reason: f.Reason, Duration: f.Duration}
	if f.Constraint != "" {
		constraint, err := parseConstraint(f.Constraint)
		if err != nil {
			c.showRequests(w, r, ses, http.StatusBadRequest, f, "Only where: "+err.Error())
			return
		}
		body.Constraint = constraint
	}
	if f.Start != "" {
		t, err := parseTimeInput(f.Start)
		if err != nil {
			c.showRequests(w, r, ses, http.StatusBadRequest, f, "Start: "+err.Error())
			return
		}
		body.StartAt = t
	}
	var q grants.Request
	if p := c.do(r, ses, http.MethodPost, "/v1/requests", body, &q); p != nil {
		if p.Status == http.StatusUnauthorized {
			c.refused(w, r, ses, p, "requests", view{})
			return
		}
		c.showRequests(w, r, ses, p.Status, f, p.message())
		return
	}
	msg := "Request submitted; it waits for approval."
	if q.Status == grants.StatusApproved {
		msg = "Request submitted and approved automatically."
	}
	c.sessions.setFlash(ses, msg)
	redirect(w, "/requests/"+url.PathEscape(q.ID))
}

// requestData is the request page: the request and the controls the API
// would allow the user.
type requestData struct {
	R            grants.Request
	Mine         bool
	Approvers    string
	CanDecide    bool
	CanRevoke    bool
	ApprovedByMe bool
	// DecideComment and RevokeComment refill the comment box of the form
	// whose action was refused, so that it can be corrected; never the
	// other one.
	DecideComment, RevokeComment string
}

// typed is a refused action and the comment typed for it.
type typed struct {
	action, comment string
}

func (c *Console) requestPage(w http.ResponseWriter, r *http.Request, ses *session) {
	c.showRequest(w, r, ses, http.StatusOK, "", typed{})
}

// showRequest renders one request; a non-empty msg is an alert, and the
// comment of kept goes back into the form of its action.
func (c *Console) showRequest(w http.ResponseWriter, r *http.Request, ses *session, status int, msg string, kept typed) {
	v := view{Title: "Request"}
	id := r.PathValue("id")
	if !validID.MatchString(id) {
		c.render(w, r, http.StatusNotFound, "error", c.viewFor(ses, view{Title: "Not found", Error: "There is no such request."}))
		return
	}
	var q grants.Request
	if p := c.do(r, ses, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, &q); p != nil {
		c.refused(w, r, ses, p, "error", v)
		return
	}
	var ctl *api.ControlView
	group := c.approverGroup(r, ses, q, &ctl)
	u := &ses.user
	d := requestData{R: q, Mine: q.Requester == u.Subject, Approvers: group,
		CanDecide: decidable(u, q, group), ApprovedByMe: approvedBy(q, u.Subject),
		CanRevoke: q.Status == grants.StatusApproved && (q.Requester == u.Subject || u.InGroup(group))}
	if kept.action == "revoke" {
		d.RevokeComment = kept.comment
	} else {
		d.DecideComment = kept.comment
	}
	// One's own request belongs to "My requests"; anyone else's is reached
	// from the inbox (or the audit log), as the page's back link says.
	v.Nav = "inbox"
	if d.Mine {
		v.Nav = "requests"
	}
	v.Title = "Request for " + q.Target
	v.Data, v.Error = d, msg
	c.render(w, r, status, "request", c.viewFor(ses, v))
}

// decisionDone are the messages after each action.
var decisionDone = map[string]string{"approve": "Approval recorded.", "deny": "Request denied.", "revoke": "Grant revoked."}

// decisionNoun names each action in messages.
var decisionNoun = map[string]string{"approve": "approval", "deny": "denial", "revoke": "revocation"}

// decide approves, denies or revokes, with a comment.
func (c *Console) decide(w http.ResponseWriter, r *http.Request, ses *session) {
	id, action := r.PathValue("id"), r.PathValue("action")
	done, ok := decisionDone[action]
	if !ok || !validID.MatchString(id) {
		c.render(w, r, http.StatusNotFound, "error", c.viewFor(ses, view{Title: "Not found", Error: "There is no such action."}))
		return
	}
	comment := strings.TrimSpace(r.PostForm.Get("comment"))
	var q grants.Request
	if p := c.do(r, ses, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/"+action, api.DecisionBody{Comment: comment}, &q); p != nil {
		if p.Status == http.StatusUnauthorized {
			c.refused(w, r, ses, p, "error", view{})
			return
		}
		if p.Status == http.StatusConflict {
			// The request changed since the page was loaded (another
			// approver, the requester, the clock): the action and its
			// comment were meant for a state that is gone. Show the
			// request as it is now, with empty forms.
			c.showRequest(w, r, ses, p.Status, "Your "+decisionNoun[action]+" was not recorded: the request changed after this page was loaded "+
				"and is shown below as it is now. The API said: "+p.message(), typed{})
			return
		}
		c.showRequest(w, r, ses, p.Status, p.message(), typed{action, comment})
		return
	}
	if action == "approve" && q.Status == grants.StatusPending {
		done = fmt.Sprintf("Approval recorded; %d of %d approvals so far.", len(q.Approvals), q.ApprovalsRequired)
	} else if action == "approve" {
		done = "Request approved."
	}
	c.sessions.setFlash(ses, done)
	redirect(w, "/requests/"+url.PathEscape(q.ID))
}

// policyForm is the new-policy form as the user filled it.
type policyForm struct {
	Scope, Target, Approval, Approvers, Approvals, MaxDuration string
	RequireMFA, RequireRequesterMFA                            bool
	MinReasonLength, ReasonPattern, MaxUses                    string
}

type policiesData struct {
	Policies   []grants.Policy
	Form       policyForm
	Tasks      []string
	Roles      []string
	RoleGroups []string
}

func (c *Console) policiesPage(w http.ResponseWriter, r *http.Request, ses *session) {
	c.showPolicies(w, r, ses, http.StatusOK, policyForm{Scope: "task", Approval: "manual", Approvals: "1"}, "")
}

func (c *Console) showPolicies(w http.ResponseWriter, r *http.Request, ses *session, status int, form policyForm, msg string) {
	v := view{Title: "Approval policies", Nav: "policies"}
	var pols struct {
		Policies []grants.Policy `json:"policies"`
	}
	if p := c.do(r, ses, http.MethodGet, "/v1/policies", nil, &pols); p != nil {
		c.refused(w, r, ses, p, "policies", v)
		return
	}
	d := policiesData{Policies: pols.Policies, Form: form}
	sort.SliceStable(d.Policies, func(i, j int) bool { return d.Policies[i].Target < d.Policies[j].Target })
	if c.cfg.Catalog != nil {
		cat := c.cfg.Catalog.Catalog()
		d.Tasks, d.Roles, d.RoleGroups = sortedKeys(cat.Tasks), sortedKeys(cat.Roles), sortedKeys(cat.RoleGroups)
	}
	v.Data, v.Error = d, msg
	c.render(w, r, status, "policies", c.viewFor(ses, v))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *Console) createPolicy(w http.ResponseWriter, r *http.Request, ses *session) {
	pf := r.PostForm
	f := policyForm{Scope: pf.Get("scope"), Target: strings.TrimSpace(pf.Get("target")), Approval: pf.Get("approval"),
		Approvers: strings.TrimSpace(pf.Get("approvers")), Approvals: strings.TrimSpace(pf.Get("approvals")),
		MaxDuration: strings.TrimSpace(pf.Get("max_duration")), RequireMFA: pf.Get("require_mfa") == "on",
		RequireRequesterMFA: pf.Get("require_requester_mfa") == "on", MinReasonLength: strings.TrimSpace(pf.Get("min_reason_length")),
		ReasonPattern: pf.Get("reason_pattern"), MaxUses: strings.TrimSpace(pf.Get("max_uses"))}
	body := api.PolicyBody{Scope: f.Scope, Target: f.Target, Approval: f.Approval, Approvers: f.Approvers,
		MaxDuration: f.MaxDuration, RequireMFA: f.RequireMFA, RequireRequesterMFA: f.RequireRequesterMFA, ReasonPattern: f.ReasonPattern}
	// A number left empty is left out: approvals then takes the API's
	// default (1), the others mean none. Which numbers are allowed is the
	// API's to say: it refuses an explicit 0 approvals.
	for _, n := range []struct {
		field, val string
		set        func(int)
	}{
		{"Approvals needed", f.Approvals, func(v int) { body.Approvals = &v }},
		{"Shortest reason", f.MinReasonLength, func(v int) { body.MinReasonLength = v }},
		{"Uses per grant", f.MaxUses, func(v int) { body.MaxUses = v }},
	} {
		if n.val == "" {
			continue
		}
		v, err := strconv.Atoi(n.val)
		if err != nil {
			c.showPolicies(w, r, ses, http.StatusBadRequest, f, n.field+": must be a whole number")
			return
		}
		n.set(v)
	}
	var p grants.Policy
	if pr := c.do(r, ses, http.MethodPost, "/v1/policies", body, &p); pr != nil {
		if pr.Status == http.StatusUnauthorized {
			c.refused(w, r, ses, pr, "policies", view{})
			return
		}
		c.showPolicies(w, r, ses, pr.Status, f, pr.message())
		return
	}
	c.sessions.setFlash(ses, "Policy created for "+p.Target+".")
	redirect(w, "/policies")
}

func (c *Console) deletePolicy(w http.ResponseWriter, r *http.Request, ses *session) {
	id := r.PathValue("id")
	if !validID.MatchString(id) {
		c.render(w, r, http.StatusNotFound, "error", c.viewFor(ses, view{Title: "Not found", Error: "There is no such policy."}))
		return
	}
	var p grants.Policy
	if pr := c.do(r, ses, http.MethodDelete, "/v1/policies/"+url.PathEscape(id), nil, &p); pr != nil {
		if pr.Status == http.StatusUnauthorized {
			c.refused(w, r, ses, pr, "policies", view{})
			return
		}
		c.showPolicies(w, r, ses, pr.Status, policyForm{Scope: "task", Approval: "manual", Approvals: "1"}, pr.message())
		return
	}
	c.sessions.setFlash(ses, "Policy for "+p.Target+" deleted.")
	redirect(w, "/policies")
}

type controlData struct {
	Control        api.ControlView
	SystemAccounts string
}

func (c *Console) controlPage(w http.ResponseWriter, r *http.Request, ses *session) {
	c.showControl(w, r, ses, http.StatusOK, "")
}

func (c *Console) showControl(w http.ResponseWriter, r *http.Request, ses *session, status int, msg string) {
	v := view{Title: "Access control", Nav: "control"}
	var ctl api.ControlView
	if p := c.do(r, ses, http.MethodGet, "/v1/control", nil, &ctl); p != nil {
		c.refused(w, r, ses, p, "control", v)
		return
	}
	v.Data = controlData{Control: ctl, SystemAccounts: strings.Join(ctl.SystemAccounts, ", ")}
	v.Error = msg
	c.render(w, r, status, "control", c.viewFor(ses, v))
}

// splitList splits a comma- or space-separated list.
func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func (c *Console) updateControl(w http.ResponseWriter, r *http.Request, ses *session) {
	enabled := r.PostForm.Get("enabled") == "on"
	approvers := strings.TrimSpace(r.PostForm.Get("default_approvers"))
	accounts := splitList(r.PostForm.Get("system_accounts"))
	body := api.ControlBody{Enabled: &enabled, DefaultApprovers: &approvers, SystemAccounts: &accounts}
	var out api.ControlView
	if p := c.do(r, ses, http.MethodPatch, "/v1/control", body, &out); p != nil {
		if p.Status == http.StatusUnauthorized {
			c.refused(w, r, ses, p, "control", view{})
			return
		}
		c.showControl(w, r, ses, p.Status, p.message())
		return
	}
	c.sessions.setFlash(ses, "Access control settings saved.")
	redirect(w, "/control")
}

// auditForm is the audit search as the user filled it.
type auditForm struct {
	Subject, Event, Task, Request, Trace, Since, Until string
}

type auditData struct {
	Form     auditForm
	Records  []audit.Record
	Next     string // link to the next page, "" on the last
	Searched bool
}

// auditLimit is the number of records per audit page.
const auditLimit = 50

// auditPage searches the audit log; each record links to its trace.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, ses *session) {
	v := view{Title: "Audit", Nav: "audit"}
	q := r.URL.Query()
	f := auditForm{Subject: strings.TrimSpace(q.Get("subject")), Event: strings.TrimSpace(q.Get("event")),
		Task: strings.TrimSpace(q.Get("task")), Request: strings.TrimSpace(q.Get("request")),
		Trace: strings.TrimSpace(q.Get("trace")), Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until"))}
	d := auditData{Form: f}
	v.Data = d
	apiQ := url.Values{"limit": {strconv.Itoa(auditLimit)}}
	for key, val := range map[string]string{"subject": f.Subject, "event": f.Event, "task": f.Task, "request": f.Request, "trace": f.Trace} {
		if val != "" {
			apiQ.Set(key, val)
		}
	}
	for key, val := range map[string]string{"since": f.Since, "until": f.Until} {
		if val == "" {
			continue
		}
		t, err := parseTimeInput(val)
		if err != nil {
			v.Error = strings.ToUpper(key[:1]) + key[1:] + ": " + err.Error()
			c.render(w, r, http.StatusBadRequest, "audit", c.viewFor(ses, v))
			return
		}
		apiQ.Set(key, t.UTC().Format(time.RFC3339))
	}
	if cur := q.Get("cursor"); cur != "" {
		apiQ.Set("cursor", cur)
	}
	var page struct {
		Records []audit.Record `json:"records"`
		Next    string         `json:"next"`
	}
	if p := c.do(r, ses, http.MethodGet, "/v1/audit?"+apiQ.Encode(), nil, &page); p != nil {
		c.refused(w, r, ses, p, "audit", v)
		return
	}
	d.Records, d.Searched = page.Records, true
	if page.Next != "" {
		nq := url.Values{}
		for key, val := range q {
			if key != "cursor" && len(val) > 0 && val[0] != "" {
				nq.Set(key, val[0])
			}
		}
		nq.Set("cursor", page.Next)
		d.Next = "/audit?" + nq.Encode()
	}
	v.Data = d
	c.render(w, r, http.StatusOK, "audit", c.viewFor(ses, v))
}

// parseTimeInput reads an RFC 3339 time, or a date with an optional time
// of day taken as UTC.
func parseTimeInput(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time such as 2026-05-01T14:00:00Z or 2026-05-01 14:00 (UTC)", s)
}
