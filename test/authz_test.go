// Threats proven mitigated here (docs/threat-model.md): on the control
// listener, a caller doing what their role does not allow — an anonymous
// or forged caller reaching anything but the public endpoints, a requester
// approving their own request, an approver deciding outside their group,
// an admin without approver membership deciding requests, a non-admin
// changing policies or control settings, a non-auditor reading other
// people's audit records, a break-glass member approving, a system account
// using its exemption beyond the proxied path — and a refused decision
// changing anything.
package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/proxy/identity"
)

// The callers, in the order of the matrix's columns.
const (
	colAnonymous = iota
	colBadToken
	colRequester  // owner of the request the row acts on
	colOtherUser  // no group
	colApprover   // in the request's approver group
	colOtherGroup // an approver, of another group
	colSystem     // a control system account
	colAuditor    // auditors
	colAdmin      // admins, and nothing else
	colBreakGlass // the break-glass group
	nCols
)

var colNames = [nCols]string{"anonymous", "bad-token", "requester", "other-user", "approver", "approver-other-group",
	"system-account", "auditor", "admin", "break-glass"}

// hid in the list row: 200, but the request the row looks for is not among
// those listed.
const hid = -1

// authzCell is what one cell acts with.
type authzCell struct {
	t      *testing.T
	col    int
	client *http.Client
	token  string // the caller's; empty for anonymous
	id     string // the request the row acts on, if any
}

