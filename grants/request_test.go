package grants

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestSubmit(t *testing.T) {
	type env struct {
		f                                   *fixture
		manual, capped, auto, role, noGroup Policy
	}
	setup := func(t *testing.T) *env {
		f := newFixture(t, func(c *Config) { c.MaxDuration = 8 * time.Hour })
		return &env{
			f:       f,
			manual:  f.policy(Policy{Approvers: "approvers"}),
			capped:  f.policy(Policy{Approvers: "approvers", Target: `Exchange\Search-Mailbox`, MaxDuration: Duration(time.Hour)}),
			auto:    f.policy(Policy{Approval: ApprovalAuto, Target: `Exchange\Get-Mailbox`}),
			role:    f.policy(Policy{Scope: ScopeRole, Target: `Exchange\Mailbox Import Export`, Approvers: "approvers"}),
			noGroup: f.policy(Policy{Target: `Exchange\New-JournalRule`}),
		}
	}
	tests := []struct {
		desc    string
		prep    func(e *env)
		req     func(e *env) NewRequest
		wantErr error
		wantMsg string
		check   func(t *testing.T, e *env, r Request)
	}{
		{
			desc: "a manual request is pending until the pending TTL",
			req: func(e *env) NewRequest {
				n := request(e.manual.ID)
				n.Reason = "  move the CEO's mailbox \n"
				return n
			},
			check: func(t *testing.T, e *env, r Request) {
				require.True(t, strings.HasPrefix(r.ID, "req-"), r.ID)
				require.Equal(t, StatusPending, r.Status)
				require.Equal(t, "alice", r.Requester)
				require.Equal(t, "move the CEO's mailbox", r.Reason)
				require.Equal(t, Duration(time.Hour), r.Duration)
				require.Equal(t, "approvers", r.Approvers)
				require.Equal(t, 1, r.ApprovalsRequired)
				require.True(t, clockStart.Equal(r.CreatedAt))
				require.True(t, clockStart.Add(24*time.Hour).Equal(r.ExpiresAt))
				require.Nil(t, r.StartAt)
				require.Nil(t, r.GrantStart)
				stored, err := e.f.s.Request(e.f.ctx(), r.ID)
				require.NoError(t, err)
				require.Equal(t, r, stored)
				_, _, found := e.f.grantKV(r.ID)
				require.False(t, found)
			},
		},
		{
			desc:    "an empty reason is refused",
			req:     func(e *env) NewRequest { n := request(e.manual.ID); n.Reason = ""; return n },
			wantErr: ErrInvalid, wantMsg: "reason:",
		},
		{
			desc:    "a blank reason is refused",
			req:     func(e *env) NewRequest { n := request(e.manual.ID); n.Reason = " \t\n"; return n },
			wantErr: ErrInvalid, wantMsg: "reason:",
		},
		{
			desc:    "a request without requester is refused",
			req:     func(e *env) NewRequest { n := request(e.manual.ID); n.Requester = Actor{}; return n },
			wantErr: ErrInvalid, wantMsg: "requester:",
		},
		{
			desc:    "an unknown scope is refused",
			req:     func(e *env) NewRequest { n := request(e.manual.ID); n.Scope = "tenant"; return n },
			wantErr: ErrInvalid, wantMsg: "scope:",
		},
		{
			desc:    "an empty target is refused",
			req:     func(e *env) NewRequest { n := request(e.manual.ID); n.Target = " "; return n },
			wantErr: ErrInvalid, wantMsg: "target:",
		},
		{
			desc:    "a negative duration is refused",
			req:     func(e *env) NewRequest { n := request(e.manual.ID); n.Duration = -time.Minute; return n },
			wantErr: ErrInvalid, wantMsg: "duration:",
		},
		{
			desc: "no duration takes the default",
			req:  func(e *env) NewRequest { n := request(e.manual.ID); n.Duration = 0; return n },
			check: func(t *testing.T, e *env, r Request) {
				require.Equal(t, Duration(4*time.Hour), r.Duration)
			},
		},
		{
			desc:    "a duration above the global cap is refused",
			req:     func(e *env) NewRequest { n := request(e.manual.ID); n.Duration = 9 * time.Hour; return n },
			wantErr: ErrInvalid, wantMsg: "duration: 9h0m0s exceeds the maximum of 8h0m0s",
		},
		{
			desc: "a duration at the global cap is accepted",
			req:  func(e *env) NewRequest { n := request(e.manual.ID); n.Duration = 8 * time.Hour; return n },
			check: func(t *testing.T, e *env, r Request) {
				require.Equal(t, Duration(8*time.Hour), r.Duration)
			},
		},
		{
			desc: "a duration above the policy cap is refused",
			req: func(e *env) NewRequest {
				n := request(e.capped.ID)
				n.Target, n.Duration = e.capped.Target, 2*time.Hour
				return n
			},
			wantErr: ErrInvalid, wantMsg: "duration: 2h0m0s exceeds the maximum of 1h0m0s",
		},
		{
			desc: "no duration under a capped policy takes the cap",
			req: func(e *env) NewRequest {
				n := request(e.capped.ID)
				n.Target, n.Duration = e.capped.Target, 0
				return n
			},
			check: func(t *testing.T, e *env, r Request) {
				require.Equal(t, Duration(time.Hour), r.Duration)
			},
		},
		{
			desc: "a start more than a minute in the past is refused",
			req: func(e *env) NewRequest {
				n := request(e.manual.ID)
				n.StartAt = clockStart.Add(-2 * time.Minute)
				return n
			},
			wantErr: ErrInvalid, wantMsg: "start_at:",
		},
		{
			desc: "a start within the minute of leeway is accepted",
			req: func(e *env) NewRequest {
				n := request(e.manual.ID)
				n.StartAt = clockStart.Add(-30 * time.Second)
				return n
			},
			check: func(t *testing.T, e *env, r Request) {
				require.NotNil(t, r.StartAt)
				require.True(t, clockStart.Add(-30*time.Second).Equal(*r.StartAt))
			},
		},
		{
			desc:    "a request without policy is refused",
			req:     func(e *env) NewRequest { return request("") },
			wantErr: ErrInvalid, wantMsg: "policy_id:",
		},
		{
			desc:    "an unknown policy is refused",
			req:     func(e *env) NewRequest { return request("pol-000000000000") },
			wantErr: ErrInvalid, wantMsg: "policy_id: no such policy",
		},
		{
			desc:    "a policy on another target is refused",
			req:     func(e *env) NewRequest { return request(e.capped.ID) },
			wantErr: ErrInvalid, wantMsg: "policy_id:",
		},
		{
			desc: "a policy on another scope is refused",
			req: func(e *env) NewRequest {
				n := request(e.role.ID)
				n.Target = e.role.Target
				return n
			},
			wantErr: ErrInvalid, wantMsg: "policy_id:",
		},
		{
			desc: "a role request under its role policy is accepted",
			req: func(e *env) NewRequest {
				n := request(e.role.ID)
				n.Scope, n.Target = ScopeRole, e.role.Target
				return n
			},
			check: func(t *testing.T, e *env, r Request) {
				require.Equal(t, ScopeRole, r.Scope)
				require.Equal(t, StatusPending, r.Status)
			},
		},
		{
			desc: "a manual policy without any approver group is refused",
			req: func(e *env) NewRequest {
				n := request(e.noGroup.ID)
				n.Target = e.noGroup.Target
				return n
			},
			wantErr: ErrInvalid, wantMsg: "approvers: no approver group: set one on the policy or in control settings",
		},
		{
			desc: "the control settings' default group fills in",
			prep: func(e *env) {
				_, _, err := e.f.s.UpdateControl(e.f.ctx(), ControlPatch{DefaultApprovers: new("helpdesk")})
				require.NoError(e.f.t, err)
			},
			req: func(e *env) NewRequest {
				n := request(e.noGroup.ID)
				n.Target = e.noGroup.Target
				return n
			},
			check: func(t *testing.T, e *env, r Request) {
				require.Equal(t, "helpdesk", r.Approvers)
			},
		},
		{
			desc: "the policy's group wins over the default",
			prep: func(e *env) {
				_, _, err := e.f.s.UpdateControl(e.f.ctx(), ControlPatch{DefaultApprovers: new("helpdesk")})
				require.NoError(e.f.t, err)
			},
			req: func(e *env) NewRequest { return request(e.manual.ID) },
			check: func(t *testing.T, e *env, r Request) {
				require.Equal(t, "approvers", r.Approvers)
			},
		},
		{
			desc: "an auto policy approves at once and writes the grant",
			req: func(e *env) NewRequest {
				n := request(e.auto.ID)
				n.Target = e.auto.Target
				return n
			},
			check: func(t *testing.T, e *env, r Request) {
				require.Equal(t, StatusApproved, r.Status)
				require.Equal(t, []Decision{{By: AutoApprover, At: clockStart}}, r.Approvals)
				require.True(t, clockStart.Equal(*r.GrantStart))
				require.True(t, clockStart.Add(time.Hour).Equal(*r.GrantEnd))
				require.True(t, r.ExpiresAt.Equal(*r.GrantEnd))
				g, lease, found := e.f.grantKV(r.ID)
				require.True(t, found)
				require.NotEqual(t, clientv3.NoLease, lease)
				require.Equal(t, "alice", g.Subject)
				require.Equal(t, r.ID, g.RequestID)
				require.Equal(t, []string{AutoApprover}, g.Approvers)
				require.True(t, clockStart.Add(time.Hour).Equal(g.ExpiresAt))
			},
		},
		{
			desc: "an auto grant with a start time starts then",
			req: func(e *env) NewRequest {
				n := request(e.auto.ID)
				n.Target, n.StartAt = e.auto.Target, clockStart.Add(3*time.Hour)
				return n
			},
			check: func(t *testing.T, e *env, r Request) {
				require.Equal(t, StatusApproved, r.Status)
				require.True(t, clockStart.Add(3*time.Hour).Equal(*r.GrantStart))
				require.True(t, clockStart.Add(4*time.Hour).Equal(*r.GrantEnd))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := setup(t)
			if tc.prep != nil {
				tc.prep(e)
			}
			r, err := e.f.s.Submit(e.f.ctx(), tc.req(e))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, tc.wantMsg)
				resp, gerr := e.f.cli.Get(e.f.ctx(), e.f.s.kRequests, clientv3.WithPrefix(), clientv3.WithCountOnly())
				require.NoError(t, gerr)
				require.Zero(t, resp.Count, "a refused request stores nothing")
				return
			}
			require.NoError(t, err)
			tc.check(t, e, r)
		})
	}
}

