// Fuzzing of Rego input building and evaluation against the embedded
// default bundle. Threats proved mitigated: a call of any shape (method,
// upstream, path segments, query, subject) reaching a gated task without a
// grant that covers it, or a task of another upstream; and an evaluation
// that errs or panics on strange input instead of deciding.
package policy_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/rego"
)

// fuzzPolicies gate a task, a role and a role group of each catalog.
var fuzzPolicies = []policy.ApprovalPolicy{
	{ID: "p1", Scope: policy.ScopeTask, Target: newMoveRequest},
	{ID: "p2", Scope: policy.ScopeTask, Target: rmJournalRule},
	{ID: "p3", Scope: policy.ScopeRole, Target: importExport},
	{ID: "p4", Scope: policy.ScopeRole, Target: `RabbitMQ\User Administration`},
	{ID: "p5", Scope: policy.ScopeRoleGroup, Target: `RabbitMQ\Administrators`},
	{ID: "p6", Scope: policy.ScopeTask, Target: `RabbitMQ\Get-Message`},
	{ID: "p7", Scope: policy.ScopeRole, Target: `Caddy\Server Administration`},
	{ID: "p8", Scope: policy.ScopeTask, Target: `Caddy\Get-Config`},
}

// fuzzGrants are the grants a fuzzed caller may hold: none, or one of these.
var fuzzGrants = []policy.Grant{
	liveGrant("g-move", policy.ScopeTask, newMoveRequest),
	liveGrant("g-role", policy.ScopeRole, importExport),
	liveGrant("g-rabbit", policy.ScopeRoleGroup, `RabbitMQ\Administrators`),
	liveGrant("g-caddy", policy.ScopeTask, `Caddy\Get-Config`),
	liveGrant("g-unknown", policy.ScopeTask, `Exchange\No-Such-Task`),
	{ID: "g-expired", Scope: policy.ScopeTask, Target: rmJournalRule, NotBefore: t0.Add(-2 * time.Hour), ExpiresAt: t0.Add(-time.Hour)},
}

