package policy_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// Bundles that compile but cannot evaluate. Each must be refused at load
// (New) and at reload (Reload, which keeps the running bundle), with an error
// naming every file that takes part in the fault; see brokenBundles.

// catalogWith is a catalog of one task, one route and one helper, in the
// package all catalogs share; the helper is on line 12.
func catalogWith(task, upstream, method, route, condition, helper string) string {
	return fmt.Sprintf(`package elevate.catalog

tasks[%[1]q] := {"upstream": %[2]q, "read": false}

match contains %[1]q if {
	input.upstream == %[2]q
	input.method == %[3]q
	input.path = %[4]s
	%[5]s
}

%[6]s
`, task, upstream, method, route, condition, helper)
}

// Two catalogs for two Git servers, each with a helper named owner. All
// catalogs share package elevate.catalog, so the two definitions are one
// rule: on a Gogs call both apply and disagree. The same with a helper
// function.
var (
	giteaCatalog = catalogWith(`Gitea\Remove-Repository`, "gitea", "DELETE", `["repos", _, _]`,
		`owner != "admin"`, `owner := input.path[1]`)
	gogsCatalog = catalogWith(`Gogs\Remove-Repository`, "gogs", "DELETE", `["api", "v1", "repos", _, _]`,
		`owner != "admin"`, `owner := input.path[3]`)
	giteaFuncCatalog = catalogWith(`Gitea\Get-Repository`, "gitea", "GET", `["repos", _, _]`,
		`repository(input.path) != ""`, `repository(p) := concat("/", [p[1], p[2]])`)
	gogsFuncCatalog = catalogWith(`Gogs\Get-Repository`, "gogs", "GET", `["api", "v1", "repos", _, _]`,
		`repository(input.path) != ""`, `repository(p) := concat("/", [p[3], p[4]]) if count(p) == 5`)
)

// Two catalogs that declare the same task differently: the catalog index
// itself cannot be evaluated.
const (
	mailboxTaskAgain = `package elevate.catalog

tasks["Exchange\\Get-Mailbox"] := {"upstream": "exchange", "read": false}
`
)

// Two conditions whose shared helper conflicts only for a caller who holds
// a grant for a gated task: found only by evaluating the decision in that
// state.
const (
	grantNoteA = `package elevate

deny contains "grant notes disagree" if note == "never"

note := "held" if count(covering_grants) > 0
`
	grantNoteB = `package elevate

note := "granted" if count(covering_grants) > 0
`
)

// A conflict that only calls by mallory reach: no proof call passes the
// guard, but the proof evaluates every rule the decision depends on.
const (
	guardedA = `package elevate

deny contains "mallory is flagged" if {
	input.subject.id == "mallory"
	flagged
}

flagged := true if input.method != ""
`
	guardedB = `package elevate

flagged := false if input.method != ""
`
)

