package grants

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// emergency is alice's break-glass request for task.
func emergency() NewRequest {
	return NewRequest{
		Requester: Actor{Subject: "alice", Groups: []string{"staff"}, Email: "alice@example.com"},
		Scope:     ScopeTask,
		Target:    task,
		Reason:    "mail flow is down",
	}
}

func TestBreakGlass(t *testing.T) {
	tests := []struct {
		desc    string
		cfg     func(c *Config)
		req     func(n NewRequest) NewRequest
		wantErr string // the field named by an ErrInvalid refusal
		wantDur time.Duration
	}{
		{desc: "no duration takes the default", wantDur: DefaultBreakGlass},
		{desc: "a given duration is kept", req: func(n NewRequest) NewRequest { n.Duration = 90 * time.Minute; return n }, wantDur: 90 * time.Minute},
		{desc: "a duration at the cap is accepted", req: func(n NewRequest) NewRequest { n.Duration = DefaultBreakGlassMax; return n }, wantDur: DefaultBreakGlassMax},
		{desc: "a duration above the cap is refused", req: func(n NewRequest) NewRequest { n.Duration = DefaultBreakGlassMax + time.Second; return n }, wantErr: "duration: 4h0m1s exceeds the break-glass maximum of 4h0m0s"},
		{
			desc:    "the configured default applies",
			cfg:     func(c *Config) { c.BreakGlassDuration = 20 * time.Minute },
			wantDur: 20 * time.Minute,
		},
		{
			desc:    "a lower configured cap lowers the default",
			cfg:     func(c *Config) { c.BreakGlassMax = 30 * time.Minute },
			wantDur: 30 * time.Minute,
		},
		{
			desc:    "the configured cap is enforced",
			cfg:     func(c *Config) { c.BreakGlassMax = 30 * time.Minute },
			req:     func(n NewRequest) NewRequest { n.Duration = time.Hour; return n },
			wantErr: "duration: 1h0m0s exceeds the break-glass maximum of 30m0s",
		},
		{desc: "a reason is mandatory", req: func(n NewRequest) NewRequest { n.Reason = ""; return n }, wantErr: "reason: must not be empty"},
		{desc: "a blank reason is refused", req: func(n NewRequest) NewRequest { n.Reason = " \n\t"; return n }, wantErr: "reason:"},
		{desc: "a start time is refused", req: func(n NewRequest) NewRequest { n.StartAt = clockStart.Add(time.Hour); return n }, wantErr: "start_at:"},
		{desc: "a start time now is refused too", req: func(n NewRequest) NewRequest { n.StartAt = clockStart; return n }, wantErr: "start_at:"},
		{desc: "a negative duration is refused", req: func(n NewRequest) NewRequest { n.Duration = -time.Minute; return n }, wantErr: "duration:"},
		{desc: "a requester is required", req: func(n NewRequest) NewRequest { n.Requester = Actor{}; return n }, wantErr: "requester:"},
		{desc: "an unknown scope is refused", req: func(n NewRequest) NewRequest { n.Scope = "tenant"; return n }, wantErr: "scope:"},
		{desc: "an empty target is refused", req: func(n NewRequest) NewRequest { n.Target = "  "; return n }, wantErr: "target:"},
		{
			desc:    "a policy is not needed, and one given is not consulted",
			req:     func(n NewRequest) NewRequest { n.PolicyID = "pol-000000000000"; return n },
			wantDur: DefaultBreakGlass,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var log eventLog
			mods := []func(*Config){withEvents(&log)}
			if tc.cfg != nil {
				mods = append(mods, tc.cfg)
			}
			f := newFixture(t, mods...)
			f.run()
			n := emergency()
			if tc.req != nil {
				n = tc.req(n)
			}
			r, err := f.s.BreakGlass(f.ctx(), n)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalid)
				require.ErrorContains(t, err, tc.wantErr)
				require.Zero(t, f.count(f.s.kRequests), "a refused request stores nothing")
				require.Zero(t, f.count(f.s.kGrants))
				require.Empty(t, log.all())
				return
			}
			require.NoError(t, err)
			require.Equal(t, StatusApproved, r.Status)
			require.True(t, r.BreakGlass)
			require.Equal(t, ReviewPending, r.Review)
			require.Equal(t, "alice", r.Requester)
			require.Equal(t, "alice@example.com", r.RequesterEmail)
			require.Equal(t, "mail flow is down", r.Reason)
			require.Equal(t, []Decision{{By: BreakGlassApprover, At: clockStart, Comment: "break-glass"}}, r.Approvals)
			require.Equal(t, Duration(tc.wantDur), r.Duration)
			require.Equal(t, clockStart, *r.GrantStart, "effective at once")
			require.Equal(t, clockStart.Add(tc.wantDur), *r.GrantEnd)
			require.Equal(t, *r.GrantEnd, r.ExpiresAt)
			stored, err := f.s.Request(f.ctx(), r.ID)
			require.NoError(t, err)
			require.Equal(t, r, stored)

			g, lease, found := f.grantKV(r.ID)
			require.True(t, found)
			require.NotEqual(t, clientv3.NoLease, lease)
			require.True(t, g.BreakGlass)
			require.Equal(t, []string{BreakGlassApprover}, g.Approvers)
			require.Eventually(t, func() bool { return len(f.s.LiveGrants("alice", clockStart)) == 1 }, waitFor, tick)
			live := f.s.LiveGrants("alice", clockStart)[0]
			require.Equal(t, g, live)
			require.Empty(t, f.s.LiveGrants("alice", clockStart.Add(tc.wantDur)), "live until its end only")
			require.Zero(t, f.count(f.s.kPending), "break-glass takes no pending index entry")

			events := log.all()
			require.Len(t, events, 1)
			require.Equal(t, Event{Kind: EventBreakGlass, Request: r, By: "alice", At: clockStart}, events[0])
		})
	}
}

