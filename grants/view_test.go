package grants

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/elevate-pam/elevate/internal/etcdtest"
)

const (
	waitFor = 10 * time.Second
	tick    = 5 * time.Millisecond
)

func TestViewFollowsApproveAndRevoke(t *testing.T) {
	f := newFixture(t)
	f.run()
	r := f.pendingRequest(1)
	require.Eventually(t, func() bool { _, pending := f.s.Counts(); return pending == 1 }, waitFor, tick)
	require.Empty(t, f.s.LiveGrants("alice", clockStart))

	r, err := f.s.Approve(f.ctx(), r.ID, bob, "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(f.s.LiveGrants("alice", clockStart)) == 1 }, waitFor, tick)
	require.Equal(t, []Grant{{
		ID: grantID(r.ID), RequestID: r.ID, Subject: "alice", Scope: ScopeTask, Target: task,
		NotBefore: clockStart, ExpiresAt: clockStart.Add(time.Hour), Approvers: []string{"bob"},
	}}, f.s.LiveGrants("alice", clockStart))
	require.Empty(t, f.s.LiveGrants("bob", clockStart), "grants are per subject")
	live, pending := f.s.Counts()
	require.Equal(t, 1, live)
	require.Zero(t, pending)

	_, err = f.s.Revoke(f.ctx(), r.ID, alice, "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(f.s.LiveGrants("alice", clockStart)) == 0 }, waitFor, tick)
	live, _ = f.s.Counts()
	require.Zero(t, live)
}

func TestViewGrantWindow(t *testing.T) {
	tests := []struct {
		desc    string
		startIn time.Duration // requested start, from now; 0 for none
		at      time.Duration // when LiveGrants is asked, from now
		live    bool
	}{
		{desc: "a grant is live from its start", at: 0, live: true},
		{desc: "a grant is live just before its end", at: time.Hour - time.Nanosecond, live: true},
		{desc: "an ended grant is not live, although its lease still runs", at: time.Hour},
		{desc: "a grant is not live before the time it was approved", at: -time.Nanosecond},
		{desc: "a grant that has not started is not live", startIn: 2 * time.Hour, at: 2*time.Hour - time.Nanosecond},
		{desc: "a grant that has not started becomes live when the clock reaches its start", startIn: 2 * time.Hour, at: 2 * time.Hour, live: true},
		{desc: "a delayed grant ends its duration after its start", startIn: 2 * time.Hour, at: 3 * time.Hour},
	}
	f := newFixture(t)
	f.run()
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			// Each case has a requester of its own, so that the cases share
			// one Store but not their grants.
			who := Actor{Subject: "requester " + tc.desc}
			p := f.policy(Policy{Approvers: "approvers", Target: tc.desc})
			n := request(p.ID)
			n.Requester, n.Target = who, tc.desc
			if tc.startIn != 0 {
				n.StartAt = clockStart.Add(tc.startIn)
			}
			r := f.submit(n)
			r, err := f.s.Approve(f.ctx(), r.ID, bob, "")
			require.NoError(t, err)
			// Wait until the view holds the grant, asking at its start.
			require.Eventually(t, func() bool { return len(f.s.LiveGrants(who.Subject, *r.GrantStart)) == 1 }, waitFor, tick)
			got := f.s.LiveGrants(who.Subject, clockStart.Add(tc.at))
			if tc.live {
				require.Len(t, got, 1)
				require.Equal(t, r.ID, got[0].RequestID)
			} else {
				require.Empty(t, got)
			}
			_, _, found := f.grantKV(r.ID)
			require.True(t, found, "the grant key is still there")
		})
	}
}

func TestCountsFollowTheClock(t *testing.T) {
	f := newFixture(t)
	f.run()
	f.approvedRequest()
	p := f.policy(Policy{Approvers: "approvers", Target: `Exchange\Search-Mailbox`})
	n := request(p.ID)
	n.Target = p.Target
	f.submit(n)
	require.Eventually(t, func() bool { live, pending := f.s.Counts(); return live == 1 && pending == 1 }, waitFor, tick)
	f.clock.Add(time.Hour)
	live, pending := f.s.Counts()
	require.Zero(t, live, "the grant ended")
	require.Equal(t, 1, pending)
	f.clock.Add(23 * time.Hour)
	_, pending = f.s.Counts()
	require.Zero(t, pending, "the request expired undecided")
}

