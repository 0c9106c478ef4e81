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

// UseGrant spends one use of a grant whose policy caps its uses. It is
// checked against etcd, not the in-memory view, so that concurrent calls
// through any number of replicas spend at most MaxUses uses in all. The
// last use ends the grant: the request becomes expired and Config.OnEvent
// hears of it. A grant that is gone, has ended or has no uses left is
// refused with ErrNotApproved; a grant without a cap is not counted.
func (s *Store) UseGrant(ctx context.Context, grantID string) error {
	reqID := "req-" + strings.TrimPrefix(grantID, "grt-")
	if !strings.HasPrefix(grantID, "grt-") || !validID(reqID) {
		return fmt.Errorf("%w: grant %q", ErrNotFound, grantID)
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
		if req.settle(now); req.Status != StatusApproved {
			return fmt.Errorf("%w: grant %s: request is %s", ErrNotApproved, grantID, req.Status)
		}
		if !g.liveAt(now) {
			return fmt.Errorf("%w: grant %s is not live at %s", ErrNotApproved, grantID, now.Format(time.RFC3339))
		}
		if g.MaxUses <= 0 {
			return nil
		}
		if g.Uses >= g.MaxUses {
			return fmt.Errorf("%w: grant %s: all %d uses spent", ErrNotApproved, grantID, g.MaxUses)
		}
		g.Uses++
		cmps := []clientv3.Cmp{unchanged(gkey, recs[0]), unchanged(rkey, recs[1])}
		var ops []clientv3.Op
		last := g.Uses >= g.MaxUses
		if last {
			oldExpiry := s.expiryKey(&req)
			req.Status = StatusExpired
			val, err := encode(req)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(rkey, val), clientv3.OpDelete(gkey), clientv3.OpDelete(oldExpiry))
		} else {
			val, err := encode(g)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(gkey, val, clientv3.WithIgnoreLease()))
		}
		ok, _, err := s.commit(ctx, cmps, ops...)
		if err != nil {
			return err
		}
		if ok {
			if last {
				s.dropLease(ctx, recs[0].lease)
				s.emit(EventExpired, req, "", usesSpent(g.MaxUses), now)
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
