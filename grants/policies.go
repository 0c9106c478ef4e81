package grants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Approval types of a Policy.
const (
	ApprovalManual = "manual"
	ApprovalAuto   = "auto"
)

// maxPatternLen bounds Policy.ReasonPattern.
const maxPatternLen = 1024

// Policy is an approval policy: calls to its target need an approved grant.
type Policy struct {
	ID     string `json:"id"`
	Scope  Scope  `json:"scope"`
	Target string `json:"target"`
	// Approval is ApprovalManual or ApprovalAuto.
	Approval string `json:"approval"`
	// Approvers is the approver group; "" means the control settings'
	// default approver group.
	Approvers string `json:"approvers,omitempty"`
	// Approvals is the number of distinct approvers required, at least 1.
	Approvals int `json:"approvals"`
	// MaxDuration caps the grants of this policy below Config.MaxDuration;
	// 0 means no cap of its own.
	MaxDuration Duration `json:"max_duration,omitempty"`
	// RequireMFA is the approver rule: approvers must have used
	// multi-factor authentication.
	RequireMFA bool `json:"require_mfa,omitempty"`
	// RequireRequesterMFA is the requester rule: Submit refuses a requester
	// who has not used multi-factor authentication.
	RequireRequesterMFA bool `json:"require_requester_mfa,omitempty"`
	// MinReasonLength is the least number of characters of a request's
	// reason; 0 means any non-empty reason.
	MinReasonLength int `json:"min_reason_length,omitempty"`
	// ReasonPattern is a Go regular expression (RE2 syntax) that a request's
	// reason must match, for example a ticket reference `^[A-Z]+-[0-9]+`;
	// "" means any. It is unanchored unless it says otherwise.
	ReasonPattern string `json:"reason_pattern,omitempty"`
	// MaxUses caps the uses of each grant of this policy (see
	// Store.UseGrant); 0 means no cap.
	MaxUses int `json:"max_uses,omitempty"`
	// RequireConstraint names the attributes every request under this
	// policy must narrow its grant by (see Constraint), for example
	// ["namespace"]: a Kubernetes grant for one namespace at a time.
	RequireConstraint []string  `json:"require_constraint,omitempty"`
	CreatedBy         string    `json:"created_by"`
	CreatedAt         time.Time `json:"created_at"`
	// Revision is the etcd revision of this copy of the policy: the
	// record's mod revision as read, or, in the answer of CreatePolicy or
	// DeletePolicy, the revision of the transaction that created or
	// deleted it. Store.WaitRevision waits for the view to have it.
	Revision int64 `json:"-"`
}

// normalize trims p's target and approver group, defaults Approvals to 1,
// and checks the rest of a new policy.
func (p *Policy) normalize() error {
	p.Target = strings.TrimSpace(p.Target)
	p.Approvers = strings.TrimSpace(p.Approvers)
	if p.Approvals == 0 {
		p.Approvals = 1
	}
	switch {
	case !p.Scope.valid():
		return invalid("scope", "must be one of task, role, rolegroup; got %q", p.Scope)
	case p.Target == "":
		return invalid("target", "must not be empty")
	case p.Approval != ApprovalManual && p.Approval != ApprovalAuto:
		return invalid("approval", "must be manual or auto; got %q", p.Approval)
	case p.Approvals < 1:
		return invalid("approvals", "must be at least 1, got %d", p.Approvals)
	case p.MaxDuration < 0:
		return invalid("max_duration", "must not be negative, got %s", p.MaxDuration)
	case p.MinReasonLength < 0:
		return invalid("min_reason_length", "must not be negative, got %d", p.MinReasonLength)
	case p.MaxUses < 0:
		return invalid("max_uses", "must not be negative, got %d", p.MaxUses)
	case len(p.ReasonPattern) > maxPatternLen:
		return invalid("reason_pattern", "longer than %d bytes", maxPatternLen)
	}
	seen := map[string]bool{}
	for _, k := range p.RequireConstraint {
		if !constraintKey.MatchString(k) || seen[k] {
			return invalid("require_constraint", "%q is not an attribute name, or is listed twice", k)
		}
		seen[k] = true
	}
	if len(p.RequireConstraint) > maxConstraintKeys {
		return invalid("require_constraint", "at most %d attributes", maxConstraintKeys)
	}
	if p.ReasonPattern != "" {
		if _, err := regexp.Compile(p.ReasonPattern); err != nil {
			return invalid("reason_pattern", "%v", err)
		}
	}
	return nil
}

