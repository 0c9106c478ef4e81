// Package policy is elevate's Rego engine. It loads a policy bundle, compiles
// it and prepares the decision query once, then evaluates that query for
// every proxied call with the call as input, the access-control state in the
// engine's in-memory store and the caller's clock.
//
// A bundle is an fs.FS of Rego modules (*.rego; *_test.rego files are
// skipped), data files (data.json, data.yaml, data.yml; a data file in
// directory a/b is merged at data.a.b, as in OPA bundles) and route tables
// (every other *.yaml, *.yml or *.json file: the catalog of one upstream as
// data, compiled at load into a Rego module of package elevate.catalog named
// after the file; see table.go and generate.go). The default bundle and the
// contract between bundle and engine are in the rego directory of this
// module (see its README.md).
//
// The engine reads two documents of the bundle:
//
//   - the decision (Config.Query, default data.elevate.decision), evaluated
//     per call: an object with outcome ("allow", "deny" or
//     "grant_required"), reason, and optionally task, gated and grant;
//   - the catalog index (Config.CatalogQuery, default
//     data.elevate.catalog_index), evaluated once per load: the tasks, roles
//     and role groups the bundle knows.
//
// New and Reload refuse, with ErrInvalidBundle naming files and lines, a
// bundle whose route tables are malformed, overlap (one call, two tasks) or
// name what nothing declares, that does not compile in strict mode, whose
// catalog index is malformed or lists errors, or that fails to evaluate in
// the load-time proof: the decision evaluated on a representative call per
// catalogued route, in each access-control state that leads to a different
// branch (see prove.go). Reload keeps the running bundle.
//
// SetState writes the access-control settings and approval policies to
// data.elevate_state, indexed so that Rego looks a policy up by key:
//
//	data.elevate_state.control.enabled            boolean
//	data.elevate_state.control.default_approvers  string
//	data.elevate_state.control.system_accounts    {subject id: true}
//	data.elevate_state.policies[scope][target]    {policy id: policy}
//
// where scope is "task", "role" or "rolegroup" (all three keys are always
// present) and a policy is {id, scope, target, approval, approvers}. A bundle
// may not define anything under data.elevate_state itself.
//
// Every failure is an error and never an allow: an undefined decision is
// ErrUndefined, a decision of the wrong shape ErrBadDecision, and Eval returns
// a Decision whose Outcome is Deny together with any error.
package policy

import "errors"

var (
	// ErrUndefined reports that the decision query produced no result.
	// Callers must deny the call.
	ErrUndefined = errors.New("policy: decision is undefined")

	// ErrInvalidBundle reports a bundle that cannot be loaded, parsed or
	// compiled, whose catalog is inconsistent, or that fails to evaluate on
	// a representative call. The message names the file and, where known,
	// the line; for conflicting definitions of a rule, every definition.
	ErrInvalidBundle = errors.New("policy: invalid bundle")

	// ErrBadDecision reports a decision document of the wrong shape.
	ErrBadDecision = errors.New("policy: malformed decision")

	// ErrInvalidState reports a State that SetState refuses; the engine
	// keeps the state it had.
	ErrInvalidState = errors.New("policy: invalid state")

	// ErrInvalidInput reports an evaluation request that cannot be judged,
	// such as one without an evaluation time.
	ErrInvalidInput = errors.New("policy: invalid input")
)