func TestSubmitDuplicate(t *testing.T) {
	tests := []struct {
		desc    string
		between func(f *fixture, first Request)
		second  func(n NewRequest) NewRequest
		wantDup bool
	}{
		{desc: "a second pending request for the same target is a duplicate", wantDup: true},
		{
			desc:    "a second request just before the first expires is a duplicate",
			between: func(f *fixture, _ Request) { f.clock.Add(24*time.Hour - time.Second) },
			wantDup: true,
		},
		{
			desc:   "another requester is no duplicate",
			second: func(n NewRequest) NewRequest { n.Requester = dave; return n },
		},
		{
			desc:    "a request after the first expired undecided is no duplicate",
			between: func(f *fixture, _ Request) { f.clock.Add(24 * time.Hour) },
		},
		{
			desc: "a request after the first was denied is no duplicate",
			between: func(f *fixture, first Request) {
				_, err := f.s.Deny(f.ctx(), first.ID, bob, "no")
				require.NoError(f.t, err)
			},
		},
		{
			desc: "a request after the first was approved is no duplicate",
			between: func(f *fixture, first Request) {
				_, err := f.s.Approve(f.ctx(), first.ID, bob, "")
				require.NoError(f.t, err)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(Policy{Approvers: "approvers"})
			first := f.submit(request(p.ID))
			if tc.between != nil {
				tc.between(f, first)
			}
			n := request(p.ID)
			if tc.second != nil {
				n = tc.second(n)
			}
			second, err := f.s.Submit(f.ctx(), n)
			if !tc.wantDup {
				require.NoError(t, err)
				require.NotEqual(t, first.ID, second.ID)
				require.Equal(t, StatusPending, second.Status)
				return
			}
			require.ErrorIs(t, err, ErrConflict)
			var dup *DuplicateError
			require.ErrorAs(t, err, &dup)
			require.Equal(t, first.ID, dup.ExistingID)
		})
	}
}