func TestViewPoliciesControlAndOnState(t *testing.T) {
	type state struct {
		control  Control
		policies []Policy
	}
	var mu sync.Mutex
	var calls []state
	last := func() (state, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) == 0 {
			return state{}, 0
		}
		return calls[len(calls)-1], len(calls)
	}
	f := newFixture(t, func(c *Config) {
		c.OnState = func(ctl Control, ps []Policy) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, state{ctl, ps})
		}
	})
	p1 := f.policy(Policy{Approvers: "approvers"})
	require.Empty(t, f.s.Policies(), "the view is empty before Run")
	_, n := last()
	require.Zero(t, n, "no call before the first sync")

	f.run()
	got, n := last()
	require.Equal(t, 1, n, "one call after the first sync")
	require.Equal(t, []Policy{p1}, got.policies)
	require.Equal(t, Control{}, got.control)
	require.Equal(t, []Policy{p1}, f.s.Policies())

	_, after, err := f.s.UpdateControl(f.ctx(), ControlPatch{Enabled: new(true), DefaultApprovers: new("approvers"), SystemAccounts: &[]string{"svc"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return f.s.Control().Enabled }, waitFor, tick)
	require.Equal(t, after, f.s.Control())
	got, _ = last()
	require.Equal(t, after, got.control)

	p2 := f.policy(Policy{Approval: ApprovalAuto, Target: `Exchange\Get-Mailbox`})
	p3 := f.policy(Policy{Approvers: "approvers", Target: `Exchange\Search-Mailbox`})
	want := []Policy{p1, p2, p3}
	sortPolicies(want)
	require.Eventually(t, func() bool { return len(f.s.Policies()) == 3 }, waitFor, tick)
	require.Equal(t, want, f.s.Policies())
	got, _ = last()
	require.Equal(t, want, got.policies)

	_, err = f.s.DeletePolicy(f.ctx(), p2.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(f.s.Policies()) == 2 }, waitFor, tick)
	got, _ = last()
	require.Len(t, got.policies, 2)
	require.Equal(t, after, got.control)

	// Changes to requests and grants do not call OnState.
	_, before := last()
	r, err := f.s.Approve(f.ctx(), f.submit(request(p1.ID)).ID, bob, "")
	require.NoError(t, err)
	require.Equal(t, StatusApproved, r.Status)
	require.Eventually(t, func() bool { return len(f.s.LiveGrants("alice", clockStart)) == 1 }, waitFor, tick)
	_, n = last()
	require.Equal(t, before, n)

	// The returned slices are copies.
	f.s.Policies()[0].Target = "changed"
	c := f.s.Control()
	c.SystemAccounts[0] = "changed"
	require.NotEqual(t, "changed", f.s.Policies()[0].Target)
	require.Equal(t, []string{"svc"}, f.s.Control().SystemAccounts)
}

func sortPolicies(ps []Policy) {
	st := &state{policies: map[string]Policy{}}
	for _, p := range ps {
		st.policies[p.ID] = p
	}
	st.sortPolicies()
	copy(ps, st.sorted)
}

func TestDamagedRecordsMakeTheViewStale(t *testing.T) {
	tests := []struct {
		desc  string
		key   func(s *Store) string
		check func(t *testing.T, s *Store)
	}{
		{
			desc: "a damaged control record reads enabled",
			key:  func(s *Store) string { return s.kControl },
			check: func(t *testing.T, s *Store) {
				require.True(t, s.Control().Enabled, "fail closed: gate what has a policy")
			},
		},
		{
			desc: "a damaged policy is left out",
			key:  func(s *Store) string { return s.policyKey("pol-damaged") },
			check: func(t *testing.T, s *Store) {
				require.Empty(t, s.Policies())
			},
		},
		{
			desc: "a damaged grant gives no access",
			key:  func(s *Store) string { return s.grantKey("req-damaged") },
			check: func(t *testing.T, s *Store) {
				live, _ := s.Counts()
				require.Zero(t, live)
			},
		},
		{
			desc:  "a damaged pending index entry",
			key:   func(s *Store) string { return s.pendingKey("alice", ScopeTask, task, nil) },
			check: func(t *testing.T, s *Store) {},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			f.run()
			require.Eventually(t, f.s.Fresh, waitFor, tick)
			key := tc.key(f.s)
			_, err := f.cli.Put(f.ctx(), key, "{not json")
			require.NoError(t, err)
			require.Eventually(t, func() bool { return !f.s.Fresh() }, waitFor, tick)
			tc.check(t, f.s)
			_, err = f.cli.Delete(f.ctx(), key)
			require.NoError(t, err)
			require.Eventually(t, f.s.Fresh, waitFor, tick)
		})
	}
}