// do sends one call as the cell's caller and checks the shape every
// refusal has.
func (c authzCell) do(method, u, body string) reply {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	if r.status >= 400 {
		require.Equal(c.t, "application/problem+json", r.header.Get("Content-Type"), "%s %s: %s", method, u, b)
	}
	if r.status == http.StatusUnauthorized {
		require.True(c.t, strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer"), "401 carries a Bearer challenge")
	}
	return r
}

// TestAuthzMatrix: every endpoint of the control listener, and one gated
// proxied call, against every kind of caller. Rows that change state act
// on a fresh object per cell: a pending request for approve and deny, an
// approved one for revoke, a policy to create or to delete. A refused
// decision leaves the request as it was.
func TestAuthzMatrix(t *testing.T) {
	s := startDev(t)
	api := "http://" + s.controlAddr
	dev, err := identity.LoadDevIssuer(s.dataDir)
	require.NoError(t, err)
	sign := func(sub string, groups ...string) string {
		tok, err := dev.Sign(identity.DevToken{Subject: sub, Groups: groups, TTL: time.Hour})
		require.NoError(t, err)
		return tok
	}
	stranger, err := identity.LoadOrCreateDevIssuer(t.TempDir()) // same issuer name, a key nobody trusts
	require.NoError(t, err)
	forged, err := stranger.Sign(identity.DevToken{Subject: "ada", Groups: []string{"admins", "approvers", "auditors"}})
	require.NoError(t, err)

	// Set-up, by callers outside the matrix.
	root := sign("root", "admins")
	setup := authzCell{t: t, client: http.DefaultClient, token: root}
	mustStatus := func(t *testing.T, r reply, status int) reply {
		t.Helper()
		require.Equal(t, status, r.status, string(r.body))
		return r
	}
	mustStatus(t, setup.do("PATCH", api+"/v1/control", `{"enabled":true,"default_approvers":"approvers","system_accounts":["svc-backup"]}`), 200)
	movePolicy := mustStatus(t, setup.do("POST", api+"/v1/policies", `{"scope":"task","target":"Exchange\\New-MoveRequest","approval":"manual","approvers":"approvers"}`), 201).json(t)["id"].(string)
	mustStatus(t, setup.do("POST", api+"/v1/policies", `{"scope":"task","target":"Exchange\\New-JournalRule","approval":"auto","approvers":"approvers"}`), 201)

	bob := sign("bob") // the owner of the shared request; in no group
	// submit files a request as tok and returns its id and status.
	submit := func(t *testing.T, tok, target string) (string, string) {
		t.Helper()
		r := mustStatus(t, authzCell{t: t, client: http.DefaultClient, token: tok}.do("POST", api+"/v1/requests",
			`{"scope":"task","target":"`+strings.ReplaceAll(target, `\`, `\\`)+`","reason":"matrix","duration":"1h"}`), 201)
		m := r.json(t)
		return m["id"].(string), m["status"].(string)
	}
	shared, _ := submit(t, bob, moveTask)
	// statusOf reads a request as an auditor; one per read, so that the
	// reads never meet the rate limit.
	inspectors := 0
	statusOf := func(t *testing.T, id string) string {
		t.Helper()
		inspectors++
		inspector := sign(fmt.Sprintf("inspector-%d", inspectors), "auditors")
		r := mustStatus(t, authzCell{t: t, client: http.DefaultClient, token: inspector}.do("GET", api+"/v1/requests/"+id, ""), 200)
		return r.json(t)["status"].(string)
	}

	// The gate has seen the policy and the system account.
	moveURL := "http://" + s.proxyAddr + "/exchange/mailboxes/alice/move-requests"
	require.Eventually(t, func() bool { return do(t, "POST", moveURL, bob, "").status == http.StatusForbidden }, 5*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return do(t, "POST", moveURL, sign("svc-backup"), "").status == http.StatusCreated }, 5*time.Second, 20*time.Millisecond)

	fixed := [nCols]string{
		colBadToken:   forged,
		colOtherUser:  sign("carl"),
		colApprover:   sign("apr", "approvers"),
		colOtherGroup: sign("opx", "finance-approvers"),
		colSystem:     sign("svc-backup"),
		colAuditor:    sign("eve", "auditors"),
		colAdmin:      sign("ada", "admins"),
		colBreakGlass: sign("olga", "break-glass"),
	}
	// Anonymous callers and refused tokens are rate-limited by client
	// address: give each column its own loopback address where the system
	// has them.
	clients := [nCols]*http.Client{}
	for i := range clients {
		clients[i] = http.DefaultClient
	}
	clients[colAnonymous] = clientFrom(t, "127.0.0.3", s.controlAddr)
	clients[colBadToken] = clientFrom(t, "127.0.0.4", s.controlAddr)

	// Fresh objects.
	fresh := 0
	freshRequester := func() string {
		fresh++
		// In the approver group too: a refusal of their approval is the
		// self-approval rule, not the group rule.
		return sign(fmt.Sprintf("req-%d", fresh), "approvers")
	}
	var createdPolicy, deletablePolicy string

	// decision runs approve, deny or revoke on a fresh request and checks
	// what became of it.
	decision := func(action, target, from, to string) func(c authzCell, owner string) int {
		return func(c authzCell, owner string) int {
			id, st := submit(c.t, owner, target)
			require.Equal(c.t, from, st)
			r := c.do("POST", api+"/v1/requests/"+id+"/"+action, `{"comment":"matrix"}`)
			want := from
			if r.status == http.StatusOK {
				want = to
			}
			require.Equal(c.t, want, statusOf(c.t, id), "a refused %s changes nothing", action)
			if c.col == colRequester && action != "revoke" {
				require.Contains(c.t, string(r.body), "their own request", "the refusal names the self-approval rule")
			}
			if c.col == colOtherGroup && r.status == http.StatusForbidden {
				require.Contains(c.t, string(r.body), "approver group")
			}
			return r.status
		}
	}
	simple := func(method, path, body string) func(c authzCell, owner string) int {
		return func(c authzCell, owner string) int {
			return c.do(method, api+strings.ReplaceAll(path, "{id}", c.id), body).status
		}
	}

	type row struct {
		name string
		// owner: "" no request, "shared": bob's pending request, "fresh":
		// a new requester per cell (the row makes its own request).
		owner string
		run   func(c authzCell, owner string) int
		want  [nCols]int
	}
	rows := []row{
		//                                                                 anon bad  req  oth  apr  out  sys  aud  adm  brk
		{"healthz", "", simple("GET", "/healthz", ""), [nCols]int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"readyz", "", simple("GET", "/readyz", ""), [nCols]int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"metrics", "", simple("GET", "/metrics", ""), [nCols]int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"console", "", simple("GET", "/", ""), [nCols]int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"whoami", "", simple("GET", "/v1/whoami", ""), [nCols]int{401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"ca", "", simple("GET", "/v1/ca", ""), [nCols]int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"upstreams", "", simple("GET", "/v1/upstreams", ""), [nCols]int{401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"tasks", "", simple("GET", "/v1/tasks", ""), [nCols]int{401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"check", "", simple("POST", "/v1/check", `{"method":"POST","url":"`+moveURL+`"}`), [nCols]int{401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"submit", "fresh", func(c authzCell, owner string) int {
			return c.do("POST", api+"/v1/requests", `{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"matrix"}`).status
		}, [nCols]int{401, 401, 201, 201, 201, 201, 201, 201, 201, 201}},
		{"break-glass", "fresh", func(c authzCell, owner string) int {
			return c.do("POST", api+"/v1/requests", `{"scope":"task","target":"Exchange\\Remove-JournalRule","reason":"INC-1 outage","break_glass":true}`).status
		}, [nCols]int{401, 401, 403, 403, 403, 403, 403, 403, 403, 201}},
		{"list", "shared", func(c authzCell, owner string) int {
			r := c.do("GET", api+"/v1/requests?status=pending", "")
			if r.status == http.StatusOK && !strings.Contains(string(r.body), c.id) {
				return hid
			}
			return r.status
		}, [nCols]int{401, 401, 200, hid, 200, hid, hid, 200, 200, hid}},
		{"get", "shared", simple("GET", "/v1/requests/{id}", ""), [nCols]int{401, 401, 200, 404, 200, 404, 404, 200, 200, 404}},
		{"approve", "fresh", decision("approve", moveTask, "pending", "approved"), [nCols]int{401, 401, 403, 403, 200, 403, 403, 403, 403, 403}},
		{"deny", "fresh", decision("deny", moveTask, "pending", "denied"), [nCols]int{401, 401, 403, 403, 200, 403, 403, 403, 403, 403}},
		{"revoke", "fresh", decision("revoke", `Exchange\New-JournalRule`, "approved", "revoked"), [nCols]int{401, 401, 200, 403, 200, 403, 403, 403, 403, 403}},
		{"cancel", "shared", simple("POST", "/v1/requests/{id}/cancel", ""), [nCols]int{401, 401, 404, 404, 404, 404, 404, 404, 404, 404}},
		{"policies-list", "", simple("GET", "/v1/policies", ""), [nCols]int{401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"policies-create", "", func(c authzCell, owner string) int {
			if createdPolicy != "" {
				mustStatus(c.t, authzCell{t: c.t, client: http.DefaultClient, token: root}.do("DELETE", api+"/v1/policies/"+createdPolicy, ""), 200)
				createdPolicy = ""
			}
			r := c.do("POST", api+"/v1/policies", `{"scope":"task","target":"Exchange\\Remove-JournalRule","approval":"manual"}`)
			if r.status == http.StatusCreated {
				createdPolicy = r.json(c.t)["id"].(string)
			}
			return r.status
		}, [nCols]int{401, 401, 403, 403, 403, 403, 403, 403, 201, 403}},
		{"policies-get", "", simple("GET", "/v1/policies/"+movePolicy, ""), [nCols]int{401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"policies-delete", "", func(c authzCell, owner string) int {
			if deletablePolicy == "" {
				deletablePolicy = mustStatus(c.t, authzCell{t: c.t, client: http.DefaultClient, token: root}.do("POST", api+"/v1/policies",
					`{"scope":"rolegroup","target":"Exchange\\Organization Management","approval":"manual"}`), 201).json(c.t)["id"].(string)
			}
			r := c.do("DELETE", api+"/v1/policies/"+deletablePolicy, "")
			if r.status == http.StatusOK {
				deletablePolicy = ""
			}
			return r.status
		}, [nCols]int{401, 401, 403, 403, 403, 403, 403, 403, 200, 403}},
		{"control-get", "", simple("GET", "/v1/control", ""), [nCols]int{401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"control-patch", "", simple("PATCH", "/v1/control", `{"system_accounts":["svc-backup"]}`), [nCols]int{401, 401, 403, 403, 403, 403, 403, 403, 200, 403}},
		{"audit-own", "", simple("GET", "/v1/audit?limit=5", ""), [nCols]int{401, 401, 200, 200, 200, 200, 200, 200, 200, 200}},
		{"audit-other", "", simple("GET", "/v1/audit?limit=5&subject=root", ""), [nCols]int{401, 401, 403, 403, 403, 403, 403, 200, 403, 403}},
		{"unknown-endpoint", "", simple("GET", "/v1/nowhere", ""), [nCols]int{404, 404, 404, 404, 404, 404, 404, 404, 404, 404}},
		// The proxied path, for contrast: only the system account is
		// exempt from approval, and only there.
		{"gated-call-proxy", "shared", func(c authzCell, owner string) int {
			return c.do("POST", moveURL, "").status
		}, [nCols]int{401, 401, 403, 403, 403, 403, 201, 403, 403, 403}},
	}

	cells := 0
	for _, rw := range rows {
		t.Run(rw.name, func(t *testing.T) {
			for col := range nCols {
				t.Run(colNames[col], func(t *testing.T) {
					c := authzCell{t: t, col: col, client: clients[col], token: fixed[col]}
					owner := ""
					switch rw.owner {
					case "shared":
						c.id, owner = shared, bob
					case "fresh":
						owner = freshRequester()
					}
					if col == colRequester {
						c.token = owner
						if c.token == "" {
							c.token = bob // a user with a request of their own
						}
					}
					require.Equal(t, rw.want[col], rw.run(c, owner), "%s as %s", rw.name, colNames[col])
					cells++
				})
			}
		})
	}
	require.Equal(t, len(rows)*int(nCols), cells, "every cell ran")
	require.Equal(t, "pending", statusOf(t, shared), "nothing in the matrix decided the shared request")

	// Refusals on the side API are on the record.
	refused := map[string]int{}
	for _, rec := range s.auditRecords() {
		if rec["event"] == "api.refused" {
			refused[fmt.Sprint(rec["subject"])]++
		}
	}
	for _, who := range []string{"carl", "apr", "opx", "svc-backup", "eve", "ada", "olga"} {
		require.Positive(t, refused[who], "no api.refused record for %s", who)
	}
}

// clientFrom returns a client whose connections come from the loopback
// address ip, or the default client where the system has no such address.
func clientFrom(t *testing.T, ip, probe string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.DialContext(context.Background(), "tcp", probe)
	if err != nil {
		t.Logf("no loopback address %s here (%v): sharing the default client's", ip, err)
		return http.DefaultClient
	}
	c.Close()
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
