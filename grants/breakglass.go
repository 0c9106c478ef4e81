package grants

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BreakGlass records a request that is approved at once, without a policy,
// for an emergency: its grant starts now and lasts n.Duration
// (Config.BreakGlassDuration when zero, at most Config.BreakGlassMax). The
// request is marked BreakGlass with Review set to ReviewPending, and its
// approver is BreakGlassApprover. Whether the requester may break the glass
// is for the caller to check; a reason is mandatory and a start time is
// refused. The request's approver group, which is notified and may revoke
// the grant, is Config.BreakGlassReviewers or else the default approver
// group of the control settings.
func (s *Store) BreakGlass(ctx context.Context, n NewRequest) (Request, error) {
	reason := strings.TrimSpace(n.Reason)
	dur := n.Duration
	if dur == 0 {
		dur = s.cfg.BreakGlassDuration
	}
	if err := n.check(reason); err != nil {
		return Request{}, err
	}
	switch {
	case dur < 0:
		return Request{}, invalid("duration", "must be positive, got %s", dur)
	case dur > s.cfg.BreakGlassMax:
		return Request{}, invalid("duration", "%s exceeds the break-glass maximum of %s", dur, s.cfg.BreakGlassMax)
	case !n.StartAt.IsZero():
		return Request{}, invalid("start_at", "break-glass takes effect at once")
	}
	for range maxAttempts {
		recs, err := s.read(ctx, s.kControl)
		if err != nil {
			return Request{}, err
		}
		reviewers := s.cfg.BreakGlassReviewers
		if reviewers == "" && recs[0].exists() {
			ctl, _ := decodeControl(recs[0].val)
			reviewers = ctl.DefaultApprovers
		}
		id, err := newRequestID()
		if err != nil {
			return Request{}, unavailable(err)
		}
		now := s.now()
		req := Request{
			ID:                id,
			Requester:         n.Requester.Subject,
			RequesterEmail:    n.Requester.Email,
			Scope:             n.Scope,
			Target:            strings.TrimSpace(n.Target),
			Reason:            reason,
			Duration:          Duration(dur),
			Approvers:         reviewers,
			ApprovalsRequired: 1,
			Approvals:         []Decision{{By: BreakGlassApprover, At: now, Comment: "break-glass"}},
			CreatedAt:         now,
			BreakGlass:        true,
			Review:            ReviewPending,
		}
		ops, lease, err := s.grant(ctx, &req, now)
		if err != nil {
			return Request{}, err
		}
		val, err := encode(req)
		if err != nil {
			s.dropLease(ctx, lease)
			return Request{}, err
		}
		ops = append(ops, clientv3.OpPut(s.requestKey(id), val), s.putExpiry(&req))
		ok, _, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.requestKey(id)), "=", 0)}, ops...)
		if err != nil || !ok {
			s.dropLease(ctx, lease)
		}
		if err != nil {
			return Request{}, err
		}
		if ok {
			s.emit(EventBreakGlass, req, req.Requester, "", now)
			return req, nil
		}
	}
	return Request{}, contention("break-glass")
}

// Use is one use of a grant, as UseGrant spent it.
type Use struct {
	// N counts the uses spent so far, this one included; 0 for a grant
	// whose uses are not counted.
	N int
	// MaxUses is the grant's cap; 0 for none.
	MaxUses int
}

// Last reports whether u was the grant's last use: its request is now
// used up.
func (u Use) Last() bool { return u.MaxUses > 0 && u.N >= u.MaxUses }

// UseGrant spends one use of a grant whose policy caps its uses. It is
// checked against etcd, not the in-memory view, so that concurrent calls
// through any number of replicas spend at most MaxUses uses in all; the
// request keeps the count too (Request.Uses).
//
// The last use ends the grant in the same transaction: the request becomes
// StatusUsedUp (its window may run on, unused), and the grant key stays,
// used up, until its lease ends, so that views tell a used-up grant from
// none (Store.UsedUpGrants). Config.OnEvent then hears of it as
// EventUsedUp; with Config.Deliver set the event also waits in the outbox.
//
// spent, when not nil, is called once the use is committed and before
// Config.OnEvent hears of a last use, so that the caller can record the
// call the use was spent on before the change that call caused. It is
// called, with a zero Use, for a grant without a cap too, which is not
// counted.
//
// A grant whose uses are all spent is refused with ErrUsedUp; one that is
// gone, has ended or has not started, with ErrNotApproved.
func (s *Store) UseGrant(ctx context.Context, grantID string, spent func(Use)) error {
	reqID := "req-" + strings.TrimPrefix(grantID, "grt-")
	if !strings.HasPrefix(grantID, "grt-") || !validID(reqID) {
		return fmt.Errorf("%w: grant %q", ErrNotFound, grantID)
	}
	if spent == nil {
		spent = func(Use) {}
	}
	gkey, rkey := s.grantKey(reqID), s.requestKey(reqID)
	for range maxAttempts {
		recs, err := s.read(ctx, gkey, rkey)
		if err != nil {
			return err
		}
		now := s.now()
		if !recs[0].exists() || !recs[1].exists() {
			return fmt.Errorf("%w: grant %s", ErrNotApproved, grantID)
		}
		var g Grant
		var req Request
		if err := decode(recs[0].val, &g, "grant "+grantID); err != nil {
			return err
		}
		if err := decode(recs[1].val, &req, "request "+reqID); err != nil {
			return err
		}
		req.settle(now)
		switch {
		case req.Status == StatusUsedUp || (req.Status == StatusApproved && g.UsedUp()):
			return fmt.Errorf("%w: grant %s: all %d uses spent", ErrUsedUp, grantID, g.MaxUses)
		case req.Status != StatusApproved:
			return fmt.Errorf("%w: grant %s: request is %s", ErrNotApproved, grantID, req.Status)
		case !g.within(now):
			return fmt.Errorf("%w: grant %s is not live at %s", ErrNotApproved, grantID, now.Format(time.RFC3339))
		case g.MaxUses <= 0:
			spent(Use{})
			return nil
		}
		g.Uses++
		req.Uses = g.Uses
		use := Use{N: g.Uses, MaxUses: g.MaxUses}
		var ev *Event
		if use.Last() {
			req.Status = StatusUsedUp
			ev = &Event{Kind: EventUsedUp, Request: req, Comment: usesSpent(g.MaxUses), At: now}
		}
		gval, err := encode(g)
		if err != nil {
			return err
		}
		rval, err := encode(req)
		if err != nil {
			return err
		}
		cmps := []clientv3.Cmp{unchanged(gkey, recs[0]), unchanged(rkey, recs[1])}
		// The grant key keeps its lease: it goes at the end of the window.
		ops := []clientv3.Op{clientv3.OpPut(gkey, gval, clientv3.WithIgnoreLease()), clientv3.OpPut(rkey, rval)}
		if ev != nil {
			// Nothing is left for the sweep to do.
			ops = append(ops, clientv3.OpDelete(s.expiryKey(&req)))
			if ops, err = s.withOutbox(ops, ev); err != nil {
				return err
			}
		}
		ok, _, err := s.commit(ctx, cmps, ops...)
		if err != nil {
			return err
		}
		if ok {
			spent(use)
			if ev != nil {
				s.report(*ev)
			}
			return nil
		}
	}
	return contention("use grant")
}

// usesSpent is the comment of the expiry of a grant whose last use is spent.
func usesSpent(maxUses int) string {
	if maxUses == 1 {
		return "its only use spent"
	}
	return fmt.Sprintf("all %d uses spent", maxUses)
}
