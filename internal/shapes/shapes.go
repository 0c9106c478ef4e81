// Package shapes runs the request-shape corpus (test/testdata/shapes/*.yaml)
// against a proxy listener: the cases, the raw bytes written for each,
// the recording upstreams the corpus expects and the checks of every
// answer. Two runners share it: test/shapes_test.go against the built
// binary and proxy/shapes_test.go in process against the proxy's handler.
//
// The corpus assumes one world, described by this package's constants and
// variables: six upstreams, exchange, rabbitmq and caddy, rpc and gql
// whose bodies are judged (as JSON-RPC and GraphQL, by the route tables in
// the corpus directory's PolicyLayer, laid over the embedded bundle), and
// kube, of type kubernetes (a Kubernetes API server, judged by the
// embedded Kubernetes catalog), each a Recorder; the tasks of Policies
// gated; bob holding a grant for each of BobTasks (narrowed by
// BobConstraints) and dan holding none.
//
// Every case is written on a raw connection (net/http's client would
// normalise most of them). A case is either refused (a 4xx, and no
// upstream saw anything) or judged as exactly one task that the upstream
// then received as exactly the method and target that task means; the
// audit record found by the answer's Elevate-Decision-Id names the task
// and the decision. A refusal on kube's prefix is a Kubernetes Status,
// every other one an RFC 9457 problem document.
package shapes

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// Case is one request shape of testdata/shapes/*.yaml.
type Case struct {
	Name  string `yaml:"name"`
	Class string `yaml:"class"`
	// As is the caller: bob (holds grants for BobTasks), dan (holds no
	// grant) or none. Default dan.
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
	// Body is sent with its Content-Length, variables expanded as in the
	// target ({{s*N}} makes large bodies).
	Body string `yaml:"body"`
	// Raw replaces the request built from the fields above, byte for byte.
	Raw  string `yaml:"raw"`
	Want Want   `yaml:"want"`
	Then *Want  `yaml:"then"` // a second answer on the same connection
}

// Wants are the answers c must produce, in order.
func (c Case) Wants() []Want {
	if c.Then == nil {
		return []Want{c.Want}
	}
	return []Want{c.Want, *c.Then}
}

