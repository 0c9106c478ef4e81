package grants

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/clocktest"
)

func TestSweep(t *testing.T) {
	tests := []struct {
		desc  string
		setup func(f *fixture) Request
		// later is how far the clock moves on before the sweep.
		later   time.Duration
		swept   bool
		want    Status // the stored status after the sweep
		comment string // of the expiry event, when swept
		check   func(t *testing.T, f *fixture, r Request)
	}{
		{
			desc:    "a pending request expires after the pending TTL",
			setup:   func(f *fixture) Request { return f.pendingRequest(1) },
			later:   24 * time.Hour,
			swept:   true,
			want:    StatusExpired,
			comment: "pending request expired undecided",
			check: func(t *testing.T, f *fixture, r Request) {
				require.Zero(t, f.count(f.s.kPending), "the pending index entry is freed")
				again := f.submit(request(r.PolicyID))
				require.Equal(t, StatusPending, again.Status, "alice may ask again")
			},
		},
		{
			desc:  "a pending request just before the pending TTL is left alone",
			setup: func(f *fixture) Request { return f.pendingRequest(1) },
			later: 24*time.Hour - time.Nanosecond,
			want:  StatusPending,
			check: func(t *testing.T, f *fixture, r Request) {
				require.EqualValues(t, 1, f.count(f.s.kPending))
				require.Len(t, f.expiryEntries(r.ID), 1)
			},
		},
		{
			desc:    "an approved request expires when its grant ends",
			setup:   (*fixture).approvedRequest,
			later:   time.Hour,
			swept:   true,
			want:    StatusExpired,
			comment: "grant ended",
			check: func(t *testing.T, f *fixture, r Request) {
				_, _, found := f.grantKV(r.ID)
				require.False(t, found, "the grant key is removed")
			},
		},
		{
			desc:  "an approved request is left alone until its grant ends",
			setup: (*fixture).approvedRequest,
			later: time.Hour - time.Nanosecond,
			want:  StatusApproved,
			check: func(t *testing.T, f *fixture, r Request) {
				_, _, found := f.grantKV(r.ID)
				require.True(t, found)
			},
		},
		{
			desc: "a revoked request is not touched",
			setup: func(f *fixture) Request {
				r := f.approvedRequest()
				r, err := f.s.Revoke(f.ctx(), r.ID, alice, "")
				require.NoError(f.t, err)
				return r
			},
			later: 48 * time.Hour,
			want:  StatusRevoked,
		},
		{
			desc: "a denied request is not touched",
			setup: func(f *fixture) Request {
				r := f.pendingRequest(1)
				r, err := f.s.Deny(f.ctx(), r.ID, bob, "")
				require.NoError(f.t, err)
				return r
			},
			later: 48 * time.Hour,
			want:  StatusDenied,
		},
		{
			desc: "a partly approved request expires like a pending one",
			setup: func(f *fixture) Request {
				r := f.pendingRequest(2)
				r, err := f.s.Approve(f.ctx(), r.ID, bob, "")
				require.NoError(f.t, err)
				return r
			},
			later:   24 * time.Hour,
			swept:   true,
			want:    StatusExpired,
			comment: "pending request expired undecided",
			check: func(t *testing.T, f *fixture, r Request) {
				require.Zero(t, f.count(f.s.kPending))
			},
		},
		{
			desc: "a delayed grant is not swept at the pending TTL",
			setup: func(f *fixture) Request {
				p := f.policy(Policy{Approvers: "approvers"})
				n := request(p.ID)
				n.StartAt = clockStart.Add(30 * time.Hour)
				r, err := f.s.Approve(f.ctx(), f.submit(n).ID, bob, "")
				require.NoError(f.t, err)
				return r
			},
			later: 25 * time.Hour,
			want:  StatusApproved,
		},
		{
			desc: "a delayed grant is swept at its end",
			setup: func(f *fixture) Request {
				p := f.policy(Policy{Approvers: "approvers"})
				n := request(p.ID)
				n.StartAt = clockStart.Add(30 * time.Hour)
				r, err := f.s.Approve(f.ctx(), f.submit(n).ID, bob, "")
				require.NoError(f.t, err)
				return r
			},
			later:   31 * time.Hour,
			swept:   true,
			want:    StatusExpired,
			comment: "grant ended",
		},
		{
			desc: "an expired request replaced in the pending index keeps its successor's entry",
			setup: func(f *fixture) Request {
				first := f.pendingRequest(1)
				f.clock.Add(24 * time.Hour)
				f.submit(request(first.PolicyID))
				return first
			},
			swept:   true,
			want:    StatusExpired,
			comment: "pending request expired undecided",
			check: func(t *testing.T, f *fixture, r Request) {
				_, err := f.s.Submit(f.ctx(), request(r.PolicyID))
				var dup *DuplicateError
				require.ErrorAs(t, err, &dup, "the successor is still pending")
				require.NotEqual(t, r.ID, dup.ExistingID)
			},
		},
		{
			desc: "a break-glass grant expires at its end",
			setup: func(f *fixture) Request {
				r, err := f.s.BreakGlass(f.ctx(), NewRequest{Requester: alice, Scope: ScopeTask, Target: task, Reason: "outage"})
				require.NoError(f.t, err)
				return r
			},
			later:   time.Hour,
			swept:   true,
			want:    StatusExpired,
			comment: "grant ended",
			check: func(t *testing.T, f *fixture, r Request) {
				_, _, found := f.grantKV(r.ID)
				require.False(t, found)
			},
		},
		{
			desc: "a grant whose uses are spent is not swept again",
			setup: func(f *fixture) Request {
				r := f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 1}).ID))
				require.NoError(f.t, f.s.UseGrant(f.ctx(), grantID(r.ID), nil))
				return r
			},
			later: 2 * time.Hour,
			want:  StatusUsedUp,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var log eventLog
			f := newFixture(t, withEvents(&log))
			r := tc.setup(f)
			f.clock.Add(tc.later)
			_, revBefore := f.stored(r.ID)
			seen := len(log.all())

			n, err := f.s.Sweep(f.ctx())
			require.NoError(t, err)
			got, revAfter := f.stored(r.ID)
			require.Equal(t, tc.want, got.Status, "stored status")
			events := log.since(seen)
			if tc.swept {
				require.Equal(t, 1, n)
				require.Len(t, events, 1)
				e := events[0]
				require.Equal(t, EventExpired, e.Kind)
				require.Empty(t, e.By)
				require.Equal(t, tc.comment, e.Comment)
				require.Equal(t, f.clock.Now(), e.At)
				require.Equal(t, got, e.Request)
			} else {
				require.Zero(t, n)
				require.Empty(t, events)
				require.Equal(t, revBefore, revAfter, "the request record is not written")
			}
			if tc.want != StatusPending && tc.want != StatusApproved {
				require.Empty(t, f.expiryEntries(r.ID), "a settled request leaves the expiry index")
			}

			// A second sweep finds nothing more to do.
			n, err = f.s.Sweep(f.ctx())
			require.NoError(t, err)
			require.Zero(t, n)
			require.Len(t, log.since(seen), len(events))
			_, revAgain := f.stored(r.ID)
			require.Equal(t, revAfter, revAgain)

			if tc.check != nil {
				tc.check(t, f, got)
			}
		})
	}
}

