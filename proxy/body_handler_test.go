package proxy_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/shapes"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/rego"
)

// bodyRules judges bodies as route tables would: aria2 as JSON-RPC, gql
// as GraphQL, dns as JSON recording name, kind and password, forms as a
// form.
type bodyRules map[string]policy.BodySpec

func (b bodyRules) Body(upstream, _ string, _ []string) policy.BodySpec { return b[upstream] }

var fakeBodies = bodyRules{
	"aria2": {Kind: policy.BodyJSONRPC, Record: []string{"params.1"}},
	"gql":   {Kind: policy.BodyGraphQL, Record: []string{"variables"}},
	"dns":   {Kind: policy.BodyJSON, Record: []string{"name", "kind", "password"}},
	"forms": {Kind: policy.BodyForm, Record: []string{"zone"}},
}

// bodyPolicy judges aria2 calls by method (rpcPolicy) and GraphQL fields
// by name (deleteUser needs a grant nobody holds); everything else is an
// ungated read.
func bodyPolicy(in policy.Input) (policy.Decision, error) {
	switch in.Upstream {
	case "aria2":
		return rpcPolicy(in)
	case "gql":
		if f, _ := in.Body.(map[string]any); f["field"] == "deleteUser" {
			return policy.Decision{Outcome: policy.GrantRequired, Task: `Users\Remove-User`, Gated: true, Reason: "needs a grant",
				Request: &policy.Target{Scope: policy.ScopeTask, Target: `Users\Remove-User`}}, nil
		}
		return policy.Decision{Outcome: policy.Allow, Task: `Users\Get-User`, Reason: "a read"}, nil
	}
	return policy.Decision{Outcome: policy.Allow, Task: `DNS\Zone`, Reason: "a read"}, nil
}

// bodyEnv is the proxy listener's handler in process in front of four
// body-judged upstreams (recorders), aria2, gql, dns and forms, with a
// real verifier, a real audit log with a body key and bob holding grt-rpc
// (for Aria2\Shutdown); the policy and the body rules are the test's.
type bodyEnv struct {
	*proxyEnv
	key string // the body key
}

const aria2Secret = "aria2-s3cret"

