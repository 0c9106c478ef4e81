package console

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/elevate-pam/elevate/proxy/identity"
)

// DevPath is where DevProvider is mounted on the control listener.
const DevPath = "/dev/oidc"

// DevClientID is the client id of the console at DevProvider.
const DevClientID = "elevate-console"

// DevUser is a person the dev provider can sign in.
type DevUser struct {
	Subject string
	Groups  []string
	Email   string
}

// DevUsers are the people of the --dev tour: an admin who approves, a
// requester and an auditor.
var DevUsers = []DevUser{
	{Subject: "ada", Groups: []string{"admins", "approvers"}, Email: "ada@example.com"},
	{Subject: "bob", Email: "bob@example.com"},
	{Subject: "eve", Groups: []string{"auditors"}, Email: "eve@example.com"},
}

// DevProviderConfig configures DevProvider.
type DevProviderConfig struct {
	// Issuer signs the tokens. Required.
	Issuer *identity.DevIssuer
	// BaseURL is the control listener's address as browsers reach it; the
	// provider's endpoints are under BaseURL + DevPath. Required.
	BaseURL string
	// RedirectURLs are the only callbacks codes are sent to. Default
	// BaseURL + "/auth/callback".
	RedirectURLs []string
	// ClientID is the only client served. Default DevClientID.
	ClientID string
	// Users are those the picker offers. Default DevUsers.
	Users []DevUser
	// TTL is the lifetime of the tokens. Default 8h.
	TTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// devCodeTTL is how long an authorization code may wait for its exchange.
const devCodeTTL = time.Minute

// maxDevCodes bounds the codes waiting for their exchange.
const maxDevCodes = 1000

// DevProvider is a small OpenID provider for development: discovery, an
// authorization endpoint that is a user picker, and a token endpoint that
// checks the PKCE verifier and answers a dev-issuer token. It exists so
// that the console runs the real authorization code flow in --dev.
type DevProvider struct {
	cfg     DevProviderConfig
	pages   map[string]*template.Template
	mu      sync.Mutex
	codes   map[string]*devCode
	origin  string
	allowed map[string]bool
}

// devCode is an authorization code waiting for its exchange.
type devCode struct {
	user        DevUser
	mfa         bool
	redirectURI string
	challenge   string
	nonce       string
	expires     time.Time
}

// NewDevProvider builds the dev provider.
func NewDevProvider(cfg DevProviderConfig) (*DevProvider, error) {
	if cfg.Issuer == nil {
		return nil, errors.New("dev provider: an issuer is required")
	}
	bu, err := absoluteURL(cfg.BaseURL)
	if err != nil {
		return nil, errors.New("dev provider: base URL " + err.Error())
	}
	cfg.BaseURL = strings.TrimSuffix(bu.String(), "/")
	if len(cfg.RedirectURLs) == 0 {
		cfg.RedirectURLs = []string{cfg.BaseURL + "/auth/callback"}
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DevClientID
	}
	if len(cfg.Users) == 0 {
		cfg.Users = DevUsers
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 8 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages, err := parsePages(templateFuncs(cfg.Now, ""))
	if err != nil {
		return nil, err
	}
	p := &DevProvider{cfg: cfg, pages: pages, codes: map[string]*devCode{}, origin: origin(bu), allowed: map[string]bool{}}
	for _, u := range cfg.RedirectURLs {
		p.allowed[u] = true
	}
	return p, nil
}

// ServeHTTP serves the provider under DevPath.
func (p *DevProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	switch path := strings.TrimPrefix(r.URL.Path, DevPath); {
	case path == "/.well-known/openid-configuration" && r.Method == http.MethodGet:
		p.discovery(w)
	case path == "/authorize" && r.Method == http.MethodGet:
		p.authorize(w, r, r.URL.Query(), false)
	case path == "/authorize" && r.Method == http.MethodPost:
		// The picker posts to itself; anything else is refused.
		if !fromOrigin(r, p.origin) {
			p.page(w, http.StatusForbidden, "This form was sent from another site and was refused.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			p.page(w, http.StatusBadRequest, "The form could not be read.")
			return
		}
		p.authorize(w, r, r.PostForm, true)
	case path == "/token" && r.Method == http.MethodPost:
		p.token(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (p *DevProvider) discovery(w http.ResponseWriter) {
	base := p.cfg.BaseURL + DevPath
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                identity.DevIssuerName,
		"authorization_endpoint":                base + "/authorize",
		"token_endpoint":                        base + "/token",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"none"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      DefaultScopes,
	})
}

// page answers an error page of the provider.
func (p *DevProvider) page(w http.ResponseWriter, status int, msg string) {
	renderPage(w, p.pages, slog.Default(), status, "error", view{Title: "Development sign-in", Error: msg})
}

// pickerData is what the user picker page shows and posts back.
type pickerData struct {
	Action                                                                         string
	ClientID, RedirectURI, Scope, State, Nonce, CodeChallenge, CodeChallengeMethod string
	Users                                                                          []DevUser
}

// pkceChallenge is a base64url SHA-256 digest (RFC 7636 S256).
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// pkceVerifier is RFC 7636's code_verifier.
var pkceVerifier = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// authorize checks an authorization request; a GET shows the picker, the
// picker's POST issues a code and sends the browser back.
func (p *DevProvider) authorize(w http.ResponseWriter, r *http.Request, q url.Values, pick bool) {
	d := pickerData{Action: DevPath + "/authorize", ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		Scope: q.Get("scope"), State: q.Get("state"), Nonce: q.Get("nonce"),
		CodeChallenge: q.Get("code_challenge"), CodeChallengeMethod: q.Get("code_challenge_method"), Users: p.cfg.Users}
	// Until the client and its callback are known good, errors are shown
	// here and the browser goes nowhere.
	if d.ClientID != p.cfg.ClientID {
		p.page(w, http.StatusBadRequest, "Unknown client_id.")
		return
	}
	if !p.allowed[d.RedirectURI] {
		p.page(w, http.StatusBadRequest, "This redirect_uri is not registered for the client.")
		return
	}
	back := func(params url.Values) {
		if d.State != "" {
			params.Set("state", d.State)
		}
		redirect(w, d.RedirectURI+"?"+params.Encode())
	}
	switch {
	case q.Get("response_type") != "code" && !pick:
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case d.CodeChallengeMethod != "S256" || !pkceChallenge.MatchString(d.CodeChallenge):
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE with S256 is required"}})
		return
	case d.State == "":
		back(url.Values{"error": {"invalid_request"}, "error_description": {"state is required"}})
		return
	}
	if !pick {
		renderPage(w, p.pages, slog.Default(), http.StatusOK, "picker", view{Title: "Sign in to elevate (development)", Data: d})
		return
	}
	i := slices.IndexFunc(p.cfg.Users, func(u DevUser) bool { return u.Subject == q.Get("user") })
	if i < 0 {
		p.page(w, http.StatusBadRequest, "Choose one of the listed users.")
		return
	}
	code, err := randomToken()
	if err != nil {
		p.page(w, http.StatusInternalServerError, "No code could be made; try again.")
		return
	}
	now := p.cfg.Now()
	p.mu.Lock()
	for k, c := range p.codes {
		if !now.Before(c.expires) {
			delete(p.codes, k)
		}
	}
	if len(p.codes) >= maxDevCodes {
		p.mu.Unlock()
		p.page(w, http.StatusServiceUnavailable, "Too many sign-ins at once; try again in a minute.")
		return
	}
	p.codes[code] = &devCode{user: p.cfg.Users[i], mfa: q.Get("mfa") == "on", redirectURI: d.RedirectURI,
		challenge: d.CodeChallenge, nonce: d.Nonce, expires: now.Add(devCodeTTL)}
	p.mu.Unlock()
	back(url.Values{"code": {code}})
}

// token exchanges a code for a dev-issuer token (RFC 6749 section 4.1.3):
// the code is used once, within a minute, by the client it was issued to,
// with the same redirect_uri and the PKCE verifier of its challenge.
func (p *DevProvider) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "authorization_code" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if f.Get("client_id") != p.cfg.ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	c, ok := p.codes[f.Get("code")]
	delete(p.codes, f.Get("code")) // once, whatever follows
	p.mu.Unlock()
	if !ok || !p.cfg.Now().Before(c.expires) || f.Get("redirect_uri") != c.redirectURI {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	verifier := f.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	if !pkceVerifier.MatchString(verifier) ||
		subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1 {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	tok, err := p.cfg.Issuer.Sign(identity.DevToken{Subject: c.user.Subject, Groups: c.user.Groups, Email: c.user.Email,
		MFA: c.mfa, TTL: p.cfg.TTL, Now: p.cfg.Now(), Nonce: c.nonce})
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "id_token": tok, "token_type": "Bearer",
		"expires_in": int(p.cfg.TTL / time.Second)})
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // as every JSON elevate writes
	_ = enc.Encode(v)
}

// Client returns an HTTP client that reaches the provider in process, for
// the console's discovery and code exchange: no network, and no trust in
// the control listener's certificate needed. Requests for other hosts
// than BaseURL's fail.
func (p *DevProvider) Client() *http.Client {
	return &http.Client{Transport: inProcess{h: p, origin: p.origin}, Timeout: 10 * time.Second}
}

// inProcess is a RoundTripper that serves requests for one origin with a
// handler.
type inProcess struct {
	h      http.Handler
	origin string
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if origin(req.URL) != t.origin {
		return nil, errors.New("dev provider client: only " + t.origin + " is reachable")
	}
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:0"
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, in)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		Status: http.StatusText(rec.status), StatusCode: rec.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}
