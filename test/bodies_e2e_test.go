//go:build e2e

package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests put elevate in front of two admin APIs whose operation is in
// the body: aria2's JSON-RPC interface (aria2c from Debian) and a GraphQL
// API (test/e2e/graphql, the reference graphql package from npm). Their
// route tables are a policy.dirs layer of the test's own, as a user would
// write them.

const aria2Table = `upstream: aria2
body: jsonrpc
tasks:
  Aria2\Get-Status: {read: true, description: Read downloads and global statistics}
  Aria2\Stop-Server: {description: Shut aria2 down}
  Aria2\Remove-Result: {description: Forget a finished download}
  Aria2\Set-Global-Option: {description: Change a global option}
routes:
  - {route: POST /jsonrpc, rpc: aria2.tellActive, task: Aria2\Get-Status}
  - {route: POST /jsonrpc, rpc: aria2.getGlobalStat, task: Aria2\Get-Status}
  - {route: POST /jsonrpc, rpc: aria2.shutdown, task: Aria2\Stop-Server}
  - {route: POST /jsonrpc, rpc: aria2.removeDownloadResult, task: Aria2\Remove-Result}
  - {route: POST /jsonrpc, rpc: aria2.changeGlobalOption, task: Aria2\Set-Global-Option}
`

const usersTable = `upstream: users
body: graphql
tasks:
  Users\Get-User: {read: true, description: List users or read one}
  Users\Rename-User: {description: Rename a user}
  Users\Remove-User: {description: Delete a user}
routes:
  - {route: POST /graphql, graphql: query users, task: Users\Get-User}
  - {route: POST /graphql, graphql: query user, task: Users\Get-User}
  - {route: POST /graphql, graphql: mutation renameUser, task: Users\Rename-User}
  - {route: POST /graphql, graphql: mutation deleteUser, task: Users\Remove-User}
`

// bodyUpstreams runs aria2 and the GraphQL server and elevate in front of
// both, with access control on and approval policies on the gated tasks.
type bodyUpstreams struct {
	s          *server
	aria2, gql *background
	secret     string
	a          actors
}

func startBodyUpstreams(t *testing.T) *bodyUpstreams {
	t.Helper()
	aria2c := program(t, "aria2c")
	node := program(t, "node")
	gqlDir, err := filepath.Abs("e2e/graphql")
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(gqlDir, "node_modules", "graphql")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("test/e2e/graphql has no node_modules; test/e2e/install.sh installs them")
		}
		t.Skip("test/e2e/graphql has no node_modules; run test/e2e/install.sh")
	}

	b := &bodyUpstreams{secret: randHex(t, 16)}
	ports := freeLoopbackPorts(t, 2)
	aria2Port, gqlPort := ports[0], ports[1]
	dir := t.TempDir()
	b.aria2 = startBackground(t, programEnv(), dir, "aria2c.log", aria2c,
		"--enable-rpc", "--rpc-listen-all=false", fmt.Sprintf("--rpc-listen-port=%d", aria2Port),
		"--rpc-secret="+b.secret, "--dir="+dir, "--no-conf", "--quiet=true")
	// node finds the graphql package beside the script, wherever it runs.
	b.gql = startBackground(t, programEnv(), dir, "graphql.log", node, filepath.Join(gqlDir, "server.mjs"), fmt.Sprint(gqlPort))
	waitRPC(t, b.aria2, fmt.Sprintf("http://127.0.0.1:%d/jsonrpc", aria2Port),
		`{"jsonrpc":"2.0","id":"w","method":"aria2.getVersion","params":["token:`+b.secret+`"]}`)
	waitRPC(t, b.gql, fmt.Sprintf("http://127.0.0.1:%d/graphql", gqlPort), `{"query":"{ users { id } }"}`)

	policyDir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(policyDir, "catalog"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(policyDir, "catalog", "aria2.yaml"), []byte(aria2Table), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(policyDir, "catalog", "users.yaml"), []byte(usersTable), 0o600))
	t.Setenv("E2E_ARIA2_SECRET", b.secret)
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`policy:
  dirs: [%s]
upstreams:
  - name: aria2
    url: http://127.0.0.1:%d
    prefix: /aria2/
    credential: {type: jsonrpc-token, prefix: "token:", value_env: E2E_ARIA2_SECRET}
  - name: users
    url: http://127.0.0.1:%d
    prefix: /users/
`, policyDir, aria2Port, gqlPort)), 0o600))
	b.s = startDev(t, "--config", cfg)
	b.a = newActors(b.s)
	b.s.ok(b.a.admin, "control", "enable", "--approvers", "approvers")
	for _, task := range []string{`Aria2\Stop-Server`, `Aria2\Remove-Result`, `Aria2\Set-Global-Option`, `Users\Remove-User`} {
		b.s.ok(b.a.admin, "policy", "create", "--task", task, "--approval", "manual")
	}
	return b
}