func TestApprove(t *testing.T) {
	noMFA := func(a Actor) Actor { a.MFA = false; return a }
	tests := []struct {
		desc      string
		policy    Policy
		request   func(n NewRequest) NewRequest
		prep      func(f *fixture, r Request)
		by        Actor
		wantErr   error
		wantGrant bool
		check     func(t *testing.T, f *fixture, r Request)
	}{
		{
			desc:      "an approver in the group approves and the grant starts now",
			by:        bob,
			wantGrant: true,
			check: func(t *testing.T, f *fixture, r Request) {
				require.Equal(t, StatusApproved, r.Status)
				require.Equal(t, []Decision{{By: "bob", At: clockStart, Comment: "looks right"}}, r.Approvals)
				require.True(t, clockStart.Equal(*r.GrantStart))
				require.True(t, clockStart.Add(time.Hour).Equal(*r.GrantEnd))
				require.True(t, r.ExpiresAt.Equal(*r.GrantEnd))
				g, lease, _ := f.grantKV(r.ID)
				require.Equal(t, Grant{
					ID: grantID(r.ID), RequestID: r.ID, Subject: "alice", Scope: ScopeTask, Target: task,
					NotBefore: clockStart, ExpiresAt: clockStart.Add(time.Hour), Approvers: []string{"bob"},
				}, g)
				ttl, err := f.cli.TimeToLive(f.ctx(), lease)
				require.NoError(t, err)
				require.InDelta(t, (time.Hour + leaseMargin).Seconds(), float64(ttl.GrantedTTL), 1)
				resp, err := f.cli.Get(f.ctx(), f.s.kPending, clientv3.WithPrefix(), clientv3.WithCountOnly())
				require.NoError(t, err)
				require.Zero(t, resp.Count, "the pending index entry is gone")
			},
		},
		{
			desc:      "the grant's clock starts at approval, not at submission",
			prep:      func(f *fixture, _ Request) { f.clock.Add(2 * time.Hour) },
			by:        bob,
			wantGrant: true,
			check: func(t *testing.T, f *fixture, r Request) {
				require.True(t, clockStart.Add(2*time.Hour).Equal(*r.GrantStart))
				require.True(t, clockStart.Add(3*time.Hour).Equal(*r.GrantEnd))
				_, lease, _ := f.grantKV(r.ID)
				ttl, err := f.cli.TimeToLive(f.ctx(), lease)
				require.NoError(t, err)
				require.InDelta(t, (time.Hour + leaseMargin).Seconds(), float64(ttl.GrantedTTL), 1)
			},
		},
		{
			desc:      "a requested start time in the future is kept and the lease covers the wait",
			request:   func(n NewRequest) NewRequest { n.StartAt = clockStart.Add(5 * time.Hour); return n },
			by:        bob,
			wantGrant: true,
			check: func(t *testing.T, f *fixture, r Request) {
				require.True(t, clockStart.Add(5*time.Hour).Equal(*r.GrantStart))
				require.True(t, clockStart.Add(6*time.Hour).Equal(*r.GrantEnd))
				_, lease, _ := f.grantKV(r.ID)
				ttl, err := f.cli.TimeToLive(f.ctx(), lease)
				require.NoError(t, err)
				require.InDelta(t, (6*time.Hour + leaseMargin).Seconds(), float64(ttl.GrantedTTL), 1)
			},
		},
		{
			desc:      "a requested start time already passed at approval starts now",
			request:   func(n NewRequest) NewRequest { n.StartAt = clockStart.Add(10 * time.Minute); return n },
			prep:      func(f *fixture, _ Request) { f.clock.Add(30 * time.Minute) },
			by:        bob,
			wantGrant: true,
			check: func(t *testing.T, f *fixture, r Request) {
				require.True(t, clockStart.Add(30*time.Minute).Equal(*r.GrantStart))
			},
		},
		{
			desc:    "the requester cannot approve their own request",
			by:      Actor{Subject: "alice", Groups: []string{"approvers"}, MFA: true},
			wantErr: ErrSelfApproval,
		},
		{
			desc:    "someone outside the approver group cannot approve",
			by:      dave,
			wantErr: ErrNotApprover,
		},
		{
			desc:    "a member of another group cannot approve",
			by:      Actor{Subject: "erin", Groups: []string{"helpdesk", "staff"}, MFA: true},
			wantErr: ErrNotApprover,
		},
		{
			desc:    "an approver without MFA cannot approve under an MFA policy",
			policy:  Policy{RequireMFA: true},
			by:      noMFA(bob),
			wantErr: ErrMFARequired,
		},
		{
			desc:      "an approver with MFA approves under an MFA policy",
			policy:    Policy{RequireMFA: true},
			by:        bob,
			wantGrant: true,
		},
		{
			desc:      "an approver without MFA approves when the policy does not ask for it",
			by:        noMFA(bob),
			wantGrant: true,
		},
		{
			desc: "once the policy is gone an approver needs MFA",
			prep: func(f *fixture, r Request) {
				_, err := f.s.DeletePolicy(f.ctx(), r.PolicyID)
				require.NoError(f.t, err)
			},
			by:      noMFA(bob),
			wantErr: ErrMFARequired,
		},
		{
			desc: "once the policy is gone an approver with MFA still approves",
			prep: func(f *fixture, r Request) {
				_, err := f.s.DeletePolicy(f.ctx(), r.PolicyID)
				require.NoError(f.t, err)
			},
			by:        bob,
			wantGrant: true,
		},
		{
			desc:   "the first of two approvals leaves the request pending",
			policy: Policy{Approvals: 2},
			by:     bob,
			check: func(t *testing.T, f *fixture, r Request) {
				require.Equal(t, StatusPending, r.Status)
				require.Len(t, r.Approvals, 1)
				require.Nil(t, r.GrantStart)
			},
		},
		{
			desc:   "the same approver twice is refused",
			policy: Policy{Approvals: 2},
			prep: func(f *fixture, r Request) {
				_, err := f.s.Approve(f.ctx(), r.ID, bob, "")
				require.NoError(f.t, err)
			},
			by:      bob,
			wantErr: ErrAlreadyApproved,
		},
		{
			desc:   "the second distinct approval approves",
			policy: Policy{Approvals: 2},
			prep: func(f *fixture, r Request) {
				_, err := f.s.Approve(f.ctx(), r.ID, bob, "")
				require.NoError(f.t, err)
			},
			by:        carol,
			wantGrant: true,
			check: func(t *testing.T, f *fixture, r Request) {
				g, _, _ := f.grantKV(r.ID)
				require.Equal(t, []string{"bob", "carol"}, g.Approvers)
			},
		},
		{
			desc:      "a request just before its pending expiry can be approved",
			prep:      func(f *fixture, _ Request) { f.clock.Add(24*time.Hour - time.Second) },
			by:        bob,
			wantGrant: true,
		},
		{
			desc:    "a request past its pending expiry cannot be approved",
			prep:    func(f *fixture, _ Request) { f.clock.Add(24 * time.Hour) },
			by:      bob,
			wantErr: ErrNotPending,
		},
		{
			desc: "an approved request cannot be approved again",
			prep: func(f *fixture, r Request) {
				_, err := f.s.Approve(f.ctx(), r.ID, carol, "")
				require.NoError(f.t, err)
			},
			by:        bob,
			wantErr:   ErrNotPending,
			wantGrant: true,
		},
		{
			desc: "a denied request cannot be approved",
			prep: func(f *fixture, r Request) {
				_, err := f.s.Deny(f.ctx(), r.ID, carol, "")
				require.NoError(f.t, err)
			},
			by:      bob,
			wantErr: ErrNotPending,
		},
		{
			desc:    "an approver must be named",
			by:      Actor{Groups: []string{"approvers"}},
			wantErr: ErrInvalid,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			p := tc.policy
			p.Approvers = "approvers"
			p = f.policy(p)
			n := request(p.ID)
			if tc.request != nil {
				n = tc.request(n)
			}
			r := f.submit(n)
			if tc.prep != nil {
				tc.prep(f, r)
			}
			got, err := f.s.Approve(f.ctx(), r.ID, tc.by, "looks right")
			_, _, found := f.grantKV(r.ID)
			require.Equal(t, tc.wantGrant, found, "grant key present")
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			stored, err := f.s.Request(f.ctx(), r.ID)
			require.NoError(t, err)
			require.Equal(t, got, stored)
			if tc.check != nil {
				tc.check(t, f, got)
			}
		})
	}
}