func TestSweepBacklog(t *testing.T) {
	var log eventLog
	f := newFixture(t, withEvents(&log))
	p := f.policy(Policy{Approvers: "approvers"})
	submitAll := func(n int, tag string) map[string]bool {
		ids := map[string]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range n {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				nr := request(p.ID)
				nr.Requester = Actor{Subject: fmt.Sprintf("%s-%03d", tag, i)}
				r, err := f.s.Submit(f.ctx(), nr)
				if !assertNoError(t, err) {
					return
				}
				mu.Lock()
				ids[r.ID] = true
				mu.Unlock()
			})
		}
		wg.Wait()
		require.Len(t, ids, n)
		return ids
	}
	// More than one batch expires; a few later requests do not yet.
	early := submitAll(2*sweepBatch+7, "early")
	f.clock.Add(time.Minute)
	late := submitAll(5, "late")
	f.clock.Add(24*time.Hour - time.Minute)
	seen := len(log.all())

	n, err := f.s.Sweep(f.ctx())
	require.NoError(t, err)
	require.Equal(t, len(early), n)
	expired := map[string]bool{}
	for _, e := range log.since(seen) {
		require.Equal(t, EventExpired, e.Kind)
		require.True(t, early[e.Request.ID], e.Request.ID)
		expired[e.Request.ID] = true
	}
	require.Equal(t, early, expired, "each early request expired once")
	for id := range late {
		r, _ := f.stored(id)
		require.Equal(t, StatusPending, r.Status)
	}
	require.EqualValues(t, len(late), f.count(f.s.kPending))
	require.EqualValues(t, len(late), f.count(f.s.kExpiries))

	f.clock.Add(time.Minute)
	n, err = f.s.Sweep(f.ctx())
	require.NoError(t, err)
	require.Equal(t, len(late), n)
	require.Zero(t, f.count(f.s.kExpiries))
}

