// Request-shape corpus. Threats proved mitigated (see testdata/shapes/):
//
//   - path confusion: dot segments in every encoding, double encoding,
//     encoded "/", "\", "?" and "#", ";" parameters, "//", overlong UTF-8
//     and unicode look-alikes of separators, so that a path judged as one
//     task runs another (Envoy CVE-2019-9901 and CVE-2021-29492, Traefik
//     CVE-2025-32431);
//   - authority confusion: "//x/" targets, absolute-form URI against Host,
//     trailing dots and ports in Host, a Host header that smuggles a path
//     inside a tunnel (opa-envoy GHSA-9f29-v6mm-pw6w);
//   - trusted forwarding headers (X-Forwarded-*, Forwarded, X-Original-URL,
//     X-Rewrite-URL) and method overrides (headers and the _method
//     parameter) that make the upstream run something else than was judged
//     (oauth2-proxy CVE-2026-40575);
//   - headers removed by naming them in Connection, including the
//     credential elevate injects and the forwarding headers it sets
//     (Traefik CVE-2024-45410, Go issue 50580);
//   - request smuggling through Content-Length / Transfer-Encoding framing
//     and pipelining;
//   - protocol upgrades that would tunnel unjudged bytes (h2c, the HTTP/2
//     preface, websocket; Go issue 80416);
//   - grant confusion: a grant for one task used to reach another by shape;
//   - methods in another case, HEAD, OPTIONS, TRACE and CONNECT on the
//     listener, very long targets, control bytes;
//   - a caller's own upstream credential reaching the upstream: credential
//     parameters in another case or encoding, in the query or a form body,
//     and the credential header in another case or with "_" for "-".
//   - judged bodies (JSON-RPC and GraphQL) read otherwise than judged:
//     duplicate keys in any case or escape, truncated or trailing JSON, a
//     Content-Type or Content-Encoding that lies, chunked and oversized
//     bodies, batches of none or 10,000 calls, a gated call hidden in a
//     batch or behind GraphQL aliases and fragments, persisted or stored
//     documents, and a caller's own token in the params.
//   - Kubernetes calls read otherwise than the API server reads them (dot
//     segments, encoded slashes, empty segments, upper-case resources,
//     ?watch values the API server reads as true, deletecollection as
//     delete), a caller's own Impersonate-* headers, upgrades outside
//     exec, attach and port-forward, and a grant narrowed to one
//     namespace used in another.
//
// Every case is written on a raw connection (net/http's client would
// normalise most of them) to one elevate instance whose upstreams,
// "exchange", "rabbitmq", (for websocket upgrades and refused credential
// parameters) "caddy", "rpc" and "gql" (judged bodies) and "kube" (type
// kubernetes), are recording servers. A case is either
// refused (a 4xx, and no upstream saw anything) or judged as exactly one task
// that the upstream then received as exactly the method and target that
// task means; the audit record found by the answer's Elevate-Decision-Id
// names the task and the decision (internal/shapes writes the cases and
// checks the answers; proxy/shapes_test.go runs the same corpus in process
// against the proxy's handler). Every case that is a method and a URL is
// then asked of POST /v1/check by the same caller, which must give the
// proxy's verdict (checkURL lists the kinds of case that are not).
package test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/shapes"
)

// shapeEnv is the one elevate instance all cases run against.
type shapeEnv struct {
	*shapes.Env
	s *server
}

