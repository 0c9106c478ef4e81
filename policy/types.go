package policy

import (
	"encoding/json"
	"math"
	"slices"
	"time"
)

// Input is one proxied call as Rego sees it (input). The JSON names are the
// Rego contract: input.method, input.upstream, input.host, input.path,
// input.query, input.subject, input.grants and input.body. Nil slices and
// maps reach Rego as empty arrays and objects; a nil Body leaves input.body
// undefined.
type Input struct {
	Method   string              `json:"method"`   // upper case
	Upstream string              `json:"upstream"` // configured upstream name, e.g. "exchange"
	Host     string              `json:"host"`     // lower-case host without port
	Path     []string            `json:"path"`     // decoded segments after the route prefix (a segment may contain "/")
	Query    map[string][]string `json:"query"`
	Subject  Subject             `json:"subject"`
	Grants   []Grant             `json:"grants"` // the caller's live grants only
	// Body is the parsed body of a call whose route reads it (see
	// Engine.Body): for BodyJSON the JSON document, for BodyForm a map of
	// name to values, for BodyJSONRPC one call object, for BodyGraphQL one
	// top-level field {operation, field, name, variables}. It holds values
	// as encoding/json decodes them into an any (json.Number too); nil when
	// the body is not judged.
	Body any `json:"body,omitempty"`
	// Kubernetes is the call as a Kubernetes API server reads it, for an
	// upstream of type kubernetes (input.kubernetes): verb, group,
	// version, resource, subresource, namespace, name, watch, dry_run,
	// the selectors, non_resource and path, and the task it names and
	// whether it is a read (task, read). Values are strings, booleans and
	// lists of strings. Nil for other upstreams.
	Kubernetes map[string]any `json:"kubernetes,omitempty"`
}

// BodySpec is how the proxy reads the body of a call before judging it, as
// the route tables of the bundle declare.
type BodySpec struct {
	// Kind is "" (the body is not read) or one of BodyJSON, BodyForm,
	// BodyJSONRPC and BodyGraphQL.
	Kind string
	// Record names the top-level body fields that the audit record of the
	// call keeps in clear, sorted; never a credential.
	Record []string
}

// Body kinds of BodySpec and of route tables.
const (
	BodyJSON    = "json"
	BodyForm    = "form"
	BodyJSONRPC = "jsonrpc"
	BodyGraphQL = "graphql"
)

// Subject is the authenticated caller (input.subject).
type Subject struct {
	ID     string   `json:"id"`
	Groups []string `json:"groups"`
	MFA    bool     `json:"mfa"`
	Email  string   `json:"email,omitempty"`
}

// Grant is one of the caller's grants (an element of input.grants). Rego sees
// id, request_id, scope ("task", "role" or "rolegroup"), target,
// constraint (an object, empty when the grant is not narrowed),
// not_before_ns and expires_at_ns, the times as Unix nanoseconds; a zero time
// is 0, so a grant without an end is never live.
type Grant struct {
	ID        string
	RequestID string
	Scope     string
	Target    string
	// Constraint narrows the grant to calls whose attributes have these
	// values (see data.elevate.catalog.attributes).
	Constraint map[string]string
	NotBefore  time.Time
	ExpiresAt  time.Time
}

// MarshalJSON encodes g as Rego sees it.
func (g Grant) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID          string            `json:"id"`
		RequestID   string            `json:"request_id"`
		Scope       string            `json:"scope"`
		Target      string            `json:"target"`
		Constraint  map[string]string `json:"constraint"`
		NotBeforeNS int64             `json:"not_before_ns"`
		ExpiresAtNS int64             `json:"expires_at_ns"`
	}{g.ID, g.RequestID, g.Scope, g.Target, constraintOrEmpty(g.Constraint), unixNano(g.NotBefore), unixNano(g.ExpiresAt)})
}

// constraintOrEmpty is c, or an empty map for nil: Rego always sees an
// object.
func constraintOrEmpty(c map[string]string) map[string]string {
	if c == nil {
		return map[string]string{}
	}
	return c
}

var (
	minUnixNano = time.Unix(0, math.MinInt64)
	maxUnixNano = time.Unix(0, math.MaxInt64)
)

