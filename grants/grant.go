package grants

import (
	"context"
	"fmt"
	"math"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseMargin is how long a grant's lease outlives the grant's end; the
// clock check ends the grant on time, the lease removes its key.
const leaseMargin = 30 * time.Second

// Grant is the right an approved request confers: Subject may run Target
// (of Scope) from NotBefore until ExpiresAt.
type Grant struct {
	ID        string `json:"id"`
	RequestID string `json:"request_id"`
	Subject   string `json:"subject"`
	Scope     Scope  `json:"scope"`
	Target    string `json:"target"`
	// Constraint is the request's: the grant covers only calls with
	// these attributes.
	Constraint Constraint `json:"constraint,omitempty"`
	NotBefore  time.Time  `json:"not_before"`
	ExpiresAt  time.Time  `json:"expires_at"`
	// Approvers are the subjects who approved the request ("auto" for an
	// automatic approval, "break-glass" for a break-glass one).
	Approvers []string `json:"approvers"`
	// BreakGlass marks the grant of a break-glass request.
	BreakGlass bool `json:"break_glass,omitempty"`
	// MaxUses, when above 0, caps the uses of the grant, and Uses counts
	// them; see Store.UseGrant.
	MaxUses int `json:"max_uses,omitempty"`
	Uses    int `json:"uses,omitempty"`
}

// UsedUp reports whether the grant's uses are capped and all spent.
func (g *Grant) UsedUp() bool { return g.MaxUses > 0 && g.Uses >= g.MaxUses }

// within reports whether now lies in the grant's window.
func (g *Grant) within(now time.Time) bool {
	return !now.Before(g.NotBefore) && now.Before(g.ExpiresAt)
}

// liveAt reports whether the grant allows calls at now: within its window
// and not used up.
func (g *Grant) liveAt(now time.Time) bool { return g.within(now) && !g.UsedUp() }

// grantOf is the grant of req, approved (see Request.approve).
func grantOf(req *Request) Grant {
	g := Grant{
		ID:         grantID(req.ID),
		RequestID:  req.ID,
		Subject:    req.Requester,
		Scope:      req.Scope,
		Target:     req.Target,
		Constraint: req.Constraint.clone(),
		NotBefore:  *req.GrantStart,
		ExpiresAt:  *req.GrantEnd,
		BreakGlass: req.BreakGlass,
		MaxUses:    req.MaxUses,
	}
	for _, d := range req.Approvals {
		g.Approvers = append(g.Approvers, d.By)
	}
	return g
}

// putGrant writes the grant of req, approved at now, under a lease of its
// own that ends leaseMargin after the grant.
func (c *change) putGrant(req *Request, now time.Time) error {
	g := grantOf(req)
	val, err := encode(g)
	if err != nil {
		return err
	}
	ttl := int64(math.Ceil((g.ExpiresAt.Sub(now) + leaseMargin).Seconds()))
	lease, err := c.s.cli.Grant(c.ctx, ttl)
	if err != nil {
		return unavailable(err)
	}
	c.lease = lease.ID
	c.put(c.s.grantKey(req.ID), val, clientv3.WithLease(lease.ID))
	return nil
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
	reqID, ok := requestOfGrant(grantID)
	if !ok {
		return fmt.Errorf("%w: grant %q", ErrNotFound, grantID)
	}
	if spent == nil {
		spent = func(Use) {}
	}
	gkey, rkey := s.grantKey(reqID), s.requestKey(reqID)
	var use Use
	var ev *Event
	_, err := s.update(ctx, "use grant", func(c *change) error {
		use, ev = Use{}, nil
		recs, err := c.read(gkey, rkey)
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
			return nil // not counted: nothing to write
		}
		g.Uses++
		req.Uses = g.Uses
		use = Use{N: g.Uses, MaxUses: g.MaxUses}
		if use.Last() {
			req.Status = StatusUsedUp
			ev = &Event{Kind: EventUsedUp, Request: req, Comment: usesSpent(g.MaxUses), At: now}
			// Nothing is left for the sweep to do.
			c.del(s.expiryKey(&req))
			if err := c.putOutbox(ev); err != nil {
				return err
			}
		}
		// The grant key keeps its lease: it goes at the end of the window.
		if err := c.putJSON(gkey, g, clientv3.WithIgnoreLease()); err != nil {
			return err
		}
		return c.putJSON(rkey, req)
	})
	if err != nil {
		return err
	}
	spent(use)
	if ev != nil {
		s.report(*ev)
	}
	return nil
}

// usesSpent is the comment of the expiry of a grant whose last use is spent.
func usesSpent(maxUses int) string {
	if maxUses == 1 {
		return "its only use spent"
	}
	return fmt.Sprintf("all %d uses spent", maxUses)
}
