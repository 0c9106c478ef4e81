package policy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// A DNS server's API as a route table, and a Rego catalog beside it that
// adds a route a table cannot write (a zone name prefix), a task, and a role
// group over the table's role and task.
var (
	dnsYAML = lines(
		"upstream: dns",
		"body: json",
		"tasks:",
		"  DNS\\Get-Zone: {read: true, description: List zones or read one}",
		"  DNS\\Remove-Zone: {description: Delete a zone}",
		"  DNS\\Purge-Zone: {}",
		"  DNS\\New-Zone: {}",
		"roles:",
		"  DNS\\Zone Admin: [DNS\\Remove-Zone, DNS\\Restore-Zone]",
		"routes:",
		"  - GET /api/v1/servers/{server}/zones -> DNS\\Get-Zone",
		"  - GET /api/v1/servers/{server}/zones/{zone} -> DNS\\Get-Zone",
		"  - DELETE /api/v1/servers/{server}/zones/{zone} -> DNS\\Remove-Zone",
		"  - POST /api/v1/servers/{server}/zones/{zone}?action=purge -> DNS\\Purge-Zone",
		"  - route: POST /api/v1/servers/{server}/zones",
		"    match: {kind: Native}",
		"    record: [name, kind]",
		"    task: DNS\\New-Zone",
		"  - route: GET /status",
		"    body: none",
		"    task: DNS\\Get-Zone",
		"  - GET /files/{path...} -> DNS\\Get-Zone",
	)
	dnsRego = lines(
		"package elevate.catalog",
		"",
		`tasks["DNS\\Restore-Zone"] := {"upstream": "dns", "read": false, "description": "Restore a zone from a backup"}`,
		"",
		`match contains "DNS\\Restore-Zone" if {`,
		`	input.upstream == "dns"`,
		`	input.method == "POST"`,
		`	input.path = ["api", "v1", "servers", _, "zones", zone, "restore"]`,
		`	startswith(zone, "bak-")`,
		`}`,
		"",
		`role_groups["DNS\\Operators"] := {"roles": {"DNS\\Zone Admin"}, "tasks": {"DNS\\Get-Zone"}}`,
	)
	// A condition in Rego on a table's task and on the body.
	dnsCondition = lines(
		"package elevate",
		"",
		`deny contains "internal zones are created by the platform team" if {`,
		`	task == "DNS\\New-Zone"`,
		`	endswith(input.body.name, ".internal")`,
		`}`,
	)
)

func dnsBundle(t testing.TB) map[string]string {
	return map[string]string{"catalog/dns.yaml": dnsYAML, "catalog/dns.rego": dnsRego, "conditions/dns.rego": dnsCondition}
}

func dnsCall(method string, body any, path ...string) policy.Input {
	in := call(method, path...)
	in.Upstream, in.Host, in.Body = "dns", "dns.example.test", body
	return in
}

