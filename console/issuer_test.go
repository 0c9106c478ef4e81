package console_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// fakeIssuer is a third-party OpenID provider as the console meets one: a
// confidential client with a secret sent by HTTP Basic, the ID token
// chosen as the session's token, and a discovery document it controls.
type fakeIssuer struct {
	t   *testing.T
	srv *httptest.Server
	dev *identity.DevIssuer

	mu        sync.Mutex
	issuer    string // named in the discovery document
	challenge string
	nonce     string
	basic     [2]string // client id and secret the token endpoint saw
	form      url.Values
}

func newFakeIssuer(t *testing.T, dev *identity.DevIssuer) *fakeIssuer {
	f := &fakeIssuer{t: t, dev: dev, issuer: identity.DevIssuerName}
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"` + f.issuer + `","authorization_endpoint":"` + f.srv.URL + `/authorize?tenant=x",` +
			`"token_endpoint":"` + f.srv.URL + `/token","code_challenge_methods_supported":["S256"]}`))
	})
	m.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		user, pass, _ := r.BasicAuth()
		f.basic = [2]string{user, pass}
		_ = r.ParseForm()
		f.form = r.PostForm
		if challenge(r.PostForm.Get("code_verifier")) != f.challenge || r.PostForm.Get("code") != "the-code" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		tok, err := f.dev.Sign(identity.DevToken{Subject: "carol", Groups: []string{"approvers"}, Nonce: f.nonce})
		require.NoError(t, err)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"opaque-not-a-jwt","id_token":"` + tok + `","token_type":"Bearer"}`))
	})
	f.srv = httptest.NewServer(m)
	t.Cleanup(f.srv.Close)
	return f
}

func TestThirdPartyIssuer(t *testing.T) {
	var f *fakeIssuer
	e := newEnv(t, envOpts{console: func(c *console.Config) {
		f = newFakeIssuer(t, nil)
		c.DiscoveryURL = f.srv.URL + "/.well-known/openid-configuration"
		c.HTTPClient = f.srv.Client()
		c.ClientID, c.ClientSecret = "elevate console", "s3cret&more"
		c.Token = console.TokenID
		c.Scopes = []string{"openid", "groups"}
	}})
	f.dev = e.dev

	b := e.browser()
	auth, err := url.Parse(b.startLogin())
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(auth.String(), f.srv.URL+"/authorize?"), auth)
	q := auth.Query()
	require.Equal(t, "x", q.Get("tenant"), "the endpoint's own query is kept")
	require.Equal(t, "code", q.Get("response_type"))
	require.Equal(t, "elevate console", q.Get("client_id"))
	require.Equal(t, e.url+"/auth/callback", q.Get("redirect_uri"))
	require.Equal(t, "openid groups", q.Get("scope"))
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.Len(t, q.Get("code_challenge"), 43)
	require.Len(t, q.Get("state"), 43)
	require.Len(t, q.Get("nonce"), 43)
	f.mu.Lock()
	f.challenge, f.nonce = q.Get("code_challenge"), q.Get("nonce")
	f.mu.Unlock()

	p := b.get("/auth/callback?code=the-code&state=" + url.QueryEscape(q.Get("state")))
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	f.mu.Lock()
	require.Equal(t, [2]string{"elevate+console", "s3cret%26more"}, f.basic, "client_secret_basic, form-encoded")
	require.Empty(t, f.form.Get("client_id"), "a confidential client authenticates by Basic only")
	require.Equal(t, "authorization_code", f.form.Get("grant_type"))
	require.Equal(t, e.url+"/auth/callback", f.form.Get("redirect_uri"))
	f.mu.Unlock()
	require.Contains(t, b.get("/").body, `data-testid="subject">carol<`, "signed in with the ID token")

	// A discovery document naming another issuer is refused: no sign-in
	// starts.
	f.mu.Lock()
	f.issuer = "https://impostor.example.com"
	f.mu.Unlock()
	e2 := newEnv(t, envOpts{console: func(c *console.Config) {
		c.DiscoveryURL = f.srv.URL + "/.well-known/openid-configuration"
		c.HTTPClient = f.srv.Client()
	}})
	p = e2.browser().get("/auth/login")
	require.Equal(t, http.StatusBadGateway, p.status)
	require.Contains(t, p.body, "sign-in service cannot be reached")
}
