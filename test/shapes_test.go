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
//
// Every case is written on a raw connection (net/http's client would
// normalise most of them) to one elevate instance whose upstreams,
// "exchange", "rabbitmq" and (for websocket upgrades and refused
// credential parameters) "caddy", are recording servers. A case is either
// refused (a 4xx, and no upstream saw anything) or judged as exactly one task
// that the upstream then received as exactly the method and target that
// task means; the audit record found by the answer's Elevate-Decision-Id
// names the task and the decision. Every case that is a method and a URL
// is then asked of POST /v1/check by the same caller, which must give the
// proxy's verdict (checkURL lists the kinds of case that are not).
package test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// shapeCase is one request shape of testdata/shapes/*.yaml.
type shapeCase struct {
	Name  string `yaml:"name"`
	Class string `yaml:"class"`
	// As is the caller: bob (holds grants for Exchange\New-MoveRequest and
	// RabbitMQ\Clear-Queue), dan (holds no grant) or none. Default dan.
	As string `yaml:"as"`
	// Mode is reverse (origin form, token in Authorization; the default),
	// forward (absolute form, token in Proxy-Authorization) or tunnel
	// (CONNECT to Tunnel with the token, then the request inside it).
	Mode   string `yaml:"mode"`
	Tunnel string `yaml:"tunnel"`
	Method string `yaml:"method"`
	Target string `yaml:"target"`
	// Proto defaults to HTTP/1.1.
	Proto string `yaml:"proto"`
	// Host defaults to elevate.test (reverse), the target's authority
	// (forward) or the tunnel's host (tunnel); "-" sends none.
	Host    string   `yaml:"host"`
	Headers []string `yaml:"headers"`
	Body    string   `yaml:"body"`
	// Raw replaces the request built from the fields above, byte for byte.
	Raw  string     `yaml:"raw"`
	Want shapeWant  `yaml:"want"`
	Then *shapeWant `yaml:"then"` // a second answer on the same connection
}

func (c shapeCase) thens() []shapeWant {
	if c.Then == nil {
		return nil
	}
	return []shapeWant{*c.Then}
}

// shapeWant is what a case must produce.
type shapeWant struct {
	Status int `yaml:"status"`
	// Forward is "UPSTREAM METHOD REQUEST-URI" as the upstream received
	// it; empty means the upstream received nothing.
	Forward string `yaml:"forward"`
	// Event is the audit record's event, found by Elevate-Decision-Id;
	// "none" means the HTTP server refused the request before elevate
	// judged it (no decision id, no record). Default "allowed" when
	// forwarded.
	Event string `yaml:"event"`
	// Task is the task the audit record names; empty for none.
	Task string `yaml:"task"`
	// Problem is the slug of elevate's refusal (urn:elevate:problem:SLUG).
	Problem string `yaml:"problem"`
	// Absent are headers the upstream must not have received; Header
	// those it must have received with these values; Body the body.
	Absent []string          `yaml:"absent"`
	Header map[string]string `yaml:"header"`
	Body   *string           `yaml:"body"`
}

// shapeHit is one request an upstream received.
type shapeHit struct {
	upstream, line string
	header         http.Header
	body           string
}

// shapeRecorder is an upstream that records every request it receives.
type shapeRecorder struct {
	mu   sync.Mutex
	hits []shapeHit
}

func (rc *shapeRecorder) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, shapeHit{upstream: name, line: r.Method + " " + r.RequestURI, header: r.Header.Clone(), body: string(b)})
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
}

func (rc *shapeRecorder) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.hits)
}

func (rc *shapeRecorder) since(n int) []shapeHit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]shapeHit(nil), rc.hits[n:]...)
}

// shapeEnv is the one elevate instance all cases run against.
type shapeEnv struct {
	s      *server
	rec    *shapeRecorder
	tokens map[string]string // bob, dan
	vars   *strings.Replacer
}

