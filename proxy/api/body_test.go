// Threats proven mitigated here (docs/threat-model.md): oversized bodies
// exhausting the control listener's memory; ambiguous JSON (repeated keys,
// keys in another case, trailing data, a second document) read one way by
// something in front of elevate and another way by elevate; bodies in other
// media types; bad input changing state. Every refusal is problem+json,
// audited, and changes nothing.
package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/policy"
)

const (
	moveTask    = `Exchange\\New-MoveRequest`
	goodRequest = `{"scope":"task","target":"` + moveTask + `","reason":"move alice"}`
)

// TestBodyLimits sends every body-taking endpoint the shapes it must
// refuse, and one it must take.
func TestBodyLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes, c.RateLimit = 2048, -1 })
	admin := e.token("ada", "admins", "approvers")
	bob := e.token("bob")
	// A policy, so that a request for the task is accepted.
	r := e.call("POST", "/v1/policies", admin, `{"scope":"task","target":"`+moveTask+`","approval":"manual","approvers":"approvers"}`)
	require.Equal(t, http.StatusCreated, r.status, r.body)

	endpoints := []struct {
		name, method, path, token, good string
		goodStatus                      int
	}{
		{"submit", "POST", "/v1/requests", bob, goodRequest, http.StatusCreated},
		{"check", "POST", "/v1/check", bob, `{"method":"GET","url":"http://127.0.0.1/exchange/mailboxes"}`, http.StatusOK},
		{"policy", "POST", "/v1/policies", admin, `{"scope":"role","target":"Exchange\\Mailbox Import Export","approval":"auto"}`, http.StatusCreated},
		{"control", "PATCH", "/v1/control", admin, `{"enabled":true}`, http.StatusOK},
		{"decision", "POST", "/v1/requests/req-none/deny", admin, `{"comment":"no"}`, http.StatusNotFound},
	}
	pad := func(n int) string { return strings.Repeat(" ", n) }
	cases := []struct {
		desc   string
		body   func(good string) string
		hdr    []string
		status int
	}{
		{"over-limit", func(g string) string { return g[:len(g)-1] + pad(2100) + "}" }, nil, http.StatusRequestEntityTooLarge},
		{"trailing-spaces-over-limit", func(g string) string { return g + pad(2100) }, nil, http.StatusRequestEntityTooLarge},
		{"malformed", func(g string) string { return g[:len(g)-1] }, nil, http.StatusBadRequest},
		{"unknown-field", func(g string) string { return `{"extra":1,` + g[1:] }, nil, http.StatusBadRequest},
		{"repeated-key", func(g string) string { return g[:len(g)-1] + "," + g[1:] }, nil, http.StatusBadRequest},
		{"key-in-other-case", func(g string) string {
			k := g[2 : strings.Index(g[2:], `"`)+2] // the first key
			return `{"` + strings.ToUpper(k) + `":null,` + g[1:]
		}, nil, http.StatusBadRequest},
		{"trailing-data", func(g string) string { return g + ` x` }, nil, http.StatusBadRequest},
		{"two-objects", func(g string) string { return g + g }, nil, http.StatusBadRequest},
		{"array", func(g string) string { return "[" + g + "]" }, nil, http.StatusBadRequest},
		{"null", func(string) string { return "null" }, nil, http.StatusBadRequest},
		{"string", func(string) string { return `"x"` }, nil, http.StatusBadRequest},
		{"wrong-type", func(g string) string { return `{"` + firstKey(g) + `":[1]}` }, nil, http.StatusBadRequest},
		{"text-plain", func(g string) string { return g }, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"form", func(g string) string { return g }, []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"json-lookalike", func(g string) string { return g }, []string{"Content-Type", "application/jsonx"}, http.StatusUnsupportedMediaType},
		{"latin1", func(g string) string { return g }, []string{"Content-Type", "application/json; charset=iso-8859-1"}, http.StatusUnsupportedMediaType},
		{"two-content-types", func(g string) string { return g }, []string{"Content-Type", "application/json", "Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"unparsable-content-type", func(g string) string { return g }, []string{"Content-Type", "application/json; ="}, http.StatusUnsupportedMediaType},
	}
	for _, ep := range endpoints {
		for _, tc := range cases {
			t.Run(ep.name+"/"+tc.desc, func(t *testing.T) {
				before := e.events()["api.refused"]
				r := e.call(ep.method, ep.path, ep.token, tc.body(ep.good), tc.hdr...)
				requireProblem(t, r, tc.status)
				require.NotEmpty(t, r.header.Get("Elevate-Decision-Id"), "the refusal is audited")
				require.Equal(t, before+1, e.events()["api.refused"])
			})
		}
	}
	// Nothing above changed anything.
	list, err := e.store.Requests(t.Context(), grants.Filter{})
	require.NoError(t, err)
	require.Empty(t, list)
	require.Len(t, e.store.Policies(), 1)
	require.False(t, e.store.Control().Enabled)

	for _, ep := range endpoints {
		t.Run(ep.name+"/accepted", func(t *testing.T) {
			for _, hdr := range [][]string{nil, {"Content-Type", "application/json; charset=UTF-8"}, {"Content-Type", ""}} {
				body := ep.good
				if hdr == nil {
					// Padded to exactly the limit: still taken.
					body = ep.good[:len(ep.good)-1] + pad(2048-len(ep.good)) + "}"
					require.Len(t, body, 2048)
				}
				r := e.call(ep.method, ep.path, ep.token, body, hdr...)
				if ep.goodStatus == http.StatusCreated && r.status == http.StatusConflict {
					continue // taken by an earlier round
				}
				require.Equal(t, ep.goodStatus, r.status, r.body)
			}
		})
	}

	t.Run("over-limit-chunked", func(t *testing.T) {
		for _, ep := range endpoints {
			b := ep.good[:len(ep.good)-1] + pad(2100) + "}"
			r := e.raw(ep.method + " " + ep.path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ep.token +
				"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b))
			requireProblem(t, r, http.StatusRequestEntityTooLarge, ep.name)
		}
	})

	t.Run("decision/empty-body", func(t *testing.T) {
		id := submitted(t, e, e.token("cy"))
		// No body, and an empty chunked one: no comment; the rules still apply.
		requireProblem(t, e.call("POST", "/v1/requests/"+id+"/approve", bob, ""), http.StatusForbidden)
		requireProblem(t, e.raw("POST /v1/requests/"+id+"/approve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+bob+
			"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), http.StatusForbidden)
		r := e.raw("POST /v1/requests/" + id + "/approve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin +
			"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		require.Equal(t, http.StatusOK, r.status, r.body)
	})

	t.Run("decision/comment-too-long", func(t *testing.T) {
		id := submitted(t, e, e.token("dan"))
		r := e.call("POST", "/v1/requests/"+id+"/deny", admin, `{"comment":"`+strings.Repeat("x", 2001)+`"}`)
		requireProblem(t, r, http.StatusBadRequest)
		require.Contains(t, r.body, "comment")
	})
}

// chunked encodes b as one chunk and the last one.
func chunked(b string) string {
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(b), b)
}

// submitted files a request for the move task and returns its id.
func submitted(t *testing.T, e *env, tok string) string {
	t.Helper()
	r := e.call("POST", "/v1/requests", tok, goodRequest)
	require.Equal(t, http.StatusCreated, r.status, r.body)
	var q grants.Request
	require.NoError(t, json.Unmarshal([]byte(r.body), &q))
	require.NotEmpty(t, q.ID)
	return q.ID
}

func firstKey(g string) string {
	return g[2 : strings.Index(g[2:], `"`)+2]
}

// TestDecodeBody checks the strict decoder on its own.
func TestDecodeBody(t *testing.T) {
	for _, tc := range []struct {
		desc, body string
		ok         bool
	}{
		{"object", `{"comment":"x"}`, true},
		{"spaces around", " \n{\"comment\":\"x\"}\n ", true},
		{"empty object", `{}`, true},
		{"null value", `{"comment":null}`, true},
		{"nested unknown", `{"comment":"x","a":{"b":1}}`, false},
		{"case variant alone", `{"Comment":"x"}`, false},
		{"repeated", `{"comment":"x","comment":"y"}`, false},
		{"unterminated", `{"comment":"x"`, false},
		{"bad escape", `{"comment":"\x"}`, false},
		{"number key", `{1:2}`, false},
		{"second value", `{} {}`, false},
		{"trailing comma", `{"comment":"x",}`, false},
		{"empty", ``, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var d DecisionBody
			p := unmarshalStrict([]byte(tc.body), &d)
			if tc.ok {
				require.Nil(t, p)
				return
			}
			require.NotNil(t, p)
			require.Equal(t, http.StatusBadRequest, p.Status)
		})
	}
	t.Run("comment counted in characters", func(t *testing.T) {
		require.Nil(t, (&DecisionBody{Comment: strings.Repeat("é", maxCommentLen)}).validate(policy.Catalog{}))
		require.NotNil(t, (&DecisionBody{Comment: strings.Repeat("é", maxCommentLen+1)}).validate(policy.Catalog{}))
	})
	t.Run("limit from Content-Length before reading", func(t *testing.T) {
		req, err := http.NewRequest("POST", "/", io.NopCloser(bytes.NewReader(nil)))
		require.NoError(t, err)
		req.ContentLength = 1 << 40
		p := decodeBody(nil, req, 1024, &DecisionBody{}, false)
		require.NotNil(t, p)
		require.Equal(t, http.StatusRequestEntityTooLarge, p.Status)
	})
}