func TestBreakGlassFilter(t *testing.T) {
	f := newFixture(t)
	p := f.policy(Policy{Approvers: "approvers"})
	normal := f.submit(request(p.ID))
	f.clock.Add(time.Minute)
	first, err := f.s.BreakGlass(f.ctx(), emergency())
	require.NoError(t, err)
	f.clock.Add(time.Minute)
	n := emergency()
	n.Requester = dave
	second, err := f.s.BreakGlass(f.ctx(), n)
	require.NoError(t, err)
	// A break-glass request that has ended is still listed.
	f.clock.Add(2 * time.Hour)

	ids := func(rs []Request) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		desc string
		f    Filter
		want []string
	}{
		{desc: "everything", f: Filter{}, want: []string{second.ID, first.ID, normal.ID}},
		{desc: "break-glass only", f: Filter{BreakGlass: true}, want: []string{second.ID, first.ID}},
		{desc: "break-glass of one requester", f: Filter{BreakGlass: true, Requester: "dave"}, want: []string{second.ID}},
		{desc: "break-glass by effective status", f: Filter{BreakGlass: true, Status: StatusExpired}, want: []string{second.ID, first.ID}},
		{desc: "no break-glass request is pending", f: Filter{BreakGlass: true, Status: StatusPending}, want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := f.s.Requests(f.ctx(), tc.f)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(got))
		})
	}
}

