package grants

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConstraintCheck(t *testing.T) {
	tests := []struct {
		c    Constraint
		want string // "" when accepted
	}{
		{c: nil},
		{c: Constraint{"namespace": "prod"}},
		{c: Constraint{"namespace": "prod", "name": "web-7d9f"}},
		{c: Constraint{"Namespace": "prod"}, want: "not an attribute name"},
		{c: Constraint{"name-space": "prod"}, want: "not an attribute name"},
		{c: Constraint{"namespace": ""}, want: "must not be empty"},
		{c: Constraint{"namespace": "prod dev"}, want: "white space"},
		{c: Constraint{"namespace": "prod\n"}, want: "white space"},
		{c: Constraint{"name": strings.Repeat("a", 254)}, want: "longer than"},
		{c: Constraint{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1", "g": "1", "h": "1", "i": "1"}, want: "at most"},
	}
	for _, tc := range tests {
		err := tc.c.check()
		if tc.want == "" {
			require.NoError(t, err, "%v", tc.c)
			continue
		}
		require.ErrorIs(t, err, ErrInvalid, "%v", tc.c)
		require.ErrorContains(t, err, tc.want)
	}
	require.Equal(t, "name=web, namespace=prod", Constraint{"namespace": "prod", "name": "web"}.String())
}

// TestConstrainedRequests: the constraint travels from the request to its
// grant; requests for one target under other constraints are not
// duplicates; a policy that requires a constraint refuses a request
// without it.
func TestConstrainedRequests(t *testing.T) {
	f := newFixture(t)
	p := f.policy(Policy{Approvers: "approvers", RequireConstraint: []string{"namespace"}})

	n := request(p.ID)
	_, err := f.s.Submit(f.ctx(), n)
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "requires the grant to be narrowed by namespace (for example --namespace)")

	n.Constraint = Constraint{"namespace": "prod"}
	prod := f.submit(n)
	require.Equal(t, Constraint{"namespace": "prod"}, prod.Constraint)
	n.Constraint = Constraint{"namespace": "staging"}
	staging := f.submit(n) // not a duplicate of prod
	_, err = f.s.Submit(f.ctx(), n)
	var dup *DuplicateError
	require.ErrorAs(t, err, &dup)
	require.Equal(t, staging.ID, dup.ExistingID)

	approved, err := f.s.Approve(f.ctx(), prod.ID, bob, "ok")
	require.NoError(t, err)
	require.Equal(t, StatusApproved, approved.Status)
	f.run()
	live := f.s.LiveGrants("alice", f.clock.Now())
	require.Len(t, live, 1)
	require.Equal(t, Constraint{"namespace": "prod"}, live[0].Constraint)

	_, err = f.s.CreatePolicy(f.ctx(), Policy{Scope: ScopeTask, Target: "x", Approval: ApprovalAuto, RequireConstraint: []string{"Namespace"}})
	require.ErrorIs(t, err, ErrInvalid)
}
