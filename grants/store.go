package grants

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// Store reads and changes the access state in etcd and keeps an in-memory
// view of it. Its methods are safe for concurrent use. The in-memory reads
// (LiveGrants, Control, Policies, Counts) are served from the view, which Run
// fills and keeps current; everything else talks to etcd.
type Store struct {
	cfg Config
	cli *clientv3.Client

	kControl, kPolicies, kRequests, kGrants, kPending string
	kExpiries, kPolicyTargets, kPolicyCount, kLeader  string
	kOutbox                                           string
	replica                                           string // this Store's value on the leader key

	mu sync.RWMutex
	st *state // guarded by mu

	running   atomic.Bool
	leading   atomic.Bool // whether this Store is the sweeping leader
	ready     chan struct{}
	readyOnce sync.Once
	isReady   atomic.Bool
	confirmed atomic.Int64 // clock reading (Unix ns) at which the view was last known current
	bad       atomic.Int64 // records in the view that could not be decoded
	lists     atomic.Int64 // successful full lists, for tests
}

// New returns a Store for cfg after validating it. The in-memory view stays
// empty, and Ready false, until Run has listed the state once.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		return nil, errors.New("grants.client: required")
	}
	s := &Store{
		cfg:       cfg,
		cli:       cfg.Client,
		kControl:  cfg.Prefix + "control",
		kPolicies: cfg.Prefix + "policies/",
		kRequests: cfg.Prefix + "requests/",
		kGrants:   cfg.Prefix + "grants/",
		kPending:  cfg.Prefix + "pending/",
		// The names below must not start with those above: "policies-count"
		// is not under "policies/".
		kExpiries:      cfg.Prefix + "expiries/",
		kPolicyTargets: cfg.Prefix + "policy-targets/",
		kPolicyCount:   cfg.Prefix + "policies-count",
		kLeader:        cfg.Prefix + "leader",
		kOutbox:        cfg.Prefix + "outbox/",
		ready:          make(chan struct{}),
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	s.replica = "replica-" + hex.EncodeToString(b[:])
	s.st = s.newState()
	return s, nil
}

// now reads the configured clock, in UTC and without a monotonic reading so
// that values compare equal after a JSON round trip.
func (s *Store) now() time.Time { return s.cfg.Now().UTC().Round(0) }

