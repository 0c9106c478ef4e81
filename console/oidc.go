package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/elevate-pam/elevate/proxy/api"
)

// maxIssuerBody bounds what is read from the discovery document and the
// token endpoint.
const maxIssuerBody = 1 << 20

// discoveryTTL is how long a discovery document is used before it is
// fetched again.
const discoveryTTL = time.Hour

// discovery is the part of an OpenID Connect discovery document the
// console needs.
type discovery struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
}

// tokenResponse is the token endpoint's answer (RFC 6749 section 5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	IDToken     string `json:"id_token"`
	TokenType   string `json:"token_type"`
}

// oidcClient talks to the issuer: discovery and the code exchange.
type oidcClient struct {
	cfg *Config

	mu      sync.Mutex
	doc     *discovery
	fetched time.Time
}

// discover returns the issuer's endpoints, fetched at most once an hour;
// a failed fetch is not remembered.
func (o *oidcClient) discover(ctx context.Context) (*discovery, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.cfg.Now()
	if o.doc != nil && now.Sub(o.fetched) < discoveryTTL {
		return o.doc, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.cfg.DiscoveryURL, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery: %s answered %d", o.cfg.DiscoveryURL, resp.StatusCode)
	}
	var doc discovery
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxIssuerBody)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("discovery: %s: %w", o.cfg.DiscoveryURL, err)
	}
	if doc.Issuer != o.cfg.Issuer {
		return nil, fmt.Errorf("discovery: the document names issuer %q, not %q", doc.Issuer, o.cfg.Issuer)
	}
	for _, ep := range []string{doc.AuthorizationEndpoint, doc.TokenEndpoint} {
		u, err := absoluteURL(ep)
		if err == nil {
			err = secureOrLoopback(u)
		}
		if err != nil {
			return nil, fmt.Errorf("discovery: endpoint %w", err)
		}
	}
	if len(doc.CodeChallengeMethods) > 0 && !slices.Contains(doc.CodeChallengeMethods, "S256") {
		return nil, errors.New("discovery: the issuer does not support PKCE with S256")
	}
	o.doc, o.fetched = &doc, now
	return &doc, nil
}

