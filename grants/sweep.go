package grants

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

const (
	// sweepBatch bounds the expiry index entries one sweep reads at a time.
	sweepBatch = 100
	// outboxBatch bounds the outbox entries one drain reads.
	outboxBatch = 100
	// resignTimeout bounds the revocation of a term's lease; when it fails
	// the lease runs out by itself after ElectionTTL.
	resignTimeout = time.Second
)

// Leading reports whether this Store is, at the moment, the one that sweeps
// expired requests for its prefix.
func (s *Store) Leading() bool { return s.leading.Load() }

// lead campaigns for leadership until ctx ends, and sweeps while it leads.
// Losing the session (etcd unreachable longer than ElectionTTL) ends the
// term; the Store then campaigns again.
func (s *Store) lead(ctx context.Context) {
	for ctx.Err() == nil {
		s.term(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(s.cfg.SweepInterval):
		}
	}
}

// term campaigns once and, when elected, sweeps until ctx ends or the
// session is lost. Its lease is revoked on return, which hands leadership to
// the next campaigner at once.
//
// Nothing here may outlast ctx while etcd is unreachable: the lease is
// granted under ctx, the revocation is bounded, deliveries from the outbox
// get a bounded moment to finish, and a campaign cut short is not waited
// for (the election resigns on the client's own context, which only a
// reachable etcd or a closed client ends).
func (s *Store) term(ctx context.Context) {
	ttl := int(math.Ceil(s.cfg.ElectionTTL.Seconds()))
	lease, err := s.cli.Grant(ctx, int64(ttl))
	if err != nil {
		return
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(s.cfg.ElectionTTL, resignTimeout))
		defer cancel()
		_, _ = s.cli.Revoke(rctx, lease.ID)
	}()
	// The session's own context outlives ctx: the deferred revocation, not
	// the session, ends the lease.
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(ttl), concurrency.WithLease(lease.ID),
		concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return
	}
	defer sess.Orphan()
	// The term ends with ctx or with the session, whichever ends first, so
	// that a Store cut off from etcd stops sweeping and stops reporting
	// itself as the leader once its lease has run out.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-tctx.Done():
		}
	}()
	el := concurrency.NewElection(sess, s.kLeader)
	won := make(chan error, 1)
	go func() { won <- el.Campaign(tctx, s.replica) }()
	select {
	case err := <-won:
		if err != nil || tctx.Err() != nil {
			return
		}
	case <-tctx.Done():
		return
	}
	s.leading.Store(true)
	defer s.leading.Store(false)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	// Deliveries under way when the term ends get a moment to finish and
	// remove their entries before the lease goes: the next leader would
	// deliver those entries again.
	dctx, stopDeliveries := context.WithCancel(context.WithoutCancel(tctx))
	o := &outbox{ctx: dctx}
	defer func() {
		done := make(chan struct{})
		go func() { o.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(resignTimeout):
			stopDeliveries()
			<-done
		}
		stopDeliveries()
	}()
	for {
		_, _ = s.Sweep(tctx)
		s.drain(tctx, o)
		select {
		case <-tctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep writes back, once, every request whose status has changed with
// time: pending requests past their expiry and approved ones past their
// grant's end become expired, and Config.OnEvent hears of each. It returns
// how many it expired. The leader calls it every SweepInterval; calling it
// from several Stores at once is safe, because each write is conditional on
// the request being unchanged since it was read.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	// Keys sort as their stamps do; "~" sorts after the "/" that ends one.
	end := s.kExpiries + expiryStamp(now) + "~"
	from := s.kExpiries
	n := 0
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(sweepBatch))
		if err != nil {
			return n, unavailable(err)
		}
		for _, kv := range resp.Kvs {
			expired, err := s.expire(ctx, string(kv.Key), kv.ModRevision, string(kv.Value), now)
			if err != nil {
				return n, err
			}
			if expired {
				n++
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return n, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// expire settles the request that the expiry index entry ekey names and, if
// its status changed, writes it back and removes what it no longer needs.
// It tries once: a request changed since it was read is looked at again by
// the next sweep.
func (s *Store) expire(ctx context.Context, ekey string, erev int64, id string, now time.Time) (bool, error) {
	if !validID(id) {
		return false, s.deleteIf(ctx, ekey, erev)
	}
	var ev *Event
	stale := false
	ok, _, err := s.try(ctx, func(c *change) error {
		recs, err := c.read(s.requestKey(id))
		if err != nil {
			return err
		}
		var req Request
		if !recs[0].exists() || json.Unmarshal(recs[0].val, &req) != nil {
			stale = true
			return nil
		}
		before := req.Status
		if !req.settle(now) {
			stale = s.expiryKey(&req) != ekey
			return nil
		}
		ikey := s.pendingKey(req.Requester, req.Scope, req.Target, req.Constraint)
		idx, err := c.read(ikey)
		if err != nil {
			return err
		}
		if idx[0].exists() && !namesOtherThan(idx[0], id) {
			c.del(ikey)
		}
		c.del(ekey)
		c.del(s.grantKey(id))
		comment := "pending request expired undecided"
		if before == StatusApproved {
			comment = "grant ended"
		}
		ev = &Event{Kind: EventExpired, Request: req, Comment: comment, At: now}
		if err := c.putOutbox(ev); err != nil {
			return err
		}
		return c.putJSON(s.requestKey(id), req)
	})
	switch {
	case err != nil:
		return false, err
	case stale:
		return false, s.deleteIf(ctx, ekey, erev)
	case !ok || ev == nil:
		return false, nil
	}
	s.report(*ev)
	return true, nil
}

// putOutbox adds to the change, when Config.Deliver is set, the outbox
// entry of ev, and marks ev as waiting there: the event then commits with
// the change it reports, so that it outlives this replica (see drain).
func (c *change) putOutbox(ev *Event) error {
	if c.s.cfg.Deliver == nil {
		return nil
	}
	ev.Outbox = true
	return c.putJSON(c.s.outboxKey(ev.Request.ID, ev.Kind), ev)
}

// outbox follows the deliveries of outbox entries that one term started.
type outbox struct {
	ctx      context.Context // of the deliveries
	mu       sync.Mutex
	underway map[string]bool // keys of the entries being delivered
	wg       sync.WaitGroup
}

// begin reports whether the delivery of key may start, and if so marks it
// as under way.
func (o *outbox) begin(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.underway[key] {
		return false
	}
	if o.underway == nil {
		o.underway = map[string]bool{}
	}
	o.underway[key] = true
	return true
}

func (o *outbox) end(key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.underway, key)
}

// drain starts, through Config.Deliver under o's context, the delivery of
// every outbox entry whose delivery is not already under way, and removes
// each entry once Deliver has returned nil for it. An entry whose delivery
// fails stays for a later drain, by this leader or the next; one that
// cannot be decoded could never be delivered and is removed. ctx bounds the
// listing.
func (s *Store) drain(ctx context.Context, o *outbox) {
	if s.cfg.Deliver == nil {
		return
	}
	resp, err := s.cli.Get(ctx, s.kOutbox, clientv3.WithPrefix(), clientv3.WithLimit(outboxBatch))
	if err != nil {
		return
	}
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		remove := func() {
			// Also when the term has just ended: an entry left behind is
			// delivered once more by the next leader.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(o.ctx), resignTimeout)
			defer cancel()
			_ = s.deleteIf(rctx, key, kv.ModRevision)
		}
		var e Event
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			remove()
			continue
		}
		if !o.begin(key) {
			continue
		}
		e.Outbox = true
		o.wg.Go(func() {
			defer o.end(key)
			if s.cfg.Deliver(o.ctx, e) == nil {
				remove()
			}
		})
	}
}