// TestRouteTablesAndRegoCatalogsMix: a bundle with a route table and a Rego
// catalog for one upstream maps every call as both say, knows the tasks,
// roles and role groups of both, gates a table task by a role of the table
// through a role group of Rego, and applies a Rego condition that reads the
// body to a task of the table.
func TestRouteTablesAndRegoCatalogsMix(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, bundleWith(t, dnsBundle(t)))
	require.NoError(t, e.SetState(ctx, policy.State{}))
	ok, why := e.Cacheable()
	require.True(t, ok, why)

	zone := []string{"api", "v1", "servers", "localhost", "zones", "example.org."}
	zones := zone[:5]
	native := map[string]any{"kind": "Native", "name": "example.org."}
	tests := []struct {
		desc string
		in   policy.Input
		task string
	}{
		{"a collection", dnsCall("GET", nil, zones...), `DNS\Get-Zone`},
		{"one zone", dnsCall("GET", nil, zone...), `DNS\Get-Zone`},
		{"HEAD as GET", dnsCall("HEAD", nil, zone...), `DNS\Get-Zone`},
		{"a zone whose name holds a slash", dnsCall("GET", nil, append(zones[:5:5], "a/b")...), `DNS\Get-Zone`},
		{"an empty parameter", dnsCall("GET", nil, append(zones[:5:5], "")...), ""},
		{"a longer path", dnsCall("GET", nil, append(zone[:6:6], "x")...), ""},
		{"another method", dnsCall("PUT", nil, zone...), ""},
		{"a delete", dnsCall("DELETE", nil, zone...), `DNS\Remove-Zone`},
		{"the query condition", func() policy.Input {
			in := dnsCall("POST", nil, zone...)
			in.Query = map[string][]string{"action": {"purge"}, "reason": {"x"}}
			return in
		}(), `DNS\Purge-Zone`},
		{"the query condition, two values", func() policy.Input {
			in := dnsCall("POST", nil, zone...)
			in.Query = map[string][]string{"action": {"purge", "purge"}}
			return in
		}(), ""},
		{"the query condition, another value", func() policy.Input {
			in := dnsCall("POST", nil, zone...)
			in.Query = map[string][]string{"action": {"rectify"}}
			return in
		}(), ""},
		{"no query", dnsCall("POST", nil, zone...), ""},
		{"the body condition", dnsCall("POST", native, zones...), `DNS\New-Zone`},
		{"the body condition, another value", dnsCall("POST", map[string]any{"kind": "Master"}, zones...), ""},
		{"the body condition, no body", dnsCall("POST", nil, zones...), ""},
		{"the Rego route", dnsCall("POST", nil, append(zones[:5:5], "bak-1", "restore")...), `DNS\Restore-Zone`},
		{"the Rego route's condition", dnsCall("POST", nil, append(zones[:5:5], "live", "restore")...), ""},
		{"a rest of one segment", dnsCall("GET", nil, "files", ""), `DNS\Get-Zone`},
		{"a rest of several", dnsCall("GET", nil, "files", "a", "b", "c"), `DNS\Get-Zone`},
		{"a rest of none", dnsCall("GET", nil, "files"), ""},
		{"another upstream", func() policy.Input { in := dnsCall("GET", nil, zone...); in.Upstream = "exchange"; return in }(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			require.Equal(t, tc.task, eval(t, e, tc.in).Task)
		})
	}

	cat := e.Catalog()
	require.Equal(t, policy.TaskInfo{Upstream: "dns", Read: true, Description: "List zones or read one"}, cat.Tasks[`DNS\Get-Zone`])
	require.Equal(t, []string{`DNS\Remove-Zone`, `DNS\Restore-Zone`}, cat.TasksOf(policy.ScopeRole, `DNS\Zone Admin`))
	require.Equal(t, []string{`DNS\Get-Zone`, `DNS\Remove-Zone`, `DNS\Restore-Zone`}, cat.TasksOf(policy.ScopeRoleGroup, `DNS\Operators`))
	require.True(t, cat.Has(policy.ScopeRole, importExport), "the other catalogs stay")

	t.Run("gated through a Rego role group over a table role", func(t *testing.T) {
		require.NoError(t, e.SetState(ctx, gatedBy(policy.ScopeRoleGroup, `DNS\Operators`)))
		d := eval(t, e, dnsCall("DELETE", nil, zone...))
		require.Equal(t, policy.GrantRequired, d.Outcome)
		require.Equal(t, &policy.Target{Scope: policy.ScopeRoleGroup, Target: `DNS\Operators`}, d.Request)
		held := dnsCall("DELETE", nil, zone...)
		held.Grants = []policy.Grant{liveGrant("g1", policy.ScopeRoleGroup, `DNS\Operators`)}
		require.Equal(t, policy.Allow, eval(t, e, held).Outcome)
	})

	t.Run("a Rego condition on the body of a table task", func(t *testing.T) {
		require.NoError(t, e.SetState(ctx, policy.State{}))
		internal := dnsCall("POST", map[string]any{"kind": "Native", "name": "corp.internal"}, zones...)
		d := eval(t, e, internal)
		require.Equal(t, policy.Deny, d.Outcome)
		require.Equal(t, "internal zones are created by the platform team", d.Reason)
		require.Equal(t, policy.Allow, eval(t, e, dnsCall("POST", native, zones...)).Outcome, "the same call with another body, after it")
		require.Equal(t, policy.Deny, eval(t, e, internal).Outcome, "from the cache")
	})
}

