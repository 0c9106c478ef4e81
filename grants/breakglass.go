package grants

import (
	"context"
	"strings"
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
	dur, err := s.cfg.checkBreakGlass(n, reason)
	if err != nil {
		return Request{}, err
	}
	var req Request
	rev, err := s.update(ctx, "break-glass", func(c *change) error {
		recs, err := c.read(s.kControl)
		if err != nil {
			return err
		}
		reviewers := s.cfg.BreakGlassReviewers
		if reviewers == "" && recs[0].exists() {
			ctl, _ := decodeControl(recs[0].val)
			reviewers = ctl.DefaultApprovers
		}
		id, err := newRequestID()
		if err != nil {
			return unavailable(err)
		}
		now := s.now()
		req = Request{
			ID:                id,
			Requester:         n.Requester.Subject,
			RequesterEmail:    n.Requester.Email,
			Scope:             n.Scope,
			Target:            strings.TrimSpace(n.Target),
			Constraint:        n.Constraint.clone(),
			Reason:            reason,
			Duration:          Duration(dur),
			Approvers:         reviewers,
			ApprovalsRequired: 1,
			Approvals:         []Decision{{By: BreakGlassApprover, At: now, Comment: "break-glass"}},
			CreatedAt:         now,
			BreakGlass:        true,
			Review:            ReviewPending,
		}
		req.approve(now)
		if err := c.putGrant(&req, now); err != nil {
			return err
		}
		c.put(s.expiryKey(&req), req.ID)
		return c.putNew(s.requestKey(id), req)
	})
	if err != nil {
		return Request{}, err
	}
	req.Revision = rev
	s.emit(EventBreakGlass, req, req.Requester, "", req.CreatedAt)
	return req, nil
}
