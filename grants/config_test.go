package grants

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestConfigValidate(t *testing.T) {
	cli := &clientv3.Client{}
	tests := []struct {
		desc    string
		cfg     Config
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{
			desc: "defaults fill every optional key",
			cfg:  Config{Client: cli},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "/elevate/", c.Prefix)
				require.NotNil(t, c.Now)
				require.Equal(t, 4*time.Hour, c.DefaultDuration)
				require.Equal(t, 24*time.Hour, c.MaxDuration)
				require.Equal(t, 24*time.Hour, c.PendingTTL)
				require.Equal(t, 3*time.Second, c.StaleAfter)
				require.Equal(t, time.Second, c.SweepInterval)
				require.Equal(t, 5*time.Second, c.ElectionTTL)
				require.Zero(t, c.MaxPolicies)
				require.Equal(t, time.Hour, c.BreakGlassDuration)
				require.Equal(t, 4*time.Hour, c.BreakGlassMax)
			},
		},
		{
			desc: "the break-glass defaults stay under a low cap",
			cfg:  Config{Client: cli, DefaultDuration: 30 * time.Minute, MaxDuration: 2 * time.Hour, BreakGlassMax: 45 * time.Minute},
			check: func(t *testing.T, c Config) {
				require.Equal(t, 45*time.Minute, c.BreakGlassMax)
				require.Equal(t, 45*time.Minute, c.BreakGlassDuration)
			},
		},
		{
			desc: "the break-glass cap defaults to a maximum duration below 4h",
			cfg:  Config{Client: cli, DefaultDuration: 30 * time.Minute, MaxDuration: 2 * time.Hour},
			check: func(t *testing.T, c Config) {
				require.Equal(t, 2*time.Hour, c.BreakGlassMax)
				require.Equal(t, time.Hour, c.BreakGlassDuration)
			},
		},
		{
			desc: "reviewers are trimmed",
			cfg:  Config{Client: cli, BreakGlassReviewers: " security "},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "security", c.BreakGlassReviewers)
			},
		},
		{
			desc: "explicit values are kept",
			cfg:  Config{Client: cli, Prefix: "/x/", DefaultDuration: time.Hour, MaxDuration: 2 * time.Hour, PendingTTL: time.Minute, StaleAfter: time.Second},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "/x/", c.Prefix)
				require.Equal(t, time.Hour, c.DefaultDuration)
				require.Equal(t, 2*time.Hour, c.MaxDuration)
				require.Equal(t, time.Minute, c.PendingTTL)
				require.Equal(t, time.Second, c.StaleAfter)
			},
		},
		{desc: "prefix must start with a slash", cfg: Config{Client: cli, Prefix: "elevate/"}, wantErr: `etcd.prefix: must start with "/"`},
		{desc: "prefix must end with a slash", cfg: Config{Client: cli, Prefix: "/elevate"}, wantErr: `etcd.prefix: must end with "/"`},
		{desc: "negative default duration", cfg: Config{Client: cli, DefaultDuration: -time.Hour}, wantErr: "requests.default_duration: must not be negative"},
		{desc: "negative max duration", cfg: Config{Client: cli, MaxDuration: -time.Hour}, wantErr: "requests.max_duration: must not be negative"},
		{desc: "negative pending ttl", cfg: Config{Client: cli, PendingTTL: -time.Hour}, wantErr: "requests.pending_ttl: must not be negative"},
		{desc: "negative stale after", cfg: Config{Client: cli, StaleAfter: -time.Second}, wantErr: "grants.stale_after: must not be negative"},
		{desc: "stale after too short to probe", cfg: Config{Client: cli, StaleAfter: time.Millisecond}, wantErr: "grants.stale_after: must be at least 30ms"},
		{desc: "default duration above the cap", cfg: Config{Client: cli, DefaultDuration: 9 * time.Hour, MaxDuration: 8 * time.Hour}, wantErr: "requests.default_duration: 9h0m0s exceeds requests.max_duration"},
		{desc: "default duration above the default cap", cfg: Config{Client: cli, DefaultDuration: 25 * time.Hour}, wantErr: "requests.default_duration: 25h0m0s exceeds requests.max_duration (24h0m0s)"},
		{desc: "negative sweep interval", cfg: Config{Client: cli, SweepInterval: -time.Second}, wantErr: "grants.sweep_interval: must not be negative"},
		{desc: "sweep interval too short", cfg: Config{Client: cli, SweepInterval: time.Millisecond}, wantErr: "grants.sweep_interval: must be at least 10ms"},
		{desc: "negative election ttl", cfg: Config{Client: cli, ElectionTTL: -time.Second}, wantErr: "grants.election_ttl: must not be negative"},
		{desc: "election ttl too short", cfg: Config{Client: cli, ElectionTTL: 500 * time.Millisecond}, wantErr: "grants.election_ttl: must be at least 1s"},
		{desc: "negative policy cap", cfg: Config{Client: cli, MaxPolicies: -1}, wantErr: "requests.max_policies: must not be negative"},
		{desc: "negative break-glass cap", cfg: Config{Client: cli, BreakGlassMax: -time.Hour}, wantErr: "requests.break_glass_max: must not be negative"},
		{desc: "break-glass cap above the maximum duration", cfg: Config{Client: cli, BreakGlassMax: 200 * time.Hour}, wantErr: "requests.break_glass_max: 200h0m0s exceeds requests.max_duration"},
		{desc: "negative break-glass duration", cfg: Config{Client: cli, BreakGlassDuration: -time.Hour}, wantErr: "requests.break_glass_duration: must not be negative"},
		{desc: "break-glass duration above its cap", cfg: Config{Client: cli, BreakGlassDuration: 5 * time.Hour}, wantErr: "requests.break_glass_duration: 5h0m0s exceeds requests.break_glass_max"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := tc.cfg
			err := cfg.Validate()
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				_, nerr := New(tc.cfg)
				require.ErrorContains(t, nerr, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, cfg)
		})
	}
	// Validate checks the settings alone; New also checks the wiring.
	require.NoError(t, (&Config{}).Validate())
	_, err := New(Config{})
	require.ErrorContains(t, err, "grants.client: required")
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		desc    string
		in      string
		want    Duration
		wantErr bool
	}{
		{desc: "hours", in: `"4h"`, want: Duration(4 * time.Hour)},
		{desc: "canonical form", in: `"1h30m0s"`, want: Duration(90 * time.Minute)},
		{desc: "zero", in: `"0s"`, want: 0},
		{desc: "a number is refused", in: `3600`, wantErr: true},
		{desc: "a bad unit is refused", in: `"4 hours"`, wantErr: true},
		{desc: "null is refused", in: `null`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tc.in), &d)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, d)
			out, err := json.Marshal(d)
			require.NoError(t, err)
			require.Equal(t, `"`+time.Duration(tc.want).String()+`"`, string(out))
		})
	}
}

