package audit

// Events of call records (Kind KindCall): the decision on one proxied call,
// or how an allowed call ended. The gate counts decisions by these names
// and writes them as the call span's elevate.decision.
const (
	EventAllowed         = "allowed"         // the call was forwarded
	EventDenied          = "denied"          // a policy deny rule, or a target elevate does not proxy to
	EventGrantRequired   = "grant_required"  // the task needs a grant the caller does not hold (or has used up)
	EventUnauthenticated = "unauthenticated" // no valid token; also a refused token on the side API
	EventBadRequest      = "bad_request"     // a call refused before it could be judged: path, query, host, framing
	EventNotFound        = "not_found"       // no upstream serves the path
	EventUnavailable     = "unavailable"     // grant state or the audit log could not be confirmed
	EventError           = "error"           // the policy could not be evaluated
	EventOutcome         = "outcome"         // how an allowed call ended at its upstream (Ref names its decision)
)

// Events of lifecycle records (Kind KindLifecycle): changes to requests,
// policies and control settings, and refused side-API calls.
const (
	EventRequestSubmitted        = "request.submitted"
	EventRequestApprovalRecorded = "request.approval_recorded" // one of several approvals a request needs
	EventRequestApproved         = "request.approved"
	EventRequestDenied           = "request.denied"
	EventRequestRevoked          = "request.revoked"
	EventRequestExpired          = "request.expired"
	EventRequestUsedUp           = "request.used_up" // the last use a grant allowed was spent
	EventRequestBreakGlass       = "request.break_glass"
	EventPolicyCreated           = "policy.created"
	EventPolicyDeleted           = "policy.deleted"
	EventPolicyReloaded          = "policy.reloaded" // the Rego bundle was loaded again
	EventControlChanged          = "control.changed"
	EventAPIRefused              = "api.refused"      // a side-API call refused after its token was accepted
	EventAPIRateLimited          = "api.rate_limited" // a side-API caller over its rate limit
)