// unixNano is t in Unix nanoseconds: 0 for the zero time, clamped to the
// int64 range otherwise.
func unixNano(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minUnixNano):
		return math.MinInt64
	case t.After(maxUnixNano):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// State is what SetState makes visible to Rego as data.elevate_state.
type State struct {
	Control  Control
	Policies []ApprovalPolicy
}

// Control holds the organisation's access-control settings. Rego sees
// enabled, default_approvers and system_accounts (an object keyed by subject
// id, each value true).
type Control struct {
	Enabled          bool
	DefaultApprovers string
	SystemAccounts   []string
}

// ApprovalPolicy makes a task, or every task of a role or role group, need a
// grant while access control is enabled. Rego sees id, scope ("task", "role"
// or "rolegroup"), target, approval and approvers.
type ApprovalPolicy struct {
	ID        string
	Scope     string
	Target    string
	Approval  string
	Approvers string
}

// Outcome is the verdict of a Decision.
type Outcome string

// Outcomes.
const (
	Allow         Outcome = "allow"
	Deny          Outcome = "deny"
	GrantRequired Outcome = "grant_required"
)

// Decision is the verdict on one call.
type Decision struct {
	Outcome Outcome `json:"outcome"`
	Task    string  `json:"task,omitempty"`  // the task of the call; "" if none or more than one matched
	Gated   bool    `json:"gated"`           // whether the task needs a grant
	GrantID string  `json:"grant,omitempty"` // the grant that allowed the call
	Reason  string  `json:"reason"`
	// Request is what to ask for when the outcome is GrantRequired: the
	// scope and target of an approval policy that covers the task.
	Request *Target `json:"request,omitempty"`
}

// Target names what a request asks for.
type Target struct {
	Scope  string `json:"scope"`
	Target string `json:"target"`
}

// Scopes of approval policies and grants.
const (
	ScopeTask      = "task"
	ScopeRole      = "role"
	ScopeRoleGroup = "rolegroup"
)

// Catalog is what a bundle knows of tasks, roles and role groups.
type Catalog struct {
	Tasks      map[string]TaskInfo // every task name known to the bundle
	Roles      map[string][]string // role -> its tasks, sorted
	RoleGroups map[string][]string // role group -> its tasks, sorted, including those of its roles
}

// TaskInfo describes a task.
type TaskInfo struct {
	Upstream    string `json:"upstream"`
	Read        bool   `json:"read"`
	Description string `json:"description,omitempty"`
}

// Has reports whether the catalog knows target in scope ("task", "role" or
// "rolegroup").
func (c Catalog) Has(scope, target string) bool {
	switch scope {
	case ScopeTask:
		_, ok := c.Tasks[target]
		return ok
	case ScopeRole:
		_, ok := c.Roles[target]
		return ok
	case ScopeRoleGroup:
		_, ok := c.RoleGroups[target]
		return ok
	}
	return false
}

// TasksOf returns the tasks that target in scope covers, sorted; nil if the
// catalog does not know it.
func (c Catalog) TasksOf(scope, target string) []string {
	switch scope {
	case ScopeTask:
		if _, ok := c.Tasks[target]; ok {
			return []string{target}
		}
	case ScopeRole:
		if tasks, ok := c.Roles[target]; ok {
			return slices.Clone(tasks)
		}
	case ScopeRoleGroup:
		if tasks, ok := c.RoleGroups[target]; ok {
			return slices.Clone(tasks)
		}
	}
	return nil
}

func (c Catalog) clone() Catalog {
	out := Catalog{
		Tasks:      make(map[string]TaskInfo, len(c.Tasks)),
		Roles:      make(map[string][]string, len(c.Roles)),
		RoleGroups: make(map[string][]string, len(c.RoleGroups)),
	}
	for k, v := range c.Tasks {
		out.Tasks[k] = v
	}
	for k, v := range c.Roles {
		out.Roles[k] = slices.Clone(v)
	}
	for k, v := range c.RoleGroups {
		out.RoleGroups[k] = slices.Clone(v)
	}
	return out
}
