package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// TestParseJSON: a judged JSON body parses only when every upstream reads
// it as the policy does.
func TestParseJSON(t *testing.T) {
	for _, tc := range []struct {
		desc, body string
		want       any    // when it parses
		err        string // part of the refusal, when it does not
	}{
		{desc: "an object", body: `{"a":[1,"x",true,null],"b":{"c":1.50}}`,
			want: map[string]any{"a": []any{json.Number("1"), "x", true, nil}, "b": map[string]any{"c": json.Number("1.50")}}},
		{desc: "white space around", body: " \t\r\n[] \n", want: []any{}},
		{desc: "numbers keep their digits", body: `12345678901234567890123`, want: json.Number("12345678901234567890123")},
		{desc: "the same name in two objects", body: `{"a":{"x":1},"b":{"x":2}}`,
			want: map[string]any{"a": map[string]any{"x": json.Number("1")}, "b": map[string]any{"x": json.Number("2")}}},
		{desc: "a name twice", body: `{"method":"a","method":"b"}`, err: `names member "method" twice`},
		{desc: "a name twice, deep", body: `[{"p":{"q":[{"x":1,"x":1}]}}]`, err: `names member "x" twice`},
		{desc: "a name twice, escaped", body: `{"method":"a","\u006dethod":"b"}`, err: "twice"},
		{desc: "a name twice in another case", body: `{"Method":"a","method":"b"}`, err: "twice"},
		{desc: "a name twice with the Kelvin sign", body: `{"kind":"a","\u212aind":"b"}`, err: "twice"},
		{desc: "a name twice with the long s", body: `{"s":"a","\u017f":"b"}`, err: "twice"},
		{desc: "truncated", body: `{"method":"aria2.shutdown"`, err: "ends before the value does"},
		{desc: "truncated string", body: `{"method":"aria2.shut`, err: "ends before the value does"},
		{desc: "empty", body: ``, err: "ends before the value does"},
		{desc: "invalid", body: `{"a":tru}`, err: "not valid JSON"},
		{desc: "single quotes", body: `{'a':1}`, err: "not valid JSON"},
		{desc: "a trailing comma", body: `{"a":1,}`, err: "not valid JSON"},
		{desc: "a closing brace alone", body: `}`, err: "not valid JSON"},
		{desc: "two values", body: `{"a":1}{"a":2}`, err: "more data after the value"},
		{desc: "garbage after", body: `{"a":1} x`, err: "more data after the value"},
		{desc: "invalid UTF-8", body: "{\"a\":\"\xff\"}", err: "not valid UTF-8"},
		{desc: "a NUL outside a string", body: "{\"a\":1}\x00", err: "more data after the value"},
		{desc: "too deep", body: strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), err: "nests more than"},
		{desc: "as deep as allowed", body: strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), want: nested(maxJSONDepth)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			v, err := parseJSON([]byte(tc.body))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, v)
		})
	}
}

// names are the names of the operations judged.
func (jb *judgedBody) names() []string {
	var out []string
	for _, op := range jb.ops {
		out = append(out, op.Name)
	}
	return out
}

func nested(n int) any {
	v := []any{}
	for range n - 1 {
		v = []any{v}
	}
	return v
}

// bodyRoutes are routes for judged bodies: aria2 takes a token in the
// body; plain has nothing to hide; form strips a credential parameter,
// formref refuses it; small judges at most 16 bytes.
func bodyRoutes(t testing.TB) map[string]*route {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cr\"et\n"), 0o600))
	routes, err := Config{Upstreams: []Upstream{
		{Name: "aria2", URL: "http://127.0.0.1:1", Prefix: "/aria2/", Credential: &Credential{Type: "jsonrpc-token", ValueFile: secret}},
		{Name: "plain", URL: "http://127.0.0.1:2", Prefix: "/plain/"},
		{Name: "form", URL: "http://127.0.0.1:3", Prefix: "/form/", CredentialParams: []string{"api_key"}},
		{Name: "formref", URL: "http://127.0.0.1:4", Prefix: "/formref/", CredentialParams: []string{"api_key"}, CredentialParamsAction: "refuse"},
		{Name: "small", URL: "http://127.0.0.1:5", Prefix: "/small/", MaxJudgedBody: 16},
	}, MaxJudgedBody: 8192}.routes()
	require.NoError(t, err)
	out := map[string]*route{}
	for _, rt := range routes {
		out[rt.Name] = rt
	}
	return out
}