func TestDeny(t *testing.T) {
	tests := []struct {
		desc    string
		policy  Policy
		prep    func(f *fixture, r Request)
		by      Actor
		wantErr error
	}{
		{desc: "an approver denies", by: bob},
		{desc: "an approver without MFA denies under an MFA policy", policy: Policy{RequireMFA: true}, by: Actor{Subject: "bob", Groups: []string{"approvers"}}},
		{
			desc:   "one denial after an approval denies a two-approval request",
			policy: Policy{Approvals: 2},
			prep: func(f *fixture, r Request) {
				_, err := f.s.Approve(f.ctx(), r.ID, carol, "")
				require.NoError(f.t, err)
			},
			by: bob,
		},
		{desc: "the requester cannot deny their own request", by: Actor{Subject: "alice", Groups: []string{"approvers"}}, wantErr: ErrSelfApproval},
		{desc: "someone outside the approver group cannot deny", by: dave, wantErr: ErrNotApprover},
		{
			desc: "an approved request cannot be denied",
			prep: func(f *fixture, r Request) {
				_, err := f.s.Approve(f.ctx(), r.ID, carol, "")
				require.NoError(f.t, err)
			},
			by:      bob,
			wantErr: ErrNotPending,
		},
		{
			desc: "a denied request cannot be denied again",
			prep: func(f *fixture, r Request) {
				_, err := f.s.Deny(f.ctx(), r.ID, carol, "")
				require.NoError(f.t, err)
			},
			by:      bob,
			wantErr: ErrNotPending,
		},
		{
			desc:    "an expired request cannot be denied",
			prep:    func(f *fixture, _ Request) { f.clock.Add(25 * time.Hour) },
			by:      bob,
			wantErr: ErrNotPending,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			p := tc.policy
			p.Approvers = "approvers"
			p = f.policy(p)
			r := f.submit(request(p.ID))
			if tc.prep != nil {
				tc.prep(f, r)
			}
			got, err := f.s.Deny(f.ctx(), r.ID, tc.by, "not during the freeze")
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, StatusDenied, got.Status)
			require.Equal(t, &Decision{By: tc.by.Subject, At: clockStart, Comment: "not during the freeze"}, got.Denial)
			stored, err := f.s.Request(f.ctx(), r.ID)
			require.NoError(t, err)
			require.Equal(t, got, stored)
			_, _, found := f.grantKV(r.ID)
			require.False(t, found)
			// The pending index entry is gone: alice may ask again.
			f.submit(request(p.ID))
		})
	}
}

