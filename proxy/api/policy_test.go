package api

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/grants"
)

// TestPolicyApprovals: approvals left out (or null) is the default, one
// approver; an explicit 0 is refused, never taken for the default, and
// changes nothing.
func TestPolicyApprovals(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.token("ada", "admins")
	for _, tc := range []struct {
		desc, target, approvals string // approvals: the JSON member, "" for none
		status, want            int
	}{
		{"left out", `Exchange\\New-MoveRequest`, ``, http.StatusCreated, 1},
		{"null", `Exchange\\Search-Mailbox`, `,"approvals":null`, http.StatusCreated, 1},
		{"two", `Exchange\\New-JournalRule`, `,"approvals":2`, http.StatusCreated, 2},
		{"zero", `Exchange\\Remove-JournalRule`, `,"approvals":0`, http.StatusBadRequest, 0},
		{"negative", `Exchange\\Remove-JournalRule`, `,"approvals":-1`, http.StatusBadRequest, 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			before := len(e.store.Policies())
			r := e.call("POST", "/v1/policies", admin, `{"scope":"task","target":"`+tc.target+`","approval":"manual"`+tc.approvals+`}`)
			if tc.status != http.StatusCreated {
				requireProblem(t, r, tc.status)
				require.Contains(t, r.body, "approvals: must be at least 1")
				require.Len(t, e.store.Policies(), before, "nothing created")
				return
			}
			require.Equal(t, tc.status, r.status, r.body)
			var p grants.Policy
			require.NoError(t, json.Unmarshal([]byte(r.body), &p))
			require.Equal(t, tc.want, p.Approvals)
			// The next case counts the policies in the store's watched view.
			require.Eventually(t, func() bool { return len(e.store.Policies()) == before+1 }, 10*time.Second, 5*time.Millisecond)
		})
	}
}
