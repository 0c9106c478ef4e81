package grants

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The rules of a submission, applied without etcd: Config.admit and the
// checks around it decide from their arguments alone.

func validConfig(t *testing.T, mod func(*Config)) Config {
	t.Helper()
	var c Config
	if mod != nil {
		mod(&c)
	}
	require.NoError(t, c.Validate())
	return c
}

func TestAdmit(t *testing.T) {
	now := clockStart
	later := now.Add(2 * time.Hour)
	manual := Policy{ID: "pol-1", Scope: ScopeTask, Target: task, Approval: ApprovalManual, Approvers: "approvers", Approvals: 2}
	auto := Policy{ID: "pol-2", Scope: ScopeTask, Target: task, Approval: ApprovalAuto}
	ask := func(mod func(n *NewRequest)) NewRequest {
		n := NewRequest{Requester: alice, Scope: ScopeTask, Target: task, Reason: "move the CEO's mailbox"}
		if mod != nil {
			mod(&n)
		}
		return n
	}
	with := func(p Policy, mod func(p *Policy)) Policy { mod(&p); return p }
	tests := []struct {
		desc    string
		cfg     func(*Config)
		n       NewRequest
		pol     Policy
		ctl     Control
		wantErr error
		wantMsg string
		want    func(t *testing.T, r Request)
	}{
		{
			desc: "a manual policy leaves the request pending for the pending TTL, with the default duration",
			n:    ask(nil), pol: manual,
			want: func(t *testing.T, r Request) {
				require.Equal(t, StatusPending, r.Status)
				require.Equal(t, now.Add(DefaultPendingTTL), r.ExpiresAt)
				require.Equal(t, Duration(DefaultDefaultDuration), r.Duration)
				require.Equal(t, "approvers", r.Approvers)
				require.Equal(t, 2, r.ApprovalsRequired)
				require.Equal(t, "pol-1", r.PolicyID)
				require.Equal(t, now, r.CreatedAt)
				require.Empty(t, r.ID, "the caller assigns the ID")
				require.Nil(t, r.GrantStart)
				require.Empty(t, r.Approvals)
			},
		},
		{
			desc: "an auto policy approves at once: one approval by auto, the grant from now",
			n:    ask(func(n *NewRequest) { n.Duration = time.Hour }), pol: auto,
			want: func(t *testing.T, r Request) {
				require.Equal(t, StatusApproved, r.Status)
				require.Equal(t, []Decision{{By: AutoApprover, At: now}}, r.Approvals)
				require.Equal(t, 1, r.ApprovalsRequired)
				require.Equal(t, now, *r.GrantStart)
				require.Equal(t, now.Add(time.Hour), *r.GrantEnd)
				require.Equal(t, *r.GrantEnd, r.ExpiresAt)
				require.Empty(t, r.Approvers, "no approver group is needed")
			},
		},
		{
			desc: "an auto grant asked to start later starts then",
			n:    ask(func(n *NewRequest) { n.StartAt, n.Duration = later, time.Hour }), pol: auto,
			want: func(t *testing.T, r Request) {
				require.Equal(t, later, *r.StartAt)
				require.Equal(t, later, *r.GrantStart)
				require.Equal(t, later.Add(time.Hour), *r.GrantEnd)
			},
		},
		{
			desc: "the start time asked for is kept in UTC",
			n:    ask(func(n *NewRequest) { n.StartAt = later.In(time.FixedZone("CET", 3600)) }), pol: manual,
			want: func(t *testing.T, r Request) {
				require.Equal(t, time.UTC, r.StartAt.Location())
				require.True(t, later.Equal(*r.StartAt))
			},
		},
		{
			desc: "the approver group defaults to the control settings'",
			n:    ask(nil), pol: with(manual, func(p *Policy) { p.Approvers = "" }), ctl: Control{DefaultApprovers: "mail-admins"},
			want: func(t *testing.T, r Request) { require.Equal(t, "mail-admins", r.Approvers) },
		},
		{
			desc: "a manual policy without any approver group is refused",
			n:    ask(nil), pol: with(manual, func(p *Policy) { p.Approvers = "" }),
			wantErr: ErrInvalid, wantMsg: "approvers: no approver group",
		},
		{
			desc: "the policy's approver group wins over the default",
			n:    ask(nil), pol: manual, ctl: Control{DefaultApprovers: "mail-admins"},
			want: func(t *testing.T, r Request) { require.Equal(t, "approvers", r.Approvers) },
		},
		{
			desc: "a policy for another target is refused",
			n:    ask(func(n *NewRequest) { n.Target = `Exchange\Search-Mailbox` }), pol: manual,
			wantErr: ErrInvalid, wantMsg: `policy_id: policy pol-1 covers task "Exchange\\New-MoveRequest", not task "Exchange\\Search-Mailbox"`,
		},
		{
			desc: "a policy for another scope is refused",
			n:    ask(func(n *NewRequest) { n.Scope = ScopeRole }), pol: manual,
			wantErr: ErrInvalid, wantMsg: "policy_id: policy pol-1 covers task",
		},
		{
			desc: "the default duration is capped by the policy",
			n:    ask(nil), pol: with(manual, func(p *Policy) { p.MaxDuration = Duration(time.Hour) }),
			want: func(t *testing.T, r Request) { require.Equal(t, Duration(time.Hour), r.Duration) },
		},
		{
			desc: "a duration of exactly the policy's cap is accepted",
			n:    ask(func(n *NewRequest) { n.Duration = time.Hour }), pol: with(manual, func(p *Policy) { p.MaxDuration = Duration(time.Hour) }),
			want: func(t *testing.T, r Request) { require.Equal(t, Duration(time.Hour), r.Duration) },
		},
		{
			desc: "a duration beyond the policy's cap is refused",
			n:    ask(func(n *NewRequest) { n.Duration = 2 * time.Hour }), pol: with(manual, func(p *Policy) { p.MaxDuration = Duration(time.Hour) }),
			wantErr: ErrInvalid, wantMsg: "duration: 2h0m0s exceeds the maximum of 1h0m0s",
		},
		{
			desc: "a duration beyond max_duration is refused",
			n:    ask(func(n *NewRequest) { n.Duration = 25 * time.Hour }), pol: manual,
			wantErr: ErrInvalid, wantMsg: "duration: 25h0m0s exceeds the maximum of 24h0m0s",
		},
		{
			desc: "a policy's cap above max_duration does not raise it",
			cfg:  func(c *Config) { c.MaxDuration = 2 * time.Hour; c.DefaultDuration = time.Hour },
			n:    ask(func(n *NewRequest) { n.Duration = 3 * time.Hour }), pol: with(manual, func(p *Policy) { p.MaxDuration = Duration(8 * time.Hour) }),
			wantErr: ErrInvalid, wantMsg: "exceeds the maximum of 2h0m0s",
		},
		{
			desc: "the default duration is capped by max_duration's own default",
			cfg:  func(c *Config) { c.DefaultDuration = 8 * time.Hour },
			n:    ask(nil), pol: with(manual, func(p *Policy) { p.MaxDuration = Duration(6 * time.Hour) }),
			want: func(t *testing.T, r Request) { require.Equal(t, Duration(6*time.Hour), r.Duration) },
		},
		{
			desc: "a requester without MFA is refused when the policy requires it",
			n:    ask(nil), pol: with(auto, func(p *Policy) { p.RequireRequesterMFA = true }),
			wantErr: ErrMFARequired, wantMsg: "policy pol-2 requires it of the requester",
		},
		{
			desc: "a requester with MFA is admitted when the policy requires it",
			n:    ask(func(n *NewRequest) { n.Requester = dave }), pol: with(auto, func(p *Policy) { p.RequireRequesterMFA = true }),
			want: func(t *testing.T, r Request) { require.Equal(t, "dave", r.Requester) },
		},
		{
			desc: "the approver MFA rule does not bind the requester",
			n:    ask(nil), pol: with(manual, func(p *Policy) { p.RequireMFA = true }),
			want: func(t *testing.T, r Request) { require.Equal(t, StatusPending, r.Status) },
		},
		{
			desc: "a reason shorter than the policy's minimum is refused",
			n:    ask(func(n *NewRequest) { n.Reason = "short" }), pol: with(manual, func(p *Policy) { p.MinReasonLength = 6 }),
			wantErr: ErrInvalid, wantMsg: "reason: has 5 characters, fewer than the policy's min_reason_length of 6",
		},
		{
			desc: "a reason that does not match the policy's pattern is refused",
			n:    ask(nil), pol: with(manual, func(p *Policy) { p.ReasonPattern = `^CHG-[0-9]+` }),
			wantErr: ErrInvalid, wantMsg: "reason: does not match the policy's reason_pattern",
		},
		{
			desc: "a damaged pattern in a stored policy is the store's failure, not the requester's",
			n:    ask(nil), pol: with(manual, func(p *Policy) { p.ReasonPattern = `^[A-Z` }),
			wantErr: ErrUnavailable, wantMsg: "policy pol-1: reason_pattern",
		},
		{
			desc: "the policy's use cap and the requester's address are kept",
			n:    ask(func(n *NewRequest) { n.Requester.Email = "alice@example.com" }),
			pol:  with(auto, func(p *Policy) { p.MaxUses = 3 }),
			want: func(t *testing.T, r Request) {
				require.Equal(t, 3, r.MaxUses)
				require.Equal(t, "alice@example.com", r.RequesterEmail)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := validConfig(t, tc.cfg)
			r, err := cfg.admit(tc.n, tc.n.Reason, tc.pol, tc.ctl, now)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, tc.wantMsg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.n.Requester.Subject, r.Requester)
			require.Equal(t, tc.n.Reason, r.Reason)
			tc.want(t, r)
		})
	}
}

