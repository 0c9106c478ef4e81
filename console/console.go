// Package console serves elevate's web console on the control listener:
// sign-in with OpenID Connect, an approvals inbox, one's own requests and a
// form to ask for a task, request details with approve, deny and revoke,
// approval policies, access control settings and audit search.
//
// The console holds no rules of its own. Every page and every action is one
// or more calls to the side API, made in process with the signed-in user's
// bearer token (Config.API), so authorization, validation, rate limits and
// audit records are the API's; the console only decides which controls to
// show, and the API judges every POST anyway.
//
// Pages are rendered on the server with html/template; the stylesheet and a
// small script are embedded in the binary. Every response carries a strict
// Content-Security-Policy (no inline script or style), every form a
// per-session CSRF token, and every POST must come from the console's own
// origin (Origin, or Referer when a browser sends no Origin).
//
// Sign-in is the OAuth 2.0 authorization code flow with PKCE (S256), state
// and nonce against the configured issuer; the token it yields is verified
// by elevate's identity verifier before a session is made. Sessions live in
// memory (a random 32-byte id in the HttpOnly, SameSite=Lax cookie
// elevate_session; the token never reaches the browser) and end with the
// token, at sign-out, or when the process restarts. Replicas behind a load
// balancer therefore need sticky sessions.
//
// DevProvider is a tiny OpenID provider for `elevate serve --dev`: a user
// picker in place of a password, tokens signed by the dev issuer.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy/identity"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Verifier checks a bearer token and says who it belongs to.
type Verifier interface {
	Verify(ctx context.Context, token string) (identity.Identity, error)
}

// Catalog lists the tasks, roles and role groups the policy bundle knows;
// the console uses it only to suggest targets in forms.
type Catalog interface {
	Catalog() policy.Catalog
}

// Token kinds the console may take from the issuer's token endpoint.
const (
	// TokenAccess uses the access token (the default): the issuer's access
	// tokens are JWTs for elevate's audience.
	TokenAccess = "access"
	// TokenID uses the ID token, whose audience is the client id.
	TokenID = "id"
)

// DefaultScopes are the scopes asked for when Config.Scopes is empty.
var DefaultScopes = []string{"openid", "profile", "email", "groups"}

// Defaults of Config.
const (
	// DefaultMaxSessions bounds the sessions kept when Config.MaxSessions
	// is zero.
	DefaultMaxSessions = 10000
	// loginTTL bounds the time between leaving for the issuer and coming
	// back to the callback.
	loginTTL = 10 * time.Minute
	// maxLogins bounds the sign-ins under way.
	maxLogins = 10000
)