// Want is what a case must produce.
type Want struct {
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

// The corpus's world.
const (
	// RabbitMQUser and RabbitMQSecret are the basic credential elevate
	// presents to rabbitmq, whose credential_params are RabbitMQParams
	// (strip).
	RabbitMQUser   = "elevate-svc"
	RabbitMQSecret = "s3cret"
	// CaddyHeader and CaddyKey are the header credential elevate presents
	// to caddy, whose credential_params are CaddyParams (refuse) and which
	// allows websocket upgrades.
	CaddyHeader = "X-Api-Key"
	CaddyKey    = "caddy-k3y"
	// RPCSecret is the jsonrpc-token credential elevate inserts as the
	// first param of every call to rpc ("token:" RPCSecret); bodies to
	// rpc are judged up to RPCMaxBody bytes.
	RPCSecret  = "rpc-s3cret"
	RPCMaxBody = 200000
	// PolicyLayer is the directory, in the corpus directory, of the route
	// tables of rpc and gql (policy.dirs).
	PolicyLayer = "policy"
	// KubeToken is the bearer credential elevate presents to kube, which
	// impersonates each caller as KubeUserPrefix and the caller's subject
	// (kubernetes.user_prefix), without groups.
	KubeToken      = "kube-sa-t0ken"
	KubeUserPrefix = "elevate:"
)

var (
	RabbitMQParams = []string{"access_token", "api-key"}
	CaddyParams    = []string{"api-key"}
	// UpstreamHosts are the hosts forward mode serves, by upstream; caddy
	// is reached by its prefix only.
	UpstreamHosts = map[string]string{"exchange": "exchange.elevate.test", "rabbitmq": "rabbitmq.elevate.test"}
	// Prefixes route reverse-mode calls, by upstream.
	Prefixes = map[string]string{"exchange": "/exchange/", "rabbitmq": "/rmq/", "caddy": "/caddy/", "rpc": "/rpc/", "gql": "/gql/", "kube": "/kube/"}
	// Policies are the approval policies in force: scope (task or role)
	// and target.
	Policies = [][2]string{
		{"task", `Exchange\New-MoveRequest`}, {"task", `Exchange\Search-Mailbox`}, {"task", `Exchange\Remove-JournalRule`},
		{"role", `RabbitMQ\User Administration`}, {"role", `RabbitMQ\Topology Administration`},
		{"task", `RabbitMQ\Clear-Queue`}, {"task", `RabbitMQ\Export-Definitions`},
		{"role", `Caddy\Server Administration`},
		{"task", `RPC\Shutdown`}, {"task", `Users\Remove-User`},
		{"task", `Kubernetes\delete pods`},
	}
	// BobTasks are the tasks bob holds a grant for.
	BobTasks = []string{`Exchange\New-MoveRequest`, `RabbitMQ\Clear-Queue`, `RPC\Shutdown`, `Kubernetes\delete pods`}
	// BobConstraints narrow bob's grants, by task (elevate request new
	// --constraint KEY=VALUE): his grant for Kubernetes\delete pods covers
	// namespace prod only.
	BobConstraints = map[string]map[string]string{`Kubernetes\delete pods`: {"namespace": "prod"}}
)

// Load reads every case of dir/*.yaml and checks that each is well formed.
func Load(t testing.TB, dir string) []Case {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var all []Case
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		var cs []Case
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

// Hit is one request an upstream received.
type Hit struct {
	Upstream, Line string
	Host           string
	Header         http.Header
	Body           string
}

// Recorder records every request its upstreams receive.
type Recorder struct {
	mu   sync.Mutex
	hits []Hit
}

// Handler is the upstream called name: it records the request and
// answers 200 with a small JSON body.
func (rc *Recorder) Handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, Hit{Upstream: name, Line: r.Method + " " + r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(b)})
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
}

// Count is the number of requests received so far.
func (rc *Recorder) Count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.hits)
}

// Since returns the requests received after the first n.
func (rc *Recorder) Since(n int) []Hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Hit(nil), rc.hits[n:]...)
}

// Upstreams are the corpus's six upstreams, recording into one Recorder.
type Upstreams struct {
	Recorder                  *Recorder
	Exchange, RabbitMQ, Caddy *httptest.Server
	RPC, GQL                  *httptest.Server
	Kube                      *httptest.Server
}

// StartUpstreams starts the upstreams; they close when t ends.
func StartUpstreams(t testing.TB) *Upstreams {
	t.Helper()
	u := &Upstreams{Recorder: &Recorder{}}
	for _, s := range []struct {
		name string
		srv  **httptest.Server
	}{{"exchange", &u.Exchange}, {"rabbitmq", &u.RabbitMQ}, {"caddy", &u.Caddy}, {"rpc", &u.RPC}, {"gql", &u.GQL}, {"kube", &u.Kube}} {
		*s.srv = httptest.NewServer(u.Recorder.Handler(s.name))
		t.Cleanup((*s.srv).Close)
	}
	return u
}

// Env is one proxy listener serving the corpus's world.
type Env struct {
	// Addr is the proxy listener's host:port.
	Addr string
	// Tokens are the callers' bearer tokens, by name: bob and dan.
	Tokens    map[string]string
	Upstreams *Upstreams
	// AuditLog is the path of the audit log the decisions are written to.
	AuditLog string

	once sync.Once
	vars *strings.Replacer
}

// repeatVar is {{s*N}}: the string s N times. s holds no "*" and no
// "}}", so that {{{"method":"a"},*3}} repeats a JSON object.
var repeatVar = regexp.MustCompile(`\{\{((?:[^*}]|\}[^*}])+)\*(\d+)\}\}`)