func TestCheckSubmit(t *testing.T) {
	valid := NewRequest{Requester: alice, Scope: ScopeTask, Target: task, Reason: "why", PolicyID: "pol-1"}
	tests := []struct {
		desc    string
		mod     func(n *NewRequest)
		wantMsg string
	}{
		{desc: "a complete request passes", mod: func(n *NewRequest) {}},
		{desc: "no requester", mod: func(n *NewRequest) { n.Requester = Actor{} }, wantMsg: "requester: must name the requester"},
		{desc: "an unknown scope", mod: func(n *NewRequest) { n.Scope = "tasks" }, wantMsg: `scope: must be one of task, role, rolegroup; got "tasks"`},
		{desc: "a blank target", mod: func(n *NewRequest) { n.Target = " \t" }, wantMsg: "target: must not be empty"},
		{desc: "a blank reason", mod: func(n *NewRequest) { n.Reason = "  " }, wantMsg: "reason: must not be empty"},
		{desc: "a negative duration", mod: func(n *NewRequest) { n.Duration = -time.Minute }, wantMsg: "duration: must be positive, got -1m0s"},
		{desc: "no policy", mod: func(n *NewRequest) { n.PolicyID = "" }, wantMsg: "policy_id: must name the approval policy"},
		{desc: "a policy ID of two key levels", mod: func(n *NewRequest) { n.PolicyID = "pol-1/x" }, wantMsg: `policy_id: no such policy: "pol-1/x"`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			n := valid
			tc.mod(&n)
			err := n.checkSubmit(strings.TrimSpace(n.Reason))
			if tc.wantMsg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, tc.wantMsg)
		})
	}
}

