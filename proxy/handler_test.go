package proxy_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/shapes"
	"github.com/elevate-pam/elevate/proxy"
)

// The proxy listener's handler in process (see proxyEnv): what reaches
// the upstream, what the caller is answered, what is recorded. The shape
// corpus (TestShapesInProcess) tries every shape of a call; these tests
// name one rule each.

// send writes c on a raw connection and returns its one answer and what
// the upstream received, nil for nothing.
func (e *proxyEnv) send(t *testing.T, c shapes.Case) (shapes.Answer, *shapes.Hit) {
	t.Helper()
	before := e.Upstreams.Recorder.Count()
	answers := e.Send(t, c)
	require.Len(t, answers, 1)
	hits := e.Upstreams.Recorder.Since(before)
	require.LessOrEqual(t, len(hits), 1, "one call, one upstream request at most")
	if len(hits) == 0 {
		return answers[0], nil
	}
	return answers[0], &hits[0]
}

// forwarded sends c, which must be allowed, and returns what the upstream
// received.
func (e *proxyEnv) forwarded(t *testing.T, c shapes.Case) *shapes.Hit {
	t.Helper()
	a, hit := e.send(t, c)
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.NotNil(t, hit, "nothing forwarded")
	return hit
}

// spoofable are the headers a caller could lie with about where a call
// came from or what it is.
var spoofable = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Path", "X-Real-Ip", "X-Original-Url",
	"X-Rewrite-Url", "X-Original-Uri", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	"X-Forwarded-Method", "X-Original-Method", "X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Ssl",
	"X-Url-Scheme", "X-Client-Ip", "True-Client-Ip", "X-Cluster-Client-Ip",
}

// TestProxyStripsHeaders: the upstream never receives hop-by-hop headers,
// headers the caller named in Connection, forwarding headers the caller
// sent, elevate's token, or the caller's own credentials and cookies;
// elevate sets the forwarding headers, Host and Origin afresh.
func TestProxyStripsHeaders(t *testing.T) {
	e := newProxyEnv(t)
	read := shapes.Case{Method: "GET", Target: "/exchange/mailboxes"}
	with := func(c shapes.Case, headers ...string) shapes.Case {
		c.Headers = headers
		return c
	}
	forward := shapes.Case{Mode: "forward", Method: "GET", Target: "http://exchange.elevate.test/mailboxes"}
	tunnel := shapes.Case{Mode: "tunnel", Tunnel: "exchange.elevate.test:80", Method: "GET", Target: "/mailboxes"}

	for _, tc := range []struct {
		desc   string
		c      shapes.Case
		absent []string
		want   map[string]string
	}{
		{desc: "hop-by-hop headers", c: with(read, "Connection: keep-alive", "Keep-Alive: timeout=5", "TE: trailers", "Trailer: X-A",
			"Proxy-Connection: keep-alive", "Proxy-Authenticate: Basic realm=x", "Proxy-Authorization: Basic Z3Vlc3Q6Z3Vlc3Q="),
			absent: []string{"Connection", "Keep-Alive", "Te", "Trailer", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization"}},
		{desc: "headers named in Connection", c: with(read, "Connection: X-Secret-Hop, x-other", "X-Secret-Hop: 1", "X-Other: 2", "X-Kept: 3"),
			absent: []string{"X-Secret-Hop", "X-Other"}, want: map[string]string{"X-Kept": "3"}},
		{desc: "forwarding headers set afresh", c: with(read, "X-Forwarded-For: 10.0.0.1", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: https"),
			want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "elevate.test", "X-Forwarded-Proto": "http"}},
		{desc: "forwarding headers named in Connection still set", c: with(read, "Connection: X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto"),
			want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "elevate.test", "X-Forwarded-Proto": "http"}},
		{desc: "elevate's token in reverse mode", c: read, absent: []string{"Authorization"}},
		{desc: "elevate's token in forward mode", c: forward, absent: []string{"Proxy-Authorization"},
			want: map[string]string{"X-Forwarded-Host": "exchange.elevate.test"}},
		{desc: "elevate's token of a tunnel", c: with(tunnel, "Proxy-Authorization: Bearer {{dan}}"), absent: []string{"Proxy-Authorization"}},
		{desc: "the caller's Authorization in forward mode", c: with(forward, "Authorization: Basic Z3Vlc3Q6Z3Vlc3Q="), absent: []string{"Authorization"}},
		{desc: "the caller's cookies", c: with(read, "Cookie: session=caller"), absent: []string{"Cookie"}},
		{desc: "the upstream's own Origin", c: with(read, "Origin: https://evil.example"),
			want: map[string]string{"Origin": e.Upstreams.Exchange.URL}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			hit := e.forwarded(t, tc.c)
			for _, h := range tc.absent {
				require.Empty(t, hit.Header.Values(h), "the upstream received %s", h)
			}
			for h, v := range tc.want {
				require.Equal(t, []string{v}, hit.Header.Values(h), "header %s", h)
			}
			require.Equal(t, strings.TrimPrefix(e.Upstreams.Exchange.URL, "http://"), hit.Host, "the upstream's own Host")
			require.NotContains(t, hit.Header.Get("Authorization")+hit.Header.Get("Proxy-Authorization"), e.Tokens["dan"])
		})
	}

	// Every forwarding header in every spelling an upstream may read.
	for _, name := range spoofable {
		t.Run("spoofable/"+name, func(t *testing.T) {
			hit := e.forwarded(t, with(read, name+": spoofed", strings.ToLower(name)+": spoofed", strings.ReplaceAll(name, "-", "_")+": spoofed"))
			for k, vs := range hit.Header {
				for _, v := range vs {
					require.NotContains(t, v, "spoofed", "the upstream received %s", k)
				}
			}
		})
	}
}