// assertNoError reports err from any goroutine and tells whether it was nil.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

// replicas are Stores sharing one prefix and one fake clock, each with an
// etcd client and an event log of its own.
type replicas struct {
	clock  *clocktest.Clock
	stores []*Store
	logs   []*eventLog
	stops  []func()
}

func newReplicas(t *testing.T, n int, endpoint func(i int) string) *replicas {
	t.Helper()
	rs := &replicas{clock: clocktest.New(clockStart)}
	prefix := etcd.Prefix(t)
	for i := range n {
		log := &eventLog{}
		s, err := New(Config{
			Client:        newClient(t, endpoint(i)),
			Prefix:        prefix,
			Now:           rs.clock.Now,
			SweepInterval: 20 * time.Millisecond,
			ElectionTTL:   time.Second,
			OnEvent:       log.record,
		})
		require.NoError(t, err)
		rs.stores = append(rs.stores, s)
		rs.logs = append(rs.logs, log)
	}
	return rs
}

// leaders returns the indexes of the Stores that lead.
func (rs *replicas) leaders() []int {
	var out []int
	for i, s := range rs.stores {
		if s.Leading() {
			out = append(out, i)
		}
	}
	return out
}

// expiries counts the expiry events of all Stores.
func (rs *replicas) expiries() int {
	n := 0
	for _, l := range rs.logs {
		n += len(l.of(EventExpired))
	}
	return n
}

// fixture returns a fixture acting through Store i.
func (rs *replicas) fixture(t *testing.T, i int) *fixture {
	return &fixture{t: t, cli: rs.stores[i].cli, clock: rs.clock, s: rs.stores[i]}
}

func TestSweepByOneLeaderAmongReplicas(t *testing.T) {
	rs := newReplicas(t, 2, func(int) string { return testEndpoint })
	for _, s := range rs.stores {
		rs.stops = append(rs.stops, start(t, s))
	}
	require.Eventually(t, func() bool { return len(rs.leaders()) == 1 }, waitFor, tick)
	require.Never(t, func() bool { return len(rs.leaders()) != 1 }, 300*time.Millisecond, tick, "one leader, and only one")
	leader := rs.leaders()[0]
	follower := 1 - leader

	// A request made through the follower is swept by the leader.
	f := rs.fixture(t, follower)
	r := f.pendingRequest(1)
	rs.clock.Add(24 * time.Hour)
	require.Eventually(t, func() bool { got, _ := f.stored(r.ID); return got.Status == StatusExpired }, waitFor, tick)
	require.Never(t, func() bool { return rs.expiries() > 1 }, 10*rs.stores[0].cfg.SweepInterval, tick)
	require.Len(t, rs.logs[leader].of(EventExpired), 1, "the leader reports the expiry")
	require.Empty(t, rs.logs[follower].of(EventExpired))
	require.Zero(t, f.count(f.s.kPending))

	// Once the leader stops, the follower takes over and sweeps.
	rs.stops[leader]()
	require.False(t, rs.stores[leader].Leading(), "a stopped Store does not lead")
	require.Eventually(t, rs.stores[follower].Leading, waitFor, tick)
	p := f.policy(Policy{Approvers: "approvers", Target: `Exchange\Search-Mailbox`})
	n := request(p.ID)
	n.Target = p.Target
	r2, err := f.s.Approve(f.ctx(), f.submit(n).ID, bob, "")
	require.NoError(t, err)
	rs.clock.Add(time.Hour)
	require.Eventually(t, func() bool { return len(rs.logs[follower].of(EventExpired)) == 1 }, waitFor, tick)
	e := rs.logs[follower].of(EventExpired)[0]
	require.Equal(t, r2.ID, e.Request.ID)
	require.Equal(t, "grant ended", e.Comment)
	got, _ := f.stored(r2.ID)
	require.Equal(t, StatusExpired, got.Status)
	_, _, found := f.grantKV(r2.ID)
	require.False(t, found)
	require.Equal(t, 2, rs.expiries())
}

