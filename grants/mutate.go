package grants

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// startLeeway is how far in the past a requested start time may lie.
	startLeeway = time.Minute
	// leaseMargin is how long a grant's lease outlives the grant's end; the
	// clock check ends the grant on time, the lease removes its key.
	leaseMargin = 30 * time.Second
	// maxAttempts bounds the compare-and-swap retries of one mutation. Each
	// failed attempt means another change committed in between.
	maxAttempts = 64
)

func (s *Store) policyKey(id string) string  { return s.kPolicies + id }
func (s *Store) requestKey(id string) string { return s.kRequests + id }
func (s *Store) grantKey(reqID string) string {
	return s.kGrants + grantID(reqID)
}

func (s *Store) pendingKey(requester string, scope Scope, target string) string {
	return s.kPending + url.PathEscape(requester) + "/" + string(scope) + "/" + url.PathEscape(target)
}

func (s *Store) policyTargetKey(scope Scope, target string) string {
	return s.kPolicyTargets + string(scope) + "/" + url.PathEscape(target)
}

// expiryKey is the key of r in the expiry index. It depends only on r's ID
// and ExpiresAt, so every mutation can derive the key to delete from the
// record it read.
func (s *Store) expiryKey(r *Request) string {
	return s.kExpiries + expiryStamp(r.ExpiresAt) + "/" + r.ID
}

// expiryStamp formats t so that the stamps sort as the times do.
func expiryStamp(t time.Time) string { return t.UTC().Format("20060102T150405.000000000Z") }

func (s *Store) putExpiry(r *Request) clientv3.Op { return clientv3.OpPut(s.expiryKey(r), r.ID) }

// emit reports a committed change to Config.OnEvent.
func (s *Store) emit(kind string, r Request, by, comment string, at time.Time) {
	s.report(Event{Kind: kind, Request: r, By: by, Comment: comment, At: at})
}

// report hands a committed change to Config.OnEvent, with a request that
// shares nothing with the caller's.
func (s *Store) report(e Event) {
	if s.cfg.OnEvent == nil {
		return
	}
	e.Request.Approvals = slices.Clone(e.Request.Approvals)
	s.cfg.OnEvent(e)
}

// grantID derives the ID of a request's grant from the request's ID.
func grantID(reqID string) string { return "grt-" + strings.TrimPrefix(reqID, "req-") }

func newRequestID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return "req-" + u.String(), nil
}

func newPolicyID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "pol-" + hex.EncodeToString(b[:]), nil
}

// encode marshals a record. Only out-of-range times can fail, which is bad
// input.
func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return string(b), nil
}

// unchanged asserts in a transaction that key still has the mod revision it
// had when read (0: still absent).
func unchanged(key string, r record) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", r.rev)
}

// commit runs ops if every comparison holds. It reports whether they ran and
// the revision of the transaction.
func (s *Store) commit(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (bool, int64, error) {
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, 0, unavailable(err)
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

var errContention = errors.New("too many concurrent changes, try again")

func contention(what string) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, errContention)
}