// Expand replaces the corpus's variables in s: {{bob}} and {{dan}} (the
// tokens), {{proxy}}, {{exchange-addr}}, {{rabbitmq-addr}},
// {{rabbitmq-credential}}, {{caddy-credential}} and {{s*N}}.
func (e *Env) Expand(s string) string {
	e.once.Do(func() {
		e.vars = strings.NewReplacer(
			"{{bob}}", e.Tokens["bob"], "{{dan}}", e.Tokens["dan"], "{{proxy}}", e.Addr,
			"{{exchange-addr}}", strings.TrimPrefix(e.Upstreams.Exchange.URL, "http://"),
			"{{rabbitmq-addr}}", strings.TrimPrefix(e.Upstreams.RabbitMQ.URL, "http://"),
			"{{rabbitmq-credential}}", "Basic "+base64.StdEncoding.EncodeToString([]byte(RabbitMQUser+":"+RabbitMQSecret)),
			"{{caddy-credential}}", CaddyKey,
		)
	})
	s = repeatVar.ReplaceAllStringFunc(s, func(m string) string {
		sub := repeatVar.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		return strings.Repeat(sub[1], n)
	})
	return e.vars.Replace(s)
}

// Request builds the bytes of c's request, and the CONNECT that opens its
// tunnel, if any.
func (e *Env) Request(c Case) (connect, req string) {
	token := ""
	switch c.As {
	case "", "dan":
		token = e.Tokens["dan"]
	case "bob":
		token = e.Tokens["bob"]
	}
	tunnel := e.Expand(c.Tunnel)
	if c.Mode == "tunnel" {
		connect = "CONNECT " + tunnel + " HTTP/1.1\r\nHost: " + tunnel + "\r\n"
		if token != "" {
			connect += "Proxy-Authorization: Bearer " + token + "\r\n"
		}
		connect += "\r\n"
	}
	if c.Raw != "" {
		return connect, e.Expand(c.Raw)
	}
	proto := c.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\n", c.Method, e.Expand(c.Target), proto)
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
		fmt.Fprintf(&b, "Host: %s\r\n", e.Expand(host))
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
		b.WriteString(e.Expand(h) + "\r\n")
	}
	body := e.Expand(c.Body)
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("Connection: close\r\n\r\n" + body)
	return connect, b.String()
}

// Answer is one answer read back from the proxy listener.
type Answer struct {
	Status     int
	DecisionID string
	Header     http.Header
	Body       string
}

// readAnswer reads the body of an answer (a successful CONNECT's has
// none: the tunnel follows).
func readAnswer(resp *http.Response) Answer {
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return Answer{Status: resp.StatusCode, DecisionID: resp.Header.Get("Elevate-Decision-Id"), Header: resp.Header, Body: string(b)}
}

// Send writes c on a fresh connection and reads its answer(s).
func (e *Env) Send(t testing.TB, c Case) []Answer {
	t.Helper()
	connect, req := e.Request(c)
	conn, err := net.DialTimeout("tcp", e.Addr, 5*time.Second)
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
			return []Answer{readAnswer(resp)}
		}
	}
	_, err = io.WriteString(conn, req)
	require.NoError(t, err)
	method := c.Method
	if method == "" {
		method, _, _ = strings.Cut(req, " ")
	}
	var out []Answer
	for range c.Wants() {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		require.NoError(t, err, "no answer")
		out = append(out, readAnswer(resp))
		method = http.MethodGet
	}
	return out
}

