package grants

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSubmitPolicyRules(t *testing.T) {
	tests := []struct {
		desc    string
		policy  Policy
		req     func(n NewRequest) NewRequest
		wantErr error
		wantMsg string
	}{
		{
			desc:    "a requester without MFA is refused when the policy requires it",
			policy:  Policy{RequireRequesterMFA: true},
			wantErr: ErrMFARequired, wantMsg: "requires it of the requester",
		},
		{
			desc:   "a requester with MFA is accepted when the policy requires it",
			policy: Policy{RequireRequesterMFA: true},
			req:    func(n NewRequest) NewRequest { n.Requester = dave; return n },
		},
		{
			desc:   "the approver rule does not bind the requester",
			policy: Policy{RequireMFA: true},
		},
		{
			desc:    "a reason shorter than the minimum is refused",
			policy:  Policy{MinReasonLength: 12},
			req:     func(n NewRequest) NewRequest { n.Reason = "short"; return n },
			wantErr: ErrInvalid, wantMsg: "reason: has 5 characters, fewer than the policy's min_reason_length of 12",
		},
		{
			desc:   "a reason of exactly the minimum is accepted",
			policy: Policy{MinReasonLength: 12},
			req:    func(n NewRequest) NewRequest { n.Reason = "twelve chars"; return n },
		},
		{
			desc:   "the minimum counts characters, not bytes",
			policy: Policy{MinReasonLength: 6},
			req:    func(n NewRequest) NewRequest { n.Reason = "größer"; return n },
		},
		{
			desc:    "surrounding blanks do not count toward the minimum",
			policy:  Policy{MinReasonLength: 6},
			req:     func(n NewRequest) NewRequest { n.Reason = "   abc   "; return n },
			wantErr: ErrInvalid, wantMsg: "reason: has 3 characters",
		},
		{
			desc:   "a reason matching an anchored pattern is accepted",
			policy: Policy{ReasonPattern: `^[A-Z]+-[0-9]+`},
			req:    func(n NewRequest) NewRequest { n.Reason = "CHG-4711 move the mailbox"; return n },
		},
		{
			desc:    "a reason not matching an anchored pattern is refused",
			policy:  Policy{ReasonPattern: `^[A-Z]+-[0-9]+`},
			req:     func(n NewRequest) NewRequest { n.Reason = "move the mailbox, CHG-4711"; return n },
			wantErr: ErrInvalid, wantMsg: "reason: does not match the policy's reason_pattern",
		},
		{
			desc:   "an unanchored pattern matches anywhere",
			policy: Policy{ReasonPattern: `CHG-[0-9]+`},
			req:    func(n NewRequest) NewRequest { n.Reason = "move the mailbox, CHG-4711"; return n },
		},
		{
			desc:    "both reason rules apply",
			policy:  Policy{ReasonPattern: `CHG-[0-9]+`, MinReasonLength: 20},
			req:     func(n NewRequest) NewRequest { n.Reason = "CHG-4711"; return n },
			wantErr: ErrInvalid, wantMsg: "min_reason_length",
		},
		{
			desc:    "the rules apply to an auto policy too",
			policy:  Policy{Approval: ApprovalAuto, RequireRequesterMFA: true},
			wantErr: ErrMFARequired,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var log eventLog
			f := newFixture(t, withEvents(&log))
			p := tc.policy
			if p.Approval == "" {
				p.Approvers = "approvers"
			}
			p = f.policy(p)
			n := request(p.ID)
			if tc.req != nil {
				n = tc.req(n)
			}
			r, err := f.s.Submit(f.ctx(), n)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, tc.wantMsg)
				if errors.Is(tc.wantErr, ErrMFARequired) {
					require.ErrorIs(t, err, ErrForbidden)
				}
				require.Zero(t, f.count(f.s.kRequests), "a refused request stores nothing")
				require.Empty(t, log.all())
				return
			}
			require.NoError(t, err)
			require.Equal(t, strings.TrimSpace(n.Reason), r.Reason)
		})
	}
}

func TestSubmitKeepsRequesterEmail(t *testing.T) {
	f := newFixture(t)
	p := f.policy(Policy{Approvers: "approvers"})
	n := request(p.ID)
	n.Requester.Email = "alice@example.com"
	r := f.submit(n)
	require.Equal(t, "alice@example.com", r.RequesterEmail)
	stored, err := f.s.Request(f.ctx(), r.ID)
	require.NoError(t, err)
	require.Equal(t, "alice@example.com", stored.RequesterEmail)
}

