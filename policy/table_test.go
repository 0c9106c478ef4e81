package policy_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// lines joins its arguments as the lines of a file, so that a case reads
// with its line numbers: the first argument is line 1.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// A small table that the cases below change one line of.
var (
	tasksHead = []string{
		"upstream: dns",                 // 1
		"tasks:",                        // 2
		"  DNS\\Get-Zone: {read: true}", // 3
		"  DNS\\Remove-Zone: {description: Delete}", // 4
		"  DNS\\Purge-Zone: {}",                     // 5
		"routes:",                                   // 6
	}
)

// dnsTable is tasksHead followed by routes, from line 7.
func dnsTable(routes ...string) string {
	return lines(append(append([]string(nil), tasksHead...), routes...)...)
}

// TestRouteTableRefusals: every mistake a table can hold on its own or
// together with other tables is refused by ReadBundle (and so by New and
// Reload), naming the file and the line.
func TestRouteTableRefusals(t *testing.T) {
	tests := []struct {
		desc  string
		files map[string]string
		want  []string
	}{
		{"YAML syntax", map[string]string{"catalog/t.yaml": lines("upstream: dns", "routes: [", "  GET /a -> X")}, []string{"catalog/t.yaml:"}},
		{"an empty file", map[string]string{"catalog/t.yaml": ""}, []string{"catalog/t.yaml:1: empty route table"}},
		{"two documents", map[string]string{"catalog/t.yaml": lines("upstream: dns", "---", "upstream: other")}, []string{"catalog/t.yaml:", "one YAML document"}},
		{"not a mapping", map[string]string{"catalog/t.yaml": lines("- GET /a -> X")}, []string{"catalog/t.yaml:1: a route table: want a mapping"}},
		{"an unknown key", map[string]string{"catalog/t.yaml": lines("upstream: dns", "rotues: []")}, []string{`catalog/t.yaml:2: a route table: unknown key "rotues"`}},
		{"a key given twice, in JSON", map[string]string{"catalog/t.json": "{\n\t\"upstream\": \"dns\",\n\t\"upstream\": \"dns2\"\n}\n"}, []string{`catalog/t.json:3: a route table: key "upstream" given twice`}},
		{"no upstream", map[string]string{"catalog/t.yaml": lines("routes: []")}, []string{"catalog/t.yaml:1: upstream: required"}},
		{"an upstream that is not a string", map[string]string{"catalog/t.yaml": lines("upstream: 12")}, []string{"catalog/t.yaml:1: upstream: want a string"}},
		{"an unknown body kind", map[string]string{"catalog/t.yaml": lines("upstream: dns", "body: xml")}, []string{`catalog/t.yaml:2: body: "xml" is not one of none, json, form, jsonrpc, graphql`}},
		{"read that is not a boolean", map[string]string{"catalog/t.yaml": lines("upstream: dns", "tasks:", "  DNS\\Get-Zone: {read: yes}")}, []string{"catalog/t.yaml:3: read: want true or false"}},
		{"an unknown task key", map[string]string{"catalog/t.yaml": lines("upstream: dns", "tasks:", "  DNS\\Get-Zone: {reads: true}")}, []string{`catalog/t.yaml:3: task "DNS\\Get-Zone": unknown key "reads"`}},
		{"a task twice in one table", map[string]string{"catalog/t.yaml": lines("upstream: dns", "tasks:", "  DNS\\Get-Zone: {}", "  DNS\\Get-Zone: {}")}, []string{`catalog/t.yaml:4: tasks: "DNS\\Get-Zone" given twice`}},
		{"a role listing a task twice", map[string]string{"catalog/t.yaml": lines("upstream: dns", "roles:", "  R: [A, A]")}, []string{`catalog/t.yaml:3: role "R": "A" listed twice`}},
		{"a role group key", map[string]string{"catalog/t.yaml": lines("upstream: dns", "role_groups:", "  G: {role: [R]}")}, []string{`catalog/t.yaml:3: role group "G": unknown key "role"`}},
		{"a route without a task", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones")}, []string{`catalog/t.yaml:7: route "GET /zones": want METHODS PATH -> TASK`}},
		{"a route with an empty task", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones ->")}, []string{`catalog/t.yaml:7: route "GET /zones ->": no task after ->`}},
		{"a route without a method", map[string]string{"catalog/t.yaml": dnsTable("  - /zones -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: route "/zones": want METHODS PATH`}},
		{"a lower-case method", map[string]string{"catalog/t.yaml": dnsTable("  - get /zones -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: method "get": want an upper-case method`}},
		{"a method twice", map[string]string{"catalog/t.yaml": dnsTable("  - GET,PUT,GET /zones -> DNS\\Get-Zone")}, []string{"catalog/t.yaml:7: method GET: listed twice"}},
		{"HEAD alone", map[string]string{"catalog/t.yaml": dnsTable("  - HEAD /zones -> DNS\\Get-Zone")}, []string{"catalog/t.yaml:7: method HEAD: a HEAD call is matched as GET; write GET"}},
		{"a relative path", map[string]string{"catalog/t.yaml": dnsTable("  - GET zones -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "zones": want an absolute path`}},
		{"a trailing slash", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones/ -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones/": a trailing / is not a pattern`}},
		{"an empty segment", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones//x -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones//x": an empty segment`}},
		{"a parameter inside a segment", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones/v{id} -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones/v{id}": segment "v{id}": a parameter is a whole segment`}},
		{"a rest before the end", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones/{rest...}/x -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones/{rest...}/x": {rest...} takes the rest of the path and comes last`}},
		{"a parameter named twice", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones/{id}/{id} -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones/{id}/{id}": parameter {id} named twice`}},
		{"a bad parameter name", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones/{a.b} -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones/{a.b}": parameter "{a.b}": want a name of letters, digits, _ and -`}},
		{"an invalid escape", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones/%zz -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones/%zz": segment "%zz": invalid escape`}},
		{"an escape that is not UTF-8", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones/%ff -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones/%ff": segment "%ff": not UTF-8 once decoded`}},
		{"a dot segment", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones/%2e%2e -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: path "/zones/%2e%2e": dot segments never reach the policy`}},
		{"an empty query", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones? -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: query "?": empty`}},
		{"a query parameter without a name", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones?=x -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: query "=x": a parameter without a name`}},
		{"a query parameter twice", map[string]string{"catalog/t.yaml": dnsTable("  - route: DELETE /zones/{z}?force=1", "    query: {force: 2}", "    task: DNS\\Purge-Zone")}, []string{`catalog/t.yaml:8: query parameter "force": given twice`}},
		{"an empty query parameter twice", map[string]string{"catalog/t.yaml": dnsTable("  - GET /zones?k=&k= -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: query parameter "k": given twice`}},
		{"a map route without route", map[string]string{"catalog/t.yaml": dnsTable("  - task: DNS\\Get-Zone")}, []string{"catalog/t.yaml:7: route: the key route is required"}},
		{"a map route without task", map[string]string{"catalog/t.yaml": dnsTable("  - route: GET /zones")}, []string{`catalog/t.yaml:7: route "GET /zones": the key task is required`}},
		{"a map route with an arrow", map[string]string{"catalog/t.yaml": dnsTable("  - route: GET /zones -> DNS\\Get-Zone")}, []string{`catalog/t.yaml:7: route "GET /zones -> DNS\\Get-Zone": in the map form, the task is the key task`}},
		{"an unknown route key", map[string]string{"catalog/t.yaml": dnsTable("  - route: GET /zones", "    tsak: DNS\\Get-Zone")}, []string{`catalog/t.yaml:8: route: unknown key "tsak"`}},
		{"rpc without a JSON-RPC body", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /rpc", "    rpc: zone.delete", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:8: route "POST /rpc": rpc needs body: jsonrpc (the body is read as nothing)`}},
		{"graphql without a GraphQL body", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /graphql", "    body: json", "    graphql: mutation deleteZone", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:9: route "POST /graphql": graphql needs body: graphql (the body is read as json)`}},
		{"a GraphQL operation type", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /graphql", "    body: graphql", "    graphql: remove deleteZone", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:9: graphql "remove deleteZone": want query, mutation or subscription`}},
		{"a GraphQL field name", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /graphql", "    body: graphql", "    graphql: mutation delete-zone", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:9: graphql "mutation delete-zone": "delete-zone" is not a GraphQL name`}},
		{"match without a body kind", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /zones", "    match: {kind: Native}", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:8: route "POST /zones": match needs a body kind`}},
		{"match on a nested value", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /zones", "    body: json", "    match: {kind: [Native]}", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:9: match "kind": want a string, number, true, false or null`}},
		{"match a number in a form", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /zones", "    body: form", "    match: {ttl: 60}", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:9: match "ttl": a form field holds strings`}},
		{"rpc and match on the method", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /rpc", "    body: jsonrpc", "    rpc: zone.delete", "    match: {method: zone.create}", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:10: route "POST /rpc": a condition on the body field "method" is given twice`}},
		{"a credential recorded", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /zones", "    body: json", "    record: [name, api_token]", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:9: record: "api_token" looks like a credential`}},
		{"a record without a body", map[string]string{"catalog/t.yaml": dnsTable("  - route: POST /zones", "    record: [name]", "    task: DNS\\Remove-Zone")}, []string{`catalog/t.yaml:8: route "POST /zones": record needs a body kind`}},
		{"two tables for one upstream that read bodies differently", map[string]string{
			"catalog/a.yaml": lines("upstream: dns", "routes: []"),
			"catalog/b.yaml": lines("# the same", "upstream: dns", "body: json"),
		}, []string{`catalog/b.yaml:2: the route table of upstream "dns" reads bodies as json, but catalog/a.yaml:1 reads them as nothing`}},
		{"two tables for one upstream whose routes overlap", map[string]string{
			"catalog/a.yaml": lines("upstream: dns", "tasks:", "  DNS\\Get-Zone: {read: true}", "routes:", "  - GET /zones/{zone} -> DNS\\Get-Zone"),
			"catalog/b.yaml": lines("upstream: dns", "tasks:", "  DNS\\Get-Zones: {read: true}", "routes:", "  - GET /zones/{name} -> DNS\\Get-Zones"),
		}, []string{`catalog/a.yaml:5: route "GET /zones/{zone} -> DNS\\Get-Zone" and catalog/b.yaml:5: route "GET /zones/{name} -> DNS\\Get-Zones" can match one call (GET /zones/x) as two tasks`}},
		{"a task declared in two tables", map[string]string{
			"catalog/a.yaml": lines("upstream: a", "tasks:", "  X\\Get: {}"),
			"catalog/b.yaml": lines("upstream: b", "tasks:", "  Y\\Get: {}", "  X\\Get: {}"),
		}, []string{`catalog/b.yaml:4: task "X\\Get" is declared both at catalog/a.yaml:3 and here`}},
		{"a role declared in two tables", map[string]string{
			"catalog/a.yaml": lines("upstream: a", "roles:", "  R: []"),
			"catalog/b.yaml": lines("upstream: b", "roles:", "  R: []"),
		}, []string{`catalog/b.yaml:3: role "R" is declared both at catalog/a.yaml:3 and here`}},
		{"every problem of a table at once", map[string]string{"catalog/t.yaml": dnsTable(
			"  - GET zones -> DNS\\Get-Zone",
			"  - get /zones -> DNS\\Get-Zone",
		)}, []string{"catalog/t.yaml:7: path", "catalog/t.yaml:8: method"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := policy.ReadBundle(bundleOf(tc.files))
			require.ErrorIs(t, err, policy.ErrInvalidBundle)
			for _, want := range tc.want {
				require.Contains(t, err.Error(), want)
			}
		})
	}
}

// TestRouteTableOverlaps: two routes of different tasks that can match one
// call are refused, naming both; routes that cannot (other methods, paths
// that never meet, a rest that wants one more segment, query or body
// conditions that exclude each other) or that are one task load.
func TestRouteTableOverlaps(t *testing.T) {
	tests := []struct {
		desc   string
		routes []string // from line 7
		want   []string // nil: loads
	}{
		{"a parameter and a literal", []string{
			"  - DELETE /zones/{zone} -> DNS\\Remove-Zone",
			"  - DELETE /zones/all -> DNS\\Purge-Zone",
		}, []string{`catalog/dns.yaml:7: route "DELETE /zones/{zone} -> DNS\\Remove-Zone" and catalog/dns.yaml:8: route "DELETE /zones/all -> DNS\\Purge-Zone" can match one call (DELETE /zones/all) as two tasks, "DNS\\Remove-Zone" and "DNS\\Purge-Zone"`}},
		{"a literal, then a parameter", []string{
			"  - DELETE /zones/all -> DNS\\Purge-Zone",
			"  - DELETE /zones/{zone} -> DNS\\Remove-Zone",
		}, []string{"catalog/dns.yaml:7:", "and catalog/dns.yaml:8:", "(DELETE /zones/all)"}},
		{"a rest and a longer path", []string{
			"  - DELETE /zones/{rest...} -> DNS\\Remove-Zone",
			"  - DELETE /zones/{zone}/records/{record} -> DNS\\Purge-Zone",
		}, []string{"catalog/dns.yaml:7:", "catalog/dns.yaml:8:", "(DELETE /zones/x/records/x)"}},
		{"a longer path and a rest", []string{
			"  - DELETE /zones/a/b -> DNS\\Purge-Zone",
			"  - DELETE /{area}/{rest...} -> DNS\\Remove-Zone",
		}, []string{"catalog/dns.yaml:7:", "catalog/dns.yaml:8:", "(DELETE /zones/a/b)"}},
		{"two rests", []string{
			"  - DELETE /zones/{rest...} -> DNS\\Remove-Zone",
			"  - DELETE /{area}/x/{more...} -> DNS\\Purge-Zone",
		}, []string{"catalog/dns.yaml:7:", "catalog/dns.yaml:8:"}},
		{"one method of several", []string{
			"  - PUT,DELETE /zones/{zone} -> DNS\\Remove-Zone",
			"  - POST,DELETE /zones/{zone} -> DNS\\Purge-Zone",
		}, []string{"catalog/dns.yaml:7:", "catalog/dns.yaml:8:", "(DELETE /zones/x)"}},
		{"a query parameter present, and one with a value", []string{
			"  - DELETE /zones/{zone}?force -> DNS\\Purge-Zone",
			"  - DELETE /zones/{zone}?force=yes -> DNS\\Remove-Zone",
		}, []string{"catalog/dns.yaml:7:", "catalog/dns.yaml:8:"}},
		{"a query condition on one route only", []string{
			"  - DELETE /zones/{zone} -> DNS\\Remove-Zone",
			"  - DELETE /zones/{zone}?force -> DNS\\Purge-Zone",
		}, []string{`catalog/dns.yaml:7: route "DELETE /zones/{zone} -> DNS\\Remove-Zone" and catalog/dns.yaml:8: route "DELETE /zones/{zone}?force -> DNS\\Purge-Zone" can match one call (DELETE /zones/x) as two tasks, "DNS\\Remove-Zone" and "DNS\\Purge-Zone"; make them exclusive with a query or body condition`}},
		{"body conditions on different fields", []string{
			"  - route: POST /zones", "    body: json", "    match: {kind: Native}", "    task: DNS\\Remove-Zone",
			"  - route: POST /zones", "    body: json", "    match: {type: Master}", "    task: DNS\\Purge-Zone",
		}, []string{"catalog/dns.yaml:7:", "catalog/dns.yaml:11:"}},
		{"routes that read one call's body two ways", []string{
			"  - route: POST /zones/{zone}", "    body: json", "    task: DNS\\Remove-Zone",
			"  - route: POST /zones/{zone}", "    body: form", "    task: DNS\\Remove-Zone",
		}, []string{`catalog/dns.yaml:7: route "POST /zones/{zone}" and catalog/dns.yaml:10: route "POST /zones/{zone}" can match one call (POST /zones/x) but read its body as json and as form`}},

		{"other methods", []string{
			"  - DELETE /zones/{zone} -> DNS\\Remove-Zone",
			"  - POST /zones/{zone} -> DNS\\Purge-Zone",
		}, nil},
		{"other literals", []string{
			"  - DELETE /zones/{zone}/all -> DNS\\Purge-Zone",
			"  - DELETE /zones/{zone}/one -> DNS\\Remove-Zone",
		}, nil},
		{"other lengths", []string{
			"  - DELETE /zones/{zone} -> DNS\\Remove-Zone",
			"  - DELETE /zones/{zone}/{record} -> DNS\\Purge-Zone",
		}, nil},
		{"a rest wants one more segment", []string{
			"  - DELETE /zones -> DNS\\Purge-Zone",
			"  - DELETE /zones/{rest...} -> DNS\\Remove-Zone",
		}, nil},
		{"a rest under another literal", []string{
			"  - DELETE /zones/{rest...} -> DNS\\Remove-Zone",
			"  - DELETE /records/{rest...} -> DNS\\Purge-Zone",
		}, nil},
		{"one task", []string{
			"  - DELETE /zones/{zone} -> DNS\\Remove-Zone",
			"  - DELETE /zones/all -> DNS\\Remove-Zone",
			"  - DELETE /zones/{rest...} -> DNS\\Remove-Zone",
		}, nil},
		{"query values that differ", []string{
			"  - POST /zones/{zone}?action=delete -> DNS\\Remove-Zone",
			"  - route: POST /zones/{zone}", "    query: {action: purge}", "    task: DNS\\Purge-Zone",
		}, nil},
		{"an empty query value and another", []string{
			"  - POST /zones/{zone}?action= -> DNS\\Remove-Zone",
			"  - POST /zones/{zone}?action=purge -> DNS\\Purge-Zone",
		}, nil},
		{"body values that differ", []string{
			"  - route: POST /zones", "    body: json", "    match: {kind: Native, ttl: 60}", "    task: DNS\\Remove-Zone",
			"  - route: POST /zones", "    body: json", "    match: {kind: Master}", "    task: DNS\\Purge-Zone",
		}, nil},
		{"JSON-RPC methods", []string{
			"  - route: POST /rpc", "    body: jsonrpc", "    rpc: zone.delete", "    task: DNS\\Remove-Zone",
			"  - route: POST /rpc", "    body: jsonrpc", "    rpc: zone.purge", "    task: DNS\\Purge-Zone",
		}, nil},
		{"GraphQL fields", []string{
			"  - route: POST /graphql", "    body: graphql", "    graphql: mutation deleteZone", "    task: DNS\\Remove-Zone",
			"  - route: POST /graphql", "    body: graphql", "    graphql: mutation purgeZone", "    task: DNS\\Purge-Zone",
			"  - route: POST /graphql", "    body: graphql", "    graphql: query", "    task: DNS\\Get-Zone",
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := policy.ReadBundle(bundleOf(map[string]string{"catalog/dns.yaml": dnsTable(tc.routes...)}))
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, policy.ErrInvalidBundle)
			for _, want := range tc.want {
				require.Contains(t, err.Error(), want)
			}
		})
	}
}

// TestGeneratedRego: a table compiles to one module named after its file,
// whose rules are at the lines of the table, whose strings are the table's
// strings whatever they hold, and whose match rules have the shape OPA's
// rule index selects by upstream, method and path.
func TestGeneratedRego(t *testing.T) {
	nasty := `Odd\Task "quoted" } := true # not code; allow := true \u0041 ⟨⟩`
	src := lines(
		"upstream: odd", // 1
		"tasks:",        // 2
		"  "+strconv.Quote(nasty)+`: {description: "a\nb"}`, // 3
		"  Odd\\Get: {read: true}",                          // 4
		"roles:",                                            // 5
		"  Odd\\Role: [Odd\\Get]",                           // 6
		"routes:",                                           // 7
		"  - GET,HEAD /items/{id}/%2F%22/x -> Odd\\Get",     // 8
		"  - "+strconv.Quote("DELETE /items/{id}?force -> "+nasty), // 9
		"  - GET /all/{rest...} -> Odd\\Get",                       // 10
	)
	b, err := policy.ReadBundle(bundleOf(map[string]string{"catalog/odd.yaml": src}))
	require.NoError(t, err)
	m := b.Modules["catalog/odd.yaml"]
	require.NotNil(t, m)
	require.Equal(t, "data.elevate.catalog", m.Package.Path.String())

	rows := map[string][]int{}
	var matches []*ast.Rule
	for _, r := range m.Rules {
		require.Equal(t, "catalog/odd.yaml", r.Location.File)
		name := r.Head.Ref()[0].String()
		rows[name] = append(rows[name], r.Location.Row)
		if name == "match" {
			matches = append(matches, r)
		}
	}
	// A route with one-segment parameters also names their values as the
	// call's attributes, for grants' constraints; {rest...} is not one.
	require.Equal(t, map[string][]int{"tasks": {3, 4}, "roles": {6}, "match": {8, 9, 10}, "attributes": {8, 9}}, rows)
	for _, r := range m.Rules {
		if r.Head.Ref()[0].String() == "attributes" {
			require.Equal(t, `{"id": input.path[1]}`, r.Head.Value.String())
		}
	}

	// The task name and the description are the strings of the table.
	var names []string
	for _, r := range m.Rules {
		if r.Head.Ref()[0].String() == "tasks" {
			names = append(names, string(r.Head.Ref()[1].Value.(ast.String)))
		}
	}
	require.Equal(t, []string{nasty, `Odd\Get`}, names)
	require.Equal(t, ast.String(nasty), matches[1].Head.Key.Value)

	// The shape of each route.
	body := func(r *ast.Rule) []string {
		var out []string
		for _, e := range r.Body {
			out = append(out, e.String())
		}
		return out
	}
	require.Equal(t, []string{
		`equal(input.upstream, "odd")`,
		`equal(input.method, "GET")`,
		`input.path = ["items", _, "/\"", "x"]`,
		`neq(input.path[1], "")`,
	}, body(matches[0]))
	require.Equal(t, []string{
		`equal(input.upstream, "odd")`,
		`equal(input.method, "DELETE")`,
		`input.path = ["items", _]`,
		`neq(input.path[1], "")`,
		`gt(count(input.query.force), 0)`,
	}, body(matches[1]))
	require.Equal(t, []string{
		`equal(input.upstream, "odd")`,
		`equal(input.method, "GET")`,
		`equal(input.path[0], "all")`,
		`is_string(input.path[1])`,
	}, body(matches[2]))
}

// TestRouteTablesAgainstTheBundle: New refuses a table whose routes, roles
// or role groups name what neither a table nor a Rego catalog declares,
// that declares again what a Rego catalog does, or that is for an upstream
// not configured; and it warns of tables without routes and configured
// upstreams no route reaches.
func TestRouteTablesAgainstTheBundle(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		desc      string
		files     map[string]string
		upstreams []string
		want      []string
	}{
		{"a route to an unknown task", map[string]string{"catalog/dns.yaml": dnsTable("  - GET /zones -> DNS\\Get-Zones")},
			nil, []string{`catalog/dns.yaml:7: route "GET /zones -> DNS\\Get-Zones": no route table or Rego catalog declares task "DNS\\Get-Zones"`}},
		{"a route to a task of another upstream", map[string]string{"catalog/dns.yaml": dnsTable("  - GET /zones -> Exchange\\Get-Mailbox")},
			nil, []string{`catalog/dns.yaml:7: route "GET /zones -> Exchange\\Get-Mailbox": task "Exchange\\Get-Mailbox" is a task of upstream "exchange", not "dns"`}},
		{"a role naming an unknown task", map[string]string{"catalog/dns.yaml": lines("upstream: dns", "roles:", "  DNS\\Admin:", "    - DNS\\Get-Zone")},
			nil, []string{`catalog/dns.yaml:4: role "DNS\\Admin" names task "DNS\\Get-Zone", which no route table or Rego catalog declares`}},
		{"a role group naming an unknown role", map[string]string{"catalog/dns.yaml": lines("upstream: dns", "role_groups:", "  DNS\\Admins: {roles: [DNS\\Admin]}")},
			nil, []string{`catalog/dns.yaml:3: role group "DNS\\Admins" names role "DNS\\Admin", which no route table or Rego catalog declares`}},
		{"a task declared in a table and in Rego, alike", map[string]string{
			"catalog/dns.yaml":  lines("upstream: dns", "tasks:", "  DNS\\Get-Zone: {read: true}"),
			"catalog/more.rego": lines("package elevate.catalog", "", `tasks["DNS\\Get-Zone"] := {"upstream": "dns", "read": true, "description": ""}`),
		}, nil, []string{`task "DNS\\Get-Zone" is declared both at catalog/dns.yaml:3 and at catalog/more.rego:3`}},
		{"a role declared in a table and in Rego", map[string]string{
			"catalog/dns.yaml":  lines("upstream: dns", "roles:", "  DNS\\Admin: []"),
			"catalog/more.rego": lines("package elevate.catalog", "", `roles["DNS\\Admin"] := set()`),
		}, nil, []string{`role "DNS\\Admin" is declared both at catalog/dns.yaml:3 and at catalog/more.rego:3`}},
		{"a table for an upstream not configured", map[string]string{"catalog/dns.yaml": dnsTable("  - GET /zones -> DNS\\Get-Zone")},
			[]string{"exchange", "dns2"}, []string{`catalog/dns.yaml:1: upstream "dns" is not configured (configured: exchange, dns2)`}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := policy.New(ctx, policy.Config{Bundle: bundleWith(t, tc.files), Upstreams: tc.upstreams})
			require.ErrorIs(t, err, policy.ErrInvalidBundle)
			for _, want := range tc.want {
				require.Contains(t, err.Error(), want)
			}
		})
	}

	t.Run("warnings", func(t *testing.T) {
		e, err := policy.New(ctx, policy.Config{
			Bundle:    bundleWith(t, map[string]string{"catalog/dns.yaml": lines("upstream: dns", "routes: []")}),
			Upstreams: []string{"exchange", "rabbitmq", "caddy", "dns", "gitea"},
		})
		require.NoError(t, err)
		require.Equal(t, []string{
			`catalog/dns.yaml:1: the route table of upstream "dns" has no routes`,
			`upstream "dns" is configured, but no route table or catalog routes calls to it`,
			`upstream "gitea" is configured, but no route table or catalog routes calls to it`,
		}, e.Warnings())
		require.Empty(t, newEngine(t, defaultBundle()).Warnings())
	})
}

// TestJSONRouteTable: a route table may be JSON, with the same keys; its
// errors name its lines as a YAML table's do.
func TestJSONRouteTable(t *testing.T) {
	src := "{\n" +
		"\t\"upstream\": \"dns\",\n" +
		"\t\"tasks\": {\"DNS\\\\Get-Zone\": {\"read\": true}, \"DNS\\\\Remove-Zone\": {}},\n" +
		"\t\"routes\": [\n" +
		"\t\t\"GET /zones/{zone} -> DNS\\\\Get-Zone\",\n" +
		"\t\t{\"route\": \"DELETE /zones/{zone}\", \"task\": \"DNS\\\\Remove-Zone\"}\n" +
		"\t]\n" +
		"}\n"
	e := newEngine(t, bundleWith(t, map[string]string{"catalog/dns.json": src}))
	require.NoError(t, e.SetState(context.Background(), policy.State{}))
	for method, task := range map[string]string{"GET": `DNS\Get-Zone`, "DELETE": `DNS\Remove-Zone`, "PUT": ""} {
		in := call(method, "zones", "example.org.")
		in.Upstream = "dns"
		require.Equal(t, task, eval(t, e, in).Task, method)
	}

	_, err := policy.ReadBundle(bundleOf(map[string]string{"catalog/dns.json": strings.Replace(src, `"DELETE /zones/{zone}"`, `"DELETE /zones/{zone}/"`, 1)}))
	require.ErrorIs(t, err, policy.ErrInvalidBundle)
	require.Contains(t, err.Error(), `catalog/dns.json:6: path "/zones/{zone}/": a trailing / is not a pattern`)
}