// authorizeURL is where the browser goes to sign in.
func (o *oidcClient) authorizeURL(doc *discovery, l *login) string {
	sum := sha256.Sum256([]byte(l.verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {o.cfg.ClientID},
		"redirect_uri":          {o.cfg.RedirectURL},
		"scope":                 {strings.Join(o.cfg.Scopes, " ")},
		"state":                 {l.state},
		"nonce":                 {l.nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(doc.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	return doc.AuthorizationEndpoint + sep + q.Encode()
}

// exchange trades the authorization code for tokens, proving the PKCE
// verifier. Errors never carry the code, the verifier or a token.
func (o *oidcClient) exchange(ctx context.Context, doc *discovery, code, verifier string) (tokenResponse, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {o.cfg.RedirectURL},
		"code_verifier": {verifier},
	}
	if o.cfg.ClientSecret == "" {
		form.Set("client_id", o.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, doc.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResponse{}, fmt.Errorf("token endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if o.cfg.ClientSecret != "" {
		// RFC 6749 section 2.3.1: both parts form-encoded first.
		req.SetBasicAuth(url.QueryEscape(o.cfg.ClientID), url.QueryEscape(o.cfg.ClientSecret))
	}
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("token endpoint: %w", redactURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIssuerBody))
	if err != nil {
		return tokenResponse{}, fmt.Errorf("token endpoint: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return tokenResponse{}, fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, oauthErrorCode(e.Error))
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return tokenResponse{}, errors.New("token endpoint: the answer is not a JSON token response")
	}
	return tr, nil
}

// oauthErrorCode keeps an OAuth error code only if it looks like one.
func oauthErrorCode(s string) string {
	if len(s) > 64 || strings.IndexFunc(s, func(r rune) bool { return !(r == '_' || (r >= 'a' && r <= 'z')) }) >= 0 {
		return ""
	}
	return s
}

// redactURLError drops the URL from a client error, whose query could in
// principle carry something secret; the endpoint is in the config anyway.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// tokenClaims decodes the payload of a token the verifier has accepted.
func tokenClaims(tok string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("malformed payload")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("malformed payload")
	}
	return m, nil
}

// home is the inbox for a signed-in user and the sign-in page otherwise.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if ses, ok := c.currentSession(r); ok {
		c.inbox(w, r, ses)
		return
	}
	v := view{Title: "Sign in"}
	if r.URL.Query().Get("signed_out") == "1" {
		v.Flash = "You have signed out."
	}
	c.render(w, r, http.StatusOK, "landing", v)
}

// onOwnOrigin reports whether r came to the console's public host, where
// the callback will look for the sign-in cookie.
func (c *Console) onOwnOrigin(r *http.Request) bool {
	pu, _ := url.Parse(c.cfg.PublicURL) // validated
	ru := &url.URL{Scheme: pu.Scheme, Host: r.Host}
	return origin(ru) == c.origin
}

// login starts the authorization code flow.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	next := localPath(q.Get("next"))
	if !c.onOwnOrigin(r) && q.Get("moved") == "" {
		// Sign in where the callback will come back to.
		redirect(w, c.cfg.PublicURL+"/auth/login?moved=1&next="+url.QueryEscape(next))
		return
	}
	doc, err := c.oidc.discover(r.Context())
	if err != nil {
		c.cfg.Logger.Error("console: sign-in unavailable", "err", err)
		c.render(w, r, http.StatusBadGateway, "error", view{Title: "Sign-in unavailable",
			Error: "The sign-in service cannot be reached right now; try again in a moment."})
		return
	}
	id, l, err := c.logins.start(next)
	if err != nil {
		c.cfg.Logger.Error("console: sign-in failed", "err", err)
		c.render(w, r, http.StatusInternalServerError, "error", view{Title: "Sign-in failed", Error: "Sign-in failed; try again."})
		return
	}
	http.SetCookie(w, c.loginCookieFor(id, int(loginTTL/time.Second)))
	redirect(w, c.oidc.authorizeURL(doc, l))
}

// callback finishes the flow: the browser's sign-in, the state, the code
// exchange, the token verified by elevate's verifier, then a new session.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg, logMsg string, err error) {
		c.cfg.Logger.Warn("console: sign-in refused", "reason", logMsg, "err", err)
		c.render(w, r, status, "error", view{Title: "Sign-in failed", Error: msg})
	}
	http.SetCookie(w, c.loginCookieFor("", -1))
	ck, err := r.Cookie(loginCookie)
	if err != nil {
		fail(http.StatusBadRequest, "This sign-in was not started in this browser, or it took too long; sign in again.", "no sign-in cookie", nil)
		return
	}
	l, ok := c.logins.take(ck.Value)
	if !ok {
		fail(http.StatusBadRequest, "This sign-in was not started in this browser, or it took too long; sign in again.", "unknown or expired sign-in", nil)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.state)) != 1 {
		fail(http.StatusBadRequest, "The sign-in answer does not belong to this sign-in (state mismatch); sign in again.", "state mismatch", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "The issuer did not sign you in; sign in again.", "issuer error "+oauthErrorCode(e), nil)
		return
	}
	code := q.Get("code")
	if code == "" {
		fail(http.StatusBadRequest, "The sign-in answer carries no code; sign in again.", "no code", nil)
		return
	}
	doc, err := c.oidc.discover(r.Context())
	if err != nil {
		fail(http.StatusBadGateway, "The sign-in service cannot be reached right now; try again in a moment.", "discovery", err)
		return
	}
	tr, err := c.oidc.exchange(r.Context(), doc, code, l.verifier)
	if err != nil {
		fail(http.StatusBadGateway, "The issuer refused to hand out a token; sign in again.", "code exchange", err)
		return
	}
	tok := tr.AccessToken
	if c.cfg.Token == TokenID {
		tok = tr.IDToken
	}
	if tok == "" {
		fail(http.StatusBadGateway, "The issuer's answer lacks the "+c.cfg.Token+" token elevate needs.", "no "+c.cfg.Token+" token", nil)
		return
	}
	id, err := c.cfg.Verifier.Verify(r.Context(), tok)
	if err == nil && id.Issuer != c.cfg.Issuer {
		err = fmt.Errorf("issuer %q is not the console's", id.Issuer)
	}
	if err != nil {
		fail(http.StatusUnauthorized, "elevate did not accept the token from the issuer.", "token refused", err)
		return
	}
	claims, err := tokenClaims(tok)
	if err != nil {
		fail(http.StatusUnauthorized, "elevate did not accept the token from the issuer.", "token claims", err)
		return
	}
	if n, present := claims["nonce"]; present || c.cfg.Token == TokenID {
		if s, _ := n.(string); subtle.ConstantTimeCompare([]byte(s), []byte(l.nonce)) != 1 {
			fail(http.StatusUnauthorized, "The token does not belong to this sign-in (nonce mismatch); sign in again.", "nonce mismatch", nil)
			return
		}
	}
	// The API says who this is and what they may do, as it will for
	// every call of the session.
	var who api.Whoami
	if p := c.callAPI(r, tok, http.MethodGet, "/v1/whoami", nil, &who); p != nil {
		fail(http.StatusUnauthorized, "elevate's API refused the token: "+p.Detail, "whoami", nil)
		return
	}
	u := user{Subject: who.Subject, Groups: who.Groups, Email: who.Email, Admin: who.Admin, Auditor: who.Auditor}
	sid, err := c.sessions.create(u, tok, id.ExpiresAt)
	if err != nil {
		fail(http.StatusInternalServerError, "Sign-in failed; try again.", "session", err)
		return
	}
	maxAge := int(id.ExpiresAt.Sub(c.cfg.Now()) / time.Second)
	http.SetCookie(w, c.sessionCookieFor(sid, max(maxAge, 1)))
	c.cfg.Logger.Info("console: signed in", "subject", u.Subject)
	redirect(w, l.next)
}

// logout ends the session here; the issuer's own session is left alone.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, ses *session) {
	c.sessions.end(ses)
	http.SetCookie(w, c.sessionCookieFor("", -1))
	redirect(w, "/?signed_out=1")
}