// TestProxyCredentials: elevate presents the upstream's credential and
// nothing of the caller's: the credential header in any spelling is
// replaced, credential parameters are stripped from the query and form
// bodies (or refused where the route says so).
func TestProxyCredentials(t *testing.T) {
	e := newProxyEnv(t)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(shapes.RabbitMQUser+":"+shapes.RabbitMQSecret))
	form := "Content-Type: application/x-www-form-urlencoded"

	for _, tc := range []struct {
		desc string
		c    shapes.Case
		line string            // the request line the upstream received
		want map[string]string // headers it received, once each
		body *string           // the body it received
	}{
		{desc: "basic credential", c: shapes.Case{Method: "GET", Target: "/rmq/api/overview"},
			line: "GET /api/overview", want: map[string]string{"Authorization": basic}},
		{desc: "basic credential replaces the caller's", c: shapes.Case{Mode: "forward", Method: "GET", Target: "http://rabbitmq.elevate.test/api/overview",
			Headers: []string{"Authorization: Basic Z3Vlc3Q6Z3Vlc3Q="}}, line: "GET /api/overview", want: map[string]string{"Authorization": basic}},
		{desc: "basic credential in a tunnel", c: shapes.Case{Mode: "tunnel", Tunnel: "rabbitmq.elevate.test:80", Method: "GET", Target: "/api/overview"},
			line: "GET /api/overview", want: map[string]string{"Authorization": basic}},
		{desc: "basic credential named in Connection", c: shapes.Case{Method: "GET", Target: "/rmq/api/overview", Headers: []string{"Connection: Authorization"}},
			line: "GET /api/overview", want: map[string]string{"Authorization": basic}},
		{desc: "header credential in any spelling", c: shapes.Case{Method: "GET", Target: "/caddy/config/",
			Headers: []string{"x-api-key: mine", "X_Api_Key: mine", "x_api-KEY: mine"}}, line: "GET /config/", want: map[string]string{shapes.CaddyHeader: shapes.CaddyKey}},
		{desc: "header credential named in Connection", c: shapes.Case{Method: "GET", Target: "/caddy/config/",
			Headers: []string{"Connection: X-Api-Key", "X-Api-Key: mine"}}, line: "GET /config/", want: map[string]string{shapes.CaddyHeader: shapes.CaddyKey}},
		{desc: "query parameters stripped", c: shapes.Case{Method: "GET", Target: "/rmq/api/overview?API-KEY=mine&columns=x&access%5Ftoken=mine"},
			line: "GET /api/overview?columns=x", want: map[string]string{"Authorization": basic}},
		{desc: "query parameters stripped in forward mode", c: shapes.Case{Mode: "forward", Method: "GET",
			Target: "http://rabbitmq.elevate.test/api/overview?Access_Token=mine"}, line: "GET /api/overview"},
		{desc: "form parameters stripped", c: shapes.Case{Method: "GET", Target: "/rmq/api/overview", Headers: []string{form},
			Body: "API-KEY=mine&columns=x"}, line: "GET /api/overview", want: map[string]string{"Content-Length": "9"}, body: ptr("columns=x")},
		{desc: "untyped form parameters stripped", c: shapes.Case{Method: "GET", Target: "/rmq/api/overview", Body: "columns=x&api%2Dkey=mine"},
			line: "GET /api/overview", body: ptr("columns=x")},
		{desc: "other bodies forwarded as sent", c: shapes.Case{Method: "GET", Target: "/rmq/api/overview",
			Headers: []string{"Content-Type: application/json"}, Body: `{"api-key":"x"}`}, line: "GET /api/overview", body: ptr(`{"api-key":"x"}`)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			hit := e.forwarded(t, tc.c)
			require.Equal(t, tc.line, hit.Line)
			for h, v := range tc.want {
				require.Equal(t, []string{v}, hit.Header.Values(h), "header %s", h)
			}
			if tc.body != nil {
				require.Equal(t, *tc.body, hit.Body)
			}
			require.NotContains(t, hit.Line+hit.Body, "mine")
			for k, vs := range hit.Header {
				require.NotContains(t, vs, "mine", "header %s", k)
			}
		})
	}

	// Refused where the route says so: nothing forwarded, the refusal
	// audited under its decision id, the caller's value never repeated.
	for _, c := range []shapes.Case{
		{Name: "query", Method: "GET", Target: "/caddy/config/?x=1&Api-Key=mine"},
		{Name: "query of a gated call", As: "bob", Method: "POST", Target: "/caddy/stop?api%2Dkey=mine"},
		{Name: "form", Method: "POST", Target: "/caddy/adapt", Headers: []string{form}, Body: "x=1&API-KEY=mine"},
		{Name: "untyped form", Method: "POST", Target: "/caddy/adapt", Body: "Api%2DKey=mine"},
	} {
		t.Run("refused/"+c.Name, func(t *testing.T) {
			a, hit := e.send(t, c)
			require.Nil(t, hit)
			p := requireProblem(t, a, http.StatusBadRequest, "credential-in-request")
			require.NotContains(t, a.Body, "mine")
			rec := e.Record(t, p.DecisionID)
			require.Equal(t, "bad_request", rec["event"])
			require.Equal(t, "caddy", rec["upstream"])
			require.NotContains(t, rec["reason"], "mine")
		})
	}
}

