package policy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// BenchmarkEval measures one decision on the default bundle. The "1000
// policies" cases hold 1,000 approval policies, most of them on tasks of
// other upstreams, to show that the lookup does not grow with their number.
// BenchmarkEval evaluates each case with Rego (the decision cache off) and
// from the decision cache (its default).
func BenchmarkEval(b *testing.B) {
	ctx := context.Background()
	cached, err := policy.New(ctx, policy.Config{Bundle: defaultBundle()})
	require.NoError(b, err)
	rego, err := policy.New(ctx, policy.Config{Bundle: defaultBundle(), CacheSize: -1})
	require.NoError(b, err)

	many := policy.State{Control: policy.Control{Enabled: true, DefaultApprovers: "approvers", SystemAccounts: []string{"svc-backup"}}}
	for i := range 997 {
		many.Policies = append(many.Policies, policy.ApprovalPolicy{
			ID: fmt.Sprintf("p-%04d", i), Scope: "task", Target: fmt.Sprintf(`Other\Task-%04d`, i), Approval: "manual",
		})
	}
	many.Policies = append(many.Policies,
		policy.ApprovalPolicy{ID: "p-role", Scope: "role", Target: `Exchange\Mailbox Import Export`, Approval: "manual"},
		policy.ApprovalPolicy{ID: "p-group", Scope: "rolegroup", Target: `Exchange\Organization Management`, Approval: "manual"},
		policy.ApprovalPolicy{ID: "p-task", Scope: "task", Target: `Exchange\Search-Mailbox`, Approval: "manual"},
	)
	require.Len(b, many.Policies, 1000)
	few := many
	few.Policies = many.Policies[990:]

	search := call("POST", "mailboxes", "mbx-1", "search")
	withGrants := search
	for i := range 5 {
		withGrants.Grants = append(withGrants.Grants, policy.Grant{
			ID: fmt.Sprintf("g-%d", i), Scope: "task", Target: fmt.Sprintf(`Other\Task-%04d`, i),
			NotBefore: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour),
		})
	}
	withGrants.Grants = append(withGrants.Grants, liveGrant("g-role", "role", `Exchange\Mailbox Import Export`))
	system := search
	system.Subject.ID = "svc-backup"

	cases := []struct {
		desc  string
		state policy.State
		in    policy.Input
		want  policy.Outcome
	}{
		{"ungated read", policy.State{Control: policy.Control{Enabled: true}}, call("GET", "mailboxes", "mbx-1"), policy.Allow},
		{"unknown call", policy.State{Control: policy.Control{Enabled: true}}, call("GET", "nowhere"), policy.Deny},
		{"10 policies, grant required", few, search, policy.GrantRequired},
		{"1000 policies, grant required", many, search, policy.GrantRequired},
		{"10 policies, 6 grants", few, withGrants, policy.Allow},
		{"1000 policies, system account", many, system, policy.Allow},
		{"1000 policies, 6 grants", many, withGrants, policy.Allow},
	}
	for _, engine := range []struct {
		name string
		e    *policy.Engine
	}{{"rego", rego}, {"cached", cached}} {
		for _, bc := range cases {
			b.Run(engine.name+"/"+bc.desc, func(b *testing.B) {
				require.NoError(b, engine.e.SetState(ctx, bc.state))
				d, err := engine.e.Eval(ctx, bc.in, t0)
				require.NoError(b, err)
				require.Equal(b, bc.want, d.Outcome, d.Reason)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := engine.e.Eval(ctx, bc.in, t0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkNew measures loading the default bundle: compile, prepare, read
// the catalog and prove the bundle on every catalogued route. Each load
// differs by one data file, so that no proof is remembered.
func BenchmarkNew(b *testing.B) {
	ctx := context.Background()
	n := 0
	for b.Loop() {
		n++
		bundle := bundleWith(b, map[string]string{"bench/data.json": fmt.Sprintf(`{"load": %d}`, n)})
		_, err := policy.New(ctx, policy.Config{Bundle: bundle})
		require.NoError(b, err)
	}
}