// dropLease revokes a lease granted for a transaction that did not commit.
// Failure is harmless: the lease then expires by itself.
func (s *Store) dropLease(ctx context.Context, id clientv3.LeaseID) {
	if id == clientv3.NoLease {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = s.cli.Revoke(ctx, id)
}

// Submit records a new access request. It is checked against the approval
// policy named by n.PolicyID, which must cover exactly n.Scope and n.Target.
// Under an "auto" policy the request is approved at once and its grant
// written in the same transaction; otherwise it is pending until decided or
// until Config.PendingTTL passes. A second pending request for the same
// requester, scope and target is refused with a *DuplicateError.
func (s *Store) Submit(ctx context.Context, n NewRequest) (Request, error) {
	reason := strings.TrimSpace(n.Reason)
	if err := n.check(reason); err != nil {
		return Request{}, err
	}
	switch {
	case n.Duration < 0:
		return Request{}, invalid("duration", "must be positive, got %s", n.Duration)
	case n.PolicyID == "":
		return Request{}, invalid("policy_id", "must name the approval policy that covers the target")
	case !validID(n.PolicyID):
		return Request{}, invalid("policy_id", "no such policy: %q", n.PolicyID)
	}
	pkey := s.policyKey(n.PolicyID)
	ikey := s.pendingKey(n.Requester.Subject, n.Scope, n.Target)
	for range maxAttempts {
		recs, err := s.read(ctx, pkey, s.kControl, ikey)
		if err != nil {
			return Request{}, err
		}
		now := s.now()
		if !n.StartAt.IsZero() && n.StartAt.Before(now.Add(-startLeeway)) {
			return Request{}, invalid("start_at", "%s is in the past", n.StartAt.Format(time.RFC3339))
		}
		if !recs[0].exists() {
			return Request{}, invalid("policy_id", "no such policy: %q", n.PolicyID)
		}
		var pol Policy
		if err := decode(recs[0].val, &pol, "policy "+n.PolicyID); err != nil {
			return Request{}, err
		}
		if pol.Scope != n.Scope || pol.Target != n.Target {
			return Request{}, invalid("policy_id", "policy %s covers %s %q, not %s %q",
				pol.ID, pol.Scope, pol.Target, n.Scope, n.Target)
		}
		if pol.RequireRequesterMFA && !n.Requester.MFA {
			return Request{}, fmt.Errorf("%w: policy %s requires it of the requester", ErrMFARequired, pol.ID)
		}
		if err := pol.checkReason(reason); err != nil {
			return Request{}, err
		}
		ctl := Control{}
		if recs[1].exists() {
			ctl, _ = decodeControl(recs[1].val)
		}
		limit := s.cfg.MaxDuration
		if pol.MaxDuration > 0 && time.Duration(pol.MaxDuration) < limit {
			limit = time.Duration(pol.MaxDuration)
		}
		dur := n.Duration
		if dur == 0 {
			dur = min(s.cfg.DefaultDuration, limit)
		}
		if dur > limit {
			return Request{}, invalid("duration", "%s exceeds the maximum of %s", dur, limit)
		}
		auto := pol.Approval == ApprovalAuto
		approvers := pol.Approvers
		if approvers == "" {
			approvers = ctl.DefaultApprovers
		}
		if !auto && approvers == "" {
			return Request{}, invalid("approvers", "no approver group: set one on the policy or in control settings")
		}
		if !auto && recs[2].exists() {
			var e pendingEntry
			// An unreadable index entry is replaced: it cannot stand for a
			// pending request.
			if json.Unmarshal(recs[2].val, &e) == nil && now.Before(e.ExpiresAt) {
				return Request{}, &DuplicateError{ExistingID: e.RequestID}
			}
		}
		id, err := newRequestID()
		if err != nil {
			return Request{}, unavailable(err)
		}
		req := Request{
			ID:                id,
			Requester:         n.Requester.Subject,
			RequesterEmail:    n.Requester.Email,
			Scope:             n.Scope,
			Target:            n.Target,
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
		cmps := []clientv3.Cmp{
			unchanged(pkey, recs[0]),
			unchanged(s.kControl, recs[1]),
			clientv3.Compare(clientv3.CreateRevision(s.requestKey(id)), "=", 0),
		}
		var ops []clientv3.Op
		lease := clientv3.NoLease
		if auto {
			req.ApprovalsRequired = 1
			req.Approvals = []Decision{{By: AutoApprover, At: now}}
			ops, lease, err = s.grant(ctx, &req, now)
			if err != nil {
				return Request{}, err
			}
		} else {
			req.Status = StatusPending
			req.ExpiresAt = now.Add(s.cfg.PendingTTL)
			idx, err := encode(pendingEntry{RequestID: id, ExpiresAt: req.ExpiresAt})
			if err != nil {
				return Request{}, err
			}
			cmps = append(cmps, unchanged(ikey, recs[2]))
			ops = append(ops, clientv3.OpPut(ikey, idx))
		}
		val, err := encode(req)
		if err != nil {
			s.dropLease(ctx, lease)
			return Request{}, err
		}
		ops = append(ops, clientv3.OpPut(s.requestKey(id), val), s.putExpiry(&req))
		ok, _, err := s.commit(ctx, cmps, ops...)
		if err != nil || !ok {
			s.dropLease(ctx, lease)
		}
		if err != nil {
			return Request{}, err
		}
		if ok {
			req.settle(now)
			s.emit(EventSubmitted, req, req.Requester, "", now)
			if auto {
				s.emit(EventApproved, req, AutoApprover, "", now)
			}
			return req, nil
		}
	}
	return Request{}, contention("submit")
}

// check applies the rules every request shares to n and its trimmed
// reason.
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
	return nil
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

// grant approves req at now: it sets the grant's window and returns the
// operation that writes the grant key under a new lease, and that lease.
func (s *Store) grant(ctx context.Context, req *Request, now time.Time) ([]clientv3.Op, clientv3.LeaseID, error) {
	start := now
	if req.StartAt != nil && req.StartAt.After(now) {
		start = *req.StartAt
	}
	end := start.Add(time.Duration(req.Duration))
	req.Status = StatusApproved
	req.GrantStart, req.GrantEnd = &start, &end
	req.ExpiresAt = end
	g := Grant{
		ID:         grantID(req.ID),
		RequestID:  req.ID,
		Subject:    req.Requester,
		Scope:      req.Scope,
		Target:     req.Target,
		NotBefore:  start,
		ExpiresAt:  end,
		BreakGlass: req.BreakGlass,
		MaxUses:    req.MaxUses,
	}
	for _, d := range req.Approvals {
		g.Approvers = append(g.Approvers, d.By)
	}
	val, err := encode(g)
	if err != nil {
		return nil, clientv3.NoLease, err
	}
	ttl := int64(math.Ceil((end.Sub(now) + leaseMargin).Seconds()))
	lease, err := s.cli.Grant(ctx, ttl)
	if err != nil {
		return nil, clientv3.NoLease, unavailable(err)
	}
	return []clientv3.Op{clientv3.OpPut(s.grantKey(req.ID), val, clientv3.WithLease(lease.ID))}, lease.ID, nil
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
	for range maxAttempts {
		req, rec, err := s.loadRequest(ctx, id)
		if err != nil {
			return Request{}, err
		}
		now := s.now()
		if eff := req; eff.settle(now) || eff.Status != StatusPending {
			return Request{}, fmt.Errorf("%w: request %s is %s", ErrNotPending, id, eff.Status)
		}
		if by.Subject == req.Requester {
			return Request{}, fmt.Errorf("%w: %s", ErrSelfApproval, id)
		}
		if !by.inGroup(req.Approvers) {
			return Request{}, fmt.Errorf("%w %q", ErrNotApprover, req.Approvers)
		}
		pkey, ikey := s.policyKey(req.PolicyID), s.pendingKey(req.Requester, req.Scope, req.Target)
		recs, err := s.read(ctx, pkey, ikey)
		if err != nil {
			return Request{}, err
		}
		cmps := []clientv3.Cmp{
			unchanged(s.requestKey(id), rec),
			unchanged(pkey, recs[0]),
			unchanged(ikey, recs[1]),
		}
		d := Decision{By: by.Subject, At: now, Comment: comment}
		oldExpiry := s.expiryKey(&req)
		var ops []clientv3.Op
		lease := clientv3.NoLease
		decided := true
		if approve {
			// Without a readable policy MFA is required: fail closed.
			mfa := true
			var pol Policy
			if recs[0].exists() && json.Unmarshal(recs[0].val, &pol) == nil {
				mfa = pol.RequireMFA
			}
			if mfa && !by.MFA {
				return Request{}, fmt.Errorf("%w: policy %s", ErrMFARequired, req.PolicyID)
			}
			if req.approvedBy(by.Subject) {
				return Request{}, fmt.Errorf("%w: %s on %s", ErrAlreadyApproved, by.Subject, id)
			}
			req.Approvals = append(req.Approvals, d)
			if len(req.Approvals) >= req.ApprovalsRequired {
				ops, lease, err = s.grant(ctx, &req, now)
				if err != nil {
					return Request{}, err
				}
			} else {
				decided = false
			}
		} else {
			req.Status = StatusDenied
			req.Denial = &d
		}
		if decided {
			if recs[1].exists() {
				var e pendingEntry
				if json.Unmarshal(recs[1].val, &e) != nil || e.RequestID == id {
					ops = append(ops, clientv3.OpDelete(ikey))
				}
			}
			ops = append(ops, clientv3.OpDelete(oldExpiry))
			if approve {
				ops = append(ops, s.putExpiry(&req))
			}
		}
		val, err := encode(req)
		if err != nil {
			s.dropLease(ctx, lease)
			return Request{}, err
		}
		ops = append(ops, clientv3.OpPut(s.requestKey(id), val))
		ok, _, err := s.commit(ctx, cmps, ops...)
		if err != nil || !ok {
			s.dropLease(ctx, lease)
		}
		if err != nil {
			return Request{}, err
		}
		if ok {
			req.settle(now)
			switch {
			case !decided:
			case approve:
				s.emit(EventApproved, req, by.Subject, comment, now)
			default:
				s.emit(EventDenied, req, by.Subject, comment, now)
			}
			return req, nil
		}
	}
	return Request{}, contention("decide " + id)
}

// Revoke ends the grant of an approved request before its time. The revoker
// must be the requester or in the request's approver group (for a request
// approved without one, the control settings' current default group).
func (s *Store) Revoke(ctx context.Context, id string, by Actor, comment string) (Request, error) {
	if by.Subject == "" {
		return Request{}, invalid("by", "must name the revoker")
	}
	for range maxAttempts {
		req, rec, err := s.loadRequest(ctx, id)
		if err != nil {
			return Request{}, err
		}
		now := s.now()
		if eff := req; eff.settle(now) || eff.Status != StatusApproved {
			return Request{}, fmt.Errorf("%w: request %s is %s", ErrNotApproved, id, eff.Status)
		}
		gkey := s.grantKey(id)
		recs, err := s.read(ctx, gkey, s.kControl)
		if err != nil {
			return Request{}, err
		}
		cmps := []clientv3.Cmp{unchanged(s.requestKey(id), rec), unchanged(gkey, recs[0])}
		group := req.Approvers
		switch {
		case group == "":
			if recs[1].exists() {
				ctl, _ := decodeControl(recs[1].val)
				group = ctl.DefaultApprovers
			}
			cmps = append(cmps, unchanged(s.kControl, recs[1]))
		}
		if by.Subject != req.Requester && !by.inGroup(group) {
			return Request{}, fmt.Errorf("%w %q", ErrNotApprover, group)
		}
		oldExpiry := s.expiryKey(&req)
		req.Status = StatusRevoked
		req.Revocation = &Decision{By: by.Subject, At: now, Comment: comment}
		val, err := encode(req)
		if err != nil {
			return Request{}, err
		}
		ok, _, err := s.commit(ctx, cmps, clientv3.OpPut(s.requestKey(id), val), clientv3.OpDelete(gkey), clientv3.OpDelete(oldExpiry))
		if err != nil {
			return Request{}, err
		}
		if ok {
			s.dropLease(ctx, recs[0].lease)
			s.emit(EventRevoked, req, by.Subject, comment, now)
			return req, nil
		}
	}
	return Request{}, contention("revoke " + id)
}

// CreatePolicy stores a new approval policy. It assigns ID and CreatedAt
// (any given are ignored) and defaults Approvals to 1. Whether the target
// exists is for the caller to check. A second policy for the same scope and
// target is refused with a *PolicyExistsError, and one beyond
// Config.MaxPolicies with ErrPolicyLimit; both checks hold under concurrent
// creations.
func (s *Store) CreatePolicy(ctx context.Context, p Policy) (Policy, error) {
	p.Target = strings.TrimSpace(p.Target)
	p.Approvers = strings.TrimSpace(p.Approvers)
	if p.Approvals == 0 {
		p.Approvals = 1
	}
	switch {
	case !p.Scope.valid():
		return Policy{}, invalid("scope", "must be one of task, role, rolegroup; got %q", p.Scope)
	case p.Target == "":
		return Policy{}, invalid("target", "must not be empty")
	case p.Approval != ApprovalManual && p.Approval != ApprovalAuto:
		return Policy{}, invalid("approval", "must be manual or auto; got %q", p.Approval)
	case p.Approvals < 1:
		return Policy{}, invalid("approvals", "must be at least 1, got %d", p.Approvals)
	case p.MaxDuration < 0:
		return Policy{}, invalid("max_duration", "must not be negative, got %s", p.MaxDuration)
	case p.MinReasonLength < 0:
		return Policy{}, invalid("min_reason_length", "must not be negative, got %d", p.MinReasonLength)
	case p.MaxUses < 0:
		return Policy{}, invalid("max_uses", "must not be negative, got %d", p.MaxUses)
	case len(p.ReasonPattern) > maxPatternLen:
		return Policy{}, invalid("reason_pattern", "longer than %d bytes", maxPatternLen)
	}
	if p.ReasonPattern != "" {
		if _, err := regexp.Compile(p.ReasonPattern); err != nil {
			return Policy{}, invalid("reason_pattern", "%v", err)
		}
	}
	tkey := s.policyTargetKey(p.Scope, p.Target)
	for range maxAttempts {
		recs, count, err := s.readPolicyIndex(ctx, tkey)
		if err != nil {
			return Policy{}, err
		}
		cmps := []clientv3.Cmp{unchanged(tkey, recs[0]), unchanged(s.kPolicyCount, recs[1])}
		// An index entry naming a policy that is gone is stale: replace it.
		if existing := string(recs[0].val); recs[0].exists() && validID(existing) {
			prec, err := s.read(ctx, s.policyKey(existing))
			if err != nil {
				return Policy{}, err
			}
			if prec[0].exists() {
				return Policy{}, &PolicyExistsError{ExistingID: existing}
			}
			cmps = append(cmps, unchanged(s.policyKey(existing), prec[0]))
		}
		if s.cfg.MaxPolicies > 0 && count >= int64(s.cfg.MaxPolicies) {
			return Policy{}, fmt.Errorf("%w: policy limit %d reached", ErrPolicyLimit, s.cfg.MaxPolicies)
		}
		id, err := newPolicyID()
		if err != nil {
			return Policy{}, unavailable(err)
		}
		p.ID = id
		p.CreatedAt = s.now()
		val, err := encode(p)
		if err != nil {
			return Policy{}, err
		}
		key := s.policyKey(id)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		ok, _, err := s.commit(ctx, cmps,
			clientv3.OpPut(key, val),
			clientv3.OpPut(tkey, id),
			clientv3.OpPut(s.kPolicyCount, strconv.FormatInt(count+1, 10)))
		if err != nil {
			return Policy{}, err
		}
		if ok {
			return p, nil
		}
	}
	return Policy{}, contention("create policy")
}

// maxPatternLen bounds Policy.ReasonPattern.
const maxPatternLen = 1024

// readPolicyIndex reads, at one revision, the policy target index entry
// tkey, the policy counter and the number of policies. Every creation and
// deletion rewrites the counter, so a transaction that finds the counter
// unchanged knows the number of policies is unchanged too.
func (s *Store) readPolicyIndex(ctx context.Context, tkey string) ([]record, int64, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(tkey),
		clientv3.OpGet(s.kPolicyCount),
		clientv3.OpGet(s.kPolicies, clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return nil, 0, unavailable(err)
	}
	recs := make([]record, 2)
	for i := range recs {
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			recs[i] = record{val: kvs[0].Value, rev: kvs[0].ModRevision}
		}
	}
	return recs, resp.Responses[2].GetResponseRange().GetCount(), nil
}

// DeletePolicy removes an approval policy and returns it. Requests under it
// keep their state; approving them then requires MFA.
func (s *Store) DeletePolicy(ctx context.Context, id string) (Policy, error) {
	if !validID(id) {
		return Policy{}, fmt.Errorf("%w: policy %q", ErrNotFound, id)
	}
	key := s.policyKey(id)
	for range maxAttempts {
		recs, err := s.read(ctx, key)
		if err != nil {
			return Policy{}, err
		}
		if !recs[0].exists() {
			return Policy{}, fmt.Errorf("%w: policy %q", ErrNotFound, id)
		}
		p := Policy{ID: id}
		// A damaged record is deleted all the same; its target index entry,
		// if any, is then stale and CreatePolicy replaces it.
		_ = json.Unmarshal(recs[0].val, &p)
		tkey := s.policyTargetKey(p.Scope, p.Target)
		idx, count, err := s.readPolicyIndex(ctx, tkey)
		if err != nil {
			return Policy{}, err
		}
		cmps := []clientv3.Cmp{unchanged(key, recs[0]), unchanged(s.kPolicyCount, idx[1])}
		ops := []clientv3.Op{
			clientv3.OpDelete(key),
			clientv3.OpPut(s.kPolicyCount, strconv.FormatInt(max(count-1, 0), 10)),
		}
		if idx[0].exists() && string(idx[0].val) == id {
			cmps = append(cmps, unchanged(tkey, idx[0]))
			ops = append(ops, clientv3.OpDelete(tkey))
		}
		ok, _, err := s.commit(ctx, cmps, ops...)
		if err != nil {
			return Policy{}, err
		}
		if ok {
			return p, nil
		}
	}
	return Policy{}, contention("delete policy " + id)
}

// UpdateControl changes the control settings named by p and leaves the
// others as they are. An absent control record reads as the zero Control
// (disabled). It returns the settings before and after the change.
func (s *Store) UpdateControl(ctx context.Context, p ControlPatch) (before, after Control, err error) {
	var accounts []string
	if p.SystemAccounts != nil {
		accounts = make([]string, 0, len(*p.SystemAccounts))
		for i, a := range *p.SystemAccounts {
			a = strings.TrimSpace(a)
			if a == "" {
				return Control{}, Control{}, invalid("system_accounts", "entry %d is empty", i)
			}
			accounts = append(accounts, a)
		}
	}
	for range maxAttempts {
		recs, err := s.read(ctx, s.kControl)
		if err != nil {
			return Control{}, Control{}, err
		}
		before = Control{}
		if recs[0].exists() {
			before, _ = decodeControl(recs[0].val)
			before.Revision = recs[0].rev
		}
		after = before
		after.SystemAccounts = append([]string(nil), before.SystemAccounts...)
		if p.Enabled != nil {
			after.Enabled = *p.Enabled
		}
		if p.DefaultApprovers != nil {
			after.DefaultApprovers = strings.TrimSpace(*p.DefaultApprovers)
		}
		if p.SystemAccounts != nil {
			after.SystemAccounts = accounts
		}
		val, err := encode(after)
		if err != nil {
			return Control{}, Control{}, err
		}
		ok, rev, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.kControl, recs[0])}, clientv3.OpPut(s.kControl, val))
		if err != nil {
			return Control{}, Control{}, err
		}
		if ok {
			after.Revision = rev
			return before, after, nil
		}
	}
	return Control{}, Control{}, contention("update control")
}