func TestReady(t *testing.T) {
	relay := newCutter(t, testEndpoint)
	relay.Cut()
	f := newFixture(t, func(c *Config) { c.Client = newClient(t, relay.endpoint()) })
	require.False(t, f.s.Ready())
	require.False(t, f.s.Fresh())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := f.s.WaitReady(ctx)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.s.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	require.Never(t, f.s.Ready, 300*time.Millisecond, tick, "not ready while etcd cannot be reached")

	relay.Restore()
	wctx, wcancel := context.WithTimeout(context.Background(), waitFor)
	defer wcancel()
	require.NoError(t, f.s.WaitReady(wctx))
	require.True(t, f.s.Ready())
	require.True(t, f.s.Fresh())

	require.ErrorIs(t, f.s.Run(runCtx), ErrInvalid, "Run does not run twice at once")
}

func TestRelistAfterCompaction(t *testing.T) {
	relay := newCutter(t, testEndpoint)
	actor := newFixture(t)
	viewer, err := New(Config{Client: newClient(t, relay.endpoint()), Prefix: actor.s.cfg.Prefix, Now: actor.clock.Now})
	require.NoError(t, err)
	run(t, viewer)

	r := actor.approvedRequest()
	require.Eventually(t, func() bool { return len(viewer.LiveGrants("alice", clockStart)) == 1 }, waitFor, tick)
	lists := viewer.lists.Load()

	// Cut the viewer off, revoke, and compact away every revision its watch
	// could resume from.
	relay.Cut()
	_, err = actor.s.Revoke(actor.ctx(), r.ID, alice, "")
	require.NoError(t, err)
	resp, err := actor.cli.Put(actor.ctx(), "/compaction-marker", "x")
	require.NoError(t, err)
	_, err = actor.cli.Compact(actor.ctx(), resp.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	require.Len(t, viewer.LiveGrants("alice", clockStart), 1, "the viewer has not seen the revocation yet")

	relay.Restore()
	require.Eventually(t, func() bool { return len(viewer.LiveGrants("alice", clockStart)) == 0 }, waitFor, tick)
	require.Greater(t, viewer.lists.Load(), lists, "the revocation came from a new list")
}

func TestFreshTurnsFalseWhenEtcdStops(t *testing.T) {
	e, endpoint, err := etcdtest.Start(t.TempDir(), "grants-test")
	require.NoError(t, err)
	closed := make(chan struct{})
	stop := sync.OnceFunc(func() {
		go func() {
			e.Close()
			close(closed)
		}()
	})
	defer func() {
		stop()
		<-closed
	}()
	cli := newClient(t, endpoint)
	s, err := New(Config{Client: cli, StaleAfter: 300 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
		// With its streams gone etcd stops at once instead of waiting for
		// them.
		_ = cli.Close()
	}()
	wctx, wcancel := context.WithTimeout(ctx, waitFor)
	defer wcancel()
	require.NoError(t, s.WaitReady(wctx))
	require.True(t, s.Fresh())
	require.Never(t, func() bool { return !s.Fresh() }, time.Second, 10*time.Millisecond,
		"the probe keeps an idle view fresh for longer than StaleAfter")

	stop()
	require.Eventually(t, func() bool { return !s.Fresh() }, 3*time.Second, 10*time.Millisecond)
	require.True(t, s.Ready(), "ready stays true: it reports the first sync")
}

func TestConcurrentDecisions(t *testing.T) {
	tests := []struct {
		desc      string
		approvals int
		approvers int
		deniers   int
	}{
		{desc: "50 approvers race for one approval", approvals: 1, approvers: 50},
		{desc: "25 approvers and 25 deniers race for three approvals", approvals: 3, approvers: 25, deniers: 25},
		{desc: "49 approvers and one denier race for one approval", approvals: 1, approvers: 49, deniers: 1},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var log eventLog
			f := newFixture(t, withEvents(&log))
			r := f.pendingRequest(tc.approvals)
			seen := len(log.all())
			type result struct {
				deny bool
				r    Request
				err  error
			}
			n := tc.approvers + tc.deniers
			results := make(chan result, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				deny := i < tc.deniers
				by := Actor{Subject: fmt.Sprintf("approver-%02d", i), Groups: []string{"approvers"}, MFA: true}
				wg.Go(func() {
					<-start
					var got Request
					var err error
					if deny {
						got, err = f.s.Deny(f.ctx(), r.ID, by, "")
					} else {
						got, err = f.s.Approve(f.ctx(), r.ID, by, "")
					}
					results <- result{deny, got, err}
				})
			}
			close(start)
			wg.Wait()
			close(results)

			final, err := f.s.Request(f.ctx(), r.ID)
			require.NoError(t, err)
			outcomes, approvalsOK, denials := 0, 0, 0
			for res := range results {
				if res.err != nil {
					require.ErrorIs(t, res.err, ErrNotPending)
					require.ErrorIs(t, res.err, ErrConflict)
					continue
				}
				if res.deny {
					denials++
					outcomes++
					continue
				}
				approvalsOK++
				if res.r.Status == StatusApproved {
					outcomes++
				}
			}
			require.Equal(t, 1, outcomes, "exactly one call decided the request")
			require.Equal(t, approvalsOK, len(final.Approvals), "every accepted approval is recorded")
			events := log.since(seen)
			require.Len(t, events, 1, "the one decision is reported once")
			require.Equal(t, final, events[0].Request)
			grants, err := f.cli.Get(f.ctx(), f.s.kGrants, clientv3.WithPrefix(), clientv3.WithCountOnly())
			require.NoError(t, err)
			switch final.Status {
			case StatusApproved:
				require.Equal(t, EventApproved, events[0].Kind)
				require.Zero(t, denials)
				require.Len(t, final.Approvals, tc.approvals)
				require.EqualValues(t, 1, grants.Count)
			case StatusDenied:
				require.Equal(t, EventDenied, events[0].Kind)
				require.Equal(t, 1, denials)
				require.Less(t, len(final.Approvals), tc.approvals)
				require.Zero(t, grants.Count)
			default:
				t.Fatalf("final status %s", final.Status)
			}
		})
	}
}