// Run keeps the in-memory view current and takes part in the election of
// the sweeping leader until ctx ends, then resigns and returns nil.
//
// It lists the state at one revision, then applies the watched changes made
// after that revision; when the watch breaks or its revision has been
// compacted away it lists again. While a watch runs, a probe every
// StaleAfter/3 asks etcd for its current revision and waits for the watch to
// report progress up to it, which keeps Fresh true while nothing changes.
//
// At the same time it campaigns, among the Stores sharing Prefix, to be the
// one that sweeps: while it leads, it writes back every SweepInterval the
// requests that have expired (see the package documentation).
//
// Run must not be called concurrently with itself; a second call returns an
// error wrapping ErrInvalid.
func (s *Store) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run is already running", ErrInvalid)
	}
	defer s.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	// The election watches on the client's shared stream, not on the
	// view's own one (below).
	lctx := clientv3.WithRequireLeader(ctx)
	wg.Go(func() { s.lead(lctx) })
	// A watch on a member that lost its leader is cancelled instead of
	// silently serving nothing.
	ctx = clientv3.WithRequireLeader(ctx)
	// Metadata of its own gives the watch a gRPC stream of its own: etcd
	// answers a progress request only once every watcher on the stream has
	// caught up, so other watchers on a shared client must not hold up the
	// probe.
	ctx = metadata.AppendToOutgoingContext(ctx, "elevate-grants-view", url.PathEscape(s.cfg.Prefix))
	// Lists are retried quickly: the view goes stale StaleAfter after its
	// last confirmation, and an etcd that has just elected a new leader
	// must find the view listing again well before then, however long the
	// election took. A retry is one cheap read.
	minBackoff, maxBackoff := relistBackoff(s.cfg.StaleAfter)
	backoff := minBackoff
	for {
		if s.session(ctx) {
			backoff = minBackoff
		}
		if ctx.Err() != nil {
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// relistBackoff bounds the pause between failed lists: at most a tenth of
// staleAfter (and 2s), so that once etcd answers again the view is
// confirmed within a small part of the freshness window.
func relistBackoff(staleAfter time.Duration) (lo, hi time.Duration) {
	hi = min(2*time.Second, staleAfter/10)
	lo = min(50*time.Millisecond, hi)
	return lo, hi
}

// session lists the state, installs it as the view and follows the watch
// until it breaks. It reports whether the list succeeded.
func (s *Store) session(ctx context.Context) bool {
	start := s.now()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.kControl),
		clientv3.OpGet(s.kPolicies, clientv3.WithPrefix()),
		clientv3.OpGet(s.kGrants, clientv3.WithPrefix()),
		clientv3.OpGet(s.kPending, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return false
	}
	st := s.newState()
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().GetKvs() {
			s.apply(st, string(kv.Key), kv.Value, kv.ModRevision, false)
		}
	}
	st.sortPolicies()
	s.mu.Lock()
	s.st = st
	ctl, pols := st.copyState()
	s.mu.Unlock()
	s.bad.Store(int64(len(st.bad)))
	s.lists.Add(1)
	s.confirm(start)
	s.readyOnce.Do(func() {
		s.isReady.Store(true)
		close(s.ready)
	})
	s.notify(ctl, pols)

	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	p := &progress{signal: make(chan struct{}, 1)}
	// The probe derives its context from wctx, so its progress requests go
	// to the gRPC stream that carries this watch.
	wg.Go(func() { s.probe(wctx, p, cancel) })
	// The watch starts at the listed revision itself rather than the next
	// one, skipping the events already listed: etcd withholds progress
	// notifications from a watcher whose start revision lies ahead of the
	// store, which would keep an idle view from ever being confirmed.
	listRev := resp.Header.Revision
	wch := s.cli.Watch(wctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(listRev))
	for wr := range wch {
		if wr.Err() != nil {
			return true
		}
		if wr.IsProgressNotify() {
			p.set(wr.Header.Revision)
			continue
		}
		changed := false
		s.mu.Lock()
		for _, ev := range wr.Events {
			if ev.Kv.ModRevision <= listRev {
				continue
			}
			if s.apply(s.st, string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, ev.Type == clientv3.EventTypeDelete) {
				changed = true
			}
		}
		if changed {
			s.st.sortPolicies()
			ctl, pols = s.st.copyState()
		}
		nbad := len(s.st.bad)
		s.mu.Unlock()
		s.bad.Store(int64(nbad))
		if changed {
			s.notify(ctl, pols)
		}
	}
	return true
}

func (s *Store) notify(ctl Control, pols []Policy) {
	if s.cfg.OnState != nil {
		s.cfg.OnState(ctl, pols)
	}
}

// confirm records that the view was current at t.
func (s *Store) confirm(t time.Time) {
	v := t.UnixNano()
	for {
		old := s.confirmed.Load()
		if v <= old || s.confirmed.CompareAndSwap(old, v) {
			return
		}
	}
}

// progress carries the highest revision a watch has reported progress to.
type progress struct {
	rev    atomic.Int64
	signal chan struct{}
}

func (p *progress) set(rev int64) {
	if rev > p.rev.Load() {
		p.rev.Store(rev)
	}
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// silentProbes is how many probes in a row may find etcd answering while
// the watch reports no progress before the watch is dropped and the state
// listed again.
const silentProbes = 2

// probe confirms the view every StaleAfter/3. When etcd answers reads but
// the watch stays silent, the watch is dead in a way etcd does not report:
// after etcd restarts, the client resumes a watch at a revision past
// etcd's own when nothing was written meanwhile, and etcd sends such a
// watch no progress. end then stops the session, which lists again and
// starts a new watch at the listed revision.
func (s *Store) probe(ctx context.Context, p *progress, end context.CancelFunc) {
	every := s.cfg.StaleAfter / 3
	t := time.NewTicker(every)
	defer t.Stop()
	silent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch s.probeOnce(ctx, p, every) {
		case probeConfirmed:
			silent = 0
		case probeSilent:
			if silent++; silent >= silentProbes {
				end()
				return
			}
		}
	}
}

type probeResult int

const (
	probeConfirmed probeResult = iota
	probeUnreachable
	probeSilent
)

