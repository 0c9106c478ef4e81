package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/internal/clocktest"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// TestSignInRefusals: the callback refuses anything that is not the
// answer to this browser's own sign-in, and makes no session then.
func TestSignInRefusals(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, tc := range []struct {
		desc string
		// run returns the callback answer.
		run  func(t *testing.T, b *browser) page
		want string
	}{
		{"state mismatch", func(t *testing.T, b *browser) page {
			cb := b.pick(b.startLogin(), "ada", nil)
			return b.get(withParam(t, cb, "state", "forged-state"))
		}, "state mismatch"},
		{"no state", func(t *testing.T, b *browser) page {
			cb := b.pick(b.startLogin(), "ada", nil)
			return b.get(withParam(t, cb, "state", ""))
		}, "state mismatch"},
		{"a callback without a sign-in in this browser", func(t *testing.T, b *browser) page {
			other := e.browser()
			cb := other.pick(other.startLogin(), "ada", nil)
			return b.get(cb)
		}, "not started in this browser"},
		{"a callback replayed", func(t *testing.T, b *browser) page {
			cb := b.pick(b.startLogin(), "ada", nil)
			require.Equal(t, http.StatusSeeOther, b.get(cb).status)
			b.jar.SetCookies(mustURL(t, e.url), []*http.Cookie{{Name: "elevate_session", Value: "x", Path: "/"}})
			return b.get(cb)
		}, "not started in this browser"},
		{"a sign-in that took too long", func(t *testing.T, b *browser) page {
			auth := b.startLogin()
			e.clock.Add(11 * time.Minute)
			defer e.clock.Add(-11 * time.Minute)
			return b.get(b.pick(auth, "ada", nil))
		}, "took too long"},
		{"a code for another sign-in (nonce mismatch)", func(t *testing.T, b *browser) page {
			cb := b.pick(b.startLogin(), "ada", func(f url.Values) { f.Set("nonce", "another-sign-ins-nonce") })
			return b.get(cb)
		}, "nonce mismatch"},
		{"a code with a wrong PKCE challenge", func(t *testing.T, b *browser) page {
			cb := b.pick(b.startLogin(), "ada", func(f url.Values) { f.Set("code_challenge", challenge(strings.Repeat("v", 43))) })
			return b.get(cb)
		}, "refused to hand out a token"},
		{"the issuer's error", func(t *testing.T, b *browser) page {
			cb := b.pick(b.startLogin(), "ada", nil)
			u := withParam(t, cb, "code", "")
			return b.get(withParam(t, u, "error", "access_denied"))
		}, "did not sign you in"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b := e.browser()
			p := tc.run(t, b)
			require.GreaterOrEqual(t, p.status, 400, p.body)
			require.Contains(t, p.body, tc.want)
			for _, c := range (&http.Response{Header: p.header}).Cookies() {
				require.False(t, c.Name == "elevate_session" && c.MaxAge > 0, "no session after a refused sign-in")
			}
			require.NotContains(t, b.get("/").body, `data-testid="subject"`)
		})
	}
}