// waitRPC posts body to url until it answers 200.
func waitRPC(t *testing.T, d *background, url, body string) {
	t.Helper()
	waitOK(t, d, url, 30*time.Second, func() *http.Request {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		return req
	})
}

// post sends a JSON body through elevate as who.
func (b *bodyUpstreams) post(t *testing.T, who, path, body string) reply {
	t.Helper()
	return do(t, http.MethodPost, "http://"+b.s.proxyAddr+path, who, body, "Content-Type: application/json")
}

// problemType is the type of a problem answer, "" for another answer.
func problemType(t *testing.T, r reply) string {
	t.Helper()
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(r.body, &p)
	return strings.TrimPrefix(p.Type, "urn:elevate:problem:")
}

// approve has bob ask for task and an approver grant it.
func (b *bodyUpstreams) approve(t *testing.T, task string) string {
	t.Helper()
	id := b.s.request(b.a.bob, "--task", task, "--reason", "e2e", "--duration", "10m")
	b.s.ok(b.a.approver, "request", "approve", id, "--comment", "ok")
	return id
}

// recordsOf are the audit records of upstream, oldest first.
func (b *bodyUpstreams) recordsOf(upstream string) []map[string]any {
	var out []map[string]any
	for _, r := range b.s.auditRecords() {
		if r["upstream"] == upstream && r["event"] != "outcome" {
			out = append(out, r)
		}
	}
	return out
}