// probeOnce confirms the view as of the probe's start: a linearizable read
// learns etcd's current revision, and the watch must then report progress
// up to that revision before the timeout.
func (s *Store) probeOnce(ctx context.Context, p *progress, timeout time.Duration) probeResult {
	start := s.now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.kControl, clientv3.WithCountOnly())
	if err != nil {
		return probeUnreachable
	}
	if err := s.cli.RequestProgress(ctx); err != nil {
		return probeUnreachable
	}
	for p.rev.Load() < resp.Header.Revision {
		select {
		case <-p.signal:
		case <-ctx.Done():
			return probeSilent
		}
	}
	s.confirm(start)
	return probeConfirmed
}

// Ready reports whether the first full sync is done.
func (s *Store) Ready() bool { return s.isReady.Load() }

// WaitReady blocks until the first full sync is done or ctx ends; in the
// latter case it returns an error wrapping ErrUnavailable and the context's
// error.
func (s *Store) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the first sync: %w", ErrUnavailable, context.Cause(ctx))
	}
}

// Fresh reports whether the view was confirmed against etcd less than
// StaleAfter ago (by the configured clock) and holds no record that could not
// be decoded. Callers on the proxied path refuse gated calls while it is
// false.
func (s *Store) Fresh() bool {
	if !s.Ready() || s.bad.Load() != 0 {
		return false
	}
	return s.now().Sub(time.Unix(0, s.confirmed.Load())) < s.cfg.StaleAfter
}

// LiveGrants returns the grants of subject that are live at now, that is
// NotBefore <= now < ExpiresAt, from the in-memory view. Its cost is linear in
// the grants of that subject; it allocates only the result (nil when there is
// none). The Approvers slices are shared with the view and must not be
// modified.
func (s *Store) LiveGrants(subject string, now time.Time) []Grant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	gs := s.st.bySubject[subject]
	n := 0
	for i := range gs {
		if gs[i].liveAt(now) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Grant, 0, n)
	for i := range gs {
		if gs[i].liveAt(now) {
			out = append(out, gs[i])
		}
	}
	return out
}

// UsedUpGrants returns the grants of subject whose window includes now but
// whose uses are all spent (Grant.UsedUp), from the in-memory view: what
// LiveGrants leaves out only because it is used up. It suits the refusal of
// a call, to say why, rather than every call.
func (s *Store) UsedUpGrants(subject string, now time.Time) []Grant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Grant
	for _, g := range s.st.bySubject[subject] {
		if g.within(now) && g.UsedUp() {
			out = append(out, g)
		}
	}
	return out
}

// Control returns the control settings in the view; before the first sync,
// and while the control key is absent, that is the zero Control (disabled).
// A control record that cannot be decoded reads as enabled with no default
// approvers, and makes Fresh false.
func (s *Store) Control() Control {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.st.control
	c.SystemAccounts = slices.Clone(c.SystemAccounts)
	return c
}

// Policies returns the approval policies in the view, sorted by ID.
func (s *Store) Policies() []Policy {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.st.sorted)
}

// Counts returns the number of grants live now and of requests pending now,
// from the view. It scans the view, so it suits metrics rather than the
// proxied path.
func (s *Store) Counts() (liveGrants, pendingRequests int) {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, gs := range s.st.bySubject {
		for i := range gs {
			if gs[i].liveAt(now) {
				liveGrants++
			}
		}
	}
	for _, exp := range s.st.pending {
		if now.Before(exp) {
			pendingRequests++
		}
	}
	return liveGrants, pendingRequests
}

// state is the in-memory view.
type state struct {
	control   Control
	policies  map[string]Policy
	sorted    []Policy
	bySubject map[string][]Grant
	grantSub  map[string]string    // grant ID -> subject
	pending   map[string]time.Time // pending index key -> expiry of the request
	bad       map[string]struct{}  // keys whose value could not be decoded
}

func (s *Store) newState() *state {
	return &state{
		policies:  map[string]Policy{},
		bySubject: map[string][]Grant{},
		grantSub:  map[string]string{},
		pending:   map[string]time.Time{},
		bad:       map[string]struct{}{},
	}
}

// copyState returns copies of the control settings and the sorted policies.
func (st *state) copyState() (Control, []Policy) {
	c := st.control
	c.SystemAccounts = slices.Clone(c.SystemAccounts)
	return c, slices.Clone(st.sorted)
}

func (st *state) sortPolicies() {
	st.sorted = st.sorted[:0:0]
	for _, p := range st.policies {
		st.sorted = append(st.sorted, p)
	}
	slices.SortFunc(st.sorted, func(a, b Policy) int { return strings.Compare(a.ID, b.ID) })
}

