package console_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/grants"
)

// TestUsedUpRequestShown: the request page shows a grant's uses and what
// is left of them, and a used-up request as such, here and in the list.
func TestUsedUpRequestShown(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	pol, err := e.store.CreatePolicy(ctx, grants.Policy{Scope: grants.ScopeTask, Target: moveTask, Approval: grants.ApprovalAuto, MaxUses: 2, CreatedBy: "root"})
	require.NoError(t, err)
	req, err := e.store.Submit(ctx, grants.NewRequest{Requester: grants.Actor{Subject: "bob"}, Scope: grants.ScopeTask, Target: moveTask,
		Reason: "move alice", PolicyID: pol.ID})
	require.NoError(t, err)
	bob := e.login("bob")

	p := bob.get("/requests/" + req.ID)
	require.Contains(t, p.body, `data-testid="status">approved<`)
	require.Contains(t, p.body, `data-testid="uses">0 of 2, 2 left<`)

	grant := "grt-" + strings.TrimPrefix(req.ID, "req-")
	for range 2 {
		require.NoError(t, e.store.UseGrant(ctx, grant, nil))
	}
	p = bob.get("/requests/" + req.ID)
	require.Contains(t, p.body, `data-testid="status">used_up<`)
	require.Contains(t, p.body, `data-testid="uses">2 of 2, 0 left<`)
	require.NotContains(t, p.body, `/revoke"`, "a used-up grant has nothing to revoke")
	require.Contains(t, bob.get("/requests").body, `<span class="status status-used_up">used_up</span>`)
}
