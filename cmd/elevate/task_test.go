package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/proxy/api"
)

// TestTaskListAndCompletion: task list shows what can be requested, from
// the server or from a bundle; a mistyped task, role or upstream is
// answered with the name meant; shell completion offers task names and
// request ids from the server, and nothing when there is no server.
func TestTaskListAndCompletion(t *testing.T) {
	s := newDevServer(t, "")
	admin := s.token(t, "task-ada", "admins", "approvers")
	user := s.token(t, "task-bob")

	out := s.ok(t, user, "task", "list")
	require.Regexp(t, `(?m)^TASK\s+UPSTREAM\s+READ\s+DESCRIPTION$`, out)
	require.Regexp(t, `(?m)^Exchange\\New-MoveRequest\s+exchange\s+no\s+Start moving`, out)
	require.Regexp(t, `(?m)^Exchange\\Mailbox Import Export\s+role\s+Exchange\\New-MoveRequest, Exchange\\Search-Mailbox$`, out)

	var list api.Tasks
	require.NoError(t, json.Unmarshal([]byte(s.ok(t, user, "-o", "json", "task", "list", "--upstream", "exchange")), &list))
	require.Len(t, list.Tasks, 5)
	require.Equal(t, `Exchange\Get-Mailbox`, list.Tasks[0].Name)
	require.True(t, list.Tasks[0].Read)

	r := s.as(t, user, "task", "list", "--upstream", "exchnage")
	require.Equal(t, 1, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), `did you mean "exchange"?`)

	// Wherever a task is typed, the server names the one meant.
	r = s.as(t, user, "request", "create", "--task", `Exchange\New-MoveReqest`, "--reason", "typo")
	require.Equal(t, 1, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), `did you mean "Exchange\New-MoveRequest"?`)
	r = s.as(t, admin, "policy", "create", "--role", `exchange\mailbox import export`, "--approval", "manual")
	require.Equal(t, 1, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), `did you mean "Exchange\Mailbox Import Export"?`)

	// From a bundle, without a server: the embedded one with a directory
	// layered over it.
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "catalog"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "catalog", "acme.rego"), []byte(`package elevate.catalog

tasks["Acme\\Remove-Widget"] := {"upstream": "acme", "read": false, "description": "Delete a widget"}
`), 0o600))
	t.Setenv("ELEVATE_SERVER", "http://"+closedAddr(t))
	r = runCLI(t, "task", "list", "--bundle", dir, "--upstream", "acme")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^Acme\\Remove-Widget\s+acme\s+no\s+Delete a widget$`, r.stdout)
	require.NotContains(t, r.stdout, "Exchange", "only the upstream asked for")
	r = runCLI(t, "task", "list", "--bundle", filepath.Join(dir, "missing"))
	require.Equal(t, 2, r.code)
	require.Contains(t, oneLineOf(t, r.stderr), "--bundle")

	// Completion asks the server (set by flag here; ELEVATE_SERVER points
	// nowhere).
	complete := func(token string, args ...string) []string {
		t.Helper()
		r := runCLI(t, append([]string{"__complete", "--server", s.control, "--token", token}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		require.Equal(t, ":4", lines[len(lines)-1], "no file completion: %s", r.stdout)
		return lines[:len(lines)-1]
	}
	require.Equal(t, []string{`Exchange\New-JournalRule` + "\tCreate a journal rule", `Exchange\New-MoveRequest` + "\tStart moving a mailbox to another database"},
		complete(user, "request", "create", "--task", `exchange\new-`))
	require.Equal(t, []string{`Exchange\Organization Management` + "\t" +
		`Exchange\New-JournalRule, Exchange\New-MoveRequest, Exchange\Remove-JournalRule, Exchange\Search-Mailbox`},
		complete(admin, "policy", "create", "--role-group", "Exch"))
	require.Equal(t, []string{"exchange"}, complete(user, "task", "list", "--upstream", "ex"))

	s.ok(t, admin, "control", "enable", "--approvers", "approvers")
	s.ok(t, admin, "policy", "create", "--task", `Exchange\Search-Mailbox`, "--approval", "manual")
	var id string
	require.Eventually(t, func() bool {
		r = s.as(t, user, "request", "create", "--task", `Exchange\Search-Mailbox`, "--reason", "completion", "-q")
		id = strings.TrimSpace(r.stdout)
		return r.code == 0
	}, 10*time.Second, 20*time.Millisecond, r.stderr)
	require.Equal(t, []string{id + "\tpending task Exchange\\Search-Mailbox by task-bob"}, complete(admin, "request", "approve", ""))
	require.Empty(t, complete(admin, "request", "revoke", ""), "revoke completes approved requests")
	require.Empty(t, complete(admin, "request", "approve", id, ""), "one id only")
	require.Len(t, complete(user, "request", "get", "req-"), 1)
	policies := complete(admin, "policy", "delete", "")
	require.Len(t, policies, 1)
	require.Regexp(t, `^pol-\S+\ttask Exchange\\Search-Mailbox manual$`, policies[0])

	// No server, or no token it accepts: no completions, and no error.
	start := time.Now()
	r = runCLI(t, "__complete", "request", "create", "--task", "Exch")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, ":4", strings.TrimSpace(r.stdout))
	require.Less(t, time.Since(start), completionTimeout+5*time.Second)
	require.Empty(t, complete("not-a-token", "request", "create", "--task", "Exch"))

	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runCLI(t, "completion", shell)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "elevate", shell)
	}
}