func loadShapeCases(t *testing.T) []shapeCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "shapes", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var all []shapeCase
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		var cs []shapeCase
		require.NoError(t, dec.Decode(&cs), f)
		for _, c := range cs {
			require.NotEmpty(t, c.Name, "%s: a case without a name", f)
			require.NotEmpty(t, c.Class, "%s: %s has no class", f, c.Name)
			require.False(t, seen[c.Name], "%s: case %s twice", f, c.Name)
			seen[c.Name] = true
			// Refusals are 4xx; only the HTTP server itself answers 501 or
			// 505, for framing it does not take, before anything is judged.
			require.True(t, c.Want.Status >= 200 && c.Want.Status < 500 || c.Want.Event == "none" && c.Want.Status < 600,
				"%s: %s: status %d", f, c.Name, c.Want.Status)
			require.True(t, c.Want.Forward == "" || c.Want.Status < 400, "%s: %s: a refusal cannot be forwarded", f, c.Name)
			all = append(all, c)
		}
	}
	return all
}

// startShapeEnv runs elevate (not --dev: every upstream, exchange included,
// is a recorder) against an etcd in this process, gates the privileged
// tasks and gives bob two task grants. A third upstream, caddy, lets
// websocket upgrades through, so that a judged handshake can be seen.
func startShapeEnv(t *testing.T) *shapeEnv {
	t.Helper()
	_, endpoint := startEtcd(t)
	rec := &shapeRecorder{}
	exchange := httptest.NewServer(rec.handler("exchange"))
	t.Cleanup(exchange.Close)
	rabbit := httptest.NewServer(rec.handler("rabbitmq"))
	t.Cleanup(rabbit.Close)
	caddy := httptest.NewServer(rec.handler("caddy"))
	t.Cleanup(caddy.Close)
	iss := newIssuer(t)
	secret := filepath.Join(t.TempDir(), "rabbitmq.secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	caddyKey := filepath.Join(t.TempDir(), "caddy.secret")
	require.NoError(t, os.WriteFile(caddyKey, []byte("caddy-k3y\n"), 0o600))
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
upstreams:
  - name: exchange
    url: %s
    prefix: /exchange/
    hosts: [exchange.elevate.test]
  - name: rabbitmq
    url: %s
    prefix: /rmq/
    hosts: [rabbitmq.elevate.test]
    credential: {type: basic, username: elevate-svc, value_file: %s}
    credential_params: [access_token, api-key]
  - name: caddy
    url: %s
    prefix: /caddy/
    allow_websocket: true
    credential: {type: header, header: X-Api-Key, value_file: %s}
    credential_params: [api-key]
    credential_params_action: refuse
`, endpoint, iss.pemFile, exchange.URL, rabbit.URL, secret, caddy.URL, caddyKey))
	s.waitReady(t)

	admin := iss.token(t, "ada", "admins", "approvers")
	bob := iss.token(t, "bob")
	dan := iss.token(t, "dan")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	for _, p := range [][]string{
		{"--task", `Exchange\New-MoveRequest`}, {"--task", `Exchange\Search-Mailbox`}, {"--task", `Exchange\Remove-JournalRule`},
		{"--role", `RabbitMQ\User Administration`}, {"--role", `RabbitMQ\Topology Administration`},
		{"--task", `RabbitMQ\Clear-Queue`}, {"--task", `RabbitMQ\Export-Definitions`},
		{"--role", `Caddy\Server Administration`},
	} {
		s.ok(admin, append([]string{"policy", "new", "--approval", "manual"}, p...)...)
	}
	for _, task := range []string{`Exchange\New-MoveRequest`, `RabbitMQ\Clear-Queue`} {
		id := strings.TrimSpace(s.ok(bob, "request", "new", "--task", task, "--reason", "request-shape corpus", "--duration", "2h", "-q"))
		s.ok(admin, "request", "approve", id)
	}
	proxy := "http://" + s.proxyAddr
	require.Eventually(t, func() bool {
		return do(t, "POST", proxy+"/exchange/mailboxes/alice/move-requests", bob, "").status == http.StatusOK &&
			do(t, "DELETE", proxy+"/rmq/api/queues/%2F/orders/contents", bob, "").status == http.StatusOK &&
			do(t, "POST", proxy+"/exchange/mailboxes/alice/move-requests", dan, "").status == http.StatusForbidden
	}, 10*time.Second, 20*time.Millisecond, "grants and policies did not reach the proxy")

	return &shapeEnv{s: s, rec: rec, tokens: map[string]string{"bob": bob, "dan": dan}, vars: strings.NewReplacer(
		"{{bob}}", bob, "{{dan}}", dan, "{{proxy}}", s.proxyAddr,
		"{{exchange-addr}}", strings.TrimPrefix(exchange.URL, "http://"),
		"{{rabbitmq-addr}}", strings.TrimPrefix(rabbit.URL, "http://"),
		"{{rabbitmq-credential}}", "Basic "+base64.StdEncoding.EncodeToString([]byte("elevate-svc:s3cret")),
		"{{caddy-credential}}", "caddy-k3y",
	)}
}

// repeatVar is {{s*N}}: the string s N times.
var repeatVar = regexp.MustCompile(`\{\{([^*{}]+)\*(\d+)\}\}`)

func (e *shapeEnv) expand(s string) string {
	s = repeatVar.ReplaceAllStringFunc(s, func(m string) string {
		sub := repeatVar.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		return strings.Repeat(sub[1], n)
	})
	return e.vars.Replace(s)
}

// request builds the bytes of c's request, and the CONNECT that opens its
// tunnel, if any.
func (e *shapeEnv) request(c shapeCase) (connect, req string) {
	token := ""
	switch c.As {
	case "", "dan":
		token = e.tokens["dan"]
	case "bob":
		token = e.tokens["bob"]
	}
	tunnel := e.expand(c.Tunnel)
	if c.Mode == "tunnel" {
		connect = "CONNECT " + tunnel + " HTTP/1.1\r\nHost: " + tunnel + "\r\n"
		if token != "" {
			connect += "Proxy-Authorization: Bearer " + token + "\r\n"
		}
		connect += "\r\n"
	}
	if c.Raw != "" {
		return connect, e.expand(c.Raw)
	}
	proto := c.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\n", c.Method, e.expand(c.Target), proto)
	host := c.Host
	if host == "" {
		switch c.Mode {
		case "forward":
			rest := c.Target[strings.Index(c.Target, "://")+3:]
			host = rest[:strings.IndexAny(rest+"/", "/?#")]
		case "tunnel":
			host, _, _ = net.SplitHostPort(tunnel)
		default:
			host = "elevate.test"
		}
	}
	if host != "-" {
		fmt.Fprintf(&b, "Host: %s\r\n", e.expand(host))
	}
	if token != "" {
		switch c.Mode {
		case "forward":
			fmt.Fprintf(&b, "Proxy-Authorization: Bearer %s\r\n", token)
		case "", "reverse":
			fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
		}
	}
	for _, h := range c.Headers {
		b.WriteString(e.expand(h) + "\r\n")
	}
	if c.Body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(c.Body))
	}
	b.WriteString("Connection: close\r\n\r\n" + c.Body)
	return connect, b.String()
}

// shapeAnswer is one answer read back from the proxy listener.
type shapeAnswer struct {
	status     int
	decisionID string
	body       string
}

// readShapeAnswer reads the body of an answer (a successful CONNECT's has
// none: the tunnel follows).
func readShapeAnswer(t *testing.T, resp *http.Response) shapeAnswer {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return shapeAnswer{status: resp.StatusCode, decisionID: resp.Header.Get("Elevate-Decision-Id"), body: string(b)}
}

// send writes c on a fresh connection and reads its answer(s).
func (e *shapeEnv) send(t *testing.T, c shapeCase) []shapeAnswer {
	t.Helper()
	connect, req := e.request(c)
	conn, err := net.DialTimeout("tcp", e.s.proxyAddr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(conn)
	if connect != "" {
		_, err := io.WriteString(conn, connect)
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		require.NoError(t, err, "no answer to CONNECT")
		if resp.StatusCode != http.StatusOK {
			return []shapeAnswer{readShapeAnswer(t, resp)}
		}
	}
	_, err = io.WriteString(conn, req)
	require.NoError(t, err)
	method := c.Method
	if method == "" {
		method, _, _ = strings.Cut(req, " ")
	}
	var out []shapeAnswer
	for range 1 + len(c.thens()) {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		require.NoError(t, err, "no answer")
		out = append(out, readShapeAnswer(t, resp))
		method = http.MethodGet
	}
	return out
}

// auditByID finds the audit record with the given decision id. Outcome
// records are appended while cases run, so a last line without its newline
// is a record still being written and is left alone.
func (e *shapeEnv) auditByID(t *testing.T, id string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.s.dataDir, "audit.log"))
	require.NoError(t, err)
	for {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		if !ok {
			break
		}
		b = rest
		if !bytes.Contains(line, []byte(id)) {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec), string(line))
		if rec["id"] == id {
			return rec
		}
	}
	t.Fatalf("no audit record with id %s", id)
	return nil
}

func (e *shapeEnv) check(t *testing.T, w shapeWant, a shapeAnswer, hit *shapeHit) {
	t.Helper()
	require.Equal(t, w.Status, a.status, "answer: %s", a.body)
	event := w.Event
	if event == "" && w.Forward != "" {
		event = "allowed"
	}
	require.NotEmpty(t, event, "the case must say which audit event it expects")
	if event == "none" {
		require.Empty(t, a.decisionID, "refused by the HTTP server, before any decision")
	} else {
		require.NotEmpty(t, a.decisionID, "every decision carries its id")
		rec := e.auditByID(t, a.decisionID)
		require.Equal(t, event, rec["event"], "audit record %v", rec)
		task, _ := rec["task"].(string)
		require.Equal(t, w.Task, task, "audit record %v", rec)
	}
	if w.Problem != "" {
		require.Equal(t, "urn:elevate:problem:"+w.Problem, problemType(a.body), "answer: %s", a.body)
	}
	if w.Forward == "" {
		require.Nil(t, hit)
		return
	}
	require.NotNil(t, hit)
	require.Equal(t, e.expand(w.Forward), hit.upstream+" "+hit.line)
	for _, h := range w.Absent {
		require.Empty(t, hit.header.Values(h), "the upstream received %s", h)
	}
	for h, v := range w.Header {
		require.Equal(t, e.expand(v), hit.header.Get(h), "header %s", h)
	}
	if w.Body != nil {
		require.Equal(t, *w.Body, hit.body)
	}
	require.Empty(t, hit.header.Get("Proxy-Authorization"))
	if hit.upstream == "rabbitmq" {
		require.Equal(t, e.expand("{{rabbitmq-credential}}"), hit.header.Get("Authorization"), "elevate's credential, and only it")
	} else {
		require.Empty(t, hit.header.Get("Authorization"), "no caller credential reaches the upstream")
	}
	if hit.upstream == "caddy" {
		require.Equal(t, []string{e.expand("{{caddy-credential}}")}, hit.header.Values("X-Api-Key"), "elevate's credential, and only it")
	}
	// The corpus spells the caller's own upstream credential "mine": it
	// never reaches an upstream, wherever it was put.
	require.NotContains(t, hit.line, "mine")
	require.NotContains(t, hit.body, "mine")
	for k, vs := range hit.header {
		require.NotContains(t, vs, "mine", "header %s", k)
	}
}

func TestRequestShapes(t *testing.T) {
	cases := loadShapeCases(t)
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
			r := e.s.cli(e.tokens["bob"], "-o", "json", "check", tc.method, move)
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
	compared := 0
	for _, c := range cases {
		classes[c.Class]++
		t.Run(c.Name, func(t *testing.T) {
			before := e.rec.count()
			answers := e.send(t, c)
			hits := e.rec.since(before)
			wants := append([]shapeWant{c.Want}, c.thens()...)
			require.Len(t, answers, len(wants))
			for i, w := range wants {
				var hit *shapeHit
				if w.Forward != "" {
					require.NotEmpty(t, hits, "answer %d: the upstream received nothing", i+1)
					hit, hits = &hits[0], hits[1:]
				}
				e.check(t, w, answers[i], hit)
			}
			require.Empty(t, hits, "the upstream received more than the case allows")

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
		require.GreaterOrEqual(t, compared, len(cases)*2/3, "most shapes are a method and a URL")
	}
}

// upstreamHosts are the hosts forward mode serves in the shape corpus.
var upstreamHosts = map[string]bool{"exchange.elevate.test": true, "rabbitmq.elevate.test": true}

// checkURL is the URL that asks POST /v1/check about c's call, or why c
// cannot be asked as a method and a URL. Reverse-mode calls are asked with
// elevate's own address, forward-mode calls with their absolute URI, calls
// inside a tunnel with https and the tunnel's host.
func (e *shapeEnv) checkURL(c shapeCase) (u, why string) {
	switch {
	case c.Raw != "":
		return "", "raw bytes (framing, pipelining, CONNECT lines): not a method and a URL"
	case c.As == "none":
		return "", "no caller: /v1/check judges for the authenticated caller asking"
	case c.Body != "":
		return "", "a body: /v1/check is asked about a method and a URL"
	case c.Host != "" && c.Mode != "forward":
		return "", "a Host header apart from the URL (outside forward mode, where the URI's host wins)"
	}
	for _, h := range c.Headers {
		name, _, _ := strings.Cut(h, ":")
		switch http.CanonicalHeaderKey(strings.TrimSpace(name)) {
		case "Upgrade", "Http2-Settings", "Authorization", "Proxy-Authorization", "Host":
			return "", "a header the verdict depends on (a protocol upgrade, a token, Host)"
		}
	}
	notUpstream := "a host no upstream serves, or https without CONNECT: as a URL, check reads https as a call in a tunnel and any other host as elevate's own"
	target := e.expand(c.Target)
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
		if !upstreamHost(e.expand(c.Tunnel)) {
			return "", notUpstream
		}
		return "https://" + e.expand(c.Tunnel) + target, ""
	}
	if !strings.HasPrefix(target, "/") {
		return "", `an origin-form target that is not a path ("*", a bare authority)`
	}
	return "http://" + e.s.proxyAddr + target, ""
}

func upstreamHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return upstreamHosts[strings.TrimSuffix(strings.ToLower(h), ".")]
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
func (e *shapeEnv) sameVerdict(t *testing.T, c shapeCase, u string, a shapeAnswer) {
	t.Helper()
	caller := c.As
	if caller == "" {
		caller = "dan"
	}
	method := c.Method
	body, err := json.Marshal(map[string]string{"method": method, "url": u})
	require.NoError(t, err)
	rep := do(t, "POST", "http://"+e.s.controlAddr+"/v1/check", e.tokens[caller], string(body))
	var got verdict
	if rep.status != http.StatusOK {
		got = verdict{status: rep.status, problem: problemType(string(rep.body))}
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
	if a.decisionID == "" {
		require.False(t, got.allowed, "check %s %s: the HTTP server refused this call (%d), check let it pass", method, u, a.status)
		require.GreaterOrEqual(t, got.status, 400, "check %s %s", method, u)
		return
	}
	want := verdict{allowed: a.status < 400, status: a.status, problem: problemType(a.body)}
	want.task, _ = e.auditByID(t, a.decisionID)["task"].(string)
	if method == http.MethodHead {
		want.problem = got.problem // the answer to HEAD has no body to name it
	}
	require.Equal(t, want, got, "check %s %s: %s", method, u, rep.body)
}

// problemType is the type of a problem document, or "" for any other body.
func problemType(body string) string {
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal([]byte(body), &p) != nil || !strings.HasPrefix(p.Type, "urn:elevate:problem:") {
		return ""
	}
	return p.Type
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