func ptr(s string) *string { return &s }

// problem is a refusal as the caller reads it.
type problem struct {
	Type       string `json:"type"`
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail"`
	DecisionID string `json:"decision_id"`
	Task       string `json:"task"`
	Request    string `json:"request_command"`
}

// requireProblem requires that a is an RFC 9457 refusal with status and
// problem type slug that carries its decision id in the body and in the
// Elevate-Decision-Id header alike.
func requireProblem(t *testing.T, a shapes.Answer, status int, slug string) problem {
	t.Helper()
	require.Equal(t, status, a.Status, a.Body)
	require.Equal(t, "application/problem+json", a.Header.Get("Content-Type"))
	require.Equal(t, "no-store", a.Header.Get("Cache-Control"))
	require.Equal(t, "nosniff", a.Header.Get("X-Content-Type-Options"))
	var p problem
	require.NoError(t, json.Unmarshal([]byte(a.Body), &p), a.Body)
	require.Equal(t, "urn:elevate:problem:"+slug, p.Type, p.Detail)
	require.Equal(t, status, p.Status)
	require.Equal(t, http.StatusText(status), p.Title)
	require.NotEmpty(t, p.DecisionID, "every refusal carries its decision id")
	require.Equal(t, p.DecisionID, a.DecisionID, "the header and the body name the same decision")
	return p
}

