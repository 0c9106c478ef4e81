package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/grants"
)

// TestReadYourWrites: the side API answers a change only once this
// replica's view has it, so the caller's next call through the same
// replica sees the change at once, without polling: the grant of an
// approval is in the view the proxied path reads (LiveGrants) and a check
// passes; a revocation is gone from it; a policy, a control change, a
// break-glass grant likewise.
func TestReadYourWrites(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit = -1 })
	admin := e.token("ada", "admins")
	bob := e.token("bob")
	carol := e.token("carol", "approvers")
	olga := e.token("olga", "break-glass")
	const moveURL = "http://127.0.0.1/exchange/mailboxes/alice/move-requests"
	decode := func(r reply, status int, v any) {
		t.Helper()
		require.Equal(t, status, r.status, r.body)
		require.NoError(t, json.Unmarshal([]byte(r.body), v))
	}
	check := func(tok string) CheckResult {
		t.Helper()
		var out CheckResult
		decode(e.call("POST", "/v1/check", tok, `{"method":"POST","url":"`+moveURL+`"}`), http.StatusOK, &out)
		return out
	}
	grantOf := func(sub, reqID string) bool {
		return slices.ContainsFunc(e.store.LiveGrants(sub, time.Now()), func(g grants.Grant) bool { return g.RequestID == reqID })
	}
	policies := func() []grants.Policy {
		t.Helper()
		var out struct {
			Policies []grants.Policy `json:"policies"`
		}
		decode(e.call("GET", "/v1/policies", admin, ""), http.StatusOK, &out)
		return out.Policies
	}
	hasPolicy := func(id string) bool {
		return slices.ContainsFunc(policies(), func(p grants.Policy) bool { return p.ID == id })
	}

	var ctl ControlView
	decode(e.call("PATCH", "/v1/control", admin, `{"enabled":true,"default_approvers":"approvers"}`), http.StatusOK, &ctl)
	decode(e.call("GET", "/v1/control", admin, ""), http.StatusOK, &ctl)
	require.True(t, ctl.Enabled)
	require.Equal(t, "approvers", ctl.DefaultApprovers)

	var pol grants.Policy
	decode(e.call("POST", "/v1/policies", admin, `{"scope":"task","target":"Exchange\\New-MoveRequest","approval":"manual"}`), http.StatusCreated, &pol)
	require.True(t, hasPolicy(pol.ID), "the new policy is listed")
	require.False(t, check(bob).Allowed, "the task is gated at once")

	for i := range 10 {
		var q grants.Request
		decode(e.call("POST", "/v1/requests", bob, `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"move"}`), http.StatusCreated, &q)
		decode(e.call("POST", "/v1/requests/"+q.ID+"/approve", carol, `{"comment":"ok"}`), http.StatusOK, &q)
		require.Equal(t, grants.StatusApproved, q.Status)
		require.True(t, grantOf("bob", q.ID), "round %d: the approval's grant is in the view", i)
		require.True(t, check(bob).Allowed, "round %d: the call passes", i)

		decode(e.call("POST", "/v1/requests/"+q.ID+"/revoke", bob, `{}`), http.StatusOK, &q)
		require.Equal(t, grants.StatusRevoked, q.Status)
		require.False(t, grantOf("bob", q.ID), "round %d: the revoked grant is gone from the view", i)
		require.False(t, check(bob).Allowed, "round %d: the call is refused again", i)
	}

	var bg grants.Request
	decode(e.call("POST", "/v1/requests", olga, `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"outage","break_glass":true}`), http.StatusCreated, &bg)
	require.True(t, grantOf("olga", bg.ID), "the break-glass grant is in the view")

	decode(e.call("DELETE", "/v1/policies/"+pol.ID, admin, ""), http.StatusOK, &pol)
	require.False(t, hasPolicy(pol.ID), "the deleted policy is gone from the list")
	require.True(t, check(bob).Allowed, "the task is no longer gated")

	decode(e.call("PATCH", "/v1/control", admin, `{"default_approvers":"mail-admins"}`), http.StatusOK, &ctl)
	decode(e.call("GET", "/v1/control", admin, ""), http.StatusOK, &ctl)
	require.Equal(t, "mail-admins", ctl.DefaultApprovers)
}
