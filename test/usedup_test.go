package test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUsedUpGrant: a grant capped with --max-uses ends with its last use.
// The request then reads used_up (not expired) while its window still runs,
// `request get` shows the uses, the next call is refused with grant-used-up
// naming the task and the command that asks again, and the audit log
// records the last allowed call before the request.used_up change.
func TestUsedUpGrant(t *testing.T) {
	s := startDev(t)
	proxyURL := "http://" + s.proxyAddr
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	bob := s.token("--sub", "bob")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", journalTask, "--approval", "auto", "--max-uses", "2")

	ruleURL := proxyURL + "/exchange/journal-rules/rule-1"
	deleteRule := func() reply { return do(t, "DELETE", ruleURL, bob, "") }
	// POST /v1/check judges without spending a use.
	wouldPass := func() bool {
		r := do(t, "POST", "http://"+s.controlAddr+"/v1/check", bob, `{"method":"DELETE","url":"`+ruleURL+`"}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		return r.json(t)["allowed"] == true
	}
	require.Eventually(t, func() bool { return deleteRule().status == http.StatusForbidden }, 5*time.Second, 20*time.Millisecond)

	id := s.request(bob, "--task", journalTask, "--reason", "retire rule-1", "--duration", "1h")
	st := s.status(bob, id)
	require.Equal(t, "approved", st["status"])
	require.EqualValues(t, 2, st["max_uses"])
	require.EqualValues(t, 0, st["uses"])
	require.EqualValues(t, 2, st["uses_left"])
	require.Eventually(t, wouldPass, 5*time.Second, 20*time.Millisecond)

	require.NotEqual(t, http.StatusForbidden, deleteRule().status, "first use")
	require.EqualValues(t, 1, s.status(bob, id)["uses_left"])
	require.NotEqual(t, http.StatusForbidden, deleteRule().status, "second and last use")

	refused := deleteRule()
	require.Equal(t, http.StatusForbidden, refused.status)
	p := refused.json(t)
	require.Equal(t, "urn:elevate:problem:grant-used-up", p["type"], string(refused.body))
	require.Equal(t, journalTask, p["task"])
	require.Equal(t, "elevate request new --task '"+journalTask+"' --reason '<why>'", p["request_command"])
	require.Contains(t, p["detail"], id)

	st = s.status(bob, id)
	require.Equal(t, "used_up", st["status"], "its window still runs: used up, not expired")
	require.EqualValues(t, 2, st["uses"])
	require.EqualValues(t, 0, st["uses_left"])
	end, err := time.Parse(time.RFC3339Nano, st["grant_end"].(string))
	require.NoError(t, err)
	require.True(t, end.After(time.Now()), "the grant's end is still ahead")
	table := s.ok(bob, "request", "get", id)
	require.Contains(t, table, "used_up")
	require.Regexp(t, `uses:\s+2 of 2, 0 left`, table)

	var listed struct {
		Requests []map[string]any `json:"requests"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.ok(bob, "-o", "json", "request", "list", "--status", "used_up")), &listed))
	require.Len(t, listed.Requests, 1)
	require.Equal(t, id, listed.Requests[0]["id"])

	// The audit log: the last allowed call, then the change it caused (the
	// outcome records are written after the answer, and left out).
	var events []string
	require.Eventually(t, func() bool {
		events = events[:0]
		for _, rec := range s.auditRecords() {
			if e, _ := rec["event"].(string); rec["request_id"] == id && e != "outcome" && e != "request.submitted" && e != "request.approved" {
				events = append(events, e)
			}
		}
		return slices.Contains(events, "request.used_up")
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"allowed", "allowed", "request.used_up", "grant_required"}, events,
		"the last allowed call is recorded before the request.used_up change, and nothing reads expired")
}
