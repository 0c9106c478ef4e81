package grants

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
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
	keys
	replica string // this Store's value on the leader key

	mu sync.RWMutex
	st *state // guarded by mu

	applied revisions // how far the view has applied etcd's changes

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
		cfg:     cfg,
		cli:     cfg.Client,
		keys:    newKeys(cfg.Prefix),
		ready:   make(chan struct{}),
		applied: revisions{changed: make(chan struct{})},
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
	// Waiters wake once the change is everywhere this replica reads it,
	// OnState's receiver included.
	listRev := resp.Header.Revision
	s.applied.advance(listRev)

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
	wch := s.cli.Watch(wctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(listRev))
	for wr := range wch {
		if wr.Err() != nil {
			return true
		}
		if wr.IsProgressNotify() {
			// etcd reports progress to a watcher that has been sent every
			// event up to the revision reported.
			p.set(wr.Header.Revision)
			s.applied.advance(wr.Header.Revision)
			continue
		}
		changed := false
		// A transaction's events arrive together, so the view has applied
		// every change up to the last event's revision; the response's own
		// revision may lie beyond events still to come.
		var last int64
		s.mu.Lock()
		for _, ev := range wr.Events {
			last = max(last, ev.Kv.ModRevision)
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
		s.applied.advance(last)
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

// WaitRevision blocks until the in-memory view has applied every change to
// the state up to etcd revision rev, such as the Revision of the record a
// mutation returned, and OnState has been told of it; or until ctx ends, in
// which case it returns an error wrapping ErrUnavailable and the context's
// error. A caller that answers a change only after WaitRevision lets the
// next call through this Store read its own write, from the view and from
// whatever OnState feeds.
func (s *Store) WaitRevision(ctx context.Context, rev int64) error {
	for {
		applied, changed := s.applied.get()
		if applied >= rev {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for the view to reach revision %d (it is at %d): %w",
				ErrUnavailable, rev, applied, context.Cause(ctx))
		}
	}
}

// revisions is the highest etcd revision up to which the view has applied
// every change, and wakes those waiting for it to grow.
type revisions struct {
	mu      sync.Mutex
	rev     int64
	changed chan struct{} // closed, and replaced, when rev grows
}

func (r *revisions) get() (int64, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rev, r.changed
}

func (r *revisions) advance(rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rev <= r.rev {
		return
	}
	r.rev = rev
	close(r.changed)
	r.changed = make(chan struct{})
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