func TestConcurrentSubmitsAdmitOne(t *testing.T) {
	f := newFixture(t)
	p := f.policy(Policy{Approvers: "approvers"})
	const n = 20
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			_, err := f.s.Submit(f.ctx(), request(p.ID))
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
			continue
		}
		var dup *DuplicateError
		require.True(t, errors.As(err, &dup), "%v", err)
	}
	require.Equal(t, 1, ok)
	list, err := f.s.Requests(f.ctx(), Filter{})
	require.NoError(t, err)
	require.Len(t, list, 1)
}

// TestRelistBackoffLeavesTheFreshnessWindow: after etcd answers again
// (a new raft leader, a member back), the view lists within a tenth of
// StaleAfter, whatever how long the outage lasted, so an outage shorter than
// the freshness window never shows as a stale view.
func TestRelistBackoffLeavesTheFreshnessWindow(t *testing.T) {
	for _, stale := range []time.Duration{minStaleAfter, time.Second, DefaultStaleAfter, time.Minute} {
		lo, hi := relistBackoff(stale)
		require.Positive(t, lo, "stale_after %s", stale)
		require.LessOrEqual(t, lo, hi, "stale_after %s", stale)
		require.LessOrEqual(t, hi, stale/10, "stale_after %s", stale)
		require.LessOrEqual(t, hi, 2*time.Second, "stale_after %s", stale)
	}
}
