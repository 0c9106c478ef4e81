package grants

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The rules of a request, apart from the state they are applied to: each
// function here decides from its arguments alone, so that the rules are
// tested without etcd. Submit and BreakGlass read the state, apply these,
// and write what they admit.

// startLeeway is how far in the past a requested start time may lie.
const startLeeway = time.Minute

// check applies the rules every request shares, break-glass included, to n
// and its trimmed reason.
func (n NewRequest) check(reason string) error {
	switch {
	case n.Requester.Subject == "":
		return invalid("requester", "must name the requester")
	case !n.Scope.valid():
		return invalid("scope", "must be one of task, role, rolegroup; got %q", n.Scope)
	case strings.TrimSpace(n.Target) == "":
		return invalid("target", "must not be empty")
	case reason == "":
		return invalid("reason", "must not be empty")
	}
	return n.Constraint.check()
}

// checkSubmit applies the rules of a request under a policy that need
// nothing from the state: those of check, a duration that is not negative,
// and a policy named.
func (n NewRequest) checkSubmit(reason string) error {
	if err := n.check(reason); err != nil {
		return err
	}
	switch {
	case n.Duration < 0:
		return invalid("duration", "must be positive, got %s", n.Duration)
	case n.PolicyID == "":
		return invalid("policy_id", "must name the approval policy that covers the target")
	case !validID(n.PolicyID):
		return invalid("policy_id", "no such policy: %q", n.PolicyID)
	}
	return nil
}

// checkStart refuses a start time asked for that lies more than startLeeway
// before now; zero means none was asked for.
func checkStart(start, now time.Time) error {
	if !start.IsZero() && start.Before(now.Add(-startLeeway)) {
		return invalid("start_at", "%s is in the past", start.Format(time.RFC3339))
	}
	return nil
}

// admit applies to n and its trimmed reason the rules that depend on the
// approval policy pol and the control settings ctl: pol must cover n's
// scope and target, its requester and reason rules must hold, the duration
// must fit its cap and Config.MaxDuration, and a manual policy needs an
// approver group. It returns the request they admit at now, without an ID:
// pending until Config.PendingTTL has passed, or under an "auto" policy
// approved, its grant's window set (see approve).
func (c *Config) admit(n NewRequest, reason string, pol Policy, ctl Control, now time.Time) (Request, error) {
	if pol.Scope != n.Scope || pol.Target != n.Target {
		return Request{}, invalid("policy_id", "policy %s covers %s %q, not %s %q",
			pol.ID, pol.Scope, pol.Target, n.Scope, n.Target)
	}
	if miss := n.Constraint.missing(pol.RequireConstraint); len(miss) > 0 {
		return Request{}, invalid("constraint", "policy %s requires the grant to be narrowed by %s (for example --%s)",
			pol.ID, strings.Join(miss, ", "), strings.ReplaceAll(miss[0], "_", "-"))
	}
	if pol.RequireRequesterMFA && !n.Requester.MFA {
		return Request{}, fmt.Errorf("%w: policy %s requires it of the requester", ErrMFARequired, pol.ID)
	}
	if err := pol.checkReason(reason); err != nil {
		return Request{}, err
	}
	dur, err := c.grantDuration(n.Duration, pol)
	if err != nil {
		return Request{}, err
	}
	auto := pol.Approval == ApprovalAuto
	approvers := pol.Approvers
	if approvers == "" {
		approvers = ctl.DefaultApprovers
	}
	if !auto && approvers == "" {
		return Request{}, invalid("approvers", "no approver group: set one on the policy or in control settings")
	}
	req := Request{
		Requester:         n.Requester.Subject,
		RequesterEmail:    n.Requester.Email,
		Scope:             n.Scope,
		Target:            n.Target,
		Constraint:        n.Constraint.clone(),
		Reason:            reason,
		Duration:          Duration(dur),
		PolicyID:          pol.ID,
		Approvers:         approvers,
		ApprovalsRequired: max(pol.Approvals, 1),
		CreatedAt:         now,
		MaxUses:           pol.MaxUses,
	}
	if !n.StartAt.IsZero() {
		at := n.StartAt.UTC().Round(0)
		req.StartAt = &at
	}
	if auto {
		req.ApprovalsRequired = 1
		req.Approvals = []Decision{{By: AutoApprover, At: now}}
		req.approve(now)
	} else {
		req.Status = StatusPending
		req.ExpiresAt = now.Add(c.PendingTTL)
	}
	return req, nil
}

// grantDuration is the duration of the grant of a request under pol that
// asked for asked (0: none): the default when none, within the lower of
// Config.MaxDuration and the policy's own cap.
func (c *Config) grantDuration(asked time.Duration, pol Policy) (time.Duration, error) {
	limit := c.MaxDuration
	if pol.MaxDuration > 0 && time.Duration(pol.MaxDuration) < limit {
		limit = time.Duration(pol.MaxDuration)
	}
	dur := asked
	if dur == 0 {
		dur = min(c.DefaultDuration, limit)
	}
	if dur > limit {
		return 0, invalid("duration", "%s exceeds the maximum of %s", dur, limit)
	}
	return dur, nil
}

// checkReason applies the policy's rules on reasons to a trimmed reason.
func (p *Policy) checkReason(reason string) error {
	if n := utf8.RuneCountInString(reason); n < p.MinReasonLength {
		return invalid("reason", "has %d characters, fewer than the policy's min_reason_length of %d", n, p.MinReasonLength)
	}
	if p.ReasonPattern == "" {
		return nil
	}
	re, err := regexp.Compile(p.ReasonPattern)
	if err != nil {
		// CreatePolicy refuses such a pattern: the record is damaged.
		return fmt.Errorf("%w: policy %s: reason_pattern: %w", ErrUnavailable, p.ID, err)
	}
	if !re.MatchString(reason) {
		return invalid("reason", "does not match the policy's reason_pattern %q", p.ReasonPattern)
	}
	return nil
}

// approve makes r approved at now: its grant's window starts now, or at the
// start time asked for when that is later, and lasts r.Duration.
func (r *Request) approve(now time.Time) {
	start := now
	if r.StartAt != nil && r.StartAt.After(now) {
		start = *r.StartAt
	}
	end := start.Add(time.Duration(r.Duration))
	r.Status = StatusApproved
	r.GrantStart, r.GrantEnd = &start, &end
	r.ExpiresAt = end
}

// checkBreakGlass applies the rules of a break-glass request to n and its
// trimmed reason, and returns the duration of its grant: as asked, or
// Config.BreakGlassDuration, at most Config.BreakGlassMax, starting at
// once.
func (c *Config) checkBreakGlass(n NewRequest, reason string) (time.Duration, error) {
	dur := n.Duration
	if dur == 0 {
		dur = c.BreakGlassDuration
	}
	if err := n.check(reason); err != nil {
		return 0, err
	}
	switch {
	case dur < 0:
		return 0, invalid("duration", "must be positive, got %s", dur)
	case dur > c.BreakGlassMax:
		return 0, invalid("duration", "%s exceeds the break-glass maximum of %s", dur, c.BreakGlassMax)
	case !n.StartAt.IsZero():
		return 0, invalid("start_at", "break-glass takes effect at once")
	}
	return dur, nil
}