// CreatePolicy stores a new approval policy. It assigns ID and CreatedAt
// (any given are ignored) and defaults Approvals to 1. Whether the target
// exists is for the caller to check. A second policy for the same scope and
// target is refused with a *PolicyExistsError, and one beyond
// Config.MaxPolicies with ErrPolicyLimit; both checks hold under concurrent
// creations.
func (s *Store) CreatePolicy(ctx context.Context, p Policy) (Policy, error) {
	if err := p.normalize(); err != nil {
		return Policy{}, err
	}
	tkey := s.policyTargetKey(p.Scope, p.Target)
	rev, err := s.update(ctx, "create policy", func(c *change) error {
		// Every creation and deletion rewrites the counter, so a change
		// that finds it unchanged finds the number of policies unchanged.
		recs, count, err := c.readCounting(s.kPolicies, tkey, s.kPolicyCount)
		if err != nil {
			return err
		}
		// An index entry naming a policy that is gone is stale: replace it.
		if existing := string(recs[0].val); recs[0].exists() && validID(existing) {
			prec, err := c.read(s.policyKey(existing))
			if err != nil {
				return err
			}
			if prec[0].exists() {
				return &PolicyExistsError{ExistingID: existing}
			}
		}
		if s.cfg.MaxPolicies > 0 && count >= int64(s.cfg.MaxPolicies) {
			return fmt.Errorf("%w: policy limit %d reached", ErrPolicyLimit, s.cfg.MaxPolicies)
		}
		if p.ID, err = newPolicyID(); err != nil {
			return unavailable(err)
		}
		p.CreatedAt = s.now()
		c.put(tkey, p.ID)
		c.put(s.kPolicyCount, strconv.FormatInt(count+1, 10))
		return c.putNew(s.policyKey(p.ID), p)
	})
	if err != nil {
		return Policy{}, err
	}
	p.Revision = rev
	return p, nil
}

// DeletePolicy removes an approval policy and returns it. Requests under it
// keep their state; approving them then requires MFA.
func (s *Store) DeletePolicy(ctx context.Context, id string) (Policy, error) {
	if !validID(id) {
		return Policy{}, fmt.Errorf("%w: policy %q", ErrNotFound, id)
	}
	key := s.policyKey(id)
	var p Policy
	rev, err := s.update(ctx, "delete policy "+id, func(c *change) error {
		recs, err := c.read(key)
		if err != nil {
			return err
		}
		if !recs[0].exists() {
			return fmt.Errorf("%w: policy %q", ErrNotFound, id)
		}
		p = Policy{ID: id}
		// A damaged record is deleted all the same; its target index entry,
		// if any, is then stale and CreatePolicy replaces it.
		_ = json.Unmarshal(recs[0].val, &p)
		tkey := s.policyTargetKey(p.Scope, p.Target)
		idx, count, err := c.readCounting(s.kPolicies, tkey, s.kPolicyCount)
		if err != nil {
			return err
		}
		c.del(key)
		c.put(s.kPolicyCount, strconv.FormatInt(max(count-1, 0), 10))
		if idx[0].exists() && string(idx[0].val) == id {
			c.del(tkey)
		}
		return nil
	})
	if err != nil {
		return Policy{}, err
	}
	p.Revision = rev
	return p, nil
}

// Policy reads one approval policy from etcd.
func (s *Store) Policy(ctx context.Context, id string) (Policy, error) {
	if !validID(id) {
		return Policy{}, fmt.Errorf("%w: policy %q", ErrNotFound, id)
	}
	recs, err := s.read(ctx, s.policyKey(id))
	if err != nil {
		return Policy{}, err
	}
	if !recs[0].exists() {
		return Policy{}, fmt.Errorf("%w: policy %q", ErrNotFound, id)
	}
	var p Policy
	if err := decode(recs[0].val, &p, "policy "+id); err != nil {
		return Policy{}, err
	}
	p.Revision = recs[0].rev
	return p, nil
}

// PolicyFor reads from etcd the approval policy for exactly scope and
// target, through the index that keeps them unique; it reports false when
// there is none. Unlike Policies, it sees a policy created a moment ago on
// any replica.
func (s *Store) PolicyFor(ctx context.Context, scope Scope, target string) (Policy, bool, error) {
	recs, err := s.read(ctx, s.policyTargetKey(scope, target))
	if err != nil {
		return Policy{}, false, err
	}
	if !recs[0].exists() {
		return Policy{}, false, nil
	}
	p, err := s.Policy(ctx, string(recs[0].val))
	switch {
	case errors.Is(err, ErrNotFound):
		return Policy{}, false, nil
	case err != nil:
		return Policy{}, false, err
	case p.Scope != scope || p.Target != target:
		return Policy{}, false, nil
	}
	return p, true, nil
}