func withParam(t *testing.T, raw, key, val string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	q := u.Query()
	if val == "" {
		q.Del(key)
	} else {
		q.Set(key, val)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestDevProvider: the dev provider's token endpoint hands out a token only
// for a fresh code, once, to the client and callback it was issued for,
// with the PKCE verifier of its challenge.
func TestDevProvider(t *testing.T) {
	dev, err := identity.LoadOrCreateDevIssuer(t.TempDir())
	require.NoError(t, err)
	clk := clocktest.New(time.Now())
	const base = "http://console.test:8081"
	p, err := console.NewDevProvider(console.DevProviderConfig{Issuer: dev, BaseURL: base, Now: clk.Now})
	require.NoError(t, err)
	client := p.Client()
	verifier := strings.Repeat("abcdefgh", 6)
	callback := base + "/auth/callback"

	// code runs the picker and returns a fresh code.
	code := func(t *testing.T, user string) string {
		t.Helper()
		form := url.Values{"client_id": {console.DevClientID}, "redirect_uri": {callback}, "state": {"s1"}, "nonce": {"n1"},
			"code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"}, "user": {user}}
		req, _ := http.NewRequest("POST", base+console.DevPath+"/authorize", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		resp, err := (&http.Client{Transport: client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "s1", loc.Query().Get("state"))
		require.Equal(t, callback, strings.SplitN(loc.String(), "?", 2)[0])
		return loc.Query().Get("code")
	}
	exchange := func(t *testing.T, form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := client.PostForm(base+console.DevPath+"/token", form)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m), string(b))
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		return resp.StatusCode, m
	}
	good := func(c string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "client_id": {console.DevClientID},
			"redirect_uri": {callback}, "code_verifier": {verifier}}
	}

	for _, tc := range []struct {
		desc   string
		change func(f url.Values)
		before func()
		status int
		err    string
	}{
		{"wrong verifier", func(f url.Values) { f.Set("code_verifier", strings.Repeat("x", 48)) }, nil, 400, "invalid_grant"},
		{"verifier too short", func(f url.Values) { f.Set("code_verifier", verifier[:42]) }, nil, 400, "invalid_grant"},
		{"the challenge as verifier", func(f url.Values) { f.Set("code_verifier", challenge(verifier)) }, nil, 400, "invalid_grant"},
		{"no verifier", func(f url.Values) { f.Del("code_verifier") }, nil, 400, "invalid_grant"},
		{"another redirect_uri", func(f url.Values) { f.Set("redirect_uri", base+"/elsewhere") }, nil, 400, "invalid_grant"},
		{"another client", func(f url.Values) { f.Set("client_id", "other") }, nil, 401, "invalid_client"},
		{"another grant type", func(f url.Values) { f.Set("grant_type", "password") }, nil, 400, "unsupported_grant_type"},
		{"an expired code", nil, func() { clk.Add(61 * time.Second) }, 400, "invalid_grant"},
		{"an unknown code", func(f url.Values) { f.Set("code", "nope") }, nil, 400, "invalid_grant"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := code(t, "bob")
			f := good(c)
			if tc.change != nil {
				tc.change(f)
			}
			if tc.before != nil {
				tc.before()
			}
			st, m := exchange(t, f)
			require.Equal(t, tc.status, st)
			require.Equal(t, tc.err, m["error"])
			require.Nil(t, m["access_token"])
			if tc.err == "invalid_grant" && tc.desc != "an unknown code" {
				// A code is spent by a failed exchange too.
				st, _ = exchange(t, good(c))
				require.Equal(t, 400, st)
			}
		})
	}

	t.Run("the right verifier, once", func(t *testing.T) {
		c := code(t, "ada")
		st, m := exchange(t, good(c))
		require.Equal(t, 200, st, m)
		require.Equal(t, "Bearer", m["token_type"])
		tok, _ := m["access_token"].(string)
		v, err := identity.New(t.Context(), identity.Config{Issuers: []identity.Issuer{dev.Issuer()}, Now: clk.Now})
		require.NoError(t, err)
		id, err := v.Verify(t.Context(), tok)
		require.NoError(t, err)
		require.Equal(t, "ada", id.Subject)
		require.Equal(t, []string{"admins", "approvers"}, id.Groups)
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		require.Contains(t, string(payload), `"nonce":"n1"`)
		st, m = exchange(t, good(c))
		require.Equal(t, 400, st, "a code is used once")
		require.Equal(t, "invalid_grant", m["error"])
	})

	t.Run("authorize", func(t *testing.T) {
		get := func(q url.Values) *http.Response {
			resp, err := (&http.Client{Transport: client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(base + console.DevPath + "/authorize?" + q.Encode())
			require.NoError(t, err)
			resp.Body.Close()
			return resp
		}
		ok := url.Values{"response_type": {"code"}, "client_id": {console.DevClientID}, "redirect_uri": {callback}, "state": {"s"},
			"code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"}}
		require.Equal(t, 200, get(ok).StatusCode)
		for _, tc := range []struct {
			desc, key, val string
			status         int
			errParam       string
		}{
			{"an unregistered callback is not redirected to", "redirect_uri", "http://evil.example/cb", 400, ""},
			{"an unknown client", "client_id", "other", 400, ""},
			{"plain PKCE", "code_challenge_method", "plain", 303, "invalid_request"},
			{"no challenge", "code_challenge", "", 303, "invalid_request"},
			{"no state", "state", "", 303, "invalid_request"},
			{"implicit flow", "response_type", "token", 303, "unsupported_response_type"},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				q := url.Values{}
				for k, v := range ok {
					q[k] = v
				}
				q.Set(tc.key, tc.val)
				resp := get(q)
				require.Equal(t, tc.status, resp.StatusCode)
				if tc.errParam != "" {
					loc, err := url.Parse(resp.Header.Get("Location"))
					require.NoError(t, err)
					require.True(t, strings.HasPrefix(loc.String(), callback+"?"))
					require.Equal(t, tc.errParam, loc.Query().Get("error"))
					require.Empty(t, loc.Query().Get("code"))
				}
			})
		}
	})
}

