package test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	searchTask = `Exchange\Search-Mailbox`
	importRole = `Exchange\Mailbox Import Export`
)

// refused runs the CLI and requires failure with the given status in the
// one-line reason.
func (s *server) refused(token, status string, args ...string) string {
	s.t.Helper()
	r := s.cli(token, args...)
	require.Equal(s.t, 1, r.code, "elevate %v should fail: %s", args, r.stdout)
	require.Contains(s.t, r.stderr, status, "elevate %v", args)
	require.Equal(s.t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
	return r.stderr
}

// TestLifecycle walks the request lifecycle through the CLI: N-of-M
// approval, MFA at approval, auto approval through a role, revoke, a start
// time in the future, duration caps, justification rules, system accounts,
// disabling, and break-glass.
func TestLifecycle(t *testing.T) {
	s := startDev(t)
	proxy := "http://" + s.proxyAddr
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	cy := s.token("--sub", "cy", "--groups", "approvers")
	cyMFA := s.token("--sub", "cy", "--groups", "approvers", "--mfa")
	bob := s.token("--sub", "bob", "--email", "bob@example.test")
	svc := s.token("--sub", "svc-backup")
	oncall := s.token("--sub", "olga", "--groups", "break-glass")
	s.ok(admin, "control", "enable", "--approvers", "approvers")

	deleteRule := func(tok string) int {
		return do(t, "DELETE", proxy+"/exchange/journal-rules/rule-1", tok, "").status
	}

	t.Run("two approvers, MFA at approval", func(t *testing.T) {
		s.ok(admin, "policy", "new", "--task", journalTask, "--approval", "manual", "--approvals", "2", "--require-mfa")
		require.Eventually(t, func() bool { return deleteRule(bob) == http.StatusForbidden }, 3*time.Second, 20*time.Millisecond)
		id := s.request(bob, "--task", journalTask, "--reason", "retire rule-1", "--duration", "10m")
		// Approver without MFA: refused, naming the rule.
		require.Contains(t, s.refused(cy, "403", "request", "approve", id), "MFA")
		adminMFA := s.token("--sub", "ada", "--groups", "admins,approvers", "--mfa")
		s.ok(adminMFA, "request", "approve", id, "--comment", "first")
		st := s.status(bob, id)
		require.Equal(t, "pending", st["status"], "one of two approvals")
		s.refused(adminMFA, "409", "request", "approve", id)
		require.Equal(t, http.StatusForbidden, deleteRule(bob))
		s.ok(cyMFA, "request", "approve", id, "--comment", "second")
		require.Equal(t, "approved", s.status(bob, id)["status"])
		require.Eventually(t, func() bool { return deleteRule(bob) != http.StatusForbidden }, 3*time.Second, 20*time.Millisecond)

		// The requester may revoke; the call is refused again at once.
		s.ok(bob, "request", "revoke", id, "--comment", "done early")
		require.Equal(t, "revoked", s.status(bob, id)["status"])
		require.Eventually(t, func() bool { return deleteRule(bob) == http.StatusForbidden }, 3*time.Second, 20*time.Millisecond)
		s.refused(bob, "409", "request", "revoke", id)
	})

	t.Run("auto approval through a role", func(t *testing.T) {
		s.ok(admin, "policy", "new", "--role", importRole, "--approval", "auto")
		search := proxy + "/exchange/mailboxes/alice/search"
		require.Eventually(t, func() bool { return do(t, "POST", search, bob, "").status == http.StatusForbidden }, 3*time.Second, 20*time.Millisecond)
		// The refusal names what to ask for: the role, whose policy covers the task.
		refusal := do(t, "POST", search, bob, "").json(t)
		require.Equal(t, "elevate request new --role '"+importRole+"' --reason '<why>'", refusal["request_command"])
		// A task of the role is not requestable on its own: the policy is for the role.
		s.refused(bob, "400", "request", "new", "--task", searchTask, "--reason", "x")
		id := s.request(bob, "--role", importRole, "--reason", "export for legal hold")
		st := s.status(bob, id)
		require.Equal(t, "approved", st["status"])
		require.Equal(t, "auto", st["approvals"].([]any)[0].(map[string]any)["by"])
		require.Eventually(t, func() bool { return do(t, "POST", search, bob, "").status == http.StatusOK }, 3*time.Second, 20*time.Millisecond)
	})

	t.Run("start time, duration cap, justification rule", func(t *testing.T) {
		carl := s.token("--sub", "carl") // holds no role grant
		s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual", "--max-duration", "1h", "--reason-pattern", `^CHG-[0-9]+`)
		s.refused(carl, "400", "request", "new", "--task", moveTask, "--reason", "CHG-1 too long", "--duration", "2h")
		s.refused(carl, "400", "request", "new", "--task", moveTask, "--reason", "no ticket")
		s.refused(carl, "400", "request", "new", "--task", moveTask, "--reason", "CHG-2", "--start", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
		start := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second)
		id := s.request(carl, "--task", moveTask, "--reason", "CHG-3 window", "--duration", "30m", "--start", start.Format(time.RFC3339))
		s.ok(cy, "request", "approve", id)
		move := proxy + "/exchange/mailboxes/alice/move-requests"
		if time.Now().Before(start.Add(-500 * time.Millisecond)) {
			require.Equal(t, http.StatusForbidden, do(t, "POST", move, carl, "").status, "not before its start")
		}
		require.Eventually(t, func() bool { return do(t, "POST", move, carl, "").status == http.StatusCreated }, 10*time.Second, 50*time.Millisecond)
	})

	t.Run("system accounts and disabling", func(t *testing.T) {
		require.Equal(t, http.StatusForbidden, deleteRule(svc))
		s.ok(admin, "control", "enable", "--system-accounts", "svc-backup")
		var ctl map[string]any
		require.NoError(t, json.Unmarshal([]byte(s.ok(admin, "-o", "json", "control", "show")), &ctl))
		require.Equal(t, "approvers", ctl["default_approvers"], "changing one setting leaves the others")
		require.Eventually(t, func() bool { return deleteRule(svc) != http.StatusForbidden }, 3*time.Second, 20*time.Millisecond)

		s.ok(admin, "control", "disable")
		require.Eventually(t, func() bool { return deleteRule(bob) != http.StatusForbidden }, 3*time.Second, 20*time.Millisecond)
		require.Contains(t, s.ok(admin, "policy", "list"), journalTask, "disabling keeps policies")
		s.ok(admin, "control", "enable")
		require.Eventually(t, func() bool { return deleteRule(bob) == http.StatusForbidden }, 3*time.Second, 20*time.Millisecond)
	})

	t.Run("break-glass", func(t *testing.T) {
		s.refused(bob, "403", "request", "new", "--task", journalTask, "--reason", "outage", "--break-glass")
		blank := s.cli(oncall, "request", "new", "--task", journalTask, "--reason", " ", "--break-glass")
		require.Equal(t, 2, blank.code, "a blank reason is a usage error: %s", blank.stderr)
		require.Contains(t, blank.stderr, "--reason")
		id := s.request(oncall, "--task", journalTask, "--reason", "outage INC-7: journal loop", "--break-glass")
		st := s.status(admin, id)
		require.Equal(t, "approved", st["status"])
		require.Equal(t, true, st["break_glass"])
		require.Eventually(t, func() bool { return deleteRule(oncall) != http.StatusForbidden }, 3*time.Second, 20*time.Millisecond)
		var listed map[string]any
		require.NoError(t, json.Unmarshal([]byte(s.ok(admin, "-o", "json", "request", "list", "--break-glass")), &listed))
		require.Len(t, listed["requests"], 1)
		s.ok(admin, "request", "revoke", id, "--comment", "reviewed")
	})

	// Every decision is on the record.
	events := map[string]int{}
	for _, rec := range s.auditRecords() {
		events[rec["event"].(string)]++
	}
	for _, e := range []string{"request.submitted", "request.approval_recorded", "request.approved", "request.revoked", "request.break_glass", "control.changed", "policy.created"} {
		require.Positive(t, events[e], "no %s record", e)
	}
}

// TestPendingExpiry: an undecided request expires by itself, exactly once.
func TestPendingExpiry(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("requests:\n  pending_ttl: 2s\n"), 0o600))
	s := startDev(t, "--config", cfg)
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	bob := s.token("--sub", "bob")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual")
	id := s.request(bob, "--task", moveTask, "--reason", "nobody will look")
	require.Eventually(t, func() bool {
		n := 0
		for _, rec := range s.auditRecords() {
			if rec["event"] == "request.expired" && rec["request_id"] == id {
				n++
			}
		}
		return n == 1
	}, 15*time.Second, 100*time.Millisecond)
	require.Equal(t, "expired", s.status(bob, id)["status"])
	s.refused(admin, "409", "request", "approve", id)
	// A new request is possible once the old one expired.
	s.request(bob, "--task", moveTask, "--reason", "second try")
}