func TestCreatePolicyRules(t *testing.T) {
	base := Policy{Scope: ScopeTask, Target: task, Approval: ApprovalManual}
	with := func(mod func(p *Policy)) Policy { p := base; mod(&p); return p }
	tests := []struct {
		desc    string
		in      Policy
		wantErr string
	}{
		{desc: "all rules together are stored", in: with(func(p *Policy) {
			p.RequireRequesterMFA, p.MinReasonLength, p.ReasonPattern, p.MaxUses = true, 10, `^INC[0-9]+`, 3
		})},
		{desc: "a pattern that does not compile is refused", in: with(func(p *Policy) { p.ReasonPattern = `^[A-Z+` }), wantErr: "reason_pattern:"},
		{desc: "a pattern in another syntax is refused", in: with(func(p *Policy) { p.ReasonPattern = `(?<=INC)[0-9]+` }), wantErr: "reason_pattern:"},
		{desc: "an overlong pattern is refused", in: with(func(p *Policy) { p.ReasonPattern = strings.Repeat("a", maxPatternLen+1) }), wantErr: "reason_pattern: longer than 1024 bytes"},
		{desc: "a negative minimum reason length is refused", in: with(func(p *Policy) { p.MinReasonLength = -1 }), wantErr: "min_reason_length:"},
		{desc: "a negative use cap is refused", in: with(func(p *Policy) { p.MaxUses = -1 }), wantErr: "max_uses:"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			p, err := f.s.CreatePolicy(f.ctx(), tc.in)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalid)
				require.ErrorContains(t, err, tc.wantErr)
				require.Zero(t, f.count(f.s.kPolicies))
				require.Zero(t, f.count(f.s.kPolicyTargets))
				return
			}
			require.NoError(t, err)
			stored, err := f.s.Policy(f.ctx(), p.ID)
			require.NoError(t, err)
			require.Equal(t, p, stored)
			require.True(t, stored.RequireRequesterMFA)
			require.Equal(t, 10, stored.MinReasonLength)
			require.Equal(t, `^INC[0-9]+`, stored.ReasonPattern)
			require.Equal(t, 3, stored.MaxUses)
		})
	}
}

// policyCount reads the stored count of policies ("" when never written).
func (f *fixture) policyCount() string {
	f.t.Helper()
	resp, err := f.cli.Get(f.ctx(), f.s.kPolicyCount)
	require.NoError(f.t, err)
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func TestPolicyPerTarget(t *testing.T) {
	tests := []struct {
		desc    string
		second  Policy
		wantDup bool
	}{
		{desc: "the same scope and target is refused", second: Policy{Scope: ScopeTask, Target: task, Approval: ApprovalAuto}, wantDup: true},
		{desc: "the same target with blanks around is refused", second: Policy{Scope: ScopeTask, Target: " " + task + "\t", Approval: ApprovalManual}, wantDup: true},
		{desc: "the same target in another scope is accepted", second: Policy{Scope: ScopeRole, Target: task, Approval: ApprovalManual}},
		{desc: "another target is accepted", second: Policy{Scope: ScopeTask, Target: task + "2", Approval: ApprovalManual}},
		{desc: "a target differing only in case is another target", second: Policy{Scope: ScopeTask, Target: strings.ToUpper(task), Approval: ApprovalManual}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			first := f.policy(Policy{Approvers: "approvers"})
			_, err := f.s.CreatePolicy(f.ctx(), tc.second)
			if !tc.wantDup {
				require.NoError(t, err)
				require.EqualValues(t, 2, f.count(f.s.kPolicies))
				require.Equal(t, "2", f.policyCount())
				return
			}
			require.ErrorIs(t, err, ErrConflict)
			var exists *PolicyExistsError
			require.ErrorAs(t, err, &exists)
			require.Equal(t, first.ID, exists.ExistingID)
			require.EqualValues(t, 1, f.count(f.s.kPolicies))
			require.Equal(t, "1", f.policyCount())

			// Once the first is deleted, the target is free again.
			_, err = f.s.DeletePolicy(f.ctx(), first.ID)
			require.NoError(t, err)
			require.Equal(t, "0", f.policyCount())
			require.Zero(t, f.count(f.s.kPolicyTargets))
			again, err := f.s.CreatePolicy(f.ctx(), tc.second)
			require.NoError(t, err)
			require.NotEqual(t, first.ID, again.ID)
			require.Equal(t, "1", f.policyCount())
		})
	}
}