// FuzzInput builds the Rego input from arbitrary call fields and evaluates
// it: the default bundle always decides (no error), never allows a call
// that matches no task, names only a task of the called upstream, and
// allows a gated task only with a live grant that covers it.
func FuzzInput(f *testing.F) {
	for _, s := range []struct {
		method, upstream, path, query string
		grant                         uint8
		subject                       string
	}{
		{"GET", "exchange", "mailboxes", "", 0, "alice"},
		{"POST", "exchange", seg("mailboxes", "mbx-1", "move-requests"), "", 0, "alice"},
		{"POST", "exchange", seg("mailboxes", "mbx-1", "move-requests"), "", 1, "alice"},
		{"POST", "exchange", seg("mailboxes", "mbx-1", "search"), "", 2, "alice"},
		{"POST", "exchange", seg("mailboxes", "mbx-1", "search"), "", 1, "alice"},
		{"HEAD", "exchange", seg("mailboxes", "a/b"), "x=1&x=2", 0, "alice"},
		{"DELETE", "exchange", seg("journal-rules", "jr-1"), "", 6, "alice"},
		{"DELETE", "rabbitmq", seg("api", "queues", "/", "q", "contents"), "columns=a", 3, "bob"},
		{"PUT", "rabbitmq", seg("api", "users", "carol"), "", 0, "bob"},
		{"PUT", "rabbitmq", seg("api", "users", "carol"), "", 3, "bob"},
		{"GET", "rabbitmq", seg("api", "definitions"), "", 0, "svc-backup"},
		{"POST", "rabbitmq", seg("api", "queues", "/", "q", "get"), "", 3, "bob"},
		{"GET", "caddy", seg("config", "apps", "http"), "", 4, "carol"},
		{"POST", "caddy", "stop", "", 4, "carol"},
		{"post", "exchange", seg("mailboxes", "mbx-1", "move-requests"), "", 0, "alice"},
		{"GET", "exchange", "", "", 0, ""},
		{"GET", "nope", "mailboxes", "", 0, "alice"},
		{"GET", "exchange", seg("mailboxes", "", ""), "", 0, "alice"},
		{"GET", "exchange", seg("mailboxes", "\xff\xfe"), "\xff=\x00", 5, "\xff"},
	} {
		f.Add(s.method, s.upstream, s.path, s.query, s.grant, s.subject)
	}
	ctx := context.Background()
	e, err := policy.New(ctx, policy.Config{Bundle: rego.Bundle})
	require.NoError(f, err)
	require.NoError(f, e.SetState(ctx, policy.State{
		Control:  policy.Control{Enabled: true, DefaultApprovers: "approvers", SystemAccounts: []string{"svc-backup"}},
		Policies: fuzzPolicies,
	}))
	cat := e.Catalog()
	gated := map[string]bool{}
	for _, p := range fuzzPolicies {
		for _, task := range cat.TasksOf(p.Scope, p.Target) {
			gated[task] = true
		}
	}

	f.Fuzz(func(t *testing.T, method, upstream, path, query string, grant uint8, subject string) {
		in := policy.Input{
			Method: method, Upstream: upstream, Host: upstream + ".elevate.test",
			Path:    segments(path),
			Query:   fuzzQuery(query),
			Subject: policy.Subject{ID: subject, Groups: []string{"staff"}},
		}
		var covered map[string]bool
		if i := int(grant); i > 0 && i <= len(fuzzGrants) {
			g := fuzzGrants[i-1]
			in.Grants = []policy.Grant{g}
			if g.ID != "g-expired" {
				covered = map[string]bool{}
				for _, task := range cat.TasksOf(g.Scope, g.Target) {
					covered[task] = true
				}
			}
		}

		d, err := e.Eval(ctx, in, t0)
		require.NoError(t, err, "the default bundle decides every call")
		switch d.Outcome {
		case policy.Allow, policy.Deny, policy.GrantRequired:
		default:
			t.Fatalf("outcome %q", d.Outcome)
		}
		require.NotEmpty(t, d.Reason)
		if d.Task != "" {
			info, ok := cat.Tasks[d.Task]
			require.True(t, ok, "unknown task %q", d.Task)
			require.Equal(t, upstream, info.Upstream, "a task of another upstream")
		}
		require.Equal(t, d.Task != "" && gated[d.Task], d.Gated, "gated as the state says")
		if subject == "" {
			require.Equal(t, policy.Deny, d.Outcome, "a call without a subject")
		}
		switch d.Outcome {
		case policy.Allow:
			require.NotEmpty(t, d.Task, "an allowed call matches a task")
			if !gated[d.Task] {
				require.Empty(t, d.GrantID)
				return
			}
			if subject == "svc-backup" {
				return // a system account
			}
			require.True(t, covered[d.Task], "gated task %s allowed without a grant that covers it", d.Task)
			require.Equal(t, in.Grants[0].ID, d.GrantID)
		case policy.GrantRequired:
			require.True(t, d.Gated)
			require.False(t, covered[d.Task], "a covering grant was ignored")
			require.NotNil(t, d.Request)
			require.Contains(t, cat.TasksOf(d.Request.Scope, d.Request.Target), d.Task)
		}
	})
}

// seg joins segments as segments splits them.
func seg(s ...string) string { return strings.Join(s, "\x1f") }

// segments splits a fuzzed path into segments at the unit separator
// (0x1f), so that segments may hold "/" as decoded RabbitMQ vhosts do; an
// empty path has no segments.
func segments(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "\x1f")
}

// fuzzQuery parses what it can of a fuzzed query string; values that do not
// decode are kept raw, so that Rego sees odd keys and values too.
func fuzzQuery(q string) map[string][]string {
	out := map[string][]string{}
	for _, pair := range strings.Split(q, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		out[k] = append(out[k], v)
	}
	return out
}
