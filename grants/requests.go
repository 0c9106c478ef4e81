package grants

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Status is the state of a request.
type Status string

// Statuses. A pending request becomes approved, denied or expired; an
// approved one becomes revoked, expired (its grant ended) or used_up (the
// last of the uses its policy allows was spent, see Store.UseGrant).
const (
	StatusPending  Status = "pending"
	StatusApproved Status = "approved"
	StatusDenied   Status = "denied"
	StatusExpired  Status = "expired"
	StatusRevoked  Status = "revoked"
	StatusUsedUp   Status = "used_up"
)

// statuses lists every status, in the order of a request's life.
var statuses = []Status{StatusPending, StatusApproved, StatusDenied, StatusExpired, StatusRevoked, StatusUsedUp}

func (s Status) valid() bool { return slices.Contains(statuses, s) }

// AutoApprover is the approver recorded on a request that an "auto" policy
// approved.
const AutoApprover = "auto"

// BreakGlassApprover is the approver recorded on a break-glass request.
const BreakGlassApprover = "break-glass"

// ReviewPending is the Review of a break-glass request that nobody has
// reviewed yet.
const ReviewPending = "pending"

// NewRequest is what a requester asks for.
type NewRequest struct {
	Requester Actor
	Scope     Scope
	Target    string
	Reason    string
	// Duration of the grant; 0 means Config.DefaultDuration, capped at the
	// policy's maximum.
	Duration time.Duration
	// StartAt delays the grant's start; zero means it starts at approval.
	StartAt time.Time
	// PolicyID names the approval policy that covers Scope and Target.
	// Optional for Store.BreakGlass.
	PolicyID string
	// Constraint narrows the grant to calls with these attributes.
	// Optional, unless the policy requires some (RequireConstraint).
	Constraint Constraint
}