func TestRevoke(t *testing.T) {
	tests := []struct {
		desc    string
		setup   func(f *fixture) Request
		by      Actor
		wantErr error
	}{
		{desc: "the requester revokes", setup: (*fixture).approvedRequest, by: alice},
		{desc: "another approver revokes", setup: (*fixture).approvedRequest, by: carol},
		{desc: "someone outside the group cannot revoke", setup: (*fixture).approvedRequest, by: dave, wantErr: ErrNotApprover},
		{
			desc:    "a pending request cannot be revoked",
			setup:   func(f *fixture) Request { return f.pendingRequest(1) },
			by:      bob,
			wantErr: ErrNotApproved,
		},
		{
			desc: "a denied request cannot be revoked",
			setup: func(f *fixture) Request {
				r := f.pendingRequest(1)
				r, err := f.s.Deny(f.ctx(), r.ID, bob, "")
				require.NoError(f.t, err)
				return r
			},
			by:      bob,
			wantErr: ErrNotApproved,
		},
		{
			desc: "an ended grant cannot be revoked",
			setup: func(f *fixture) Request {
				r := f.approvedRequest()
				f.clock.Add(time.Hour)
				return r
			},
			by:      bob,
			wantErr: ErrNotApproved,
		},
		{
			desc: "a revoked grant cannot be revoked again",
			setup: func(f *fixture) Request {
				r := f.approvedRequest()
				r, err := f.s.Revoke(f.ctx(), r.ID, alice, "")
				require.NoError(f.t, err)
				return r
			},
			by:      bob,
			wantErr: ErrNotApproved,
		},
		{
			desc: "a grant that has not started yet can be revoked",
			setup: func(f *fixture) Request {
				p := f.policy(Policy{Approvers: "approvers"})
				n := request(p.ID)
				n.StartAt = clockStart.Add(2 * time.Hour)
				r := f.submit(n)
				r, err := f.s.Approve(f.ctx(), r.ID, bob, "")
				require.NoError(f.t, err)
				return r
			},
			by: bob,
		},
		{
			desc: "an auto grant without approver group can be revoked by the current default group",
			setup: func(f *fixture) Request {
				p := f.policy(Policy{Approval: ApprovalAuto})
				r := f.submit(request(p.ID))
				require.Empty(f.t, r.Approvers)
				_, _, err := f.s.UpdateControl(f.ctx(), ControlPatch{DefaultApprovers: new("approvers")})
				require.NoError(f.t, err)
				return r
			},
			by: bob,
		},
		{
			desc: "an auto grant without any approver group can be revoked by its requester only",
			setup: func(f *fixture) Request {
				p := f.policy(Policy{Approval: ApprovalAuto})
				return f.submit(request(p.ID))
			},
			by:      bob,
			wantErr: ErrNotApprover,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			r := tc.setup(f)
			_, leaseBefore, hadGrant := f.grantKV(r.ID)
			got, err := f.s.Revoke(f.ctx(), r.ID, tc.by, "done early")
			_, _, hasGrant := f.grantKV(r.ID)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.Equal(t, hadGrant, hasGrant, "a refused revocation leaves the grant key alone")
				return
			}
			require.NoError(t, err)
			require.True(t, hadGrant)
			require.False(t, hasGrant, "the grant key is deleted")
			require.Equal(t, StatusRevoked, got.Status)
			require.Equal(t, &Decision{By: tc.by.Subject, At: f.clock.Now(), Comment: "done early"}, got.Revocation)
			stored, err := f.s.Request(f.ctx(), r.ID)
			require.NoError(t, err)
			require.Equal(t, got, stored)
			ttl, err := f.cli.TimeToLive(f.ctx(), leaseBefore)
			require.NoError(t, err)
			require.EqualValues(t, -1, ttl.TTL, "the grant's lease is revoked")
		})
	}
}