func TestLeaderCutOffIsReplaced(t *testing.T) {
	relay := newCutter(t, testEndpoint)
	// Store 0 reaches etcd through the relay, Store 1 directly.
	rs := newReplicas(t, 2, func(i int) string {
		if i == 0 {
			return relay.endpoint()
		}
		return testEndpoint
	})
	cut, direct := rs.stores[0], rs.stores[1]
	start(t, cut)
	require.Eventually(t, cut.Leading, waitFor, tick)
	start(t, direct)
	require.Never(t, direct.Leading, 300*time.Millisecond, tick, "the first leader keeps its term")

	relay.Cut()
	// The lost leader's lease runs out after about ElectionTTL; then the
	// other Store leads, and the lost one knows it does not.
	require.Eventually(t, direct.Leading, waitFor, tick)
	require.Eventually(t, func() bool { return !cut.Leading() }, waitFor, tick)

	f := rs.fixture(t, 1)
	r := f.pendingRequest(1)
	rs.clock.Add(24 * time.Hour)
	require.Eventually(t, func() bool { return len(rs.logs[1].of(EventExpired)) == 1 }, waitFor, tick)
	require.Equal(t, r.ID, rs.logs[1].of(EventExpired)[0].Request.ID)

	relay.Restore()
	require.Never(t, cut.Leading, 300*time.Millisecond, tick, "the reconnected Store waits for its turn")
	require.Equal(t, 1, rs.expiries())
}

func TestRunStopsWhileEtcdIsUnreachable(t *testing.T) {
	tests := []struct {
		desc string
		// campaigning has the Store reach etcd, and wait behind a leader,
		// before etcd becomes unreachable.
		campaigning bool
	}{
		{desc: "a Store that never reached etcd"},
		{desc: "a Store campaigning behind a leader", campaigning: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			relay := newCutter(t, testEndpoint)
			// Store 0 reaches etcd through the relay, Store 1 directly.
			rs := newReplicas(t, 2, func(i int) string {
				if i == 0 {
					return relay.endpoint()
				}
				return testEndpoint
			})
			behind := rs.stores[0]
			if tc.campaigning {
				start(t, rs.stores[1])
				require.Eventually(t, rs.stores[1].Leading, waitFor, tick)
			} else {
				relay.Cut()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- behind.Run(ctx) }()
			if tc.campaigning {
				wctx, wcancel := context.WithTimeout(ctx, waitFor)
				defer wcancel()
				require.NoError(t, behind.WaitReady(wctx))
				relay.Cut()
			}
			require.Never(t, behind.Leading, 200*time.Millisecond, tick)
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(waitFor):
				t.Fatal("Run did not return after its context ended")
			}
			require.False(t, behind.Leading())
		})
	}
}

func TestSweepDropsStaleEntries(t *testing.T) {
	tests := []struct {
		desc  string
		entry func(f *fixture) (key, val string)
	}{
		{
			desc: "an entry naming no request",
			entry: func(f *fixture) (string, string) {
				return f.s.kExpiries + expiryStamp(clockStart) + "/req-gone", "req-gone"
			},
		},
		{
			desc: "an entry that holds no request ID",
			entry: func(f *fixture) (string, string) {
				return f.s.kExpiries + expiryStamp(clockStart) + "/x", "a/b"
			},
		},
		{
			desc: "an entry for a request that expires at another time",
			entry: func(f *fixture) (string, string) {
				r := f.pendingRequest(1)
				return f.s.kExpiries + expiryStamp(clockStart) + "/" + r.ID, r.ID
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var log eventLog
			f := newFixture(t, withEvents(&log))
			key, val := tc.entry(f)
			before := f.count(f.s.kExpiries)
			_, err := f.cli.Put(f.ctx(), key, val)
			require.NoError(t, err)
			seen := len(log.all())
			f.clock.Add(time.Hour)
			n, err := f.s.Sweep(f.ctx())
			require.NoError(t, err)
			require.Zero(t, n)
			require.Empty(t, log.since(seen))
			resp, err := f.cli.Get(f.ctx(), key)
			require.NoError(t, err)
			require.Empty(t, resp.Kvs, "the stale entry is gone")
			require.Equal(t, before, f.count(f.s.kExpiries), "the other entries stay")
		})
	}
}