// Run sends c and checks every answer, what the upstreams received and
// the audit records. It returns the answers.
func (e *Env) Run(t testing.TB, c Case) []Answer {
	t.Helper()
	before := e.Upstreams.Recorder.Count()
	answers := e.Send(t, c)
	hits := e.Upstreams.Recorder.Since(before)
	wants := c.Wants()
	require.Len(t, answers, len(wants))
	kube := (c.Mode == "" || c.Mode == "reverse") && strings.HasPrefix(e.Expand(c.Target), Prefixes["kube"])
	for i, w := range wants {
		var hit *Hit
		if w.Forward != "" {
			require.NotEmpty(t, hits, "answer %d: the upstream received nothing", i+1)
			hit, hits = &hits[0], hits[1:]
		}
		e.Check(t, w, answers[i], hit)
		if a := answers[i]; a.Status >= 400 && a.DecisionID != "" && a.Body != "" {
			// kubectl prints a Status; every other client reads a problem.
			_, isStatus := ParseStatus(a.Body)
			require.Equal(t, kube, isStatus, "answer %d: a refusal on kube's prefix is a Kubernetes Status, any other a problem document: %s", i+1, a.Body)
		}
	}
	require.Empty(t, hits, "the upstream received more than the case allows")
	return answers
}

// Record finds the audit record with the given decision id. Outcome
// records are appended while cases run, so a last line without its
// newline is a record still being written and is left alone.
func (e *Env) Record(t testing.TB, id string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(e.AuditLog)
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

// Check requires that answer a and what the upstream received (hit, nil
// for nothing) are as w says.
func (e *Env) Check(t testing.TB, w Want, a Answer, hit *Hit) {
	t.Helper()
	require.Equal(t, w.Status, a.Status, "answer: %s", a.Body)
	event := w.Event
	if event == "" && w.Forward != "" {
		event = "allowed"
	}
	require.NotEmpty(t, event, "the case must say which audit event it expects")
	if event == "none" {
		require.Empty(t, a.DecisionID, "refused by the HTTP server, before any decision")
	} else {
		require.NotEmpty(t, a.DecisionID, "every decision carries its id")
		rec := e.Record(t, a.DecisionID)
		require.Equal(t, event, rec["event"], "audit record %v", rec)
		task, _ := rec["task"].(string)
		require.Equal(t, w.Task, task, "audit record %v", rec)
	}
	if a.Status >= 400 && a.DecisionID != "" && a.Body != "" {
		checkRefusalBody(t, a)
	}
	if w.Problem != "" {
		require.Equal(t, "urn:elevate:problem:"+w.Problem, ProblemType(a.Body), "answer: %s", a.Body)
	}
	if w.Forward == "" {
		require.Nil(t, hit)
		return
	}
	require.NotNil(t, hit)
	require.Equal(t, e.Expand(w.Forward), hit.Upstream+" "+hit.Line)
	for _, h := range w.Absent {
		require.Empty(t, hit.Header.Values(h), "the upstream received %s", h)
	}
	for h, v := range w.Header {
		require.Equal(t, e.Expand(v), hit.Header.Get(h), "header %s", h)
	}
	if w.Body != nil {
		require.Equal(t, *w.Body, hit.Body)
	}
	require.Empty(t, hit.Header.Get("Proxy-Authorization"))
	switch hit.Upstream {
	case "rabbitmq":
		require.Equal(t, e.Expand("{{rabbitmq-credential}}"), hit.Header.Get("Authorization"), "elevate's credential, and only it")
	case "kube":
		require.Equal(t, []string{"Bearer " + KubeToken}, hit.Header.Values("Authorization"), "elevate's credential, and only it")
		users := hit.Header.Values("Impersonate-User")
		require.Len(t, users, 1, "the caller impersonated, once")
		require.True(t, strings.HasPrefix(users[0], KubeUserPrefix), "Impersonate-User %q", users[0])
		require.Empty(t, hit.Header.Values("Impersonate-Group"), "kube passes no group")
		for k := range hit.Header {
			if n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); strings.HasPrefix(n, "impersonate-") {
				require.Contains(t, []string{"impersonate-user", "impersonate-group"}, n, "the upstream received %s", k)
			}
		}
	default:
		require.Empty(t, hit.Header.Get("Authorization"), "no caller credential reaches the upstream")
	}
	if hit.Upstream == "caddy" {
		require.Equal(t, []string{CaddyKey}, hit.Header.Values(CaddyHeader), "elevate's credential, and only it")
	}
	if hit.Upstream == "rpc" && hit.Body != "" {
		require.Contains(t, hit.Body, `"token:`+RPCSecret+`"`, "elevate's token in the body")
		require.Equal(t, strconv.Itoa(len(hit.Body)), hit.Header.Get("Content-Length"), "the body forwarded with its own length")
		require.Empty(t, hit.Header.Values("Transfer-Encoding"))
	}
	// The corpus spells the caller's own upstream credential "mine": it
	// never reaches an upstream, wherever it was put.
	require.NotContains(t, hit.Line, "mine")
	require.NotContains(t, hit.Body, "mine")
	for k, vs := range hit.Header {
		require.NotContains(t, vs, "mine", "header %s", k)
	}
}