func TestUnknownIDs(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"req-00000000-0000-7000-8000-000000000000", "", "req-1/../x"} {
		_, err := f.s.Request(f.ctx(), id)
		require.ErrorIs(t, err, ErrNotFound)
		_, err = f.s.Approve(f.ctx(), id, bob, "")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = f.s.Deny(f.ctx(), id, bob, "")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = f.s.Revoke(f.ctx(), id, bob, "")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = f.s.Policy(f.ctx(), strings.Replace(id, "req-", "pol-", 1))
		require.ErrorIs(t, err, ErrNotFound)
		_, err = f.s.DeletePolicy(f.ctx(), strings.Replace(id, "req-", "pol-", 1))
		require.ErrorIs(t, err, ErrNotFound)
	}
}

func TestEffectiveStatus(t *testing.T) {
	tests := []struct {
		desc   string
		setup  func(f *fixture) Request
		later  time.Duration
		stored Status
		want   Status
	}{
		{desc: "a pending request reads pending before its expiry", setup: func(f *fixture) Request { return f.pendingRequest(1) }, later: 24*time.Hour - time.Nanosecond, stored: StatusPending, want: StatusPending},
		{desc: "a pending request reads expired at its expiry", setup: func(f *fixture) Request { return f.pendingRequest(1) }, later: 24 * time.Hour, stored: StatusPending, want: StatusExpired},
		{desc: "an approved request reads approved before its grant ends", setup: (*fixture).approvedRequest, later: time.Hour - time.Nanosecond, stored: StatusApproved, want: StatusApproved},
		{desc: "an approved request reads expired once its grant ended", setup: (*fixture).approvedRequest, later: time.Hour, stored: StatusApproved, want: StatusExpired},
		{
			desc: "a denied request stays denied",
			setup: func(f *fixture) Request {
				r := f.pendingRequest(1)
				r, err := f.s.Deny(f.ctx(), r.ID, bob, "")
				require.NoError(f.t, err)
				return r
			},
			later: 48 * time.Hour, stored: StatusDenied, want: StatusDenied,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			r := tc.setup(f)
			f.clock.Add(tc.later)
			got, err := f.s.Request(f.ctx(), r.ID)
			require.NoError(t, err)
			require.Equal(t, tc.want, got.Status)
			list, err := f.s.Requests(f.ctx(), Filter{Status: tc.want})
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, r.ID, list[0].ID)
			// The stored record keeps its status until a sweeper writes it.
			resp, err := f.cli.Get(f.ctx(), f.s.requestKey(r.ID))
			require.NoError(t, err)
			var raw Request
			require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &raw))
			require.Equal(t, tc.stored, raw.Status)
		})
	}
}