func TestBreakGlassRevoke(t *testing.T) {
	erin := Actor{Subject: "erin", Groups: []string{"security"}}
	tests := []struct {
		desc      string
		reviewers string // Config.BreakGlassReviewers
		defaults  string // the control settings' default approvers
		approvers string // the request's approver group
		by        Actor
		wantErr   error
	}{
		{desc: "the requester revokes", by: alice},
		{desc: "the requester revokes when reviewers are configured", reviewers: "security", approvers: "security", by: alice},
		{desc: "a stranger cannot revoke", by: dave, wantErr: ErrNotApprover},
		{desc: "an approver of ordinary requests cannot revoke without a group", by: bob, wantErr: ErrNotApprover},
		{desc: "a break-glass reviewer revokes", reviewers: "security", approvers: "security", by: erin},
		{desc: "a stranger cannot revoke when reviewers are configured", reviewers: "security", approvers: "security", by: dave, wantErr: ErrNotApprover},
		{desc: "without reviewers the default approvers revoke", defaults: "approvers", approvers: "approvers", by: bob},
		{desc: "without reviewers a reviewer has no say", defaults: "approvers", approvers: "approvers", by: erin, wantErr: ErrNotApprover},
		{desc: "the reviewers win over the default approvers", reviewers: "security", defaults: "approvers", approvers: "security", by: bob, wantErr: ErrNotApprover},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var log eventLog
			f := newFixture(t, withEvents(&log), func(c *Config) { c.BreakGlassReviewers = tc.reviewers })
			if tc.defaults != "" {
				_, _, err := f.s.UpdateControl(f.ctx(), ControlPatch{DefaultApprovers: new(tc.defaults)})
				require.NoError(t, err)
			}
			r, err := f.s.BreakGlass(f.ctx(), emergency())
			require.NoError(t, err)
			require.Equal(t, tc.approvers, r.Approvers)
			f.clock.Add(5 * time.Minute)
			got, err := f.s.Revoke(f.ctx(), r.ID, tc.by, "all clear")
			_, _, found := f.grantKV(r.ID)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorIs(t, err, ErrForbidden)
				require.True(t, found, "the grant stays")
				require.Empty(t, log.of(EventRevoked))
				return
			}
			require.NoError(t, err)
			require.False(t, found)
			require.Equal(t, StatusRevoked, got.Status)
			require.True(t, got.BreakGlass)
			require.Equal(t, &Decision{By: tc.by.Subject, At: clockStart.Add(5 * time.Minute), Comment: "all clear"}, got.Revocation)
			events := log.of(EventRevoked)
			require.Len(t, events, 1)
			require.Equal(t, tc.by.Subject, events[0].By)
			require.Equal(t, "all clear", events[0].Comment)
		})
	}
}