// TestReadJudgedBody: what is read, refused and judged for each kind of
// body, and which bytes go on.
func TestReadJudgedBody(t *testing.T) {
	routes := bodyRoutes(t)
	const (
		jsonType = "application/json"
		formType = "application/x-www-form-urlencoded"
	)
	big := `{"a":"` + strings.Repeat("x", 8192) + `"}`
	for _, tc := range []struct {
		desc, route, kind, method, body string
		header                          []string // name, value pairs
		chunked                         bool
		record                          []string

		status int    // a refusal's status; 0: judged
		slug   string // and its problem
		digest bool   // the refusal may digest what it read

		ops     []string // the operations judged: names, or "" for a whole body
		forward *string  // the bytes forwarded; default the body as sent
		bodies  []any    // input.body of each operation, when it matters
		fields  []map[string]string
	}{
		// Reading.
		{desc: "json", route: "plain", kind: "json", body: `{"zone":"example.org."}`, header: []string{"Content-Type", jsonType},
			ops: []string{""}, bodies: []any{map[string]any{"zone": "example.org."}}},
		{desc: "json typed +json with a charset", route: "plain", kind: "json", body: `{}`, header: []string{"Content-Type", "application/merge-patch+json; charset=UTF-8"}, ops: []string{""}},
		{desc: "chunked json", route: "plain", kind: "json", body: `{"a":1}`, chunked: true, header: []string{"Content-Type", jsonType}, ops: []string{""}},
		{desc: "no body", route: "plain", kind: "json", method: "GET", ops: nil, forward: ptr("")},
		{desc: "no body on a JSON-RPC POST", route: "plain", kind: "jsonrpc", status: 400, slug: "bad-body"},
		{desc: "no body on a GraphQL POST", route: "plain", kind: "graphql", status: 400, slug: "bad-body"},
		{desc: "no body on a JSON-RPC GET", route: "plain", kind: "jsonrpc", method: "GET", ops: nil, forward: ptr("")},
		{desc: "over the upstream's limit", route: "small", kind: "json", body: `{"a":"12345678901234"}`, header: []string{"Content-Type", jsonType}, status: 413, slug: "body-too-large"},
		{desc: "at the upstream's limit", route: "small", kind: "json", body: `{"a":"12345678"}`, header: []string{"Content-Type", jsonType}, ops: []string{""}},
		{desc: "over the proxy's limit", route: "plain", kind: "json", body: big, header: []string{"Content-Type", jsonType}, status: 413, slug: "body-too-large"},
		{desc: "over the limit, chunked", route: "plain", kind: "json", body: big, chunked: true, header: []string{"Content-Type", jsonType}, status: 413, slug: "body-too-large"},
		{desc: "gzip", route: "plain", kind: "json", body: "\x1f\x8b\x08\x00", header: []string{"Content-Type", jsonType, "Content-Encoding", "gzip"}, status: 415, slug: "bad-body"},
		{desc: "identity encoding", route: "plain", kind: "json", body: `{}`, header: []string{"Content-Type", jsonType, "Content-Encoding", "identity"}, ops: []string{""}},
		{desc: "two encodings", route: "plain", kind: "json", body: `{}`, header: []string{"Content-Type", jsonType, "Content-Encoding", "identity", "Content-Encoding", "gzip"}, status: 415, slug: "bad-body"},

		// Content-Type.
		{desc: "no type", route: "plain", kind: "json", body: `{}`, status: 415, slug: "bad-body"},
		{desc: "a form type on a JSON body", route: "plain", kind: "json", body: `{}`, header: []string{"Content-Type", formType}, status: 415, slug: "bad-body"},
		{desc: "text/plain on a JSON body", route: "plain", kind: "jsonrpc", body: `{"method":"x"}`, header: []string{"Content-Type", "text/plain"}, status: 415, slug: "bad-body"},
		{desc: "two types", route: "plain", kind: "json", body: `{}`, header: []string{"Content-Type", jsonType, "Content-Type", jsonType}, status: 415, slug: "bad-body"},
		{desc: "a charset that is not UTF-8", route: "plain", kind: "json", body: `{}`, header: []string{"Content-Type", jsonType + "; charset=utf-16"}, status: 415, slug: "bad-body"},
		{desc: "a JSON type on a form", route: "form", kind: "form", body: `a=1`, header: []string{"Content-Type", jsonType}, status: 415, slug: "bad-body"},
		{desc: "a malformed type", route: "plain", kind: "json", body: `{}`, header: []string{"Content-Type", "application/json; charset"}, status: 415, slug: "bad-body"},

		// JSON.
		{desc: "duplicate keys", route: "plain", kind: "json", body: `{"kind":"Native","kind":"Master"}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "truncated", route: "plain", kind: "json", body: `{"kind":"Nat`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "fields recorded, never a credential", route: "plain", kind: "json", record: []string{"name", "kind", "password", "missing", "Api-Token"},
			body: `{"name":"example.org.","kind":"Native","password":"p","Api-Token":"t"}`, header: []string{"Content-Type", jsonType},
			ops: []string{""}, fields: []map[string]string{{"name": `"example.org."`, "kind": `"Native"`}}},

		// Forms.
		{desc: "a form", route: "form", kind: "form", body: `a=1&a=2&b=%20`, header: []string{"Content-Type", formType},
			ops: []string{""}, bodies: []any{map[string]any{"a": []any{"1", "2"}, "b": []any{" "}}}},
		{desc: "a form's credential stripped", route: "form", kind: "form", body: `a=1&API_KEY=mine`, header: []string{"Content-Type", formType},
			ops: []string{""}, forward: ptr("a=1"), bodies: []any{map[string]any{"a": []any{"1"}}}},
		{desc: "a form's credential refused", route: "formref", kind: "form", body: `a=1&api_key=mine`, header: []string{"Content-Type", formType}, status: 400, slug: "credential-in-request"},
		{desc: "a form with a semicolon", route: "form", kind: "form", body: `a=1;b=2`, header: []string{"Content-Type", formType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a form with a bad escape", route: "form", kind: "form", body: `a=%zz`, header: []string{"Content-Type", formType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a form with a method override", route: "form", kind: "form", body: `_%6Dethod=DELETE`, header: []string{"Content-Type", formType}, status: 400, slug: "method-override", digest: true},

		// JSON-RPC.
		{desc: "a call", route: "plain", kind: "jsonrpc", body: `{"jsonrpc":"2.0","method":"aria2.tellActive","id":1}`, header: []string{"Content-Type", jsonType},
			ops: []string{"aria2.tellActive"}, bodies: []any{map[string]any{"jsonrpc": "2.0", "method": "aria2.tellActive", "id": json.Number("1")}}},
		{desc: "a batch", route: "plain", kind: "jsonrpc", body: `[{"method":"a","params":[1]},{"method":"b","params":{"x":1}}]`, header: []string{"Content-Type", jsonType},
			ops: []string{"a", "b"}},
		{desc: "a batch at the limit", route: "plain", kind: "jsonrpc", body: batch(MaxBatch), header: []string{"Content-Type", jsonType}, ops: repeat("aria2.tellActive", MaxBatch)},
		{desc: "a batch over the limit", route: "plain", kind: "jsonrpc", body: batch(MaxBatch + 1), header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "an empty batch", route: "plain", kind: "jsonrpc", body: ` [ ] `, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a call without a method", route: "plain", kind: "jsonrpc", body: `{"params":[]}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a method that is not a string", route: "plain", kind: "jsonrpc", body: `{"method":["aria2.shutdown"]}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a batch holding a non-call", route: "plain", kind: "jsonrpc", body: `[{"method":"a"},1]`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a nested batch", route: "plain", kind: "jsonrpc", body: `[[{"method":"a"}]]`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "another version", route: "plain", kind: "jsonrpc", body: `{"jsonrpc":"1.0","method":"a"}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "scalar params", route: "plain", kind: "jsonrpc", body: `{"method":"a","params":"x"}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "null params", route: "plain", kind: "jsonrpc", body: `{"method":"a","params":null}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a scalar body", route: "plain", kind: "jsonrpc", body: `"aria2.shutdown"`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "params in another case", route: "aria2", kind: "jsonrpc", body: `{"method":"a","pArAms":["token:x"]}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "id in another case", route: "plain", kind: "jsonrpc", body: `{"method":"a","ID":1}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a method twice", route: "plain", kind: "jsonrpc", body: `{"method":"aria2.tellActive","method":"aria2.shutdown"}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "the token inserted", route: "aria2", kind: "jsonrpc", body: `{"jsonrpc":"2.0", "method":"aria2.tellStatus","params":[ "2089b05ecca3d829" ],"id":"q"}`, header: []string{"Content-Type", jsonType},
			ops: []string{"aria2.tellStatus"}, forward: ptr(`{"jsonrpc":"2.0", "method":"aria2.tellStatus","params":[` + tokenLit + `, "2089b05ecca3d829" ],"id":"q"}`)},
		{desc: "the token in every call of a batch", route: "aria2", kind: "jsonrpc",
			body:    "[{\"method\":\"aria2.getGlobalStat\"},\n {\"method\":\"aria2.tellActive\",\"params\":[]}, {\"params\":[[\"gid\"]],\"method\":\"system.x\"}]",
			header:  []string{"Content-Type", jsonType},
			ops:     []string{"aria2.getGlobalStat", "aria2.tellActive", "system.x"},
			forward: ptr("[{\"params\":[" + tokenLit + "],\"method\":\"aria2.getGlobalStat\"},\n {\"method\":\"aria2.tellActive\",\"params\":[" + tokenLit + "]}, {\"params\":[" + tokenLit + ",[\"gid\"]],\"method\":\"system.x\"}]")},
		{desc: "a caller's token refused", route: "aria2", kind: "jsonrpc", body: `{"method":"aria2.shutdown","params":["token:guess"]}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "credential-in-request"},
		{desc: "a caller's token in a later param refused", route: "aria2", kind: "jsonrpc", body: `[{"method":"a"},{"method":"aria2.pause","params":["gid","token:x"]}]`, header: []string{"Content-Type", jsonType}, status: 400, slug: "credential-in-request"},
		{desc: "params by name where the token goes first", route: "aria2", kind: "jsonrpc", body: `{"method":"a","params":{"secret":"x"}}`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "a token-like value elsewhere is data", route: "aria2", kind: "jsonrpc", body: `{"method":"a","params":[["token:x"]],"id":"token:1"}`, header: []string{"Content-Type", jsonType},
			ops: []string{"a"}, forward: ptr(`{"method":"a","params":[` + tokenLit + `,["token:x"]],"id":"token:1"}`)},
		{desc: "fields of a call", route: "plain", kind: "jsonrpc", record: []string{"params.0", "params.1", "id", "params"}, body: `{"method":"aria2.remove","params":["2089b05ecca3d829"],"id":7}`,
			header: []string{"Content-Type", jsonType}, ops: []string{"aria2.remove"}, fields: []map[string]string{{"params.0": `"2089b05ecca3d829"`, "id": "7", "params": `["2089b05ecca3d829"]`}}},

		// GraphQL (graphqlOps has its own test).
		{desc: "a mutation", route: "plain", kind: "graphql", body: `{"query":"mutation M($id: ID!) { gone: deleteUser(id: $id) { id } }","variables":{"id":"7"},"operationName":"M"}`,
			header: []string{"Content-Type", jsonType}, ops: []string{"mutation deleteUser"},
			bodies: []any{map[string]any{"operation": "mutation", "field": "deleteUser", "name": "M", "variables": map[string]any{"id": "7"}}}},
		{desc: "a GraphQL batch", route: "plain", kind: "graphql", body: `[{"query":"{ a }"}]`, header: []string{"Content-Type", jsonType}, status: 400, slug: "bad-body", digest: true},
		{desc: "an unknown kind", route: "plain", kind: "xml", body: `<a/>`, header: []string{"Content-Type", jsonType}, status: 500, slug: "policy-error"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "POST"
			}
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(strings.NewReader(tc.body)) // no length known: read as chunked
			}
			r := httptest.NewRequest(method, "/x", body)
			if tc.chunked {
				r.ContentLength = -1
			}
			for i := 0; i < len(tc.header); i += 2 {
				r.Header.Add(tc.header[i], tc.header[i+1])
			}
			jb, ref := readJudgedBody(r, routes[tc.route], policy.BodySpec{Kind: tc.kind, Record: tc.record})
			if tc.status != 0 {
				require.NotNil(t, ref, "refused")
				require.Nil(t, jb)
				require.Equal(t, tc.status, ref.prob.Status, ref.prob.Detail)
				require.Equal(t, "urn:elevate:problem:"+tc.slug, ref.prob.Type)
				require.NotEmpty(t, ref.reason)
				require.Equal(t, tc.digest, ref.digest != nil, "digest of what was read")
				require.NotContains(t, ref.reason+ref.prob.Detail, "mine")
				require.NotContains(t, ref.reason+ref.prob.Detail, "guess")
				return
			}
			require.Nil(t, ref, "refused: %+v", ref)
			require.Equal(t, tc.ops, jb.names())
			want := tc.body
			if tc.forward != nil {
				want = *tc.forward
			}
			require.Equal(t, want, string(jb.forward), "forwarded")
			if tc.forward == nil || tc.route != "aria2" {
				require.Equal(t, want, string(jb.raw), "judged is forwarded")
			}
			if json.Valid(jb.forward) {
				_, err := parseJSON(jb.forward)
				require.NoError(t, err, "what goes on is strict JSON too")
			}
			for i, b := range tc.bodies {
				require.Equal(t, b, jb.ops[i].Body)
			}
			for i, f := range tc.fields {
				got := map[string]string{}
				for k, v := range jb.ops[i].Fields {
					got[k] = string(v)
				}
				require.Equal(t, f, got)
			}
		})
	}
}