// Config configures the console. The fields with a yaml key are in the
// console section of elevate's configuration file.
type Config struct {
	// API is the side API handler; every page and action calls it. Required.
	API http.Handler `yaml:"-"`
	// Verifier checks the token the issuer hands out before a session is
	// made. Required.
	Verifier Verifier `yaml:"-"`
	// Catalog, when set, suggests targets in the policy form.
	Catalog Catalog `yaml:"-"`
	// PublicURL is the console's address as browsers reach it, such as
	// https://elevate.example.com. Required. POSTs are accepted only from
	// its origin; https makes the cookies Secure.
	PublicURL string `yaml:"-"`
	// Issuer is the "iss" of the tokens the console signs people in with;
	// it must be one of the verifier's issuers and is compared with the
	// issuer named by the discovery document. Required.
	Issuer string `yaml:"issuer"`
	// DiscoveryURL is the OpenID Connect discovery document. Default
	// Issuer + "/.well-known/openid-configuration".
	DiscoveryURL string `yaml:"-"`
	// ClientID is the console's client id at the issuer. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates the console at the token endpoint (HTTP
	// Basic). Empty: a public client, protected by PKCE alone.
	ClientSecret string `yaml:"-"`
	// RedirectURL is the callback registered at the issuer. Default
	// PublicURL + "/auth/callback"; it must be on PublicURL's origin.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes asked for. Default DefaultScopes.
	Scopes []string `yaml:"scopes"`
	// Token is which token of the token endpoint's answer becomes the
	// session's bearer token: TokenAccess (default) or TokenID.
	Token string `yaml:"token"`
	// TraceURL links each audit record to its trace: a URL in which
	// {trace_id} is replaced, such as
	// http://localhost:16686/trace/{trace_id}. Empty: no links.
	TraceURL string `yaml:"trace_url"`
	// MaxSessions bounds the sessions kept; beyond it the oldest ends.
	// Default DefaultMaxSessions.
	MaxSessions int `yaml:"-"`
	// HTTPClient fetches the discovery document and calls the token
	// endpoint. Default: a client with a 10s timeout.
	HTTPClient *http.Client `yaml:"-"`
	// Now is the clock. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Logger receives sign-in failures. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate fills in defaults and checks the settings; errors name the key
// of the config file's console section. New also checks the wiring.
func (c *Config) Validate() error {
	pu, err := absoluteURL(c.PublicURL)
	if err != nil {
		return fmt.Errorf("console.public_url: %w", err)
	}
	c.PublicURL = strings.TrimSuffix(pu.String(), "/")
	if c.Issuer == "" {
		return errors.New("console.issuer: required")
	}
	if c.DiscoveryURL == "" {
		c.DiscoveryURL = strings.TrimSuffix(c.Issuer, "/") + "/.well-known/openid-configuration"
	}
	du, err := absoluteURL(c.DiscoveryURL)
	if err != nil {
		return fmt.Errorf("console.issuer: the discovery document %w", err)
	}
	if err := secureOrLoopback(du); err != nil {
		return fmt.Errorf("console.issuer: %w", err)
	}
	if c.ClientID == "" {
		return errors.New("console.client_id: required")
	}
	if c.RedirectURL == "" {
		c.RedirectURL = c.PublicURL + "/auth/callback"
	}
	ru, err := absoluteURL(c.RedirectURL)
	if err != nil {
		return fmt.Errorf("console.redirect_url: %w", err)
	}
	if origin(ru) != origin(pu) || ru.Path != "/auth/callback" || ru.RawQuery != "" {
		return fmt.Errorf("console.redirect_url: must be %s/auth/callback (the console's own origin)", origin(pu))
	}
	if len(c.Scopes) == 0 {
		c.Scopes = DefaultScopes
	}
	if !slices.Contains(c.Scopes, "openid") {
		return errors.New(`console.scopes: must include "openid"`)
	}
	switch c.Token {
	case "":
		c.Token = TokenAccess
	case TokenAccess, TokenID:
	default:
		return fmt.Errorf(`console.token: must be %q or %q`, TokenAccess, TokenID)
	}
	if c.TraceURL != "" {
		if err := checkTraceURL(c.TraceURL); err != nil {
			return fmt.Errorf("console.trace_url: %w", err)
		}
	}
	switch {
	case c.MaxSessions < 0:
		return errors.New("console.max_sessions: must not be negative")
	case c.MaxSessions == 0:
		c.MaxSessions = DefaultMaxSessions
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// absoluteURL parses an absolute http or https URL without credentials
// or fragment.
func absoluteURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q must be an absolute http:// or https:// URL", s)
	}
	if u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%q must have no user information or fragment", s)
	}
	return u, nil
}

// secureOrLoopback refuses plain http except to a loopback host.
func secureOrLoopback(u *url.URL) error {
	if u.Scheme == "https" {
		return nil
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); (ip != nil && ip.IsLoopback()) || h == "localhost" {
		return nil
	}
	return fmt.Errorf("%s must use https unless its host is a loopback address", u.Redacted())
}

// checkTraceURL accepts an absolute http(s) URL containing {trace_id}.
func checkTraceURL(s string) error {
	if !strings.Contains(s, "{trace_id}") {
		return fmt.Errorf("%q must contain {trace_id}", s)
	}
	_, err := absoluteURL(strings.ReplaceAll(s, "{trace_id}", "0"))
	return err
}

// origin is scheme://host[:port] of u, lower case, without a default port.
func origin(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return strings.ToLower(u.Scheme) + "://" + host
}

// Console is the web console's http.Handler.
type Console struct {
	cfg      Config
	origin   string
	secure   bool
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessionStore
	logins   *loginStore
	oidc     *oidcClient
}

// New builds the console. Nothing is fetched yet: the discovery document
// is read at the first sign-in.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.API == nil || cfg.Verifier == nil {
		return nil, errors.New("console: the side API and the verifier are required")
	}
	pu, _ := url.Parse(cfg.PublicURL) // validated
	c := &Console{
		cfg:      cfg,
		origin:   origin(pu),
		secure:   pu.Scheme == "https",
		mux:      http.NewServeMux(),
		sessions: newSessionStore(cfg.MaxSessions, cfg.Now),
		logins:   newLoginStore(maxLogins, loginTTL, cfg.Now),
	}
	c.oidc = &oidcClient{cfg: &c.cfg}
	var err error
	if c.pages, err = parsePages(templateFuncs(cfg.Now, cfg.TraceURL)); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// pageNames are the templates under templates/, each rendered inside