var unprovableBundles = []struct {
	desc  string
	files map[string]string
	where []string
}{
	{"a helper rule defined in two catalogs",
		map[string]string{"catalog/gitea.rego": giteaCatalog, "catalog/gogs.rego": gogsCatalog},
		[]string{"data.elevate.catalog.owner", "catalog/gitea.rego:12", "catalog/gogs.rego:12"}},
	{"a helper function defined in two catalogs",
		map[string]string{"catalog/gitea.rego": giteaFuncCatalog, "catalog/gogs.rego": gogsFuncCatalog},
		[]string{"data.elevate.catalog.repository", "catalog/gitea.rego:12", "catalog/gogs.rego:12"}},
	{"a task declared twice",
		map[string]string{"catalog/mailboxes.rego": mailboxTaskAgain},
		[]string{"catalog/mailboxes.rego:3", "catalog/exchange.yaml:6", "Exchange\\\\Get-Mailbox"}},
	{"a helper that conflicts only for grant holders",
		map[string]string{"conditions/a.rego": grantNoteA, "conditions/b.rego": grantNoteB},
		[]string{"data.elevate.note", "conditions/a.rego:5", "conditions/b.rego:3"}},
	{"a conflict behind a guard",
		map[string]string{"conditions/a.rego": guardedA, "conditions/b.rego": guardedB},
		[]string{"data.elevate.flagged", "conditions/a.rego:8", "conditions/b.rego:3"}},
	{"a second decision that disagrees on deletes",
		map[string]string{"conditions/deletes.rego": "package elevate\n\ndecision := {\"outcome\": \"deny\", \"reason\": \"no deletes\"} if input.method == \"DELETE\"\n"},
		[]string{"data.elevate.decision", "elevate.rego:", "conditions/deletes.rego:3"}},
	{"a condition that fails on every call",
		map[string]string{"conditions/faulty.rego": "package elevate\n\ndeny contains \"never\" if to_number(input.subject.id) > 0\n"},
		[]string{"conditions/faulty.rego:3", "to_number"}},
	{"an assigned variable never used (strict)",
		map[string]string{"conditions/unused.rego": "package elevate\n\ndeny contains \"traces\" if {\n\tm := input.method\n\tinput.method == \"TRACE\"\n}\n"},
		[]string{"conditions/unused.rego:4"}},
	{"an unused import (strict)",
		map[string]string{"conditions/imports.rego": "package elevate\n\nimport data.elevate.catalog.tasks\n\ndeny contains \"traces\" if input.method == \"TRACE\"\n"},
		[]string{"conditions/imports.rego:3"}},
}

// TestProofLeavesTheStateAsItWas: the proof writes states of its own to the
// new bundle's store; New starts without state and Reload with the state it
// carries over. Each bundle here is new to the process, so that it is proved.
func TestProofLeavesTheStateAsItWas(t *testing.T) {
	ctx := context.Background()
	fresh := func(name string) fs.FS {
		return bundleWith(t, map[string]string{"proof/data.json": fmt.Sprintf(`{"test": %q}`, t.Name()+"/"+name)})
	}
	e := newEngine(t, fresh("new"))
	d := eval(t, e, call("GET", "mailboxes"))
	require.Equal(t, "access-control state is not loaded", d.Reason)

	require.NoError(t, e.SetState(ctx, gatedBy("task", searchMailbox)))
	require.NoError(t, e.Reload(ctx, fresh("reload")))
	search := call("POST", "mailboxes", "mbx-1", "search")
	require.Equal(t, policy.Decision{Outcome: policy.GrantRequired, Task: searchMailbox, Gated: true,
		Reason:  `task Exchange\Search-Mailbox requires an approved grant`,
		Request: &policy.Target{Scope: "task", Target: searchMailbox}}, eval(t, e, search))
	system := search
	system.Subject.ID = "svc-backup"
	require.Equal(t, "system account", eval(t, e, system).Reason)
}

// TestProofStaysOffline: a condition that asks a service over http.send is
// proved without reaching it (the proof's calls are answered 503), and
// reaches it on real calls.
func TestProofStaysOffline(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"frozen": false}`))
	}))
	defer srv.Close()
	condition := "package elevate\n\n" +
		"deny contains \"changes are frozen\" if {\n" +
		"\tgated\n" +
		"\tresp := http.send({\"method\": \"GET\", \"url\": \"" + srv.URL + "/freeze\"})\n" +
		"\tnot resp.body.frozen == false\n" +
		"}\n"
	e := newEngine(t, bundleWith(t, map[string]string{"conditions/freeze.rego": condition}))
	require.Zero(t, hits.Load(), "the proof must not reach the network")

	require.NoError(t, e.SetState(context.Background(), gatedBy("task", searchMailbox)))
	d := eval(t, e, call("POST", "mailboxes", "mbx-1", "search"))
	require.Equal(t, policy.GrantRequired, d.Outcome)
	require.Equal(t, int32(1), hits.Load())
}