// tokenLit is the aria2 route's token as inserted: the secret file holds
// s3cr"et.
const tokenLit = `"token:s3cr\"et"`

func batch(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(`{"jsonrpc":"2.0","method":"aria2.tellActive","id":1},`, n), ",") + "]"
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestGraphQLOperations: every top-level field of the one operation is
// judged, however the document hides it.
func TestGraphQLOperations(t *testing.T) {
	rt := bodyRoutes(t)["plain"]
	for _, tc := range []struct {
		desc, query string
		extra       string // more members of the request
		ops         []string
		err         string
	}{
		{desc: "a query", query: `{ users { id } }`, ops: []string{"query users"}},
		{desc: "fields in order", query: `query Q { a b c }`, ops: []string{"query a", "query b", "query c"}},
		{desc: "an alias resolved", query: `mutation { listUsers: deleteUser(id: 1) }`, ops: []string{"mutation deleteUser"}},
		{desc: "the same field twice", query: `mutation { a: deleteUser(id: 1) b: deleteUser(id: 2) }`, ops: []string{"mutation deleteUser", "mutation deleteUser"}},
		{desc: "a fragment spread", query: `mutation { ...F } fragment F on Mutation { deleteUser(id: 1) }`, ops: []string{"mutation deleteUser"}},
		{desc: "an inline fragment", query: `mutation { renameUser(id: 1, name: "x") ... on Mutation { deleteUser(id: 1) } }`,
			ops: []string{"mutation renameUser", "mutation deleteUser"}},
		{desc: "fragments in fragments", query: `mutation { ...A } fragment A on Mutation { ... { ...B } } fragment B on Mutation { x: deleteUser(id: 1) }`,
			ops: []string{"mutation deleteUser"}},
		{desc: "nested fields are not operations", query: `{ users { deleteUser } }`, ops: []string{"query users"}},
		{desc: "skipped fields are judged anyway", query: `mutation { deleteUser(id: 1) @skip(if: false) }`, ops: []string{"mutation deleteUser"}},
		{desc: "a subscription", query: `subscription { events }`, ops: []string{"subscription events"}},
		{desc: "operationName names the one operation", query: `query Q { a }`, extra: `,"operationName":"Q"`, ops: []string{"query a"}},
		{desc: "null members", query: `{ a }`, extra: `,"operationName":null,"variables":null,"extensions":null`, ops: []string{"query a"}},
		{desc: "an automatic persisted query with its text", query: `{ a }`, extra: `,"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}`, ops: []string{"query a"}},

		{desc: "two operations", query: `query A { a } mutation B { deleteUser }`, extra: `,"operationName":"A"`, err: "holds 2"},
		{desc: "two anonymous operations", query: `{ a } { b }`, err: "holds 2"},
		{desc: "no operation", query: `fragment F on Query { a }`, err: "holds 0"},
		{desc: "operationName of another", query: `query A { a }`, extra: `,"operationName":"B"`, err: "operationName does not name"},
		{desc: "operationName not a string", query: `query A { a }`, extra: `,"operationName":1`, err: "operationName is a string"},
		{desc: "an undefined fragment", query: `mutation { ...F }`, err: `spreads fragment "F"`},
		{desc: "a fragment cycle", query: `mutation { ...A } fragment A on Mutation { ...B } fragment B on Mutation { ...A }`, err: "spreads itself"},
		{desc: "too many fields", query: "mutation {" + strings.Repeat(" deleteUser", MaxBatch+1) + " }", err: "at most 100 top-level fields"},
		{desc: "a field explosion through fragments", query: explosion(30), err: "at most 100 top-level fields"},
		{desc: "a syntax error", query: `mutation { deleteUser(`, err: "does not parse"},
		{desc: "too many tokens", query: "{" + strings.Repeat(" a", maxGraphQLTokens) + " }", err: "does not parse"},
		{desc: "variables not an object", query: `{ a }`, extra: `,"variables":[1]`, err: "variables are an object"},
		{desc: "extensions not an object", query: `{ a }`, extra: `,"extensions":"x"`, err: "extensions are an object"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			q, err := json.Marshal(tc.query)
			require.NoError(t, err)
			jb, ref := graphqlJudged([]byte(`{"query":`+string(q)+tc.extra+`}`), rt, policy.BodySpec{Kind: policy.BodyGraphQL})
			if tc.err != "" {
				require.NotNil(t, ref)
				require.Equal(t, 400, ref.prob.Status)
				require.Contains(t, ref.prob.Detail, tc.err)
				return
			}
			require.Nil(t, ref, "refused: %+v", ref)
			require.Equal(t, tc.ops, jb.names())
		})
	}

	for _, tc := range []struct{ desc, body, err string }{
		{"a persisted query without its text", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`, "persisted query"},
		{"a stored document by id", `{"id":"deleteAll","variables":{}}`, `not "id"`},
		{"a stored document beside a query", `{"query":"{ a }","documentId":"deleteAll"}`, `not "documentId"`},
		{"no query", `{"variables":{}}`, "carries its query"},
		{"a query that is not a string", `{"query":{"a":1}}`, "carries its query"},
		{"query twice", `{"query":"{ a }","query":"mutation { deleteUser }"}`, "twice"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, ref := graphqlJudged([]byte(tc.body), rt, policy.BodySpec{Kind: policy.BodyGraphQL})
			require.NotNil(t, ref)
			require.Contains(t, ref.prob.Detail, tc.err)
		})
	}
}

// explosion is a document whose fragments spread the next one twice, n
// deep: 2^n top-level fields if expanded in full.
func explosion(n int) string {
	var b strings.Builder
	b.WriteString("mutation { ...F0 }")
	for i := range n {
		fmt.Fprintf(&b, " fragment F%d on Mutation { ...F%d ...F%d }", i, i+1, i+1)
	}
	fmt.Fprintf(&b, " fragment F%d on Mutation { deleteUser }", n)
	return b.String()
}

// TestJudgedBodyConfig: the keys of judged bodies and body credentials are
// checked, naming the key.
func TestJudgedBodyConfig(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s\n"), 0o600))
	for _, tc := range []struct {
		desc string
		cfg  Config
		want string
	}{
		{"a negative proxy limit", Config{MaxJudgedBody: -1, Upstreams: []Upstream{{Name: "a", URL: "http://x", Prefix: "/a/"}}}, "proxy.max_judged_body: must not be negative"},
		{"a negative upstream limit", Config{Upstreams: []Upstream{{Name: "a", URL: "http://x", Prefix: "/a/", MaxJudgedBody: -5}}}, "upstreams[0].max_judged_body: must not be negative"},
		{"a prefix on another type", Config{Upstreams: []Upstream{{Name: "a", URL: "http://x", Prefix: "/a/",
			Credential: &Credential{Type: "bearer", Prefix: "token:", ValueFile: secret}}}}, "upstreams[0].credential.prefix: only for type jsonrpc-token"},
		{"a jsonrpc-token without a secret", Config{Upstreams: []Upstream{{Name: "a", URL: "http://x", Prefix: "/a/",
			Credential: &Credential{Type: "jsonrpc-token"}}}}, "upstreams[0].credential: value_env or value_file is required"},
		{"an unknown type", Config{Upstreams: []Upstream{{Name: "a", URL: "http://x", Prefix: "/a/",
			Credential: &Credential{Type: "jsonrpc", ValueFile: secret}}}}, "upstreams[0].credential.type: must be basic, bearer, header or jsonrpc-token"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			require.EqualError(t, tc.cfg.Validate(), tc.want)
		})
	}

	routes, err := Config{Upstreams: []Upstream{
		{Name: "default", URL: "http://x", Prefix: "/d/"},
		{Name: "own", URL: "http://x", Prefix: "/o/", MaxJudgedBody: 10, Credential: &Credential{Type: "jsonrpc-token", Prefix: "secret=", ValueFile: secret}},
	}}.routes()
	require.NoError(t, err)
	for _, rt := range routes {
		switch rt.Name {
		case "default":
			require.Equal(t, int64(DefaultMaxJudgedBody), rt.maxJudged)
			require.Empty(t, rt.rpcToken)
		case "own":
			require.Equal(t, int64(10), rt.maxJudged)
			require.Equal(t, "secret=s", rt.rpcToken)
			require.Empty(t, rt.credName, "a body credential sets no header")
		}
	}
}

// FuzzJudgedJSONRPC: whatever a JSON-RPC body holds, what elevate forwards
// is strict JSON, and it is the body judged with the token first in every
// call's params and nothing else changed: the judged calls, read back from
// the forwarded bytes without their token, are the calls judged.
func FuzzJudgedJSONRPC(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"aria2.tellActive","id":1}`,
		`{"method":"a","params":[1,"x",{"b":[]}]}`,
		`[{"method":"a"},{"params":[],"method":"b"}, {"method":"c","params":[null]}]`,
		` { "method" : "a" , "params" : [ ] } `,
		`{"method":"a","params":["token:x"]}`,
		`{"method":"a","method":"b"}`,
		`[]`, `[[]]`, `{"method":1}`, `{"method":"\u0061","params":{"x":1}}`,
	} {
		f.Add([]byte(s))
	}
	rt := bodyRoutes(f)["aria2"]
	f.Fuzz(func(t *testing.T, b []byte) {
		jb, ref := rpcJudged(b, rt, policy.BodySpec{Kind: policy.BodyJSONRPC})
		if ref != nil {
			return
		}
		v, err := parseJSON(jb.forward)
		require.NoError(t, err, "forwarded: %s", jb.forward)
		calls, batch := v.([]any)
		if !batch {
			calls = []any{v}
		}
		require.Len(t, calls, len(jb.ops))
		for i, c := range calls {
			call := c.(map[string]any)
			params := call["params"].([]any)
			require.Equal(t, "token:s3cr\"et", params[0], "the token first")
			judged := jb.ops[i].Body.(map[string]any)
			if len(params) == 1 && judged["params"] == nil {
				delete(call, "params")
			} else {
				call["params"] = params[1:]
			}
			require.Equal(t, judged, call, "call %d forwarded as judged", i)
		}
	})
}