func TestUseGrant(t *testing.T) {
	tests := []struct {
		desc string
		// setup returns the request whose grant is used.
		setup func(f *fixture) Request
		// uses are the results of successive UseGrant calls (nil: success).
		uses       []error
		wantStatus Status // stored status afterwards
		wantGrant  bool   // grant key still there afterwards
		wantUses   int    // on the grant key, when there, and on the request
		usedUp     string // comment of the one used-up event, "" for none
	}{
		{
			desc: "a grant capped at three uses is spent by the third",
			setup: func(f *fixture) Request {
				return f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 3}).ID))
			},
			uses:       []error{nil, nil, nil, ErrUsedUp, ErrUsedUp},
			wantStatus: StatusUsedUp,
			wantGrant:  true,
			wantUses:   3,
			usedUp:     "all 3 uses spent",
		},
		{
			desc: "uses short of the cap are counted in etcd",
			setup: func(f *fixture) Request {
				return f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 3}).ID))
			},
			uses:       []error{nil, nil},
			wantStatus: StatusApproved,
			wantGrant:  true,
			wantUses:   2,
		},
		{
			desc: "a manually approved grant takes its policy's cap",
			setup: func(f *fixture) Request {
				p := f.policy(Policy{Approvers: "approvers", MaxUses: 1})
				r, err := f.s.Approve(f.ctx(), f.submit(request(p.ID)).ID, bob, "")
				require.NoError(f.t, err)
				require.Equal(f.t, 1, r.MaxUses)
				return r
			},
			uses:       []error{nil, ErrUsedUp},
			wantStatus: StatusUsedUp,
			wantGrant:  true,
			wantUses:   1,
			usedUp:     "its only use spent",
		},
		{
			desc: "a grant without a cap is not counted",
			setup: func(f *fixture) Request {
				return f.submit(request(f.policy(Policy{Approval: ApprovalAuto}).ID))
			},
			uses:       []error{nil, nil, nil, nil},
			wantStatus: StatusApproved,
			wantGrant:  true,
		},
		{
			desc: "a break-glass grant is not counted",
			setup: func(f *fixture) Request {
				r, err := f.s.BreakGlass(f.ctx(), emergency())
				require.NoError(f.t, err)
				return r
			},
			uses:       []error{nil, nil},
			wantStatus: StatusApproved,
			wantGrant:  true,
		},
		{
			desc: "a grant that has ended cannot be used",
			setup: func(f *fixture) Request {
				r := f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 3}).ID))
				f.clock.Add(time.Hour)
				return r
			},
			uses:       []error{ErrNotApproved},
			wantStatus: StatusApproved, // until swept
			wantGrant:  true,
		},
		{
			desc: "a grant that has not started cannot be used",
			setup: func(f *fixture) Request {
				n := request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 3}).ID)
				n.StartAt = clockStart.Add(time.Hour)
				return f.submit(n)
			},
			uses:       []error{ErrNotApproved},
			wantStatus: StatusApproved,
			wantGrant:  true,
		},
		{
			desc: "a delayed grant can be used once the clock reaches its start",
			setup: func(f *fixture) Request {
				n := request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 3}).ID)
				n.StartAt = clockStart.Add(time.Hour)
				r := f.submit(n)
				f.clock.Add(time.Hour)
				return r
			},
			uses:       []error{nil},
			wantStatus: StatusApproved,
			wantGrant:  true,
			wantUses:   1,
		},
		{
			desc: "a revoked grant cannot be used",
			setup: func(f *fixture) Request {
				r := f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 3}).ID))
				r, err := f.s.Revoke(f.ctx(), r.ID, alice, "")
				require.NoError(f.t, err)
				return r
			},
			uses:       []error{ErrNotApproved},
			wantStatus: StatusRevoked,
		},
		{
			desc:       "a pending request has no grant to use",
			setup:      func(f *fixture) Request { return f.pendingRequest(1) },
			uses:       []error{ErrNotApproved},
			wantStatus: StatusPending,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var log eventLog
			f := newFixture(t, withEvents(&log))
			r := tc.setup(f)
			seen := len(log.all())
			_, lease, _ := f.grantKV(r.ID)
			for i, want := range tc.uses {
				err := f.s.UseGrant(f.ctx(), grantID(r.ID), nil)
				if want == nil {
					require.NoError(t, err, "use %d", i+1)
					continue
				}
				require.ErrorIs(t, err, want, "use %d", i+1)
				require.ErrorIs(t, err, ErrConflict, "use %d", i+1)
			}
			stored, _ := f.stored(r.ID)
			require.Equal(t, tc.wantStatus, stored.Status)
			require.Equal(t, tc.wantUses, stored.Uses, "the request counts the uses")
			g, _, found := f.grantKV(r.ID)
			require.Equal(t, tc.wantGrant, found, "grant key present")
			if found {
				require.Equal(t, tc.wantUses, g.Uses)
			}
			events := log.since(seen)
			if tc.usedUp == "" {
				require.Empty(t, events)
				return
			}
			require.Len(t, events, 1)
			require.Equal(t, EventUsedUp, events[0].Kind)
			require.Equal(t, tc.usedUp, events[0].Comment)
			require.Empty(t, events[0].By)
			require.Equal(t, stored, events[0].Request)
			require.True(t, g.UsedUp(), "the grant key stays, marked used up")
			require.Empty(t, f.expiryEntries(r.ID))
			ttl, err := f.cli.TimeToLive(f.ctx(), lease)
			require.NoError(t, err)
			require.Positive(t, ttl.TTL, "the used-up grant keeps its lease, which ends with its window")
			// Nothing is left for the sweeper, even after the grant's end:
			// the request stays used up.
			f.clock.Add(2 * time.Hour)
			n, err := f.s.Sweep(f.ctx())
			require.NoError(t, err)
			require.Zero(t, n)
			require.Len(t, log.since(seen), 1)
			got, err := f.s.Request(f.ctx(), r.ID)
			require.NoError(t, err)
			require.Equal(t, StatusUsedUp, got.Status)
		})
	}
}

func TestUseGrantUnknownIDs(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		id      string
		wantErr error
	}{
		{id: "grt-00000000-0000-7000-8000-000000000000", wantErr: ErrNotApproved},
		{id: "req-00000000-0000-7000-8000-000000000000", wantErr: ErrNotFound},
		{id: "", wantErr: ErrNotFound},
		{id: "grt-1/../x", wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.id), func(t *testing.T) {
			require.ErrorIs(t, f.s.UseGrant(f.ctx(), tc.id, nil), tc.wantErr)
		})
	}
}