// TestConfigValidate: settings are checked at start-up; errors name the key.
func TestConfigValidate(t *testing.T) {
	base := func() console.Config {
		return console.Config{API: http.NotFoundHandler(), Verifier: nopVerifier{}, PublicURL: "https://elevate.example.com",
			Issuer: "https://login.example.com/", ClientID: "elevate"}
	}
	for _, tc := range []struct {
		desc string
		mut  func(*console.Config)
		err  string
	}{
		{"defaults", func(*console.Config) {}, ""},
		{"no public URL", func(c *console.Config) { c.PublicURL = "" }, "console.public_url"},
		{"a relative public URL", func(c *console.Config) { c.PublicURL = "/console" }, "console.public_url"},
		{"no issuer", func(c *console.Config) { c.Issuer = "" }, "console.issuer: required"},
		{"a plain-http issuer elsewhere", func(c *console.Config) { c.Issuer = "http://login.example.com" }, "console.issuer: "},
		{"a plain-http issuer on loopback", func(c *console.Config) { c.Issuer = "http://127.0.0.1:5556" }, ""},
		{"no client id", func(c *console.Config) { c.ClientID = "" }, "console.client_id"},
		{"a callback on another origin", func(c *console.Config) { c.RedirectURL = "https://other.example.com/auth/callback" }, "console.redirect_url"},
		{"a callback on another path", func(c *console.Config) { c.RedirectURL = "https://elevate.example.com/cb" }, "console.redirect_url"},
		{"scopes without openid", func(c *console.Config) { c.Scopes = []string{"profile"} }, "console.scopes"},
		{"an unknown token kind", func(c *console.Config) { c.Token = "refresh" }, "console.token"},
		{"the id token", func(c *console.Config) { c.Token = "id" }, ""},
		{"a trace URL without the id", func(c *console.Config) { c.TraceURL = "http://jaeger:16686/trace/" }, "console.trace_url"},
		{"a trace URL that is not a URL", func(c *console.Config) { c.TraceURL = "javascript:{trace_id}" }, "console.trace_url"},
		{"negative max sessions", func(c *console.Config) { c.MaxSessions = -1 }, "console.max_sessions"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := base()
			tc.mut(&c)
			err := c.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
	c := base()
	require.NoError(t, c.Validate())
	require.Equal(t, "https://login.example.com/.well-known/openid-configuration", c.DiscoveryURL)
	require.Equal(t, "https://elevate.example.com/auth/callback", c.RedirectURL)
	require.Equal(t, console.DefaultScopes, c.Scopes)
	require.Equal(t, console.TokenAccess, c.Token)
}

type nopVerifier struct{}

func (nopVerifier) Verify(ctx context.Context, tok string) (identity.Identity, error) {
	return identity.Identity{}, identity.ErrUnauthenticated
}