func TestRequestsFilter(t *testing.T) {
	f := newFixture(t)
	move := f.policy(Policy{Approvers: "approvers"})
	search := f.policy(Policy{Approvers: "approvers", Target: `Exchange\Search-Mailbox`})
	r1 := f.submit(request(move.ID))
	f.clock.Add(time.Minute)
	n := request(search.ID)
	n.Target = search.Target
	r2 := f.submit(n)
	f.clock.Add(time.Minute)
	n = request(move.ID)
	n.Requester = dave
	r3 := f.submit(n)
	_, err := f.s.Approve(f.ctx(), r3.ID, bob, "")
	require.NoError(t, err)
	f.clock.Add(time.Minute)
	n = request(f.policy(Policy{Approval: ApprovalAuto, MaxUses: 1, Target: "once"}).ID)
	n.Target = "once"
	r4 := f.submit(n)
	require.NoError(t, f.s.UseGrant(f.ctx(), grantID(r4.ID), nil))

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
		{desc: "everything, newest first", f: Filter{}, want: []string{r4.ID, r3.ID, r2.ID, r1.ID}},
		{desc: "by requester", f: Filter{Requester: "alice"}, want: []string{r4.ID, r2.ID, r1.ID}},
		{desc: "by target", f: Filter{Target: task}, want: []string{r3.ID, r1.ID}},
		{desc: "by status", f: Filter{Status: StatusApproved}, want: []string{r3.ID}},
		{desc: "by status and requester", f: Filter{Status: StatusPending, Requester: "alice", Target: task}, want: []string{r1.ID}},
		{desc: "used up", f: Filter{Status: StatusUsedUp}, want: []string{r4.ID}},
		{desc: "limited", f: Filter{Limit: 2}, want: []string{r4.ID, r3.ID}},
		{desc: "nothing matches", f: Filter{Requester: "mallory"}, want: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := f.s.Requests(f.ctx(), tc.f)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(got))
		})
	}
	_, err = f.s.Requests(f.ctx(), Filter{Status: "open"})
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "pending, approved, denied, expired, revoked, used_up")
}