func TestUseGrantViewFollows(t *testing.T) {
	f := newFixture(t)
	f.run()
	r := f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 2}).ID))
	require.Eventually(t, func() bool { return len(f.s.LiveGrants("alice", clockStart)) == 1 }, waitFor, tick)
	require.Equal(t, 2, f.s.LiveGrants("alice", clockStart)[0].MaxUses)

	require.NoError(t, f.s.UseGrant(f.ctx(), grantID(r.ID), nil))
	require.Eventually(t, func() bool {
		gs := f.s.LiveGrants("alice", clockStart)
		return len(gs) == 1 && gs[0].Uses == 1
	}, waitFor, tick)
	require.Empty(t, f.s.UsedUpGrants("alice", clockStart))
	require.NoError(t, f.s.UseGrant(f.ctx(), grantID(r.ID), nil))
	require.Eventually(t, func() bool { return len(f.s.LiveGrants("alice", clockStart)) == 0 }, waitFor, tick)
	// The view still knows the grant, as used up, until its window ends.
	used := f.s.UsedUpGrants("alice", clockStart)
	require.Len(t, used, 1)
	require.Equal(t, r.ID, used[0].RequestID)
	require.Equal(t, 2, used[0].Uses)
	live, _ := f.s.Counts()
	require.Zero(t, live, "a used-up grant is not live")
	require.Empty(t, f.s.UsedUpGrants("alice", clockStart.Add(time.Hour)), "after its window")
	require.Empty(t, f.s.UsedUpGrants("bob", clockStart))
}

// TestUseGrantSpentBeforeReported: the caller of UseGrant records the call
// the last use was spent on before Config.OnEvent hears that the request is
// used up, so that records of the two keep their causal order.
func TestUseGrantSpentBeforeReported(t *testing.T) {
	var order []string
	var mu sync.Mutex
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, s)
	}
	f := newFixture(t, func(c *Config) {
		c.OnEvent = func(e Event) { note(e.Kind) }
	})
	r := f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 2}).ID))
	var uses []Use
	for range 2 {
		require.NoError(t, f.s.UseGrant(f.ctx(), grantID(r.ID), func(u Use) {
			uses = append(uses, u)
			note(fmt.Sprintf("use %d of %d", u.N, u.MaxUses))
		}))
	}
	require.Equal(t, []Use{{N: 1, MaxUses: 2}, {N: 2, MaxUses: 2}}, uses)
	require.False(t, uses[0].Last())
	require.True(t, uses[1].Last())
	require.Equal(t, []string{EventSubmitted, EventApproved, "use 1 of 2", "use 2 of 2", EventUsedUp}, order)

	// A refused use is not spent; a grant without a cap is not counted.
	require.ErrorIs(t, f.s.UseGrant(f.ctx(), grantID(r.ID), func(Use) { t.Error("spent after the last use") }), ErrUsedUp)
	free := f.submit(NewRequest{Requester: bob, Scope: ScopeTask, Target: "other", Reason: "x",
		PolicyID: f.policy(Policy{Target: "other", Approval: ApprovalAuto}).ID})
	var got *Use
	require.NoError(t, f.s.UseGrant(f.ctx(), grantID(free.ID), func(u Use) { got = &u }))
	require.Equal(t, &Use{}, got)
}

func TestUseGrantConcurrent(t *testing.T) {
	const maxUses, callers = 5, 20
	var log eventLog
	f := newFixture(t, withEvents(&log))
	r := f.submit(request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: maxUses}).ID))
	// A second Store on the same prefix spends uses too, as another replica
	// would.
	other, err := New(Config{Client: newClient(t, testEndpoint), Prefix: f.s.cfg.Prefix, Now: f.clock.Now, OnEvent: log.record})
	require.NoError(t, err)
	seen := len(log.all())

	errs := make(chan error, callers)
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		s := f.s
		if i%2 == 1 {
			s = other
		}
		wg.Go(func() {
			<-begin
			errs <- s.UseGrant(f.ctx(), grantID(r.ID), nil)
		})
	}
	close(begin)
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
			continue
		}
		require.True(t, errors.Is(err, ErrUsedUp), "%v", err)
	}
	require.Equal(t, maxUses, ok, "exactly MaxUses calls succeed")
	stored, _ := f.stored(r.ID)
	require.Equal(t, StatusUsedUp, stored.Status)
	require.Equal(t, maxUses, stored.Uses)
	g, _, found := f.grantKV(r.ID)
	require.True(t, found)
	require.Equal(t, maxUses, g.Uses)
	events := log.since(seen)
	require.Len(t, events, 1)
	require.Equal(t, EventUsedUp, events[0].Kind)
}
