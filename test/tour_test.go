package test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// TestTour walks the README tour through the real binary: Microsoft 365
// PAM's four steps, then the grant in use and its end.
func TestTour(t *testing.T) {
	s := startDev(t)
	proxy := "http://" + s.proxyAddr
	move := proxy + "/exchange/mailboxes/alice/move-requests"
	list := proxy + "/exchange/mailboxes"

	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	bob := s.token("--sub", "bob")
	outsider := s.token("--sub", "dan", "--groups", "staff")

	// The dev mode banner leads the way.
	require.Contains(t, s.stdout.String(), "elevate token --sub")

	// Who am I.
	var who map[string]any
	require.NoError(t, json.Unmarshal([]byte(s.ok(admin, "-o", "json", "whoami")), &who))
	require.Equal(t, "ada", who["subject"])
	require.Equal(t, true, who["admin"])

	// Reads work throughout.
	require.Equal(t, 200, do(t, "GET", list, bob, "").status)

	// 1–2: approver group and enable. Only admins may.
	r := s.cli(bob, "control", "enable", "--approvers", "approvers")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "403")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line on stderr")
	out := s.ok(admin, "control", "enable", "--approvers", "approvers")
	require.Contains(t, out, "enabled:")
	var ctl map[string]any
	require.NoError(t, json.Unmarshal([]byte(s.ok(admin, "-o", "json", "control", "show")), &ctl))
	require.Equal(t, true, ctl["enabled"])
	require.Equal(t, "approvers", ctl["default_approvers"])

	// Nothing is gated yet: no policy covers the task.
	require.Equal(t, http.StatusCreated, do(t, "POST", move, bob, "").status)

	// 3: the policy. Unknown targets are refused.
	r = s.cli(admin, "policy", "new", "--task", `Exchange\No-Such-Task`, "--approval", "manual")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "400")
	r = s.cli(bob, "policy", "new", "--task", moveTask, "--approval", "manual")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "403")
	s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual")
	require.Contains(t, s.ok(admin, "policy", "list"), moveTask)

	// The gated call is refused, naming the task and the command.
	var refusal map[string]any
	require.Eventually(t, func() bool {
		rep := do(t, "POST", move, bob, "")
		if rep.status != http.StatusForbidden {
			return false
		}
		refusal = rep.json(t)
		require.Equal(t, "application/problem+json", rep.header.Get("Content-Type"))
		return true
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, moveTask, refusal["task"])
	require.Contains(t, refusal["request_command"], "elevate request new --task '"+moveTask+"'")
	decisionID, _ := refusal["decision_id"].(string)
	require.NotEmpty(t, decisionID)
	require.Equal(t, 200, do(t, "GET", list, bob, "").status)

	// `elevate check` says the same, without an audit record.
	r = s.cli(bob, "check", "POST", move)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stdout, moveTask)
	require.Contains(t, r.stdout, "elevate request new")
	require.Equal(t, 0, s.cli(bob, "check", "GET", list).code)

	// 4: request and approve.
	id := strings.TrimSpace(s.ok(bob, "request", "new", "--task", moveTask, "--reason", "move alice to DB02", "--duration", "4s", "-q"))
	require.True(t, strings.HasPrefix(id, "req-"), id)
	r = s.cli(bob, "request", "new", "--task", moveTask, "--reason", "again", "--duration", "4s")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "409")
	require.Contains(t, r.stderr, id)

	// The requester cannot approve; nor can someone outside the group.
	r = s.cli(bob, "request", "approve", id)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "403")
	r = s.cli(outsider, "request", "approve", id)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "403")
	require.Contains(t, s.ok(admin, "request", "list", "--status", "pending"), id)

	var approved map[string]any
	require.NoError(t, json.Unmarshal([]byte(s.ok(admin, "-o", "json", "request", "approve", id, "--comment", "ok, ticket 42")), &approved))
	require.Equal(t, "approved", approved["status"])
	r = s.cli(admin, "request", "approve", id)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "409")

	// The grant is usable several times; the upstream never sees the token.
	require.Eventually(t, func() bool { return do(t, "POST", move, bob, "").status == http.StatusCreated }, 3*time.Second, 10*time.Millisecond)
	for i := 0; i < 3; i++ {
		rep := do(t, "POST", move, bob, `{"target_database":"DB02"}`)
		require.Equal(t, http.StatusCreated, rep.status, string(rep.body))
		require.NotContains(t, rep.header.Get("X-Demo-Received-Headers"), "Authorization")
		require.Contains(t, rep.header.Get("X-Demo-Received-Headers"), "Traceparent")
	}
	require.Equal(t, 0, s.cli(bob, "check", "POST", move).code)

	// Other users still cannot.
	require.Equal(t, http.StatusForbidden, do(t, "POST", move, outsider, "").status)

	// The grant ends by itself.
	require.Eventually(t, func() bool { return do(t, "POST", move, bob, "").status == http.StatusForbidden }, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, 200, do(t, "GET", list, bob, "").status)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(s.ok(bob, "-o", "json", "request", "get", id)), &got))
	require.Equal(t, "expired", got["status"])

	// Every step is in the audit log with a trace id; the refusal's
	// decision id is its record's id.
	recs := s.auditRecords()
	events := map[string]int{}
	for _, rec := range recs {
		events[rec["event"].(string)]++
		require.NotEmpty(t, rec["trace_id"], "record without trace id: %v", rec)
		if rec["id"] == decisionID {
			require.Equal(t, "grant_required", rec["event"])
			require.Equal(t, moveTask, rec["task"])
			require.Equal(t, "bob", rec["subject"])
		}
	}
	for _, e := range []string{"control.changed", "policy.created", "request.submitted", "request.approved", "allowed", "grant_required", "api.refused"} {
		require.Positive(t, events[e], "no %s record", e)
	}
	var allowedWithGrant int
	for _, rec := range recs {
		if rec["event"] == "allowed" && rec["request_id"] == id {
			allowedWithGrant++
			require.Equal(t, []any{"ada"}, rec["approvers"])
		}
	}
	require.GreaterOrEqual(t, allowedWithGrant, 4)

	// The auditors' view and a user's own view.
	auditor := s.token("--sub", "eve", "--groups", "auditors")
	var page map[string]any
	require.NoError(t, json.Unmarshal([]byte(s.ok(auditor, "-o", "json", "audit", "query", "--request", id)), &page))
	require.NotEmpty(t, page["records"])
	require.NoError(t, json.Unmarshal([]byte(s.ok(outsider, "-o", "json", "audit", "query")), &page))
	for _, rec := range page["records"].([]any) {
		require.Equal(t, "dan", rec.(map[string]any)["subject"])
	}
	require.Contains(t, s.ok("", "audit", "verify", "--data-dir", s.dataDir), "ok:")
}