// startShapeEnv runs elevate (not --dev: every upstream, exchange included,
// is a recorder) against an etcd in this process, gates the privileged
// tasks and gives bob his task grants (narrowed by shapes.BobConstraints).
// A third upstream, caddy, lets websocket upgrades through, so that a
// judged handshake can be seen; rpc and gql have their bodies judged, by
// the corpus's route tables layered over the embedded bundle
// (policy.dirs); kube is a Kubernetes API server (type kubernetes).
func startShapeEnv(t *testing.T) *shapeEnv {
	t.Helper()
	_, endpoint := startEtcd(t)
	ups := shapes.StartUpstreams(t)
	iss := newIssuer(t)
	secret := filepath.Join(t.TempDir(), "rabbitmq.secret")
	require.NoError(t, os.WriteFile(secret, []byte(shapes.RabbitMQSecret+"\n"), 0o600))
	caddyKey := filepath.Join(t.TempDir(), "caddy.secret")
	require.NoError(t, os.WriteFile(caddyKey, []byte(shapes.CaddyKey+"\n"), 0o600))
	rpcSecret := filepath.Join(t.TempDir(), "rpc.secret")
	require.NoError(t, os.WriteFile(rpcSecret, []byte(shapes.RPCSecret+"\n"), 0o600))
	kubeToken := filepath.Join(t.TempDir(), "kube.token")
	require.NoError(t, os.WriteFile(kubeToken, []byte(shapes.KubeToken+"\n"), 0o600))
	layer, err := filepath.Abs(filepath.Join("testdata", "shapes", shapes.PolicyLayer))
	require.NoError(t, err)
	list := func(xs []string) string { return "[" + strings.Join(xs, ", ") + "]" }
	s := startConfigured(t, fmt.Sprintf(`
proxy_addr: PROXY_ADDR
control_addr: CONTROL_ADDR
data_dir: DATA_DIR
etcd:
  endpoints: [%s]
identity:
  issuers:
    - issuer: https://idp.test
      audience: [elevate]
      pem_files: [%s]
      algorithms: [RS256]
audit:
  path: DATA_DIR/audit.log
api:
  rate_limit: -1 # every case is also asked of POST /v1/check
policy:
  dirs: [%s]
upstreams:
  - name: exchange
    url: %s
    prefix: %s
    hosts: [%s]
  - name: rabbitmq
    url: %s
    prefix: %s
    hosts: [%s]
    credential: {type: basic, username: %s, value_file: %s}
    credential_params: %s
  - name: caddy
    url: %s
    prefix: %s
    allow_websocket: true
    credential: {type: header, header: %s, value_file: %s}
    credential_params: %s
    credential_params_action: refuse
  - name: rpc
    url: %s
    prefix: %s
    credential: {type: jsonrpc-token, value_file: %s}
    max_judged_body: %d
  - name: gql
    url: %s
    prefix: %s
  - name: kube
    type: kubernetes
    url: %s
    prefix: %s
    credential: {type: bearer, value_file: %s}
    kubernetes: {user_prefix: %q}
`, endpoint, iss.pemFile, layer,
		ups.Exchange.URL, shapes.Prefixes["exchange"], shapes.UpstreamHosts["exchange"],
		ups.RabbitMQ.URL, shapes.Prefixes["rabbitmq"], shapes.UpstreamHosts["rabbitmq"], shapes.RabbitMQUser, secret, list(shapes.RabbitMQParams),
		ups.Caddy.URL, shapes.Prefixes["caddy"], shapes.CaddyHeader, caddyKey, list(shapes.CaddyParams),
		ups.RPC.URL, shapes.Prefixes["rpc"], rpcSecret, shapes.RPCMaxBody, ups.GQL.URL, shapes.Prefixes["gql"],
		ups.Kube.URL, shapes.Prefixes["kube"], kubeToken, shapes.KubeUserPrefix))
	s.waitReady(t)

	admin := iss.token(t, "ada", "admins", "approvers")
	bob := iss.token(t, "bob")
	dan := iss.token(t, "dan")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	for _, p := range shapes.Policies {
		s.ok(admin, "policy", "new", "--approval", "manual", "--"+p[0], p[1])
	}
	for _, task := range shapes.BobTasks {
		args := []string{"request", "new", "--task", task, "--reason", "request-shape corpus", "--duration", "2h", "-q"}
		for _, k := range slices.Sorted(maps.Keys(shapes.BobConstraints[task])) {
			args = append(args, "--constraint", k+"="+shapes.BobConstraints[task][k])
		}
		id := strings.TrimSpace(s.ok(bob, args...))
		s.ok(admin, "request", "approve", id)
	}
	proxy := "http://" + s.proxyAddr
	require.Eventually(t, func() bool {
		return do(t, "POST", proxy+"/exchange/mailboxes/alice/move-requests", bob, "").status == http.StatusOK &&
			do(t, "DELETE", proxy+"/rmq/api/queues/%2F/orders/contents", bob, "").status == http.StatusOK &&
			do(t, "DELETE", proxy+"/kube/api/v1/namespaces/prod/pods/web", bob, "").status == http.StatusOK &&
			do(t, "POST", proxy+"/exchange/mailboxes/alice/move-requests", dan, "").status == http.StatusForbidden
	}, 10*time.Second, 20*time.Millisecond, "grants and policies did not reach the proxy")

	return &shapeEnv{s: s, Env: &shapes.Env{Addr: s.proxyAddr, Tokens: map[string]string{"bob": bob, "dan": dan},
		Upstreams: ups, AuditLog: filepath.Join(s.dataDir, "audit.log")}}
}

