package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/proxy/api"
)

const (
	moveTask    = `Exchange\New-MoveRequest`
	searchTask  = `Exchange\Search-Mailbox`
	journalTask = `Exchange\New-JournalRule`
)

// TestRequestApproveDenyRevoke walks the lifecycle through the console
// only: a requester submits, an approver in another browser sees it in the
// inbox and approves with a comment, the requester sees the approval; a
// second request is denied; the grant is revoked.
func TestRequestApproveDenyRevoke(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask, searchTask)
	bob, ada := e.login("bob"), e.login("ada")

	// The target picker lists what the policies cover.
	p := bob.get("/requests")
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, `value="task:Exchange\New-MoveRequest"`)
	require.Contains(t, p.body, `value="task:Exchange\Search-Mailbox"`)

	id := bob.submit(moveTask, "move alice to DB02")
	p = bob.get("/requests/" + id)
	require.Contains(t, p.body, `role="status" class="flash">Request submitted; it waits for approval.`)
	require.Contains(t, p.body, `data-testid="status">pending<`)
	require.NotContains(t, p.body, "/approve", "the requester gets no approve control")

	// The approver's inbox shows it with what a decision needs.
	p = ada.get("/")
	require.Equal(t, 200, p.status)
	row := regexp.MustCompile(`(?s)<tr data-request="` + id + `">.*?</tr>`).FindString(p.body)
	require.NotEmpty(t, row, p.body)
	for _, want := range []string{">bob<", `Exchange\New-MoveRequest`, "move alice to DB02", ">1h<", "0 of 1"} {
		require.Contains(t, row, want)
	}
	require.Regexp(t, `data-countdown>(23h 59m|24h 0m)<`, row, "time left before the request expires undecided")
	require.NotContains(t, bob.get("/").body, `data-request="`+id+`"`, "nobody decides their own request")

	p = ada.get("/requests/" + id)
	require.Contains(t, p.body, `formaction="/requests/`+id+`/approve"`)
	p = ada.post("/requests/"+id+"/approve", url.Values{"csrf": {ada.csrf()}, "comment": {"ok, change 4711"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "approved", e.status(id))
	require.NotContains(t, ada.get("/").body, `data-request="`+id+`"`, "decided requests leave the inbox")

	p = bob.get("/requests/" + id)
	require.Contains(t, p.body, `data-testid="status">approved<`)
	require.Contains(t, p.body, "<strong>Approved</strong> by ada")
	require.Contains(t, p.body, "<q>ok, change 4711</q>")
	require.Contains(t, p.body, `action="/requests/`+id+`/revoke"`, "the requester may revoke their grant")

	// Deny.
	id2 := bob.submit(searchTask, "search for the audit case")
	p = ada.post("/requests/"+id2+"/deny", url.Values{"csrf": {ada.csrf()}, "comment": {"not without a case number"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "denied", e.status(id2))
	p = bob.get("/requests/" + id2)
	require.Contains(t, p.body, `data-testid="status">denied<`)
	require.Contains(t, p.body, "<q>not without a case number</q>")

	// Revoke, by the approver.
	p = ada.post("/requests/"+id+"/revoke", url.Values{"csrf": {ada.csrf()}, "comment": {"done early"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "revoked", e.status(id))
	p = ada.get("/requests/" + id)
	require.Contains(t, p.body, `role="status" class="flash">Grant revoked.`)
	require.Contains(t, p.body, "<strong>Revoked</strong> by ada")

	// Bob's list shows all three outcomes.
	p = bob.get("/requests")
	for _, s := range []string{"revoked", "denied"} {
		require.Contains(t, p.body, `<span class="status status-`+s+`">`+s+`</span>`)
	}

	// Every change went through the API and is on the record.
	events := map[string]int{}
	for _, r := range e.records() {
		events[r.Event]++
	}
	require.Equal(t, 2, events["request.submitted"])
	require.Equal(t, 1, events["request.approved"])
	require.Equal(t, 1, events["request.denied"])
	require.Equal(t, 1, events["request.revoked"])
}

// TestStaleDecision: an action sent from a page loaded before the request
// changed is refused by the API (409); the console then shows the request
// as it is now, says why, and leaves every comment box empty, since the
// comment was typed for a state that is gone. A refusal that is no
// conflict keeps the comment, in the box of the action it was typed for.
func TestStaleDecision(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask)
	bob, ada := e.login("bob"), e.login("ada")
	id := bob.submit(moveTask, "move alice")
	require.Contains(t, ada.get("/requests/"+id).body, `formaction="/requests/`+id+`/deny"`, "the page the approver keeps open")

	// Meanwhile another approver approves.
	st, body := e.apiCall("POST", "/v1/requests/"+id+"/approve", e.token("cyd", "approvers"), `{"comment":"from the CLI"}`)
	require.Equal(t, http.StatusOK, st, body)

	p := ada.post("/requests/"+id+"/deny", url.Values{"csrf": {ada.csrf()}, "comment": {"typed for deny"}})
	require.Equal(t, http.StatusConflict, p.status, p.body)
	require.Contains(t, p.body, `data-testid="status">approved<`, "the request as it is now")
	require.Contains(t, p.body, "<strong>Approved</strong> by cyd")
	require.Contains(t, p.body, `<div role="alert" class="alert">Your denial was not recorded: the request changed after this page was loaded`)
	require.NotContains(t, p.body, "typed for deny", "the comment lands in no other form")
	require.NotContains(t, p.body, `/deny"`)
	require.Regexp(t, `<textarea id="revoke-comment"[^>]*></textarea>`, p.body)
	require.Equal(t, "approved", e.status(id))

	// No conflict: a comment too long comes back, in the revoke box.
	long := strings.Repeat("x", 2001)
	p = ada.post("/requests/"+id+"/revoke", url.Values{"csrf": {ada.csrf()}, "comment": {long}})
	require.Equal(t, http.StatusBadRequest, p.status, p.body)
	require.Contains(t, p.body, "comment: at most 2000 characters")
	require.Regexp(t, `<textarea id="revoke-comment"[^>]*>`+long+`</textarea>`, p.body)
	require.Equal(t, "approved", e.status(id))
}

// TestAPIRefusalsShown: what the API refuses the console refuses, with the
// API's status and detail; a user outside the approver group sees no
// approve control, and a forged approve with their valid session, CSRF
// token and origin is refused by the API and changes nothing.
func TestAPIRefusalsShown(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask)
	bob, eve := e.login("bob"), e.login("eve")
	id := bob.submit(moveTask, "move alice")

	// Eve is an auditor: she may read the request, not decide it.
	p := eve.get("/requests/" + id)
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, `data-testid="status">pending<`)
	require.NotContains(t, p.body, "/approve")
	require.NotContains(t, p.body, "/deny")
	require.NotContains(t, eve.get("/").body, `data-request="`+id+`"`)

	for _, tc := range []struct {
		desc   string
		who    *browser
		action string
		detail string
	}{
		{"an auditor approving", eve, "approve", `approver group &#34;approvers&#34;`},
		{"an auditor denying", eve, "deny", `approver group &#34;approvers&#34;`},
		{"the requester approving", bob, "approve", "cannot decide their own request"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p := tc.who.post("/requests/"+id+"/"+tc.action, url.Values{"csrf": {tc.who.csrf()}, "comment": {"forged"}})
			require.Equal(t, http.StatusForbidden, p.status, p.body)
			alert := regexp.MustCompile(`<div role="alert" class="alert">([^<]*)</div>`).FindStringSubmatch(p.body)
			require.NotNil(t, alert, p.body)
			require.Contains(t, alert[1], tc.detail)
			require.Contains(t, alert[1], "(decision ", "the alert names the audit record of the refusal")
			require.Equal(t, "pending", e.status(id))
		})
	}
	refused := 0
	for _, r := range e.records() {
		if r.Event == "api.refused" && r.RequestID == id {
			refused++
		}
	}
	require.Equal(t, 3, refused, "each refusal is the API's, and audited by it")

	// Admin-only pages: a non-admin gets no forms and the API refuses a
	// forged POST.
	p = bob.get("/policies")
	require.Equal(t, 200, p.status)
	require.NotContains(t, p.body, `action="/policies"`)
	require.NotContains(t, p.body, "/delete")
	p = bob.post("/policies", url.Values{"csrf": {bob.csrf()}, "scope": {"task"}, "target": {journalTask}, "approval": {"manual"}})
	require.Equal(t, http.StatusForbidden, p.status)
	require.Contains(t, p.body, "only members of admins manage approval policies")
	p = bob.post("/control", url.Values{"csrf": {bob.csrf()}})
	require.Equal(t, http.StatusForbidden, p.status)
	require.Contains(t, p.body, "only members of admins change control settings")
	st, body := e.apiCall("GET", "/v1/control", e.token("root"), "")
	require.Equal(t, 200, st)
	require.Contains(t, body, `"enabled": true`, "a refused change changes nothing")

	// Validation is the API's too.
	p = bob.post("/requests", url.Values{"csrf": {bob.csrf()}, "target": {"task:" + journalTask}, "reason": {"x"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "no approval policy covers")
	p = bob.post("/requests", url.Values{"csrf": {bob.csrf()}, "target": {"task:" + moveTask}, "reason": {"again"}})
	require.Equal(t, http.StatusConflict, p.status)
	require.Contains(t, p.body, "a pending request for this target already exists")
}

// TestAdminPages: an admin manages policies and control settings in the
// browser.
func TestAdminPages(t *testing.T) {
	e := newEnv(t, envOpts{})
	ada := e.login("ada")

	p := ada.post("/control", url.Values{"csrf": {ada.csrf()}, "enabled": {"on"}, "default_approvers": {"approvers"}, "system_accounts": {"svc-backup, svc-sync"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	p = ada.get("/control")
	require.Contains(t, p.body, `data-testid="control-enabled">enabled<`)
	require.Contains(t, p.body, `value="svc-backup, svc-sync"`)

	p = ada.get("/policies")
	require.Contains(t, p.body, `<option value="Exchange\New-MoveRequest">task</option>`, "targets are suggested from the catalog")
	p = ada.post("/policies", url.Values{"csrf": {ada.csrf()}, "scope": {"role"}, "target": {`Exchange\Mailbox Import Export`},
		"approval": {"manual"}, "approvals": {"2"}, "max_duration": {"2h"}, "require_mfa": {"on"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	p = ada.get("/policies")
	require.Contains(t, p.body, `role="status" class="flash">Policy created for Exchange\Mailbox Import Export.`)
	id := regexp.MustCompile(`data-policy="([^"]+)"`).FindStringSubmatch(p.body)
	require.NotNil(t, id)
	require.Contains(t, p.body, "at most 2h; approver MFA;")

	p = ada.post("/policies", url.Values{"csrf": {ada.csrf()}, "scope": {"task"}, "target": {"Nope\\Nothing"}, "approval": {"manual"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "in the policy catalog")
	require.Contains(t, p.body, `value="Nope\Nothing"`, "the form keeps what was typed")
	p = ada.post("/policies", url.Values{"csrf": {ada.csrf()}, "scope": {"task"}, "target": {`Exchange\New-MoveReqest`}, "approval": {"manual"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, `did you mean &#34;Exchange\New-MoveRequest&#34;?`, "the console shows the side API's suggestion")
	p = ada.post("/policies", url.Values{"csrf": {ada.csrf()}, "scope": {"task"}, "target": {moveTask}, "approval": {"manual"}, "approvals": {"two"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "Approvals needed: must be a whole number")

	// Approvals needed: 0 is refused, not turned into 1; left empty it is
	// the default, 1.
	p = ada.post("/policies", url.Values{"csrf": {ada.csrf()}, "scope": {"task"}, "target": {moveTask}, "approval": {"manual"}, "approvals": {"0"}})
	require.Equal(t, http.StatusBadRequest, p.status, p.body)
	require.Contains(t, p.body, "approvals: must be at least 1")
	require.Contains(t, p.body, `<input id="approvals" name="approvals" value="0"`, "the form keeps what was typed")
	require.Len(t, e.store.Policies(), 1, "nothing created")
	p = ada.post("/policies", url.Values{"csrf": {ada.csrf()}, "scope": {"task"}, "target": {moveTask}, "approval": {"manual"}, "approvals": {""}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	st, body := e.apiCall("GET", "/v1/policies", e.token("root", "admins"), "")
	require.Equal(t, 200, st, body)
	require.Regexp(t, `"target": "Exchange\\\\New-MoveRequest",\s+"approval": "manual",\s+"approvals": 1,`, body)

	p = ada.post("/policies/"+id[1]+"/delete", url.Values{"csrf": {ada.csrf()}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.NotContains(t, ada.get("/policies").body, `data-policy="`+id[1]+`"`)
}

// TestCSRF: a POST with a valid session and origin but without the
// session's CSRF token is refused before the API is called.
func TestCSRF(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask)
	bob, ada, eve := e.login("bob"), e.login("ada"), e.login("eve")
	id := bob.submit(moveTask, "move alice")
	for _, tc := range []struct {
		desc string
		csrf []string
	}{
		{"no token", nil},
		{"empty token", []string{""}},
		{"another session's token", []string{eve.csrf()}},
		{"a wrong token", []string{strings.Repeat("A", 43)}},
		{"the token twice, wrong one first", []string{"x", ada.csrf()}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			form := url.Values{"comment": {"forged"}}
			if tc.csrf != nil {
				form["csrf"] = tc.csrf
			}
			p := ada.post("/requests/"+id+"/approve", form)
			require.Equal(t, http.StatusForbidden, p.status, p.body)
			require.Contains(t, p.body, "security token is missing or wrong")
			require.Equal(t, "pending", e.status(id))
		})
	}
	for _, r := range e.records() {
		require.NotEqual(t, "request.approved", r.Event)
	}
	// The token in a query string does not count either.
	p := ada.do("POST", "/requests/"+id+"/approve?csrf="+url.QueryEscape(ada.csrf()), url.Values{}, "Origin", e.url)
	require.Equal(t, http.StatusForbidden, p.status)
	require.Equal(t, "pending", e.status(id))
}

// TestOrigin: a POST whose Origin (or, without one, Referer) is not the
// console's is refused, even with a valid session and CSRF token.
func TestOrigin(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask)
	bob, ada := e.login("bob"), e.login("ada")
	id := bob.submit(moveTask, "move alice")
	u, _ := url.Parse(e.url)
	for _, tc := range []struct {
		desc string
		hdr  []string
		ok   bool
	}{
		{"a foreign origin", []string{"Origin", "http://evil.example"}, false},
		{"the console's host on another port", []string{"Origin", "http://" + u.Hostname() + ":1"}, false},
		{"https for an http console", []string{"Origin", "https://" + u.Host}, false},
		{"null origin", []string{"Origin", "null"}, false},
		{"no Origin and no Referer", nil, false},
		{"a foreign referer", []string{"Referer", "http://evil.example/requests/" + id}, false},
		{"the console's origin but a cross-site fetch", []string{"Origin", e.url, "Sec-Fetch-Site", "cross-site"}, false},
		{"the console's origin but a same-site fetch", []string{"Origin", e.url, "Sec-Fetch-Site", "same-site"}, false},
		{"the console's origin with a path", []string{"Origin", e.url + "/x"}, false},
		{"the console's referer without Origin", []string{"Referer", e.url + "/requests/" + id}, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p := ada.do("POST", "/requests/"+id+"/deny", url.Values{"csrf": {ada.csrf()}, "comment": {"x"}}, tc.hdr...)
			if !tc.ok {
				require.Equal(t, http.StatusForbidden, p.status, p.body)
				require.Contains(t, p.body, "sent from another site")
				require.Equal(t, "pending", e.status(id))
				return
			}
			require.Equal(t, http.StatusSeeOther, p.status, p.body)
			require.Equal(t, "denied", e.status(id))
		})
	}
	// Sign-out is a POST too.
	p := ada.do("POST", "/auth/logout", url.Values{"csrf": {ada.csrf()}}, "Origin", "http://evil.example")
	require.Equal(t, http.StatusForbidden, p.status)
	require.Contains(t, ada.get("/").body, `data-testid="subject">ada<`)
}

// TestSecurityHeaders: every answer of the console carries the strict CSP
// and its companions; pages are not cached.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, envOpts{})
	ada := e.login("ada")
	anon := e.browser()
	authURL := anon.startLogin()
	for _, tc := range []struct {
		desc    string
		b       *browser
		method  string
		path    string
		status  int
		noStore bool
	}{
		{"landing page", anon, "GET", "/", 200, true},
		{"inbox", ada, "GET", "/", 200, true},
		{"requests", ada, "GET", "/requests", 200, true},
		{"audit", ada, "GET", "/audit", 200, true},
		{"not found", ada, "GET", "/nowhere", 404, true},
		{"unknown sign-in path", anon, "GET", "/auth/requests", 404, true},
		{"signed out", anon, "GET", "/requests", 303, true},
		{"refused POST", anon, "POST", "/requests", 403, true},
		{"stylesheet", anon, "GET", "/static/console.css", 200, false},
		{"script", anon, "GET", "/static/console.js", 200, false},
		{"icon", anon, "GET", "/static/favicon.svg", 200, false},
		{"favicon.ico", anon, "GET", "/favicon.ico", 200, false},
		{"no directory listing", anon, "GET", "/static/", 404, true},
		{"dev picker", anon, "GET", authURL, 200, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p := tc.b.do(tc.method, tc.path, nil)
			require.Equal(t, tc.status, p.status, p.body)
			h := p.header
			require.Equal(t, "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "+
				"object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'", h.Get("Content-Security-Policy"))
			require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
			require.Equal(t, "DENY", h.Get("X-Frame-Options"))
			require.Equal(t, "same-origin", h.Get("Referrer-Policy"))
			if tc.noStore {
				require.Equal(t, "no-store", h.Get("Cache-Control"))
			}
			if strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				require.NotRegexp(t, `(?i)<script>|<style|style=|\son[a-z]+=`, p.body, "no inline script or style")
			}
		})
	}
	css := anon.get("/static/console.css")
	require.Equal(t, "text/css; charset=utf-8", css.header.Get("Content-Type"))
}

// TestFavicon: every page names the console's icon, served from the
// console's own origin (the CSP allows no other), and /favicon.ico answers
// for whatever asks for it without a page.
func TestFavicon(t *testing.T) {
	e := newEnv(t, envOpts{})
	anon, ada := e.browser(), e.login("ada")
	for _, p := range []page{anon.get("/"), ada.get("/"), ada.get("/nowhere"), anon.get(anon.startLogin())} {
		require.Contains(t, p.body, `<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">`)
	}
	for _, path := range []string{"/static/favicon.svg", "/favicon.ico"} {
		p := anon.get(path)
		require.Equal(t, http.StatusOK, p.status, path)
		require.Equal(t, "image/svg+xml", p.header.Get("Content-Type"), path)
		require.True(t, strings.HasPrefix(p.body, "<svg "), path)
		require.NotContains(t, p.body, "<script", path)
	}
}

// TestCookies: the session cookie is HttpOnly, SameSite=Lax, for the whole
// console, Secure over TLS, and lives as long as the token.
func TestCookies(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
			e := newEnv(t, envOpts{tls: tls})
			b := e.browser()
			login := b.get("/auth/login")
			lc := cookieNamed(t, login.header, "elevate_login")
			require.True(t, lc.HttpOnly)
			require.Equal(t, http.SameSiteLaxMode, lc.SameSite)
			require.Equal(t, "/auth/", lc.Path)
			require.Equal(t, tls, lc.Secure)

			b = e.browser()
			cb := b.pick(b.startLogin(), "bob", nil)
			p := b.get(cb)
			require.Equal(t, http.StatusSeeOther, p.status, p.body)
			sc := cookieNamed(t, p.header, "elevate_session")
			require.True(t, sc.HttpOnly)
			require.Equal(t, http.SameSiteLaxMode, sc.SameSite)
			require.Equal(t, "/", sc.Path)
			require.Equal(t, tls, sc.Secure)
			require.InDelta(t, (8 * time.Hour).Seconds(), sc.MaxAge, 5, "the session lives as long as the token")
			require.Len(t, sc.Value, 43, "32 random bytes")
			cleared := cookieNamed(t, p.header, "elevate_login")
			require.Equal(t, -1, cleared.MaxAge, "the sign-in cookie is dropped once used")
			require.NotContains(t, b.get("/").body, "eyJ", "the token never reaches the browser")
		})
	}
}

func cookieNamed(t *testing.T, h http.Header, name string) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	require.FailNow(t, "no cookie "+name, "%v", h.Values("Set-Cookie"))
	return nil
}

// TestSessionLifetime: a session ends with its token, at sign-out, and
// when the API stops accepting its token.
func TestSessionLifetime(t *testing.T) {
	e := newEnv(t, envOpts{provider: func(c *console.DevProviderConfig) { c.TTL = time.Hour }})
	b := e.login("bob")
	e.clock.Add(59 * time.Minute)
	require.Contains(t, b.get("/").body, `data-testid="subject">bob<`)
	e.clock.Add(time.Minute)
	p := b.get("/")
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, `href="/auth/login"`, "an expired session is the landing page")
	p = b.get("/requests")
	require.Equal(t, http.StatusSeeOther, p.status)
	require.Equal(t, "/auth/login?next=%2Frequests", p.header.Get("Location"))

	// Sign-out ends the session on the server: the old cookie is dead.
	e.clock.Add(-time.Hour)
	b = e.login("ada")
	old := b.jar.Cookies(mustURL(t, e.url))
	p = b.post("/auth/logout", url.Values{"csrf": {b.csrf()}})
	require.Equal(t, http.StatusSeeOther, p.status)
	require.Equal(t, "/?signed_out=1", p.header.Get("Location"))
	require.Equal(t, -1, cookieNamed(t, p.header, "elevate_session").MaxAge)
	replay := e.browser()
	replay.jar.SetCookies(mustURL(t, e.url), old)
	p = replay.get("/requests")
	require.Equal(t, http.StatusSeeOther, p.status, "a session ended by sign-out cannot be replayed")
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

// TestAuditLinksTraces: audit search shows the records the API returns,
// each linked to its trace through the configured template.
func TestAuditLinksTraces(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask)
	bob := e.login("bob")
	id := bob.submit(moveTask, "move alice")

	p := bob.get("/audit?request=" + id)
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, "request.submitted")
	links := regexp.MustCompile(`<a href="http://jaeger.test:16686/trace/([0-9a-f]{32})" rel="noreferrer" data-trace="([0-9a-f]{32})"`).FindAllStringSubmatch(p.body, -1)
	require.NotEmpty(t, links, p.body)
	var traceID string
	for _, r := range e.records() {
		if r.Event == "request.submitted" && r.RequestID == id {
			traceID = r.TraceID
		}
	}
	require.Equal(t, traceID, links[0][1])
	require.Equal(t, traceID, links[0][2])

	// Bob is no auditor: only his own records, whatever he asks for.
	p = bob.get("/audit?subject=ada")
	require.Equal(t, http.StatusForbidden, p.status)
	require.Contains(t, p.body, "only members of auditors read other people&#39;s records")
	p = bob.get("/audit?since=yesterday")
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "Since: &#34;yesterday&#34; is not a time")
	p = bob.get("/audit?since=2000-01-01&until=2001-01-01")
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, "No record matches.")
}

// TestRateLimitIsTheAPIs: the console's calls are side-API calls, limited
// per subject like any other.
func TestRateLimitIsTheAPIs(t *testing.T) {
	e := newEnv(t, envOpts{api: func(c *api.Config) { c.RateLimit, c.RateBurst = 0.001, 3 }})
	// Sign-in takes one call (whoami), the inbox one per load.
	b := e.login("bob")
	require.Equal(t, 200, b.get("/").status)
	p := b.get("/")
	require.Equal(t, http.StatusTooManyRequests, p.status, p.body)
	require.Contains(t, p.body, "too many calls")
}

// TestAccessibility: landmarks, a skip link, one h1, a label for every
// field and the current page marked in the navigation.
func TestAccessibility(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask)
	ada := e.login("ada")
	bob := e.login("bob")
	id := bob.submit(moveTask, "move alice")
	fieldRe := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	idRe := regexp.MustCompile(`\bid="([^"]+)"`)
	for _, tc := range []struct {
		path, nav string
	}{
		{"/", "Inbox"}, {"/requests", "My requests"}, {"/requests/" + id, "Inbox"}, {"/policies", "Policies"},
		{"/control", "Access control"}, {"/audit", "Audit"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			p := ada.get(tc.path)
			require.Equal(t, 200, p.status)
			b := p.body
			require.Contains(t, b, `<html lang="en">`)
			require.Contains(t, b, `<a class="skip" href="#main">`)
			require.Contains(t, b, `<nav aria-label="Main">`)
			require.Contains(t, b, `<main id="main"`)
			require.Equal(t, 1, strings.Count(b, "<h1>"))
			require.Contains(t, b, `aria-current="page">`+tc.nav+`</a>`)
			for _, f := range fieldRe.FindAllString(b, -1) {
				if strings.Contains(f, `type="hidden"`) {
					continue
				}
				m := idRe.FindStringSubmatch(f)
				if m != nil && strings.Contains(b, `<label for="`+m[1]+`"`) {
					continue
				}
				// Otherwise the field must sit inside its label.
				require.Regexp(t, `<label><input [^>]*>`, b[strings.Index(b, f)-7:strings.Index(b, f)+len(f)], "field without a label: %s", f)
			}
		})
	}
	// One's own request is under "My requests"; someone else's (above) is
	// reached from the inbox.
	require.Contains(t, bob.get("/requests/"+id).body, `aria-current="page">My requests</a>`)
}

// TestPeopleTextIsEscaped: a reason or comment carrying markup reaches the
// approver's pages as text, never as markup.
func TestPeopleTextIsEscaped(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask)
	bob, ada := e.login("bob"), e.login("ada")
	const evil = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	id := bob.submit(moveTask, "move "+evil)
	for _, p := range []page{ada.get("/"), ada.get("/requests/" + id)} {
		require.Equal(t, 200, p.status)
		require.NotContains(t, p.body, "<script>alert(1)")
		require.NotContains(t, p.body, "<img src=x")
		require.Contains(t, p.body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	}
	p := ada.post("/requests/"+id+"/deny", url.Values{"csrf": {ada.csrf()}, "comment": {evil}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	p = bob.get("/requests/" + id)
	require.NotContains(t, p.body, "<img src=x")
	require.Contains(t, p.body, "&lt;img src=x onerror=alert(2)&gt;")
}

// TestRequestConstraint: a request narrowed in the form ("Only where")
// carries its constraint, which the request page and the approver's inbox
// show; a malformed one is refused with the form kept.
func TestRequestConstraint(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.setUp(moveTask)
	bob, ada := e.login("bob"), e.login("ada")

	p := bob.post("/requests", url.Values{"csrf": {bob.csrf()}, "target": {"task:" + moveTask}, "reason": {"one mailbox"}, "constraint": {"namespace"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, `Only where: &#34;namespace&#34; is not KEY=VALUE`)
	require.Contains(t, p.body, `value="namespace"`, "the form keeps what was typed")

	p = bob.post("/requests", url.Values{"csrf": {bob.csrf()}, "target": {"task:" + moveTask}, "reason": {"one mailbox"}, "constraint": {"namespace=prod, name=web"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	id := strings.TrimPrefix(p.header.Get("Location"), "/requests/")
	require.Contains(t, bob.get("/requests/"+id).body, `data-testid="constraint">name=web, namespace=prod<`)
	row := regexp.MustCompile(`(?s)<tr data-request="` + id + `">.*?</tr>`).FindString(ada.get("/").body)
	require.Contains(t, row, "only name=web, namespace=prod")
}