// TestE2EAria2: aria2's JSON-RPC API behind elevate. Reads pass; shutdown,
// removeDownloadResult and changeGlobalOption are gated; a batch mixing a
// read and a gated call is refused without a grant; the caller never holds
// the RPC secret: elevate injects it, and a caller-sent token is refused.
func TestE2EAria2(t *testing.T) {
	b := startBodyUpstreams(t)
	rpc := func(method string, params ...string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":"1","method":%q,"params":[%s]}`, method, strings.Join(params, ","))
	}

	// Reads pass, with the secret elevate injects: aria2 itself would
	// refuse them without it.
	for _, m := range []string{"aria2.tellActive", "aria2.getGlobalStat"} {
		r := b.post(t, b.a.bob, "/aria2/jsonrpc", rpc(m))
		require.Equal(t, http.StatusOK, r.status, "%s: %s", m, string(r.body))
		require.Contains(t, string(r.body), `"result"`, m)
		require.NotContains(t, string(r.body), "Unauthorized", m)
	}

	// Gated calls are refused without a grant and never reach aria2.
	for m, task := range map[string]string{
		"aria2.removeDownloadResult": `Aria2\Remove-Result`,
		"aria2.changeGlobalOption":   `Aria2\Set-Global-Option`,
		"aria2.shutdown":             `Aria2\Stop-Server`,
	} {
		var params []string
		switch m {
		case "aria2.removeDownloadResult":
			params = []string{`"0000000000000001"`}
		case "aria2.changeGlobalOption":
			params = []string{`{"max-overall-download-limit":"1M"}`}
		}
		r := b.post(t, b.a.bob, "/aria2/jsonrpc", rpc(m, params...))
		require.Equal(t, http.StatusForbidden, r.status, "%s: %s", m, string(r.body))
		require.Equal(t, "grant-required", problemType(t, r), m)
		require.Contains(t, string(r.body), strings.ReplaceAll(task, `\`, `\\`), m)
	}

	// A batch of a read and a gated call: refused as a whole.
	batch := "[" + rpc("aria2.getGlobalStat") + "," + rpc("aria2.changeGlobalOption", `{"max-overall-download-limit":"1M"}`) + "]"
	r := b.post(t, b.a.bob, "/aria2/jsonrpc", batch)
	require.Equal(t, http.StatusForbidden, r.status, string(r.body))

	// The caller may not send the secret itself, right or wrong.
	for _, tok := range []string{`"token:` + b.secret + `"`, `"token:guess"`} {
		r := b.post(t, b.a.bob, "/aria2/jsonrpc", rpc("aria2.getGlobalStat", tok))
		require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
		require.Equal(t, "credential-in-request", problemType(t, r))
		require.NotContains(t, string(r.body), b.secret)
	}

	// With a grant: the option changes on aria2 itself, and the batch passes.
	b.approve(t, `Aria2\Set-Global-Option`)
	r = b.post(t, b.a.bob, "/aria2/jsonrpc", rpc("aria2.changeGlobalOption", `{"max-overall-download-limit":"1M"}`))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"OK"`)
	r = b.post(t, b.a.bob, "/aria2/jsonrpc", rpc("aria2.getGlobalOption"))
	require.Equal(t, http.StatusForbidden, r.status, "a method no route names matches no task: %s", string(r.body))
	r = b.post(t, b.a.bob, "/aria2/jsonrpc", batch)
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	// The record says what was done: each call of the batch its own task,
	// and never the secret.
	recs := b.recordsOf("aria2")
	require.NotEmpty(t, recs)
	last := recs[len(recs)-1]
	require.Equal(t, "allowed", last["event"])
	raw, err := json.Marshal(last)
	require.NoError(t, err)
	require.Contains(t, string(raw), "aria2.getGlobalStat")
	require.Contains(t, string(raw), "aria2.changeGlobalOption")
	for _, rec := range recs {
		raw, err := json.Marshal(rec)
		require.NoError(t, err)
		require.NotContains(t, string(raw), b.secret)
	}

	// Shutdown with a grant: aria2 stops.
	b.approve(t, `Aria2\Stop-Server`)
	r = b.post(t, b.a.bob, "/aria2/jsonrpc", rpc("aria2.shutdown"))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.True(t, b.aria2.wait(30*time.Second), "aria2 stops after an approved shutdown:\n%s", b.aria2.output())
}

// TestE2EGraphQL: a GraphQL API behind elevate. The query passes, the
// ungated mutation passes, the gated one is refused without a grant
// however it is spelled (an alias, a fragment, beside an allowed field),
// and passes with one.
func TestE2EGraphQL(t *testing.T) {
	b := startBodyUpstreams(t)
	gql := func(query string) string {
		body, err := json.Marshal(map[string]string{"query": query})
		require.NoError(t, err)
		return string(body)
	}
	r := b.post(t, b.a.bob, "/users/graphql", gql(`{ users { id name } }`))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"bob"`)

	r = b.post(t, b.a.bob, "/users/graphql", gql(`mutation { renameUser(id: "3", name: "eva") { name } }`))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"eva"`)

	for name, q := range map[string]string{
		"plain":          `mutation { deleteUser(id: "2") }`,
		"alias":          `mutation { keep: deleteUser(id: "2") }`,
		"fragment":       `mutation { ...F } fragment F on Mutation { deleteUser(id: "2") }`,
		"inline":         `mutation { ... on Mutation { deleteUser(id: "2") } }`,
		"beside allowed": `mutation { renameUser(id: "1", name: "ada") { name } deleteUser(id: "2") }`,
	} {
		r := b.post(t, b.a.bob, "/users/graphql", gql(q))
		require.Equal(t, http.StatusForbidden, r.status, "%s: %s", name, string(r.body))
	}
	// Two operations in one document are refused outright.
	r = b.post(t, b.a.bob, "/users/graphql", gql(`query A { users { id } } mutation B { deleteUser(id: "2") }`))
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	require.Equal(t, "bad-body", problemType(t, r))

	// Nothing gated reached the server.
	require.NotContains(t, b.gql.output(), `"deleteUser"`)

	b.approve(t, `Users\Remove-User`)
	r = b.post(t, b.a.bob, "/users/graphql", gql(`mutation { deleteUser(id: "2") }`))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"deleteUser":true`)
	require.Contains(t, b.gql.output(), `"deleteUser"`)
	r = b.post(t, b.a.bob, "/users/graphql", gql(`{ users { name } }`))
	require.NotContains(t, string(r.body), `"bob"`, "the user is gone")

	// Every mutation the server ran was judged: one line per operation.
	sc := bufio.NewScanner(strings.NewReader(b.gql.output()))
	deletes := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"deleteUser"`) {
			deletes++
		}
	}
	require.Equal(t, 1, deletes, "only the approved deleteUser reached the server")
}