// Decision records one approval, denial or revocation.
type Decision struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// Request is an access request. Reads report its effective status: a pending
// request past ExpiresAt and an approved one past GrantEnd read as expired.
type Request struct {
	// ID is "req-" followed by a time-ordered UUID (version 7).
	ID        string `json:"id"`
	Requester string `json:"requester"`
	Scope     Scope  `json:"scope"`
	Target    string `json:"target"`
	Reason    string `json:"reason"`
	// Constraint narrows the grant to calls with these attributes (a
	// Kubernetes namespace, an object name); nil: every call of Target.
	Constraint Constraint `json:"constraint,omitempty"`
	Duration   Duration   `json:"duration"`
	// StartAt is the start time asked for, if any.
	StartAt  *time.Time `json:"start_at,omitempty"`
	Status   Status     `json:"status"`
	PolicyID string     `json:"policy_id"`
	// Approvers is the approver group in force: the policy's, else the
	// control settings' default at submission.
	Approvers         string     `json:"approvers"`
	ApprovalsRequired int        `json:"approvals_required"`
	Approvals         []Decision `json:"approvals,omitempty"`
	Denial            *Decision  `json:"denial,omitempty"`
	Revocation        *Decision  `json:"revocation,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	// ExpiresAt is, while pending, when the request expires undecided and,
	// once approved, when the grant ends.
	ExpiresAt  time.Time  `json:"expires_at"`
	GrantStart *time.Time `json:"grant_start,omitempty"`
	GrantEnd   *time.Time `json:"grant_end,omitempty"`
	// MaxUses is the policy's cap on the uses of the grant; 0 means none.
	MaxUses int `json:"max_uses,omitempty"`
	// Uses counts the uses of the grant spent so far, when MaxUses caps
	// them. In JSON, a request with a cap always has "uses" and also
	// "uses_left" (see MarshalJSON).
	Uses int `json:"uses,omitempty"`
	// RequesterEmail is the requester's address when their token had one.
	RequesterEmail string `json:"requester_email,omitempty"`
	// BreakGlass marks a request approved at once by Store.BreakGlass.
	BreakGlass bool `json:"break_glass,omitempty"`
	// Review is ReviewPending on a break-glass request; "" otherwise.
	Review string `json:"review,omitempty"`
	// Revision is the etcd revision of this copy of the request: the
	// record's mod revision as read, or, in the answer of a mutation and
	// the event it reports, the revision of the transaction that committed
	// it. Store.WaitRevision waits for the view to have it. It is not part
	// of the record, and 0 in the events of expiries and used-up grants,
	// which answer no caller.
	Revision int64 `json:"-"`
}

// UsesLeft is what MaxUses leaves of the grant's uses; 0 when they are not
// capped.
func (r Request) UsesLeft() int { return max(r.MaxUses-r.Uses, 0) }

// MarshalJSON writes r; a request whose grant's uses are capped also gets
// "uses" (0 included) and "uses_left" (UsesLeft).
func (r Request) MarshalJSON() ([]byte, error) {
	type plain Request // without this method
	if r.MaxUses <= 0 {
		return marshalUnescaped(plain(r))
	}
	return marshalUnescaped(struct {
		plain
		Uses     int `json:"uses"`
		UsesLeft int `json:"uses_left"`
	}{plain(r), r.Uses, r.UsesLeft()})
}

// marshalUnescaped is json.Marshal without HTML escaping: an encoder that
// writes r with SetEscapeHTML(false) keeps a reason's `<`, `>` and `&` only
// if this method does too.
func marshalUnescaped(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// settle sets the status r has at now: a pending request past its expiry and
// an approved one past its grant's end are expired. It reports whether the
// status changed. Reads call it; the sweep calls it on a stored request and
// writes the request back when it returns true.
func (r *Request) settle(now time.Time) bool {
	switch {
	case r.Status == StatusPending && !now.Before(r.ExpiresAt),
		r.Status == StatusApproved && r.GrantEnd != nil && !now.Before(*r.GrantEnd):
		r.Status = StatusExpired
		return true
	}
	return false
}

func (r *Request) approvedBy(subject string) bool {
	for _, d := range r.Approvals {
		if d.By == subject {
			return true
		}
	}
	return false
}

// Filter selects requests. Empty fields match everything; Limit <= 0 means
// no limit.
type Filter struct {
	// Status matches the effective status.
	Status    Status
	Requester string
	Target    string
	// BreakGlass selects only break-glass requests.
	BreakGlass bool
	Limit      int
}

// pendingEntry is the value of a pending index key.
type pendingEntry struct {
	RequestID string    `json:"request_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// namesOtherThan reports whether the pending index entry rec stands for a
// request other than id. An entry that cannot be decoded stands for none.
func namesOtherThan(rec record, id string) bool {
	var e pendingEntry
	return rec.exists() && json.Unmarshal(rec.val, &e) == nil && e.RequestID != id
}

// Submit records a new access request. It is checked against the approval
// policy named by n.PolicyID, which must cover exactly n.Scope and n.Target
// (see the rules in Config.admit). Under an "auto" policy the request is
// approved at once and its grant written in the same transaction; otherwise
// it is pending until decided or until Config.PendingTTL passes. A second
// pending request for the same requester, scope and target is refused with
// a *DuplicateError.
func (s *Store) Submit(ctx context.Context, n NewRequest) (Request, error) {
	reason := strings.TrimSpace(n.Reason)
	if err := n.checkSubmit(reason); err != nil {
		return Request{}, err
	}
	pkey := s.policyKey(n.PolicyID)
	ikey := s.pendingKey(n.Requester.Subject, n.Scope, n.Target, n.Constraint)
	var req Request
	var now time.Time
	var auto bool
	rev, err := s.update(ctx, "submit", func(c *change) error {
		recs, err := c.read(pkey, s.kControl, ikey)
		if err != nil {
			return err
		}
		now = s.now()
		if err := checkStart(n.StartAt, now); err != nil {
			return err
		}
		if !recs[0].exists() {
			return invalid("policy_id", "no such policy: %q", n.PolicyID)
		}
		var pol Policy
		if err := decode(recs[0].val, &pol, "policy "+n.PolicyID); err != nil {
			return err
		}
		ctl := Control{}
		if recs[1].exists() {
			ctl, _ = decodeControl(recs[1].val)
		}
		if req, err = s.cfg.admit(n, reason, pol, ctl, now); err != nil {
			return err
		}
		auto = pol.Approval == ApprovalAuto
		if !auto && recs[2].exists() {
			var e pendingEntry
			// An unreadable index entry is replaced: it cannot stand for a
			// pending request.
			if json.Unmarshal(recs[2].val, &e) == nil && now.Before(e.ExpiresAt) {
				return &DuplicateError{ExistingID: e.RequestID}
			}
		}
		if req.ID, err = newRequestID(); err != nil {
			return unavailable(err)
		}
		if auto {
			if err := c.putGrant(&req, now); err != nil {
				return err
			}
		} else if err := c.putJSON(ikey, pendingEntry{RequestID: req.ID, ExpiresAt: req.ExpiresAt}); err != nil {
			return err
		}
		c.put(s.expiryKey(&req), req.ID)
		return c.putNew(s.requestKey(req.ID), req)
	})
	if err != nil {
		return Request{}, err
	}
	req.settle(now)
	req.Revision = rev
	s.emit(EventSubmitted, req, req.Requester, "", now)
	if auto {
		s.emit(EventApproved, req, AutoApprover, "", now)
	}
	return req, nil
}

// Approve records by's approval of a pending request. The approver must not
// be the requester, must be in the request's approver group and, when the
// policy requires it, must have used MFA. When the request has as many
// distinct approvals as it requires, it is approved and its grant written,
// starting now or at the requested start time, whichever is later.
func (s *Store) Approve(ctx context.Context, id string, by Actor, comment string) (Request, error) {
	return s.decide(ctx, id, by, comment, true)
}

// Deny denies a pending request. The denier must not be the requester and
// must be in the request's approver group. One denial is enough.
func (s *Store) Deny(ctx context.Context, id string, by Actor, comment string) (Request, error) {
	return s.decide(ctx, id, by, comment, false)
}

func (s *Store) decide(ctx context.Context, id string, by Actor, comment string, approve bool) (Request, error) {
	if by.Subject == "" {
		return Request{}, invalid("by", "must name the approver")
	}
	var req Request
	var now time.Time
	decided := true
	rev, err := s.update(ctx, "decide "+id, func(c *change) error {
		var err error
		if req, _, err = c.loadRequest(id); err != nil {
			return err
		}
		now = s.now()
		if err := req.checkDecider(by, now); err != nil {
			return err
		}
		pkey, ikey := s.policyKey(req.PolicyID), s.pendingKey(req.Requester, req.Scope, req.Target, req.Constraint)
		recs, err := c.read(pkey, ikey)
		if err != nil {
			return err
		}
		d := Decision{By: by.Subject, At: now, Comment: comment}
		oldExpiry := s.expiryKey(&req)
		decided = true
		if approve {
			// Without a readable policy MFA is required: fail closed.
			mfa := true
			var pol Policy
			if recs[0].exists() && json.Unmarshal(recs[0].val, &pol) == nil {
				mfa = pol.RequireMFA
			}
			if mfa && !by.MFA {
				return fmt.Errorf("%w: policy %s", ErrMFARequired, req.PolicyID)
			}
			if req.approvedBy(by.Subject) {
				return fmt.Errorf("%w: %s on %s", ErrAlreadyApproved, by.Subject, id)
			}
			req.Approvals = append(req.Approvals, d)
			decided = len(req.Approvals) >= req.ApprovalsRequired
			if decided {
				req.approve(now)
				if err := c.putGrant(&req, now); err != nil {
					return err
				}
			}
		} else {
			req.Status = StatusDenied
			req.Denial = &d
		}
		if decided {
			if recs[1].exists() && !namesOtherThan(recs[1], id) {
				c.del(ikey)
			}
			c.del(oldExpiry)
			if approve {
				c.put(s.expiryKey(&req), req.ID)
			}
		}
		return c.putJSON(s.requestKey(id), req)
	})
	if err != nil {
		return Request{}, err
	}
	req.settle(now)
	req.Revision = rev
	switch {
	case !decided:
	case approve:
		s.emit(EventApproved, req, by.Subject, comment, now)
	default:
		s.emit(EventDenied, req, by.Subject, comment, now)
	}
	return req, nil
}

// checkDecider applies to r, at now, the rules of who may approve or deny
// it: it must be pending, and by must not be the requester and must be in
// the approver group.
func (r *Request) checkDecider(by Actor, now time.Time) error {
	if eff := *r; eff.settle(now) || eff.Status != StatusPending {
		return fmt.Errorf("%w: request %s is %s", ErrNotPending, r.ID, eff.Status)
	}
	if by.Subject == r.Requester {
		return fmt.Errorf("%w: %s", ErrSelfApproval, r.ID)
	}
	if !by.inGroup(r.Approvers) {
		return fmt.Errorf("%w %q", ErrNotApprover, r.Approvers)
	}
	return nil
}

// Revoke ends the grant of an approved request before its time. The revoker
// must be the requester or in the request's approver group (for a request
// approved without one, the control settings' current default group).
func (s *Store) Revoke(ctx context.Context, id string, by Actor, comment string) (Request, error) {
	if by.Subject == "" {
		return Request{}, invalid("by", "must name the revoker")
	}
	var req Request
	var now time.Time
	lease := clientv3.NoLease
	rev, err := s.update(ctx, "revoke "+id, func(c *change) error {
		var err error
		if req, _, err = c.loadRequest(id); err != nil {
			return err
		}
		now = s.now()
		if eff := req; eff.settle(now) || eff.Status != StatusApproved {
			return fmt.Errorf("%w: request %s is %s", ErrNotApproved, id, eff.Status)
		}
		gkey := s.grantKey(id)
		recs, err := c.read(gkey, s.kControl)
		if err != nil {
			return err
		}
		lease = recs[0].lease
		group := req.Approvers
		if group == "" && recs[1].exists() {
			ctl, _ := decodeControl(recs[1].val)
			group = ctl.DefaultApprovers
		}
		if by.Subject != req.Requester && !by.inGroup(group) {
			return fmt.Errorf("%w %q", ErrNotApprover, group)
		}
		c.del(s.expiryKey(&req))
		c.del(gkey)
		req.Status = StatusRevoked
		req.Revocation = &Decision{By: by.Subject, At: now, Comment: comment}
		return c.putJSON(s.requestKey(id), req)
	})
	if err != nil {
		return Request{}, err
	}
	s.dropLease(ctx, lease)
	req.Revision = rev
	s.emit(EventRevoked, req, by.Subject, comment, now)
	return req, nil
}

// Request reads one request from etcd, with its effective status.
func (s *Store) Request(ctx context.Context, id string) (Request, error) {
	r, _, err := s.loadRequest(ctx, id)
	if err != nil {
		return Request{}, err
	}
	r.settle(s.now())
	return r, nil
}

// Requests lists the requests in etcd that match f, newest first, with their
// effective status (the Status filter matches the effective status).
func (s *Store) Requests(ctx context.Context, f Filter) ([]Request, error) {
	if f.Status != "" && !f.Status.valid() {
		names := make([]string, len(statuses))
		for i, st := range statuses {
			names[i] = string(st)
		}
		return nil, invalid("status", "must be one of %s; got %q", strings.Join(names, ", "), f.Status)
	}
	resp, err := s.cli.Get(ctx, s.kRequests, clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	now := s.now()
	out := []Request{}
	for _, kv := range resp.Kvs {
		var r Request
		if err := decode(kv.Value, &r, "request "+string(kv.Key[len(s.kRequests):])); err != nil {
			return nil, err
		}
		r.Revision = kv.ModRevision
		r.settle(now)
		if (f.Status != "" && r.Status != f.Status) ||
			(f.Requester != "" && r.Requester != f.Requester) ||
			(f.Target != "" && r.Target != f.Target) ||
			(f.BreakGlass && !r.BreakGlass) {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Request) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (s *Store) loadRequest(ctx context.Context, id string) (Request, record, error) {
	if !validID(id) {
		return Request{}, record{}, fmt.Errorf("%w: request %q", ErrNotFound, id)
	}
	recs, err := s.read(ctx, s.requestKey(id))
	if err != nil {
		return Request{}, record{}, err
	}
	r, err := decodeRequest(id, recs[0])
	return r, recs[0], err
}

// decodeRequest decodes the record of request id, which must exist.
func decodeRequest(id string, rec record) (Request, error) {
	if !rec.exists() {
		return Request{}, fmt.Errorf("%w: request %q", ErrNotFound, id)
	}
	var r Request
	if err := decode(rec.val, &r, "request "+id); err != nil {
		return Request{}, err
	}
	r.Revision = rec.rev
	return r, nil
}