// TestEngineBody: Body says how to read a call's body from the tables of
// the bundle: a route's own kind, else its table's, else none; the fields
// every route the call may match records.
func TestEngineBody(t *testing.T) {
	rpc := lines(
		"upstream: aria2",
		"body: jsonrpc",
		"tasks:",
		"  Aria2\\Get-Status: {read: true}",
		"  Aria2\\Shutdown: {}",
		"  Aria2\\Remove-Download: {}",
		"routes:",
		"  - route: POST /jsonrpc",
		"    rpc: aria2.tellActive",
		"    task: Aria2\\Get-Status",
		"  - route: POST /jsonrpc",
		"    rpc: aria2.shutdown",
		"    record: [id]",
		"    task: Aria2\\Shutdown",
		"  - route: POST /jsonrpc",
		"    rpc: aria2.removeDownloadResult",
		"    record: [params, id]",
		"    task: Aria2\\Remove-Download",
		"  - route: GET /status",
		"    body: none",
		"    task: Aria2\\Get-Status",
	)
	files := dnsBundle(t)
	files["catalog/aria2.yaml"] = rpc
	e := newEngine(t, bundleWith(t, files))
	tests := []struct {
		desc             string
		upstream, method string
		path             []string
		want             policy.BodySpec
	}{
		{"the routes of one path, their records together", "aria2", "POST", []string{"jsonrpc"}, policy.BodySpec{Kind: "jsonrpc", Record: []string{"id", "params"}}},
		{"a route that reads no body", "aria2", "GET", []string{"status"}, policy.BodySpec{}},
		{"a call no route matches: the table's kind", "aria2", "POST", []string{"other"}, policy.BodySpec{Kind: "jsonrpc"}},
		{"another method: the table's kind", "aria2", "GET", []string{"jsonrpc"}, policy.BodySpec{Kind: "jsonrpc"}},
		{"a route with a record", "dns", "POST", []string{"api", "v1", "servers", "s", "zones"}, policy.BodySpec{Kind: "json", Record: []string{"kind", "name"}}},
		{"a route's own kind, as HEAD", "dns", "HEAD", []string{"status"}, policy.BodySpec{}},
		{"a parameter", "dns", "GET", []string{"api", "v1", "servers", "s", "zones", "z"}, policy.BodySpec{Kind: "json"}},
		{"a rest", "dns", "GET", []string{"files", "a", "b"}, policy.BodySpec{Kind: "json"}},
		{"an upstream whose table reads no body", "exchange", "POST", []string{"mailboxes", "m", "search"}, policy.BodySpec{}},
		{"an upstream without a table", "nowhere", "POST", []string{"x"}, policy.BodySpec{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			require.Equal(t, tc.want, e.Body(tc.upstream, tc.method, tc.path))
		})
	}

	t.Run("the task of each call of a batch", func(t *testing.T) {
		require.NoError(t, e.SetState(context.Background(), policy.State{}))
		for method, task := range map[string]string{
			"aria2.tellActive":           `Aria2\Get-Status`,
			"aria2.shutdown":             `Aria2\Shutdown`,
			"aria2.removeDownloadResult": `Aria2\Remove-Download`,
			"aria2.changeGlobalOption":   "",
		} {
			in := call("POST", "jsonrpc")
			in.Upstream = "aria2"
			in.Body = map[string]any{"jsonrpc": "2.0", "method": method, "params": []any{"token:x"}, "id": "1"}
			require.Equal(t, task, eval(t, e, in).Task, method)
		}
	})
}

// TestReloadKeepsTheBundleOnABadTable: a table that overlaps, or names a
// task nothing declares, is refused on Reload with its file and line; the
// running bundle's decisions and body specs stay. A good table replaces it.
func TestReloadKeepsTheBundleOnABadTable(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, bundleWith(t, dnsBundle(t)))
	require.NoError(t, e.SetState(ctx, policy.State{}))
	del := dnsCall("DELETE", nil, "api", "v1", "servers", "s", "zones", "z")
	before := eval(t, e, del)
	require.Equal(t, `DNS\Remove-Zone`, before.Task)
	zones := []string{"api", "v1", "servers", "s", "zones"}
	spec := e.Body("dns", "POST", zones)

	for desc, table := range map[string]struct{ src, want string }{
		"an overlap": {strings.Replace(dnsYAML, "  - GET /files/{path...} -> DNS\\Get-Zone\n",
			"  - DELETE /api/v1/servers/{server}/zones/all -> DNS\\Purge-Zone\n", 1), "catalog/dns.yaml:13:"},
		"an unknown task": {strings.Replace(dnsYAML, "-> DNS\\Remove-Zone", "-> DNS\\Delete-Zone", 1), `catalog/dns.yaml:13: route "DELETE /api/v1/servers/{server}/zones/{zone} -> DNS\\Delete-Zone": no route table or Rego catalog declares task`},
		"a syntax error":  {dnsYAML + "routes: [\n", "catalog/dns.yaml:"},
	} {
		t.Run(desc, func(t *testing.T) {
			files := dnsBundle(t)
			files["catalog/dns.yaml"] = table.src
			err := e.Reload(ctx, bundleWith(t, files))
			require.ErrorIs(t, err, policy.ErrInvalidBundle)
			require.Contains(t, err.Error(), table.want)
			require.Equal(t, before, eval(t, e, del))
			require.Equal(t, spec, e.Body("dns", "POST", zones))
		})
	}

	t.Run("a good table replaces it", func(t *testing.T) {
		files := dnsBundle(t)
		files["catalog/dns.yaml"] = strings.Replace(strings.Replace(dnsYAML, "body: json", "body: form", 1),
			"match: {kind: Native}", `match: {kind: "Native"}`, 1)
		require.NoError(t, e.Reload(ctx, bundleWith(t, files)))
		require.Equal(t, policy.BodySpec{Kind: "form", Record: []string{"kind", "name"}}, e.Body("dns", "POST", zones))
		form := dnsCall("POST", map[string][]string{"kind": {"Native"}}, zones...)
		require.Equal(t, `DNS\New-Zone`, eval(t, e, form).Task)
		require.Equal(t, before, eval(t, e, del))
	})
}

