package api

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/grants"
)

// TestUsedUpRequests: a request whose grant's last use is spent reads
// used_up, with its uses, and the list filters on that status; the list
// refuses an unknown status naming every known one.
func TestUsedUpRequests(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	bob := e.token("bob")
	pol, err := e.store.CreatePolicy(ctx, grants.Policy{Scope: grants.ScopeTask, Target: `Exchange\New-MoveRequest`,
		Approval: grants.ApprovalAuto, MaxUses: 2, CreatedBy: "ada"})
	require.NoError(t, err)
	req, err := e.store.Submit(ctx, grants.NewRequest{Requester: grants.Actor{Subject: "bob"}, Scope: grants.ScopeTask,
		Target: pol.Target, Reason: "move", PolicyID: pol.ID})
	require.NoError(t, err)

	get := func() map[string]any {
		r := e.call("GET", "/v1/requests/"+req.ID, bob, "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &m))
		return m
	}
	m := get()
	require.Equal(t, "approved", m["status"])
	require.EqualValues(t, []any{2.0, 0.0, 2.0}, []any{m["max_uses"], m["uses"], m["uses_left"]})

	grant := "grt-" + req.ID[len("req-"):]
	for range 2 {
		require.NoError(t, e.store.UseGrant(ctx, grant, nil))
	}
	m = get()
	require.Equal(t, "used_up", m["status"])
	require.EqualValues(t, []any{2.0, 2.0, 0.0}, []any{m["max_uses"], m["uses"], m["uses_left"]})

	for status, want := range map[string]int{"used_up": 1, "expired": 0, "approved": 0} {
		r := e.call("GET", "/v1/requests?status="+status, bob, "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		var out struct {
			Requests []grants.Request `json:"requests"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.body), &out))
		require.Len(t, out.Requests, want, status)
	}
	r := e.call("GET", "/v1/requests?status=spent", bob, "")
	requireProblem(t, r, http.StatusBadRequest)
	require.Contains(t, r.body, "used_up")
}