// ProblemType is the type of a problem document, or of the problem a
// Kubernetes Status names in its causes (a refusal that says what to ask
// for does), or "" for any other body.
func ProblemType(body string) string {
	if s, ok := ParseStatus(body); ok {
		if s.Details != nil {
			for _, c := range s.Details.Causes {
				if c.Reason != "" {
					return "urn:elevate:problem:" + c.Reason
				}
			}
		}
		return ""
	}
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal([]byte(body), &p) != nil || !strings.HasPrefix(p.Type, "urn:elevate:problem:") {
		return ""
	}
	return p.Type
}

// Status is a Kubernetes Status, the refusal a client of kube reads.
type Status struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Status     string `json:"status"`
	Message    string `json:"message"`
	Reason     string `json:"reason"`
	Code       int    `json:"code"`
	Details    *struct {
		Causes []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"causes"`
	} `json:"details"`
}

// ParseStatus reads body as a Kubernetes Status; false for any other body.
func ParseStatus(body string) (Status, bool) {
	var s Status
	if json.Unmarshal([]byte(body), &s) != nil || s.Kind != "Status" {
		return Status{}, false
	}
	return s, true
}

// statusReasons are the Status reasons of the refusals the corpus sees.
var statusReasons = map[int]string{
	http.StatusBadRequest: "BadRequest", http.StatusUnauthorized: "Unauthorized", http.StatusForbidden: "Forbidden",
	http.StatusNotFound: "NotFound", http.StatusMethodNotAllowed: "MethodNotAllowed",
	http.StatusRequestEntityTooLarge: "RequestEntityTooLarge", http.StatusUnsupportedMediaType: "UnsupportedMediaType",
}

// checkRefusalBody requires that a refusal with a decision is either an
// RFC 9457 problem document or a Kubernetes Status, with the answer's
// status, the content type of its kind and the decision id.
func checkRefusalBody(t testing.TB, a Answer) {
	t.Helper()
	ctype := a.Header.Get("Content-Type")
	s, ok := ParseStatus(a.Body)
	if !ok {
		require.Equal(t, "application/problem+json", ctype, "answer: %s", a.Body)
		var p struct {
			Status     int    `json:"status"`
			DecisionID string `json:"decision_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(a.Body), &p), a.Body)
		require.NotEmpty(t, ProblemType(a.Body), "answer: %s", a.Body)
		require.Equal(t, a.Status, p.Status, "answer: %s", a.Body)
		require.Equal(t, a.DecisionID, p.DecisionID, "answer: %s", a.Body)
		return
	}
	require.Equal(t, "application/json", ctype, "answer: %s", a.Body)
	require.Equal(t, "v1", s.APIVersion, "answer: %s", a.Body)
	require.Equal(t, "Failure", s.Status, "answer: %s", a.Body)
	require.Equal(t, a.Status, s.Code, "answer: %s", a.Body)
	if want, known := statusReasons[a.Status]; known {
		require.Equal(t, want, s.Reason, "answer: %s", a.Body)
	}
	require.NotEmpty(t, s.Reason, "answer: %s", a.Body)
	require.Contains(t, s.Message, "(elevate decision "+a.DecisionID+")", "answer: %s", a.Body)
}