func TestCheckStart(t *testing.T) {
	now := clockStart
	tests := []struct {
		desc  string
		start time.Time
		ok    bool
	}{
		{desc: "none asked for", ok: true},
		{desc: "in the future", start: now.Add(time.Hour), ok: true},
		{desc: "now", start: now, ok: true},
		{desc: "within the leeway", start: now.Add(-startLeeway), ok: true},
		{desc: "past the leeway", start: now.Add(-startLeeway - time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := checkStart(tc.start, now)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, "start_at: 2030-03-04T08:58:59Z is in the past")
		})
	}
}

func TestApproveWindow(t *testing.T) {
	now := clockStart
	tests := []struct {
		desc      string
		start     *time.Time
		wantStart time.Time
	}{
		{desc: "without a start time the grant starts at approval", wantStart: now},
		{desc: "a start time already past starts the grant at approval", start: new(now.Add(-time.Hour)), wantStart: now},
		{desc: "a later start time starts the grant then", start: new(now.Add(time.Hour)), wantStart: now.Add(time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := Request{ID: "req-1", Status: StatusPending, Duration: Duration(30 * time.Minute), StartAt: tc.start}
			r.approve(now)
			require.Equal(t, StatusApproved, r.Status)
			require.Equal(t, tc.wantStart, *r.GrantStart)
			require.Equal(t, tc.wantStart.Add(30*time.Minute), *r.GrantEnd)
			require.Equal(t, *r.GrantEnd, r.ExpiresAt)
			g := grantOf(&r)
			require.Equal(t, *r.GrantStart, g.NotBefore)
			require.Equal(t, *r.GrantEnd, g.ExpiresAt)
			require.Equal(t, "grt-1", g.ID)
		})
	}
}

func TestCheckBreakGlass(t *testing.T) {
	n := NewRequest{Requester: alice, Scope: ScopeTask, Target: task, Reason: "outage"}
	tests := []struct {
		desc    string
		cfg     func(*Config)
		mod     func(n *NewRequest)
		want    time.Duration
		wantMsg string
	}{
		{desc: "no duration asked for: the break-glass default", want: DefaultBreakGlass},
		{desc: "the default follows a lower maximum", cfg: func(c *Config) { c.BreakGlassMax = 30 * time.Minute }, want: 30 * time.Minute},
		{desc: "a duration up to the maximum", mod: func(n *NewRequest) { n.Duration = DefaultBreakGlassMax }, want: DefaultBreakGlassMax},
		{desc: "a duration beyond the maximum", mod: func(n *NewRequest) { n.Duration = 5 * time.Hour }, wantMsg: "duration: 5h0m0s exceeds the break-glass maximum of 4h0m0s"},
		{desc: "a negative duration", mod: func(n *NewRequest) { n.Duration = -time.Hour }, wantMsg: "duration: must be positive"},
		{desc: "a start time", mod: func(n *NewRequest) { n.StartAt = clockStart }, wantMsg: "start_at: break-glass takes effect at once"},
		{desc: "no reason", mod: func(n *NewRequest) { n.Reason = "" }, wantMsg: "reason: must not be empty"},
		{desc: "no policy is needed", mod: func(n *NewRequest) { n.PolicyID = "" }, want: DefaultBreakGlass},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := validConfig(t, tc.cfg)
			n := n
			if tc.mod != nil {
				tc.mod(&n)
			}
			dur, err := cfg.checkBreakGlass(n, n.Reason)
			if tc.wantMsg != "" {
				require.ErrorIs(t, err, ErrInvalid)
				require.ErrorContains(t, err, tc.wantMsg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, dur)
		})
	}
}