// TestProxyRefusals: every refusal answers problem+json with the decision
// id that is also its audit record's id, with the challenge a client
// needs, and forwards nothing.
func TestProxyRefusals(t *testing.T) {
	e := newProxyEnv(t)
	for _, tc := range []struct {
		desc   string
		c      shapes.Case
		status int
		slug   string
		event  string
		header map[string][]string // challenge headers
		check  func(t *testing.T, p problem)
	}{
		{desc: "no token", c: shapes.Case{As: "none", Method: "GET", Target: "/exchange/mailboxes"},
			status: 401, slug: "unauthenticated", event: "unauthenticated",
			header: map[string][]string{"Www-Authenticate": {`Bearer realm="elevate", error="invalid_token"`}}},
		{desc: "token refused", c: shapes.Case{As: "none", Method: "GET", Target: "/exchange/mailboxes", Headers: []string{"Authorization: Bearer x.y.z"}},
			status: 401, slug: "unauthenticated", event: "unauthenticated",
			header: map[string][]string{"Www-Authenticate": {`Bearer realm="elevate", error="invalid_token"`}},
			check: func(t *testing.T, p problem) {
				require.True(t, strings.HasPrefix(p.Detail, "token refused: "), p.Detail)
			}},
		{desc: "no token in forward mode", c: shapes.Case{As: "none", Mode: "forward", Method: "GET", Target: "http://exchange.elevate.test/mailboxes"},
			status: 407, slug: "unauthenticated", event: "unauthenticated",
			header: map[string][]string{"Proxy-Authenticate": {`Bearer realm="elevate"`, `Basic realm="elevate"`}}},
		{desc: "CONNECT without a token", c: shapes.Case{As: "none", Mode: "tunnel", Tunnel: "exchange.elevate.test:443", Method: "GET", Target: "/"},
			status: 407, slug: "unauthenticated", event: "unauthenticated",
			header: map[string][]string{"Proxy-Authenticate": {`Bearer realm="elevate"`, `Basic realm="elevate"`}}},
		{desc: "CONNECT to a host no upstream serves", c: shapes.Case{Mode: "tunnel", Tunnel: "evil.example:443", Method: "GET", Target: "/"},
			status: 403, slug: "forbidden-target", event: "denied"},
		{desc: "forward mode to a host no upstream serves", c: shapes.Case{Mode: "forward", Method: "GET", Target: "http://evil.example/x"},
			status: 403, slug: "forbidden-target", event: "denied"},
		{desc: "grant required", c: shapes.Case{Method: "POST", Target: "/exchange/mailboxes/alice/move-requests"},
			status: 403, slug: "grant-required", event: "grant_required", check: func(t *testing.T, p problem) {
				require.Equal(t, `Exchange\New-MoveRequest`, p.Task)
				require.Equal(t, `elevate request new --task 'Exchange\New-MoveRequest' --reason '<why>'`, p.Request)
				require.Contains(t, p.Detail, p.Request)
			}},
		{desc: "denied", c: shapes.Case{Method: "GET", Target: "/exchange/unknown"}, status: 403, slug: "denied", event: "denied"},
		{desc: "no route", c: shapes.Case{Method: "GET", Target: "/nowhere/x"}, status: 404, slug: "no-route", event: "not_found"},
		{desc: "ambiguous path", c: shapes.Case{Method: "GET", Target: "/exchange/mailboxes/%2e%2e/x"}, status: 400, slug: "ambiguous-path", event: "bad_request"},
		{desc: "lower-case method", c: shapes.Case{Method: "get", Target: "/exchange/mailboxes"}, status: 400, slug: "bad-method", event: "bad_request"},
		{desc: "method override parameter", c: shapes.Case{Method: "POST", Target: "/exchange/journal-rules?_method=DELETE"},
			status: 400, slug: "method-override", event: "bad_request"},
		{desc: "h2c upgrade", c: shapes.Case{Method: "GET", Target: "/exchange/mailboxes", Headers: []string{"Connection: Upgrade", "Upgrade: h2c"}},
			status: 400, slug: "upgrade-refused", event: "bad_request"},
		{desc: "websocket where the upstream does not allow it", c: shapes.Case{Method: "GET", Target: "/exchange/mailboxes",
			Headers: []string{"Connection: Upgrade", "Upgrade: websocket"}}, status: 400, slug: "upgrade-refused", event: "bad_request"},
		{desc: "another host inside a tunnel", c: shapes.Case{Mode: "tunnel", Tunnel: "exchange.elevate.test:80", Method: "GET", Target: "/api/overview",
			Host: "rabbitmq.elevate.test"}, status: 421, slug: "misdirected", event: "denied"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			a, hit := e.send(t, tc.c)
			require.Nil(t, hit, "a refusal forwards nothing")
			p := requireProblem(t, a, tc.status, tc.slug)
			for h, vs := range tc.header {
				require.Equal(t, vs, a.Header.Values(h), "header %s", h)
			}
			rec := e.Record(t, p.DecisionID)
			require.Equal(t, tc.event, rec["event"], "audit record %v", rec)
			require.Equal(t, "call", rec["kind"])
			if tc.c.Mode == "tunnel" && tc.status != http.StatusMisdirectedRequest {
				require.Equal(t, "CONNECT", rec["method"], "refused at the CONNECT, before any tunnel")
			}
			require.NotContains(t, a.Body, e.Tokens["dan"])
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// outcome waits for the outcome record of decision id.
func (e *proxyEnv) outcome(t *testing.T, id string) map[string]any {
	t.Helper()
	var found map[string]any
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(e.AuditLog)
		require.NoError(t, err)
		for _, line := range strings.Split(string(b), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["ref"] == id {
				found = rec
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "no outcome record for %s", id)
	return found
}

// TestProxyOutcome: an allowed call's answer names its decision, carries
// none of the upstream's hop-by-hop headers, and is followed by an outcome
// record linked to its decision record.
func TestProxyOutcome(t *testing.T) {
	e := newProxyEnv(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Up-Hop")
		h.Set("X-Up-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", `Basic realm="upstream"`)
		h.Set("X-Up-Kept", "1")
		_, _ = io.WriteString(w, "twelve bytes")
	}))
	t.Cleanup(up.Close)
	env := e.at(e.serve(t, []proxy.Upstream{{Name: "exchange", URL: up.URL, Prefix: "/exchange/"}}))
	answers := env.Send(t, shapes.Case{As: "bob", Method: "POST", Target: "/exchange/mailboxes/alice/move-requests"})
	require.Len(t, answers, 1)
	a := answers[0]
	require.Equal(t, http.StatusOK, a.Status, a.Body)
	require.Equal(t, "twelve bytes", a.Body)
	require.NotEmpty(t, a.DecisionID, "an allowed call names its decision too")
	for _, h := range []string{"X-Up-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		require.Empty(t, a.Header.Values(h), "the caller received the upstream's %s", h)
	}
	require.Equal(t, "1", a.Header.Get("X-Up-Kept"))

	dec := e.Record(t, a.DecisionID)
	require.Equal(t, "allowed", dec["event"])
	require.Equal(t, `Exchange\New-MoveRequest`, dec["task"])
	require.Equal(t, e.grants[0].ID, dec["grant_id"])
	out := e.outcome(t, a.DecisionID)
	require.Equal(t, "outcome", out["event"])
	require.Equal(t, "bob", out["subject"])
	require.Equal(t, `Exchange\New-MoveRequest`, out["task"])
	require.Equal(t, e.grants[0].ID, out["grant_id"])
	require.Equal(t, e.grants[0].RequestID, out["request_id"])
	require.Equal(t, "/mailboxes/alice/move-requests", out["path"])
	require.EqualValues(t, 200, out["status"])
	require.EqualValues(t, 12, out["bytes"])
	require.Nil(t, out["reason"], "the call completed")
}

// TestProxyUpstreamDown: an allowed call whose upstream does not answer is
// answered 502 under its decision id, and its outcome says so.
func TestProxyUpstreamDown(t *testing.T) {
	e := newProxyEnv(t)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	env := e.at(e.serve(t, []proxy.Upstream{{Name: "exchange", URL: down.URL, Prefix: "/exchange/"}}))
	answers := env.Send(t, shapes.Case{Method: "GET", Target: "/exchange/mailboxes"})
	require.Len(t, answers, 1)
	p := requireProblem(t, answers[0], http.StatusBadGateway, "upstream-unreachable")
	require.Equal(t, "allowed", e.Record(t, p.DecisionID)["event"], "the call was allowed, then failed")
	out := e.outcome(t, p.DecisionID)
	require.EqualValues(t, http.StatusBadGateway, out["status"])
	require.Equal(t, "the upstream did not answer", out["reason"])
}