// TestProofCoversGeneratedRoutes: the load-time proof tries a call for each
// route of a table, with the body and rest its route asks for, so that a
// condition that fails only on such calls is refused at load.
func TestProofCoversGeneratedRoutes(t *testing.T) {
	tests := []struct {
		desc, condition, route, want string
	}{
		{"a body condition",
			`deny contains "bad" if to_number(input.body.kind) > 0`,
			"  - route: POST /zones\n    match: {kind: Native}\n    task: DNS\\New-Zone\n",
			`for the call POST /zones on upstream "dns"`},
		{"a rest",
			"deny contains \"bad\" if numbered(input.path)\n\nnumbered(p) if {\n\tp[0] == \"files\"\n\tto_number(p[1]) > 0\n}",
			"  - GET /files/{path...} -> DNS\\Get-Zone\n",
			`for the call GET /files/x1 on upstream "dns"`},
		{"a query condition",
			`deny contains "bad" if to_number(input.query.action[0]) > 0`,
			"  - POST /zones?action=purge -> DNS\\Purge-Zone\n",
			`for the call POST /zones on upstream "dns"`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			head := lines("upstream: dns", "body: json", "tasks:", "  DNS\\Get-Zone: {read: true}", "  DNS\\New-Zone: {}", "  DNS\\Purge-Zone: {}", "routes:")
			files := map[string]string{"catalog/dns.yaml": head + tc.route, "conditions/bad.rego": "package elevate\n\n" + tc.condition + "\n"}
			_, err := policy.New(context.Background(), policy.Config{Bundle: bundleWith(t, files)})
			require.ErrorIs(t, err, policy.ErrInvalidBundle)
			require.Contains(t, err.Error(), "conditions/bad.rego:")
			require.Contains(t, err.Error(), tc.want)

			// The same condition with no route that leads a call there loads.
			files["catalog/dns.yaml"] = head + "  - GET /other -> DNS\\Get-Zone\n"
			_, err = policy.New(context.Background(), policy.Config{Bundle: bundleWith(t, files)})
			require.NoError(t, err)
		})
	}
}

// BenchmarkRoutes measures one decision (the cache off) for a call that
// matches one route of a route table of N routes on one upstream, with
// literal segments, parameters and rests and several methods: the cost must
// not grow with N.
func BenchmarkRoutes(b *testing.B) {
	for _, n := range []int{10, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e, err := policy.New(context.Background(), policy.Config{
				Bundle: bundleWith(b, map[string]string{"catalog/bench.yaml": benchTable(n)}), CacheSize: -1,
			})
			require.NoError(b, err)
			require.NoError(b, e.SetState(context.Background(), policy.State{Control: policy.Control{Enabled: true}}))
			// A call matching one route, which both tables have.
			in := call("DELETE", "res0", "r1", "items", "it-1")
			in.Upstream = "bench"
			d, err := e.Eval(context.Background(), in, t0)
			require.NoError(b, err)
			require.Equal(b, `Bench\Task-1`, d.Task)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.Eval(context.Background(), in, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchTable is a route table of n routes (n a multiple of 5) and ten
// tasks on upstream "bench": per resource i, five routes.
func benchTable(n int) string {
	var s strings.Builder
	s.WriteString("upstream: bench\ntasks:\n")
	for i := range 10 {
		fmt.Fprintf(&s, "  Bench\\Task-%d: {}\n", i)
	}
	s.WriteString("routes:\n")
	for i := range n / 5 {
		task := fmt.Sprintf("Bench\\Task-%d", i%10)
		fmt.Fprintf(&s, "  - GET /res%d -> %s\n", i, task)
		fmt.Fprintf(&s, "  - GET,PUT /res%d/{id} -> %s\n", i, task)
		fmt.Fprintf(&s, "  - DELETE /res%d/r%d/items/{item} -> %s\n", i/7, i, task)
		fmt.Fprintf(&s, "  - POST /res%d/{id}/items?action=x%d -> %s\n", i, i, task)
		fmt.Fprintf(&s, "  - GET /files%d/{path...} -> %s\n", i, task)
	}
	return s.String()
}