func TestPolicyTargetIndexStaleEntry(t *testing.T) {
	tests := []struct {
		desc  string
		value string
	}{
		{desc: "an entry naming a policy that is gone", value: "pol-000000000000"},
		{desc: "an entry that is no policy ID", value: "not/an/id"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.cli.Put(f.ctx(), f.s.policyTargetKey(ScopeTask, task), tc.value)
			require.NoError(t, err)
			p := f.policy(Policy{Approvers: "approvers"})
			resp, err := f.cli.Get(f.ctx(), f.s.policyTargetKey(ScopeTask, task))
			require.NoError(t, err)
			require.Equal(t, p.ID, string(resp.Kvs[0].Value), "the stale entry is replaced")
		})
	}
}

func TestMaxPolicies(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxPolicies = 2 })
	target := func(i int) Policy {
		return Policy{Scope: ScopeTask, Target: fmt.Sprintf("%s-%d", task, i), Approval: ApprovalAuto}
	}
	p1, err := f.s.CreatePolicy(f.ctx(), target(1))
	require.NoError(t, err)
	_, err = f.s.CreatePolicy(f.ctx(), target(2))
	require.NoError(t, err)
	_, err = f.s.CreatePolicy(f.ctx(), target(3))
	require.ErrorIs(t, err, ErrPolicyLimit)
	require.ErrorIs(t, err, ErrConflict)
	require.EqualValues(t, 2, f.count(f.s.kPolicies))
	require.Equal(t, "2", f.policyCount())

	_, err = f.s.DeletePolicy(f.ctx(), p1.ID)
	require.NoError(t, err)
	require.Equal(t, "1", f.policyCount())
	_, err = f.s.CreatePolicy(f.ctx(), target(3))
	require.NoError(t, err, "a deletion makes room")
	require.Equal(t, "2", f.policyCount())
}

func TestConcurrentCreatePolicy(t *testing.T) {
	tests := []struct {
		desc        string
		maxPolicies int
		sameTarget  bool
		wantOK      int
		wantErr     error
	}{
		{desc: "ten creations for one target admit one", sameTarget: true, wantOK: 1, wantErr: ErrConflict},
		{desc: "ten creations under a cap of three admit three", maxPolicies: 3, wantOK: 3, wantErr: ErrPolicyLimit},
		{desc: "ten creations for one target under a cap admit one", maxPolicies: 3, sameTarget: true, wantOK: 1, wantErr: ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			const n = 10
			f := newFixture(t, func(c *Config) { c.MaxPolicies = tc.maxPolicies })
			type result struct {
				p   Policy
				err error
			}
			results := make(chan result, n)
			begin := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				p := Policy{Scope: ScopeTask, Target: task, Approval: ApprovalManual, Approvers: "approvers"}
				if !tc.sameTarget {
					p.Target = fmt.Sprintf("%s-%d", task, i)
				}
				wg.Go(func() {
					<-begin
					got, err := f.s.CreatePolicy(f.ctx(), p)
					results <- result{got, err}
				})
			}
			close(begin)
			wg.Wait()
			close(results)
			var winners []string
			var refused []error
			for r := range results {
				if r.err == nil {
					winners = append(winners, r.p.ID)
					continue
				}
				require.ErrorIs(t, r.err, tc.wantErr)
				refused = append(refused, r.err)
			}
			require.Len(t, winners, tc.wantOK)
			require.Len(t, refused, n-tc.wantOK)
			if tc.sameTarget {
				for _, err := range refused {
					var exists *PolicyExistsError
					require.ErrorAs(t, err, &exists)
					require.Equal(t, winners[0], exists.ExistingID)
				}
			}
			require.EqualValues(t, tc.wantOK, f.count(f.s.kPolicies))
			require.EqualValues(t, tc.wantOK, f.count(f.s.kPolicyTargets))
			require.Equal(t, strconv.Itoa(tc.wantOK), f.policyCount())
		})
	}
}