func (st *state) removeGrant(id string) {
	sub, ok := st.grantSub[id]
	if !ok {
		return
	}
	delete(st.grantSub, id)
	gs := slices.DeleteFunc(st.bySubject[sub], func(g Grant) bool { return g.ID == id })
	if len(gs) == 0 {
		delete(st.bySubject, sub)
		return
	}
	st.bySubject[sub] = gs
}

func (st *state) addGrant(g Grant) {
	st.grantSub[g.ID] = g.Subject
	st.bySubject[g.Subject] = append(st.bySubject[g.Subject], g)
}

// apply records one key's new value (or its deletion) in st and reports
// whether the control settings or the policies changed.
func (s *Store) apply(st *state, key string, val []byte, modRev int64, deleted bool) bool {
	delete(st.bad, key)
	switch {
	case key == s.kControl:
		c := Control{}
		if !deleted {
			var err error
			if c, err = decodeControl(val); err != nil {
				st.bad[key] = struct{}{}
			}
			c.Revision = modRev
		}
		st.control = c
		return true
	case strings.HasPrefix(key, s.kPolicies):
		id := key[len(s.kPolicies):]
		delete(st.policies, id)
		if !deleted {
			var p Policy
			if err := json.Unmarshal(val, &p); err != nil || p.ID != id {
				st.bad[key] = struct{}{}
			} else {
				st.policies[id] = p
			}
		}
		return true
	case strings.HasPrefix(key, s.kGrants):
		id := key[len(s.kGrants):]
		st.removeGrant(id)
		if !deleted {
			var g Grant
			if err := json.Unmarshal(val, &g); err != nil || g.ID != id || g.Subject == "" {
				st.bad[key] = struct{}{}
			} else {
				st.addGrant(g)
			}
		}
	case strings.HasPrefix(key, s.kPending):
		delete(st.pending, key)
		if !deleted {
			var e pendingEntry
			if err := json.Unmarshal(val, &e); err != nil {
				st.bad[key] = struct{}{}
			} else {
				st.pending[key] = e.ExpiresAt
			}
		}
	}
	return false
}

// decodeControl decodes a control record. One that cannot be decoded yields
// an enabled Control, so that a damaged record gates rather than opens.
func decodeControl(val []byte) (Control, error) {
	var c Control
	if err := json.Unmarshal(val, &c); err != nil {
		return Control{Enabled: true}, fmt.Errorf("%w: control record: %w", ErrUnavailable, err)
	}
	return c, nil
}

// pendingEntry is the value of a pending index key.
type pendingEntry struct {
	RequestID string    `json:"request_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Policy reads one approval policy from etcd.
func (s *Store) Policy(ctx context.Context, id string) (Policy, error) {
	if !validID(id) {
		return Policy{}, fmt.Errorf("%w: policy %q", ErrNotFound, id)
	}
	recs, err := s.read(ctx, s.kPolicies+id)
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

// record is one key as read from etcd; rev 0 means absent.
type record struct {
	val   []byte
	rev   int64
	lease clientv3.LeaseID
}

func (r record) exists() bool { return r.rev != 0 }

// read gets keys in one round trip, at one revision.
func (s *Store) read(ctx context.Context, keys ...string) ([]record, error) {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k)
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]record, len(keys))
	for i, r := range resp.Responses {
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
			out[i] = record{val: kvs[0].Value, rev: kvs[0].ModRevision, lease: clientv3.LeaseID(kvs[0].Lease)}
		}
	}
	return out, nil
}

func (s *Store) loadRequest(ctx context.Context, id string) (Request, record, error) {
	if !validID(id) {
		return Request{}, record{}, fmt.Errorf("%w: request %q", ErrNotFound, id)
	}
	recs, err := s.read(ctx, s.kRequests+id)
	if err != nil {
		return Request{}, record{}, err
	}
	if !recs[0].exists() {
		return Request{}, record{}, fmt.Errorf("%w: request %q", ErrNotFound, id)
	}
	var r Request
	if err := decode(recs[0].val, &r, "request "+id); err != nil {
		return Request{}, record{}, err
	}
	return r, recs[0], nil
}

func decode(val []byte, v any, what string) error {
	if err := json.Unmarshal(val, v); err != nil {
		return fmt.Errorf("%w: %s: damaged record: %w", ErrUnavailable, what, err)
	}
	return nil
}

// validID accepts the IDs this package can have issued: non-empty, one key
// level.
func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, "/")
}