func TestRequestShapes(t *testing.T) {
	cases := shapes.Load(t, filepath.Join("testdata", "shapes"))
	require.GreaterOrEqual(t, len(cases), 150)
	e := startShapeEnv(t)

	// elevate check sends the method as typed: a lower-case method is
	// refused as the proxy refuses it, not judged as its upper case.
	t.Run("check/cli-method-as-typed", func(t *testing.T) {
		move := "http://" + e.s.proxyAddr + "/exchange/mailboxes/alice/move-requests"
		for _, tc := range []struct {
			method, problem string
			code, status    int
		}{{"post", "urn:elevate:problem:bad-method", 1, 400}, {"POST", "", 0, 200}} {
			r := e.s.cli(e.Tokens["bob"], "-o", "json", "check", tc.method, move)
			require.Equal(t, tc.code, r.code, "check %s: %s%s", tc.method, r.stdout, r.stderr)
			var res struct {
				Status  int    `json:"status"`
				Problem string `json:"problem"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
			require.Equal(t, tc.status, res.Status)
			require.Equal(t, tc.problem, res.Problem)
		}
	})

	classes := map[string]int{}
	excluded := map[string]int{}
	compared, judgedBodies := 0, 0
	for _, c := range cases {
		classes[c.Class]++
		if strings.HasPrefix(c.Class, "body-") {
			judgedBodies++
		}
		t.Run(c.Name, func(t *testing.T) {
			answers := e.Run(t, c)

			// POST /v1/check, asked by the same caller about the same
			// method and URL, gives the proxy's verdict.
			u, why := e.checkURL(c)
			if why != "" {
				excluded[why]++
				return
			}
			compared++
			e.sameVerdict(t, c, u, answers[0])
		})
	}
	names := make([]string, 0, len(classes))
	for k := range classes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		t.Logf("%-22s %3d cases", k, classes[k])
	}
	t.Logf("POST /v1/check gave the proxy's verdict on %d cases; not asked:", compared)
	for why, n := range excluded {
		t.Logf("  %3d %s", n, why)
	}
	if !t.Failed() {
		// Judged bodies are shapes of a body, not of a method and a URL.
		require.GreaterOrEqual(t, compared, (len(cases)-judgedBodies)*2/3, "most shapes are a method and a URL")
	}
}

// checkURL is the URL that asks POST /v1/check about c's call, or why c
// cannot be asked as a method and a URL. Reverse-mode calls are asked with
// elevate's own address, forward-mode calls with their absolute URI, calls
// inside a tunnel with https and the tunnel's host.
func (e *shapeEnv) checkURL(c shapes.Case) (u, why string) {
	switch {
	case c.Raw != "":
		return "", "raw bytes (framing, pipelining, CONNECT lines): not a method and a URL"
	case c.As == "none":
		return "", "no caller: /v1/check judges for the authenticated caller asking"
	case c.Body != "":
		return "", "a body: /v1/check is asked about a method and a URL"
	case strings.HasPrefix(c.Class, "body-"):
		return "", "a call whose body is judged: /v1/check judges a method and a URL without one"
	case c.Host != "" && c.Mode != "forward":
		return "", "a Host header apart from the URL (outside forward mode, where the URI's host wins)"
	}
	for _, h := range c.Headers {
		name, _, _ := strings.Cut(h, ":")
		switch http.CanonicalHeaderKey(strings.TrimSpace(name)) {
		case "Upgrade", "Http2-Settings", "Authorization", "Proxy-Authorization", "Host":
			return "", "a header the verdict depends on (a protocol upgrade, a token, Host)"
		}
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), "_", "-")), "impersonate-") {
			return "", "a header the verdict depends on (a caller's own Kubernetes impersonation)"
		}
	}
	notUpstream := "a host no upstream serves, or https without CONNECT: as a URL, check reads https as a call in a tunnel and any other host as elevate's own"
	target := e.Expand(c.Target)
	switch c.Mode {
	case "forward":
		scheme, rest, _ := strings.Cut(target, "://")
		authority := rest[:strings.IndexAny(rest+"/", "/?")]
		if i := strings.LastIndex(authority, "@"); i >= 0 {
			authority = authority[i+1:]
		}
		if !strings.EqualFold(scheme, "http") || !upstreamHost(authority) {
			return "", notUpstream
		}
		return target, ""
	case "tunnel":
		if !upstreamHost(e.Expand(c.Tunnel)) {
			return "", notUpstream
		}
		return "https://" + e.Expand(c.Tunnel) + target, ""
	}
	if !strings.HasPrefix(target, "/") {
		return "", `an origin-form target that is not a path ("*", a bare authority)`
	}
	return "http://" + e.s.proxyAddr + target, ""
}

// upstreamHost reports whether hostport names a host forward mode serves.
func upstreamHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return slices.Contains(slices.Collect(maps.Values(shapes.UpstreamHosts)), strings.TrimSuffix(strings.ToLower(h), "."))
}

// verdict is a decision as the proxy answered it or /v1/check reported it.
type verdict struct {
	allowed bool
	status  int
	problem string // urn:elevate:problem:SLUG; empty when allowed
	task    string
}

// sameVerdict asks POST /v1/check about u for c's caller and requires the
// verdict the proxy gave in a: allowed or refused, with the same status,
// problem type and task. A request the HTTP server refused before elevate
// read it (no decision id) must be refused by check too.
func (e *shapeEnv) sameVerdict(t *testing.T, c shapes.Case, u string, a shapes.Answer) {
	t.Helper()
	caller := c.As
	if caller == "" {
		caller = "dan"
	}
	method := c.Method
	body, err := json.Marshal(map[string]string{"method": method, "url": u})
	require.NoError(t, err)
	rep := do(t, "POST", "http://"+e.s.controlAddr+"/v1/check", e.Tokens[caller], string(body))
	var got verdict
	if rep.status != http.StatusOK {
		got = verdict{status: rep.status, problem: shapes.ProblemType(string(rep.body))}
	} else {
		var res struct {
			Allowed bool   `json:"allowed"`
			Status  int    `json:"status"`
			Problem string `json:"problem"`
			Task    string `json:"task"`
		}
		require.NoError(t, json.Unmarshal(rep.body, &res), string(rep.body))
		got = verdict{allowed: res.Allowed, status: res.Status, problem: res.Problem, task: res.Task}
	}
	if a.DecisionID == "" {
		require.False(t, got.allowed, "check %s %s: the HTTP server refused this call (%d), check let it pass", method, u, a.Status)
		require.GreaterOrEqual(t, got.status, 400, "check %s %s", method, u)
		return
	}
	want := verdict{allowed: a.Status < 400, status: a.Status, problem: shapes.ProblemType(a.Body)}
	want.task, _ = e.Record(t, a.DecisionID)["task"].(string)
	if method == http.MethodHead {
		want.problem = got.problem // the answer to HEAD has no body to name it
	}
	if _, ok := shapes.ParseStatus(a.Body); ok && want.problem == "" {
		// A Kubernetes Status names its problem only when it says what
		// to ask for; the status and the task still must agree.
		want.problem = got.problem
	}
	require.Equal(t, want, got, "check %s %s: %s", method, u, rep.body)
}

// TestAmbiguousLengthClosesConnection: a request with both Content-Length
// and Transfer-Encoding is answered and then the connection is closed
// (RFC 9112 6.3), so nothing after the disputed body is read as another
// request; and "OPTIONS *" is judged by elevate, not answered by net/http.
func TestAmbiguousLengthClosesConnection(t *testing.T) {
	s := startDev(t)
	bob := s.token("--sub", "bob")
	c, err := net.DialTimeout("tcp", s.proxyAddr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, "POST /exchange/mailboxes/alice/move-requests HTTP/1.1\r\nHost: elevate.test\r\nAuthorization: Bearer "+bob+
		"\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /exchange/mailboxes HTTP/1.1\r\nHost: elevate.test\r\n\r\n")
	require.NoError(t, err)
	all, err := io.ReadAll(c) // ends only when the server closes
	require.NoError(t, err, "the server closes the connection")
	require.Equal(t, 1, strings.Count(string(all), "HTTP/1.1 "), "one response, the smuggled request is never answered:\n%s", all)

	status := rawRequest(t, s.proxyAddr, "OPTIONS * HTTP/1.1\r\nHost: elevate.test\r\nConnection: close\r\n\r\n")
	require.NotContains(t, status[:12], "200", status)
	require.Regexp(t, `^HTTP/1\.1 4\d\d `, status)
}