// TestBadInput feeds the gate and the side API what they must survive:
// every answer is clear, nothing changes, and refusals are audited.
func TestBadInput(t *testing.T) {
	s := startDev(t)
	proxy := "http://" + s.proxyAddr
	api := "http://" + s.controlAddr
	move := proxy + "/exchange/mailboxes/alice/move-requests"
	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	bob := s.token("--sub", "bob")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual")

	key := loadDevKey(t, s.dataDir)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	claims := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "elevate-dev", "aud": "elevate", "sub": "bob", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
		if mut != nil {
			mut(c)
		}
		return c
	}
	sign := func(k *rsa.PrivateKey, c jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(k)
		require.NoError(t, err)
		return tok
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	valid := sign(key, claims(nil))
	require.Equal(t, 200, do(t, "GET", proxy+"/exchange/mailboxes", valid, "").status, "a self-signed dev token is valid")

	tokens := []struct{ desc, token string }{
		{"missing", ""},
		{"malformed", "not-a-jwt"},
		{"three garbage parts", "a.b.c"},
		{"expired", sign(key, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))},
		{"no exp", sign(key, claims(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"wrong issuer", sign(key, claims(func(c jwt.MapClaims) { c["iss"] = "someone-else" }))},
		{"wrong audience", sign(key, claims(func(c jwt.MapClaims) { c["aud"] = "other" }))},
		{"wrongly signed", sign(other, claims(nil))},
		{"alg none", none},
		{"tampered payload", tamper(valid)},
	}
	for _, tc := range tokens {
		t.Run("token "+tc.desc, func(t *testing.T) {
			for _, url := range []string{proxy + "/exchange/mailboxes", move, api + "/v1/whoami"} {
				rep := do(t, "GET", url, tc.token, "")
				require.Equal(t, http.StatusUnauthorized, rep.status, url)
				require.True(t, strings.HasPrefix(rep.header.Get("WWW-Authenticate"), "Bearer"), url)
				require.Equal(t, "application/problem+json", rep.header.Get("Content-Type"))
				require.NotContains(t, string(rep.body), tc.token+"x", "the token is not echoed")
			}
		})
	}

	t.Run("unknown route", func(t *testing.T) {
		rep := do(t, "GET", proxy+"/nowhere/x", bob, "")
		require.Equal(t, http.StatusNotFound, rep.status)
		require.Equal(t, "application/problem+json", rep.header.Get("Content-Type"))
	})

	for _, path := range []string{
		"/exchange/mailboxes/../journal-rules",
		"/exchange/mailboxes/%2e%2e/journal-rules",
		"/exchange/mailboxes/%2E%2e/journal-rules",
		"/exchange/mailboxes/./alice/move-requests",
		"/exchange/mailboxes/alice%5c..%5cx/move-requests",
		"/exchange/mailboxes/alice%00/move-requests",
		"/exchange/mailboxes/%252e%252e/x",
		"/exchange//mailboxes",
		"/exchange/mailboxes/..;/journal-rules",
	} {
		t.Run("ambiguous "+path, func(t *testing.T) {
			status := rawRequest(t, s.proxyAddr, "POST "+path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+bob+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			require.True(t, strings.HasPrefix(status, "HTTP/1.1 400"), status)
		})
	}
	t.Run("invalid escape", func(t *testing.T) {
		status := rawRequest(t, s.proxyAddr, "GET /exchange/mailboxes/%zz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+bob+"\r\nConnection: close\r\n\r\n")
		require.True(t, strings.HasPrefix(status, "HTTP/1.1 400"), status)
	})
	t.Run("raw backslash", func(t *testing.T) {
		status := rawRequest(t, s.proxyAddr, "GET /exchange/mailboxes\\..\\journal-rules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+bob+"\r\nConnection: close\r\n\r\n")
		require.True(t, strings.HasPrefix(status, "HTTP/1.1 400"), status)
	})

	// Side API bodies.
	reqURL := api + "/v1/requests"
	good := `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"r","duration":"1h"}`
	for _, tc := range []struct {
		desc, body string
		status     int
	}{
		{"malformed JSON", `{"scope":`, 400},
		{"unknown field", `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"r","extra":1}`, 400},
		{"two objects", good + good, 400},
		{"wrong type", `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"r","duration":5}`, 400},
		{"oversized", `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
		{"empty reason", `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"  "}`, 400},
		{"zero duration", `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"r","duration":"0s"}`, 400},
		{"negative duration", `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"r","duration":"-1h"}`, 400},
		{"unparsable duration", `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"r","duration":"soon"}`, 400},
		{"unknown target", `{"scope":"task","target":"Exchange\\Nope","reason":"r"}`, 400},
		{"uncovered target", `{"scope":"task","target":"Exchange\\New-JournalRule","reason":"r"}`, 400},
		{"bad scope", `{"scope":"everything","target":"x","reason":"r"}`, 400},
	} {
		t.Run("api "+tc.desc, func(t *testing.T) {
			rep := do(t, "POST", reqURL, bob, tc.body)
			require.Equal(t, tc.status, rep.status, string(rep.body))
			require.Equal(t, "application/problem+json", rep.header.Get("Content-Type"))
		})
	}
	// Nothing was created by any of them.
	var listed map[string]any
	require.NoError(t, json.Unmarshal([]byte(s.ok(bob, "-o", "json", "request", "list", "--mine")), &listed))
	require.Empty(t, listed["requests"])

	// Deciding what is not pending is a conflict; a missing one is 404.
	id := strings.TrimSpace(s.ok(bob, "request", "new", "--task", moveTask, "--reason", "r", "-q"))
	s.ok(admin, "request", "deny", id, "--comment", "no")
	for _, action := range []string{"approve", "deny"} {
		rep := do(t, "POST", api+"/v1/requests/"+id+"/"+action, admin, `{}`)
		require.Equal(t, http.StatusConflict, rep.status, string(rep.body))
	}
	require.Equal(t, http.StatusNotFound, do(t, "POST", api+"/v1/requests/req-nope/approve", admin, `{}`).status)
	require.Equal(t, http.StatusNotFound, do(t, "GET", api+"/v1/nowhere", admin, "").status)

	// Refusals are audited.
	events := map[string]int{}
	for _, rec := range s.auditRecords() {
		events[rec["event"].(string)]++
	}
	for _, e := range []string{"unauthenticated", "bad_request", "not_found", "api.refused", "request.denied"} {
		require.Positive(t, events[e], "no %s record", e)
	}
}

func loadDevKey(t *testing.T, dir string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "dev-issuer.key"))
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk)
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	require.NoError(t, err)
	return k.(*rsa.PrivateKey)
}

// tamper changes the payload of a token but keeps its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[len(p)/2] == 'A' {
		p[len(p)/2] = 'B'
	} else {
		p[len(p)/2] = 'A'
	}
	return parts[0] + "." + string(p) + "." + parts[2]
}

// TestForwardedRequest checks what the upstream receives: its own Host, no
// hop-by-hop headers, nothing named in Connection, no spoofed forwarding
// headers, and no caller token.
func TestForwardedRequest(t *testing.T) {
	s := startDev(t)
	bob := s.token("--sub", "bob")
	rep := do(t, "GET", "http://"+s.proxyAddr+"/exchange/mailboxes/alice", bob, "",
		"Connection", "keep-alive, X-Secret-Hop",
		"X-Secret-Hop", "1",
		"Keep-Alive", "timeout=5",
		"Forwarded", "for=203.0.113.9",
		"X-Forwarded-For", "203.0.113.9",
		"X-Forwarded-Host", "evil.example",
		"X-Original-URL", "/journal-rules",
		"X-Rewrite-URL", "/journal-rules",
		"X-HTTP-Method-Override", "DELETE",
		"X-Custom", "kept",
	)
	require.Equal(t, http.StatusOK, rep.status, string(rep.body))
	got := strings.Split(rep.header.Get("X-Demo-Received-Headers"), ",")
	for _, h := range []string{"Authorization", "Connection", "X-Secret-Hop", "Keep-Alive", "Forwarded", "X-Original-Url", "X-Rewrite-Url", "X-Http-Method-Override"} {
		require.NotContains(t, got, h)
	}
	require.Contains(t, got, "X-Custom")
	require.Contains(t, got, "Traceparent")
	require.Equal(t, "127.0.0.1", rep.header.Get("X-Demo-Received-Forwarded-For"))
	require.NotEqual(t, "evil.example", rep.header.Get("X-Demo-Received-Host"))
	require.True(t, strings.HasPrefix(rep.header.Get("X-Demo-Received-Host"), "127.0.0.1:"), "the upstream sees its own Host")
	require.Equal(t, "/mailboxes/alice", rep.header.Get("X-Demo-Received-Path"))

	// An encoded slash stays one segment all the way to the upstream.
	rep = do(t, "GET", "http://"+s.proxyAddr+"/exchange/mailboxes/a%2Fb", bob, "")
	require.Equal(t, "/mailboxes/a%2Fb", rep.header.Get("X-Demo-Received-Path"))

	// Upgrades and smuggling shapes are refused before anything is judged.
	for _, raw := range []string{
		"GET /exchange/mailboxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + bob + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"GET /exchange/mailboxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + bob + "\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
		"POST /exchange/journal-rules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + bob + "\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
		"POST /exchange/journal-rules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + bob + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		status := rawRequest(t, s.proxyAddr, raw)
		require.True(t, strings.HasPrefix(status, "HTTP/1.1 400"), status)
	}
}