func newBodyEnv(t *testing.T, pol proxy.Decider, bodies proxy.BodyRules) *bodyEnv {
	t.Helper()
	dir := t.TempDir()
	iss := newTestIssuer(t)
	keyFile := filepath.Join(dir, "body.key")
	require.NoError(t, audit.CreateBodyKey(keyFile))
	key, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	logPath := filepath.Join(dir, "audit.log")
	auditLog, err := audit.Open(audit.Config{Path: logPath, BodyKeyFile: keyFile})
	require.NoError(t, err)
	now := time.Now()
	bob := []grants.Grant{{ID: "grt-rpc", RequestID: "req-rpc", Subject: "bob", Scope: grants.ScopeTask, Target: `Aria2\Shutdown`,
		NotBefore: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}}
	gate, err := proxy.NewGate(proxy.GateConfig{Verifier: iss.verifier, Grants: &fakeView{live: map[string][]grants.Grant{"bob": bob}},
		Policy: pol, Audit: auditLog, Digest: auditLog, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() {
		gate.Drain()
		require.NoError(t, auditLog.Close())
	})
	ups := shapes.StartUpstreams(t)
	secret := filepath.Join(dir, "aria2.secret")
	require.NoError(t, os.WriteFile(secret, []byte(aria2Secret+"\n"), 0o600))
	var routes []proxy.Upstream
	for _, name := range []string{"aria2", "gql", "dns", "forms"} {
		srv := httptest.NewServer(ups.Recorder.Handler(name))
		t.Cleanup(srv.Close)
		u := proxy.Upstream{Name: name, URL: srv.URL, Prefix: "/" + name + "/", CredentialParams: []string{"secret"}}
		switch name {
		case "aria2":
			u.Credential = &proxy.Credential{Type: "jsonrpc-token", ValueFile: secret}
		case "dns":
			u.MaxJudgedBody = 64
		}
		routes = append(routes, u)
	}
	e := &proxyEnv{gate: gate, bodies: bodies}
	e.Env = &shapes.Env{Tokens: map[string]string{"bob": iss.token(t, "bob", time.Hour), "dan": iss.token(t, "dan", time.Hour)},
		Upstreams: ups, AuditLog: logPath}
	e.Env = e.at(e.serve(t, routes))
	return &bodyEnv{proxyEnv: e, key: strings.TrimSpace(string(key))}
}

func (e *bodyEnv) hmac(body string) string {
	m := hmac.New(sha256.New, []byte(e.key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

// chunked is a raw request sending body in two chunks.
func chunked(who, target, contentType, body string) string {
	half := len(body) / 2
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: elevate.test\r\nAuthorization: Bearer {{%s}}\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
		"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", target, who, contentType, half, body[:half], len(body)-half, body[half:])
}

const jsonType = "Content-Type: application/json"

// TestProxyJudgedBodies: a judged body reaches the upstream as exactly the
// bytes judged (with elevate's token inserted where the upstream takes
// one), with its own Content-Length; its record carries the query
// without credentials, the operations, the body digest and the fields the
// route records.
func TestProxyJudgedBodies(t *testing.T) {
	e := newBodyEnv(t, &fakeDecider{decide: bodyPolicy}, fakeBodies)
	token := `"token:` + aria2Secret + `",`

	t.Run("a chunked JSON-RPC call, token inserted", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","method":"aria2.shutdown","id":1,"params":["x"]}`
		hit := e.forwarded(t, shapes.Case{Raw: chunked("bob", "/aria2/jsonrpc?tid=7&SECRET=mine", "application/json", body)})
		require.Equal(t, "POST /jsonrpc?tid=7", hit.Line)
		want := strings.Replace(body, `"params":[`, `"params":[`+token, 1)
		require.Equal(t, want, hit.Body)
		require.Equal(t, strconv.Itoa(len(want)), hit.Header.Get("Content-Length"))
		require.Empty(t, hit.Header.Values("Transfer-Encoding"))
	})

	t.Run("the record of an allowed batch", func(t *testing.T) {
		body := `[{"jsonrpc":"2.0","method":"aria2.tellStatus","params":["2089b05ecca3d829"],"id":1},{"jsonrpc":"2.0","method":"aria2.shutdown","id":2}]`
		a, hit := e.send(t, shapes.Case{As: "bob", Method: "POST", Target: "/aria2/jsonrpc?secret=mine&tid=8", Headers: []string{jsonType}, Body: body})
		require.Equal(t, http.StatusOK, a.Status, a.Body)
		require.NotNil(t, hit)
		require.Equal(t, `[{"jsonrpc":"2.0","method":"aria2.tellStatus","params":[`+token+`"2089b05ecca3d829"],"id":1},{"params":[`+strings.TrimSuffix(token, ",")+`],"jsonrpc":"2.0","method":"aria2.shutdown","id":2}]`, hit.Body)
		rec := e.Record(t, a.DecisionID)
		require.Equal(t, "allowed", rec["event"])
		require.Equal(t, "tid=8", rec["query"], "the query as forwarded, without the credential")
		require.Equal(t, e.hmac(body), rec["body_hmac"], "the digest of the body as judged, without the token")
		require.Nil(t, rec["task"], "two tasks: each in its operation")
		require.Equal(t, "grt-rpc", rec["grant_id"])
		require.Equal(t, []any{
			map[string]any{"name": "aria2.tellStatus", "task": `Aria2\Get-Status`, "outcome": "allow"},
			map[string]any{"name": "aria2.shutdown", "task": `Aria2\Shutdown`, "outcome": "allow", "grant_id": "grt-rpc"},
		}, rec["operations"])
		out := e.outcome(t, a.DecisionID)
		require.Equal(t, "tid=8", out["query"])
		line, err := os.ReadFile(e.AuditLog)
		require.NoError(t, err)
		require.NotContains(t, string(line), aria2Secret, "the token is never recorded")
		require.NotContains(t, string(line), "mine")
	})

	t.Run("a batch mixing a read and a gated call", func(t *testing.T) {
		body := `[{"jsonrpc":"2.0","method":"aria2.tellActive","id":1},{"jsonrpc":"2.0","method":"aria2.shutdown","id":2}]`
		a, hit := e.send(t, shapes.Case{Method: "POST", Target: "/aria2/jsonrpc", Headers: []string{jsonType}, Body: body})
		require.Nil(t, hit)
		p := requireProblem(t, a, http.StatusForbidden, "grant-required")
		require.Equal(t, `Aria2\Shutdown`, p.Task)
		require.Contains(t, p.Detail, "call 2 of 2 (aria2.shutdown)")
		rec := e.Record(t, p.DecisionID)
		require.Equal(t, "grant_required", rec["event"])
		require.Equal(t, `Aria2\Shutdown`, rec["task"])
		require.Len(t, rec["operations"], 2)
		require.Equal(t, e.hmac(body), rec["body_hmac"])
	})

	t.Run("GraphQL: an alias and a fragment do not hide a gated field", func(t *testing.T) {
		body := `{"query":"mutation { listUsers: users ...F } fragment F on Mutation { renamed: deleteUser(id: 1) }","variables":{"id":"1"}}`
		a, hit := e.send(t, shapes.Case{As: "bob", Method: "POST", Target: "/gql/graphql", Headers: []string{jsonType}, Body: body})
		require.Nil(t, hit)
		p := requireProblem(t, a, http.StatusForbidden, "grant-required")
		require.Equal(t, `Users\Remove-User`, p.Task)
		rec := e.Record(t, p.DecisionID)
		require.Equal(t, []any{
			map[string]any{"name": "mutation users", "task": `Users\Get-User`, "outcome": "allow", "fields": map[string]any{"variables": map[string]any{"id": "1"}}},
			map[string]any{"name": "mutation deleteUser", "task": `Users\Remove-User`, "outcome": "grant_required", "fields": map[string]any{"variables": map[string]any{"id": "1"}}},
		}, rec["operations"])
	})

	t.Run("GraphQL: a query goes on as sent", func(t *testing.T) {
		body := `{"query":"query { users { id } }"}`
		hit := e.forwarded(t, shapes.Case{Method: "POST", Target: "/gql/graphql", Headers: []string{"Content-Type: application/json; charset=utf-8"}, Body: body})
		require.Equal(t, body, hit.Body)
	})

	t.Run("JSON: fields recorded, never a credential", func(t *testing.T) {
		body := `{"name":"a.org.","kind":"Native","password":"pw"}`
		a, hit := e.send(t, shapes.Case{Method: "POST", Target: "/dns/zones", Headers: []string{jsonType}, Body: body})
		require.Equal(t, http.StatusOK, a.Status, a.Body)
		require.Equal(t, body, hit.Body)
		rec := e.Record(t, a.DecisionID)
		require.Equal(t, map[string]any{"name": "a.org.", "kind": "Native"}, rec["fields"])
		require.Nil(t, rec["operations"])
	})

	t.Run("a form: credential stripped, then judged and forwarded", func(t *testing.T) {
		a, hit := e.send(t, shapes.Case{Method: "POST", Target: "/forms/zones", Headers: []string{"Content-Type: application/x-www-form-urlencoded"},
			Body: "zone=a.org.&Secret=mine"})
		require.Equal(t, http.StatusOK, a.Status, a.Body)
		require.Equal(t, "zone=a.org.", hit.Body)
		require.Equal(t, "11", hit.Header.Get("Content-Length"))
		rec := e.Record(t, a.DecisionID)
		require.Equal(t, map[string]any{"zone": []any{"a.org."}}, rec["fields"])
		require.Equal(t, e.hmac("zone=a.org."), rec["body_hmac"])
	})
}

// TestProxyJudgedBodyRefusals: a body that cannot be judged with certainty
// is refused with a problem naming why, audited under its decision id,
// and nothing reaches the upstream.
func TestProxyJudgedBodyRefusals(t *testing.T) {
	e := newBodyEnv(t, &fakeDecider{decide: bodyPolicy}, fakeBodies)
	for _, tc := range []struct {
		desc   string
		c      shapes.Case
		status int
		slug   string
		digest string // the body digested into the record; "" for none
	}{
		{desc: "over the limit", c: shapes.Case{Method: "POST", Target: "/dns/zones", Headers: []string{jsonType}, Body: `{"name":"` + strings.Repeat("a", 64) + `"}`},
			status: 413, slug: "body-too-large"},
		{desc: "over the limit, chunked", c: shapes.Case{Raw: chunked("dan", "/dns/zones", "application/json", `{"name":"`+strings.Repeat("a", 64)+`"}`)},
			status: 413, slug: "body-too-large"},
		{desc: "gzip", c: shapes.Case{Method: "POST", Target: "/dns/zones", Headers: []string{jsonType, "Content-Encoding: gzip"}, Body: "\x1f\x8b\x08\x00\x00"},
			status: 415, slug: "bad-body"},
		{desc: "a type that lies", c: shapes.Case{Method: "POST", Target: "/aria2/jsonrpc", Headers: []string{"Content-Type: text/plain"}, Body: `{"method":"aria2.shutdown"}`},
			status: 415, slug: "bad-body"},
		{desc: "truncated JSON", c: shapes.Case{Method: "POST", Target: "/aria2/jsonrpc?tid=9&Secret=mine", Headers: []string{jsonType}, Body: `{"method":"aria2.tellActive"`},
			status: 400, slug: "bad-body", digest: `{"method":"aria2.tellActive"`},
		{desc: "duplicate keys", c: shapes.Case{Method: "POST", Target: "/aria2/jsonrpc", Headers: []string{jsonType}, Body: `{"method":"aria2.tellActive","method":"aria2.shutdown"}`},
			status: 400, slug: "bad-body", digest: `{"method":"aria2.tellActive","method":"aria2.shutdown"}`},
		{desc: "an empty batch", c: shapes.Case{Method: "POST", Target: "/aria2/jsonrpc", Headers: []string{jsonType}, Body: `[]`},
			status: 400, slug: "bad-body", digest: `[]`},
		{desc: "a caller's token", c: shapes.Case{Method: "POST", Target: "/aria2/jsonrpc", Headers: []string{jsonType}, Body: `{"method":"aria2.tellActive","params":["token:mine"]}`},
			status: 400, slug: "credential-in-request"},
		{desc: "two GraphQL operations", c: shapes.Case{Method: "POST", Target: "/gql/graphql", Headers: []string{jsonType},
			Body: `{"query":"query A { users } mutation B { deleteUser }","operationName":"A"}`}, status: 400, slug: "bad-body",
			digest: `{"query":"query A { users } mutation B { deleteUser }","operationName":"A"}`},
		{desc: "a persisted query", c: shapes.Case{Method: "POST", Target: "/gql/graphql", Headers: []string{jsonType},
			Body: `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`}, status: 400, slug: "bad-body",
			digest: `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			a, hit := e.send(t, tc.c)
			require.Nil(t, hit, "nothing forwarded")
			p := requireProblem(t, a, tc.status, tc.slug)
			require.NotContains(t, a.Body, "mine")
			rec := e.Record(t, p.DecisionID)
			require.Equal(t, "bad_request", rec["event"])
			require.NotEmpty(t, rec["upstream"])
			require.NotEmpty(t, rec["reason"])
			require.NotContains(t, rec["reason"], "mine")
			if strings.Contains(tc.c.Target, "?") {
				require.Equal(t, "tid=9", rec["query"], "the query without the credential")
			}
			if tc.digest != "" {
				require.Equal(t, e.hmac(tc.digest), rec["body_hmac"])
			} else {
				require.Nil(t, rec["body_hmac"])
			}
		})
	}
}

// bodyTables are route tables for aria2 (JSON-RPC) and gql (GraphQL), as
// an operator would add them over the embedded bundle.
var bodyTables = fstest.MapFS{
	"catalog/aria2.yaml": {Data: []byte(`upstream: aria2
body: jsonrpc
tasks:
  Aria2\Get-Status: {read: true, description: Read the status of downloads}
  Aria2\Shutdown: {description: Stop aria2}
routes:
  - {route: POST /jsonrpc, rpc: aria2.tellActive, task: Aria2\Get-Status}
  - {route: POST /jsonrpc, rpc: aria2.getGlobalStat, task: Aria2\Get-Status}
  - {route: POST /jsonrpc, rpc: aria2.shutdown, task: Aria2\Shutdown, record: [id]}
`)},
	"catalog/gql.yaml": {Data: []byte(`upstream: gql
body: graphql
tasks:
  Users\Get-User: {read: true, description: Read users}
  Users\Remove-User: {description: Delete a user}
routes:
  - {route: POST /graphql, graphql: query users, task: Users\Get-User}
  - {route: POST /graphql, graphql: mutation deleteUser, task: Users\Remove-User, record: [variables]}
`)},
}

// TestProxyJudgedBodiesByRouteTables: the policy engine's route tables say
// which bodies are judged and how, and its Rego sees each call of a body
// as input.body: a read passes, a gated call needs its grant however it
// is hidden, and a batch passes only whole.
func TestProxyJudgedBodiesByRouteTables(t *testing.T) {
	ctx := context.Background()
	engine, err := policy.New(ctx, policy.Config{Bundle: policy.Layers(rego.Bundle, bodyTables)})
	require.NoError(t, err)
	require.NoError(t, engine.SetState(ctx, policy.State{Control: policy.Control{Enabled: true, DefaultApprovers: "approvers"},
		Policies: []policy.ApprovalPolicy{
			{ID: "p1", Scope: "task", Target: `Aria2\Shutdown`, Approval: "manual", Approvers: "approvers"},
			{ID: "p2", Scope: "task", Target: `Users\Remove-User`, Approval: "manual", Approvers: "approvers"},
		}}))
	require.Equal(t, policy.BodySpec{Kind: policy.BodyJSONRPC, Record: []string{"id"}}, engine.Body("aria2", "POST", []string{"jsonrpc"}))
	e := newBodyEnv(t, engine, engine)
	token := `"token:` + aria2Secret + `"`

	for _, tc := range []struct {
		desc, as, target, body string
		status                 int
		task                   string // the refusal's, or the record's
		forward                string // the body the upstream received; "" for nothing
		operations             []any
	}{
		{desc: "a read", target: "/aria2/jsonrpc", body: `{"jsonrpc":"2.0","method":"aria2.tellActive","id":1}`, status: 200, task: `Aria2\Get-Status`,
			forward: `{"params":[` + token + `],"jsonrpc":"2.0","method":"aria2.tellActive","id":1}`},
		{desc: "a gated call without a grant", target: "/aria2/jsonrpc", body: `{"jsonrpc":"2.0","method":"aria2.shutdown","id":1}`, status: 403, task: `Aria2\Shutdown`},
		{desc: "a gated call with its grant", as: "bob", target: "/aria2/jsonrpc", body: `{"jsonrpc":"2.0","method":"aria2.shutdown","id":"x"}`, status: 200, task: `Aria2\Shutdown`,
			forward:    `{"params":[` + token + `],"jsonrpc":"2.0","method":"aria2.shutdown","id":"x"}`,
			operations: []any{map[string]any{"name": "aria2.shutdown", "task": `Aria2\Shutdown`, "outcome": "allow", "grant_id": "grt-rpc", "fields": map[string]any{"id": "x"}}}},
		{desc: "a batch of reads", target: "/aria2/jsonrpc", body: `[{"method":"aria2.tellActive","params":[]},{"method":"aria2.getGlobalStat","params":[]}]`, status: 200, task: `Aria2\Get-Status`,
			forward: `[{"method":"aria2.tellActive","params":[` + token + `]},{"method":"aria2.getGlobalStat","params":[` + token + `]}]`},
		{desc: "a batch mixing a read and a gated call", target: "/aria2/jsonrpc", body: `[{"method":"aria2.tellActive"},{"method":"aria2.shutdown"}]`, status: 403, task: `Aria2\Shutdown`},
		{desc: "an uncatalogued method", target: "/aria2/jsonrpc", body: `{"method":"aria2.forceShutdown"}`, status: 403},
		{desc: "a GraphQL query", target: "/gql/graphql", body: `{"query":"{ users { id } }"}`, status: 200, task: `Users\Get-User`, forward: `{"query":"{ users { id } }"}`},
		{desc: "a gated field behind an alias and a fragment", target: "/gql/graphql",
			body: `{"query":"mutation { users: deleteUser(id: 1) ...F } fragment F on Mutation { x: deleteUser(id: 2) }"}`, status: 403, task: `Users\Remove-User`},
		{desc: "a read under the alias of a gated field", target: "/gql/graphql", body: `{"query":"query { deleteUser: users { id } }"}`, status: 200, task: `Users\Get-User`,
			forward: `{"query":"query { deleteUser: users { id } }"}`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			a, hit := e.send(t, shapes.Case{As: tc.as, Method: "POST", Target: tc.target, Headers: []string{jsonType}, Body: tc.body})
			require.Equal(t, tc.status, a.Status, a.Body)
			rec := e.Record(t, a.DecisionID)
			require.Equal(t, e.hmac(tc.body), rec["body_hmac"])
			if tc.task != "" {
				require.Equal(t, tc.task, rec["task"])
			}
			if tc.operations != nil {
				require.Equal(t, tc.operations, rec["operations"])
			}
			if tc.forward == "" {
				require.Nil(t, hit)
				return
			}
			require.NotNil(t, hit)
			require.Equal(t, tc.forward, hit.Body)
		})
	}
}

// TestProxySpansOfJudgedBodies: the spans of a proxied call carry its query
// as forwarded (without the caller's credential parameter) and, for a
// judged body, its operations and digest; never the body, nor a secret.
func TestProxySpansOfJudgedBodies(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	e := newBodyEnv(t, &fakeDecider{decide: bodyPolicy}, fakeBodies)

	body := `{"jsonrpc":"2.0","method":"aria2.tellActive","id":1}`
	hit := e.forwarded(t, shapes.Case{Method: "POST", Target: "/aria2/jsonrpc?tid=7&secret=mine", Headers: []string{jsonType}, Body: body})
	require.Contains(t, hit.Body, aria2Secret)
	attrs := map[string]map[string]string{} // span name -> attribute -> value
	require.Eventually(t, func() bool {
		for _, s := range rec.Ended() {
			m := map[string]string{}
			for _, kv := range s.Attributes() {
				m[string(kv.Key)] = kv.Value.Emit()
			}
			attrs[s.Name()] = m
		}
		return attrs["elevate.proxy POST"] != nil && attrs["elevate.upstream POST"] != nil
	}, 10*time.Second, 5*time.Millisecond)
	server, client := attrs["elevate.proxy POST"], attrs["elevate.upstream POST"]
	require.Equal(t, "tid=7", server["url.query"])
	require.Equal(t, "tid=7", client["url.query"])
	require.Equal(t, `["aria2.tellActive"]`, server["elevate.operations"])
	require.Equal(t, e.hmac(body), server["elevate.body_hmac"])
	for name, m := range attrs {
		for k, v := range m {
			for _, secret := range []string{"mine", aria2Secret, "tellActive\",\"id"} {
				require.NotContains(t, v, secret, "span %s, attribute %s", name, k)
			}
		}
	}
}
