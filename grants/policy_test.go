package grants

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCreatePolicy(t *testing.T) {
	tests := []struct {
		desc    string
		in      Policy
		wantErr string
		check   func(t *testing.T, p Policy)
	}{
		{
			desc: "a manual task policy gets an ID, a creation time and one approval",
			in:   Policy{ID: "pol-mine", Scope: ScopeTask, Target: " " + task + " ", Approval: ApprovalManual, Approvers: " approvers ", CreatedBy: "admin"},
			check: func(t *testing.T, p Policy) {
				require.True(t, strings.HasPrefix(p.ID, "pol-"), p.ID)
				require.NotEqual(t, "pol-mine", p.ID, "a given ID is ignored")
				require.Equal(t, task, p.Target)
				require.Equal(t, "approvers", p.Approvers)
				require.Equal(t, 1, p.Approvals)
				require.True(t, clockStart.Equal(p.CreatedAt))
				require.Equal(t, "admin", p.CreatedBy)
			},
		},
		{
			desc: "an auto role group policy with a cap and MFA",
			in:   Policy{Scope: ScopeRoleGroup, Target: `Exchange\Organization Management`, Approval: ApprovalAuto, Approvals: 3, MaxDuration: Duration(time.Hour), RequireMFA: true},
			check: func(t *testing.T, p Policy) {
				require.Equal(t, ScopeRoleGroup, p.Scope)
				require.Equal(t, 3, p.Approvals)
				require.Equal(t, Duration(time.Hour), p.MaxDuration)
				require.True(t, p.RequireMFA)
			},
		},
		{desc: "an unknown scope is refused", in: Policy{Scope: "tenant", Target: task, Approval: ApprovalManual}, wantErr: "scope:"},
		{desc: "an empty target is refused", in: Policy{Scope: ScopeTask, Target: "  ", Approval: ApprovalManual}, wantErr: "target:"},
		{desc: "a missing approval type is refused", in: Policy{Scope: ScopeTask, Target: task}, wantErr: "approval:"},
		{desc: "an unknown approval type is refused", in: Policy{Scope: ScopeTask, Target: task, Approval: "maybe"}, wantErr: "approval:"},
		{desc: "a negative approval count is refused", in: Policy{Scope: ScopeTask, Target: task, Approval: ApprovalManual, Approvals: -1}, wantErr: "approvals:"},
		{desc: "a negative maximum duration is refused", in: Policy{Scope: ScopeTask, Target: task, Approval: ApprovalManual, MaxDuration: Duration(-time.Hour)}, wantErr: "max_duration:"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			p, err := f.s.CreatePolicy(f.ctx(), tc.in)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalid)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, p)
			stored, err := f.s.Policy(f.ctx(), p.ID)
			require.NoError(t, err)
			require.Equal(t, p, stored)
		})
	}
}

func TestDeletePolicy(t *testing.T) {
	f := newFixture(t)
	p := f.policy(Policy{Approvers: "approvers"})
	got, err := f.s.DeletePolicy(f.ctx(), p.ID)
	require.NoError(t, err)
	require.Greater(t, got.Revision, p.Revision, "the answer carries the revision of the deletion")
	got.Revision = p.Revision
	require.Equal(t, p, got)
	_, err = f.s.Policy(f.ctx(), p.ID)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = f.s.DeletePolicy(f.ctx(), p.ID)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestUpdateControl(t *testing.T) {
	type step struct {
		patch   ControlPatch
		want    Control
		wantErr error
	}
	tests := []struct {
		desc  string
		steps []step
	}{
		{
			desc: "an empty patch on an absent record reads disabled",
			steps: []step{
				{patch: ControlPatch{}, want: Control{}},
			},
		},
		{
			desc: "enabling keeps the approvers, disabling keeps everything else",
			steps: []step{
				{patch: ControlPatch{DefaultApprovers: new("approvers"), SystemAccounts: &[]string{"svc-backup"}}, want: Control{DefaultApprovers: "approvers", SystemAccounts: []string{"svc-backup"}}},
				{patch: ControlPatch{Enabled: new(true)}, want: Control{Enabled: true, DefaultApprovers: "approvers", SystemAccounts: []string{"svc-backup"}}},
				{patch: ControlPatch{Enabled: new(false)}, want: Control{DefaultApprovers: "approvers", SystemAccounts: []string{"svc-backup"}}},
			},
		},
		{
			desc: "system accounts are replaced as a whole and can be cleared",
			steps: []step{
				{patch: ControlPatch{SystemAccounts: &[]string{"a", " b "}}, want: Control{SystemAccounts: []string{"a", "b"}}},
				{patch: ControlPatch{SystemAccounts: &[]string{}}, want: Control{SystemAccounts: []string{}}},
			},
		},
		{
			desc: "an empty system account is refused and changes nothing",
			steps: []step{
				{patch: ControlPatch{Enabled: new(true)}, want: Control{Enabled: true}},
				{patch: ControlPatch{Enabled: new(false), SystemAccounts: &[]string{"a", " "}}, wantErr: ErrInvalid},
				{patch: ControlPatch{}, want: Control{Enabled: true}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := newFixture(t)
			var last Control
			for i, st := range tc.steps {
				before, after, err := f.s.UpdateControl(f.ctx(), st.patch)
				if st.wantErr != nil {
					require.ErrorIs(t, err, st.wantErr, "step %d", i)
					continue
				}
				require.NoError(t, err, "step %d", i)
				require.Equal(t, last, before, "step %d: before", i)
				require.Positive(t, after.Revision, "step %d", i)
				require.Greater(t, after.Revision, before.Revision, "step %d", i)
				want := st.want
				want.Revision = after.Revision
				require.Equal(t, want, after, "step %d: after", i)
				last = after
			}
		})
	}
}