// base.html.
var pageNames = []string{"landing", "inbox", "requests", "request", "policies", "control", "audit", "error", "picker"}

func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("base.html").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

func (c *Console) routes() {
	m := c.mux
	static, _ := fs.Sub(staticFS, "static") // the directory is embedded
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	m.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			// No directory listings.
			c.render(w, r, http.StatusNotFound, "error", view{Title: "Not found", Error: "There is no such page."})
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	}))
	// Pages name their icon; browsers still ask for /favicon.ico where no
	// page does (the side API's answers, for one).
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		http.ServeFileFS(w, r, staticFS, "static/favicon.svg")
	})
	m.HandleFunc("GET /auth/login", c.login)
	m.HandleFunc("GET /auth/callback", c.callback)
	m.HandleFunc("POST /auth/logout", c.authed(c.logout))
	m.HandleFunc("GET /{$}", c.home)
	m.HandleFunc("GET /requests", c.authed(c.requestsPage))
	m.HandleFunc("POST /requests", c.authed(c.submitRequest))
	m.HandleFunc("GET /requests/{id}", c.authed(c.requestPage))
	m.HandleFunc("POST /requests/{id}/{action}", c.authed(c.decide))
	m.HandleFunc("GET /policies", c.authed(c.policiesPage))
	m.HandleFunc("POST /policies", c.authed(c.createPolicy))
	m.HandleFunc("POST /policies/{id}/delete", c.authed(c.deletePolicy))
	m.HandleFunc("GET /control", c.authed(c.controlPage))
	m.HandleFunc("POST /control", c.authed(c.updateControl))
	m.HandleFunc("GET /audit", c.authed(c.auditPage))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", view{Title: "Not found", Error: "There is no such page."})
	})
}

// ServeHTTP serves the console: security headers on every answer, and
// every POST checked for the console's own origin before anything else.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if r.Method == http.MethodPost && !c.sameOrigin(r) {
		c.render(w, r, http.StatusForbidden, "error", view{Title: "Refused",
			Error: "This form was sent from another site (or without saying where from) and was refused."})
		return
	}
	c.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy allows only the console's own files: no inline
// script or style, no framing, forms only to the console.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// setSecurityHeaders sets the headers every console answer carries. The
// referrer policy is same-origin rather than no-referrer: with no-referrer
// browsers send "Origin: null" on the console's own form POSTs, and the
// origin check needs the real one; no referrer ever leaves the console.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// sameOrigin reports whether a state-changing request comes from the
// console's own origin.
func (c *Console) sameOrigin(r *http.Request) bool { return fromOrigin(r, c.origin) }

// fromOrigin reports whether r comes from origin o: its Origin header, or
// without one its Referer, must name o; a browser's Sec-Fetch-Site, when
// sent, must say same-origin. A request naming neither is refused.
func fromOrigin(r *http.Request, o string) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" {
		return false
	}
	if vals := r.Header.Values("Origin"); len(vals) > 0 {
		if len(vals) != 1 || vals[0] == "null" {
			return false
		}
		u, err := url.Parse(vals[0])
		return err == nil && u.Host != "" && u.Path == "" && origin(u) == o
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return false
	}
	u, err := url.Parse(ref)
	return err == nil && u.Host != "" && origin(u) == o
}

// view is what every page template sees.
type view struct {
	Title string
	// Nav is the main navigation entry of the page, for aria-current.
	Nav   string
	User  *user
	CSRF  string
	Flash string
	// Error is shown as an alert: the API's problem detail, or the
	// console's own message.
	Error string
	Data  any
}

// render writes a page; a template failure is logged and answered 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	renderPage(w, c.pages, c.cfg.Logger, status, name, v)
}

// renderPage writes page name of pages inside base.html.
func renderPage(w http.ResponseWriter, pages map[string]*template.Template, log *slog.Logger, status int, name string, v view) {
	t := pages[name]
	var buf bytes.Buffer
	if t == nil {
		log.Error("console: no such page template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "base.html", v); err != nil {
		log.Error("console: rendering failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// redirect answers 303 See Other to a path of the console.
func redirect(w http.ResponseWriter, path string) {
	w.Header().Set("Location", path)
	w.WriteHeader(http.StatusSeeOther)
}

// localPath returns p when it is a path of this console that is safe to
// redirect to after sign-in, and "/" otherwise.
func localPath(p string) string {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(u.Path, "/auth/") {
		return "/"
	}
	return u.RequestURI()
}