func TestRequestJSONShape(t *testing.T) {
	start := clockStart.Add(time.Hour)
	r := Request{ID: "req-1", Duration: Duration(4 * time.Hour), StartAt: &start, Status: StatusPending}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "4h0m0s", m["duration"])
	require.Equal(t, "pending", m["status"])
	require.Contains(t, m, "start_at")
	require.NotContains(t, m, "denial")
	require.NotContains(t, m, "grant_start")

	require.NotContains(t, m, "max_uses")
	require.NotContains(t, m, "uses", "uses are shown only where they are counted")
	require.NotContains(t, m, "uses_left")

	// A capped grant's request shows its uses, none spent included, and
	// what is left of them; reading it back keeps the count.
	for _, tc := range []struct{ uses, left int }{{0, 3}, {2, 1}, {3, 0}} {
		b, err = json.Marshal(Request{ID: "req-2", MaxUses: 3, Uses: tc.uses, Status: StatusApproved})
		require.NoError(t, err)
		m = map[string]any{}
		require.NoError(t, json.Unmarshal(b, &m))
		require.EqualValues(t, 3, m["max_uses"])
		require.EqualValues(t, tc.uses, m["uses"])
		require.EqualValues(t, tc.left, m["uses_left"])
		var back Request
		require.NoError(t, json.Unmarshal(b, &back))
		require.Equal(t, tc.uses, back.Uses)
		require.Equal(t, "req-2", back.ID)
	}

	b, err = json.Marshal(Policy{ID: "pol-1", Approvals: 1})
	require.NoError(t, err)
	require.NotContains(t, string(b), "max_duration", "a policy without its own cap omits it")

	b, err = json.Marshal(ControlPatch{Enabled: new(true)})
	require.NoError(t, err)
	require.JSONEq(t, `{"enabled":true}`, string(b))
}

func TestErrorFamilies(t *testing.T) {
	tests := []struct {
		desc   string
		err    error
		parent error
	}{
		{desc: "self approval is forbidden", err: ErrSelfApproval, parent: ErrForbidden},
		{desc: "not an approver is forbidden", err: ErrNotApprover, parent: ErrForbidden},
		{desc: "missing MFA is forbidden", err: ErrMFARequired, parent: ErrForbidden},
		{desc: "not pending is a conflict", err: ErrNotPending, parent: ErrConflict},
		{desc: "already approved is a conflict", err: ErrAlreadyApproved, parent: ErrConflict},
		{desc: "not approved is a conflict", err: ErrNotApproved, parent: ErrConflict},
		{desc: "used up is a conflict", err: ErrUsedUp, parent: ErrConflict},
		{desc: "a duplicate is a conflict", err: &DuplicateError{ExistingID: "req-1"}, parent: ErrConflict},
		{desc: "the policy limit is a conflict", err: ErrPolicyLimit, parent: ErrConflict},
		{desc: "a second policy for a target is a conflict", err: &PolicyExistsError{ExistingID: "pol-1"}, parent: ErrConflict},
	}
	all := []error{ErrInvalid, ErrNotFound, ErrConflict, ErrForbidden, ErrUnavailable}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			wrapped := errors.Join(errors.New("context"), tc.err)
			require.ErrorIs(t, wrapped, tc.err)
			require.ErrorIs(t, wrapped, tc.parent)
			for _, other := range all {
				if other != tc.parent {
					require.NotErrorIs(t, wrapped, other)
				}
			}
		})
	}
	require.ErrorIs(t, ErrUsedUp, ErrNotApproved, "a used-up grant is one that cannot be used")
	var dup *DuplicateError
	require.ErrorAs(t, errors.Join(&DuplicateError{ExistingID: "req-7"}), &dup)
	require.Equal(t, "req-7", dup.ExistingID)
}
