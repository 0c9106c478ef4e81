package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/apitest"
	"github.com/elevate-pam/elevate/internal/clocktest"
	"github.com/elevate-pam/elevate/internal/etcdtest"
	"github.com/elevate-pam/elevate/proxy/api"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// The package's tests run the console on real parts (internal/apitest):
// the side API on embedded etcd (one member for the package), the grant
// store, the default Rego bundle, a hash-chained audit log, dev-issuer keys
// and the dev provider's authorization code flow, over a real listener.

var etcd etcdtest.Shared

func TestMain(m *testing.M) {
	// Spans are recorded, so audit records carry trace ids.
	tp := sdktrace.NewTracerProvider()
	otel.SetTracerProvider(tp)
	code := etcd.Run(m)
	_ = tp.Shutdown(context.Background())
	os.Exit(code)
}

// env is the side API with the console and the dev provider mounted, on a
// real listener.
type env struct {
	t         *testing.T
	parts     *apitest.Parts
	url       string
	srv       *httptest.Server
	dev       *identity.DevIssuer
	clock     *clocktest.Clock // the console's and the dev provider's clock
	store     *grants.Store
	auditPath string
	console   *console.Console
}

// envOpts adjust an env.
type envOpts struct {
	tls      bool
	api      func(*api.Config)
	console  func(*console.Config)
	provider func(*console.DevProviderConfig)
}

const traceTemplate = "http://jaeger.test:16686/trace/{trace_id}"

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	p := apitest.New(t, &etcd)
	hs := httptest.NewUnstartedServer(nil)
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	base := scheme + "://" + hs.Listener.Addr().String()
	clk := clocktest.New(time.Now())

	var side *api.Server
	pcfg := console.DevProviderConfig{Issuer: p.Dev, BaseURL: base, Now: clk.Now}
	if o.provider != nil {
		o.provider(&pcfg)
	}
	devp, err := console.NewDevProvider(pcfg)
	require.NoError(t, err)
	ccfg := console.Config{
		API:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { side.ServeHTTP(w, r) }),
		Verifier: p.Verifier, Catalog: p.Engine, PublicURL: base, Issuer: identity.DevIssuerName,
		DiscoveryURL: base + console.DevPath + "/.well-known/openid-configuration", ClientID: console.DevClientID,
		HTTPClient: devp.Client(), TraceURL: traceTemplate, Now: clk.Now, Logger: p.Logger,
	}
	if o.console != nil {
		o.console(&ccfg)
	}
	con, err := console.New(ccfg)
	require.NoError(t, err)
	web := http.NewServeMux()
	web.Handle(console.DevPath+"/", devp)
	web.Handle("/", con)

	acfg := api.Config{Verifier: p.Verifier, Store: p.Store, Catalog: p.Engine, Resolver: p.Proxy, Gate: p.Gate, Audit: p.Audit,
		Ready: p.Store.Ready, Logger: p.Logger, RateLimit: -1, Console: web}
	if o.api != nil {
		o.api(&acfg)
	}
	side, err = api.New(acfg)
	require.NoError(t, err)
	hs.Config.Handler = side
	if o.tls {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	t.Cleanup(hs.Close)
	return &env{t: t, parts: p, url: base, srv: hs, dev: p.Dev, clock: clk, store: p.Store, auditPath: p.AuditPath, console: con}
}

// token signs a dev token, for calls to the API directly.
func (e *env) token(sub string, groups ...string) string {
	e.t.Helper()
	return e.parts.Token(e.t, sub, groups...)
}

// apiCall calls the side API with a bearer token and returns status and body.
func (e *env) apiCall(method, path, token, body string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(b)
}

// setUp enables access control for group approvers and creates a manual
// policy for each task.
func (e *env) setUp(tasks ...string) {
	e.t.Helper()
	admin := e.token("root", "admins")
	st, body := e.apiCall("PATCH", "/v1/control", admin, `{"enabled":true,"default_approvers":"approvers"}`)
	require.Equal(e.t, 200, st, body)
	for _, task := range tasks {
		st, body := e.apiCall("POST", "/v1/policies", admin, `{"scope":"task","target":`+jsonString(task)+`,"approval":"manual"}`)
		require.Equal(e.t, 201, st, body)
	}
	// Control settings and policies are read from the store's watched
	// view, which follows etcd within milliseconds.
	require.Eventually(e.t, func() bool {
		return e.store.Control().Enabled && len(e.store.Policies()) == len(tasks)
	}, 10*time.Second, 5*time.Millisecond)
}

func jsonString(s string) string { return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"` }

// browser is one browser: a cookie jar, redirects not followed.
type browser struct {
	e      *env
	t      *testing.T
	client *http.Client
	jar    *cookiejar.Jar
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	c := e.srv.Client()
	cl := &http.Client{Transport: c.Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{e: e, t: e.t, client: cl, jar: jar}
}

// page is one answer the browser got.
type page struct {
	status int
	header http.Header
	body   string
}

// location is the answer's redirect target, resolved against the console.
func (p page) location(t *testing.T, base string) string {
	t.Helper()
	loc := p.header.Get("Location")
	require.NotEmpty(t, loc, "no Location in a %d answer:\n%s", p.status, p.body)
	u, err := url.Parse(base)
	require.NoError(t, err)
	r, err := u.Parse(loc)
	require.NoError(t, err)
	return r.String()
}

// do sends one request; hdr are name, value pairs.
func (b *browser) do(method, target string, form url.Values, hdr ...string) page {
	b.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = b.e.url + target
	}
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, rd)
	require.NoError(b.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) page { return b.do("GET", path, nil) }

// post sends a form as the console's own pages do: from its origin.
func (b *browser) post(path string, form url.Values) page {
	return b.do("POST", path, form, "Origin", b.e.url, "Sec-Fetch-Site", "same-origin")
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// formFields reads the hidden fields of a page.
func formFields(body string) url.Values {
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], htmlUnescape(m[2]))
	}
	return v
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// csrf is the CSRF token of the browser's session, read from a page.
func (b *browser) csrf() string {
	b.t.Helper()
	p := b.get("/requests")
	require.Equal(b.t, 200, p.status, p.body)
	tok := formFields(p.body).Get("csrf")
	require.NotEmpty(b.t, tok)
	return tok
}

// startLogin goes to /auth/login and returns the authorization URL.
func (b *browser) startLogin() string {
	b.t.Helper()
	p := b.get("/auth/login")
	require.Equal(b.t, http.StatusSeeOther, p.status, p.body)
	return p.location(b.t, b.e.url)
}

// pick shows the picker for authURL and picks user; it returns the
// callback URL the provider sends the browser to. mut may change the form.
func (b *browser) pick(authURL, user string, mut func(url.Values)) string {
	b.t.Helper()
	p := b.get(authURL)
	require.Equal(b.t, 200, p.status, p.body)
	form := formFields(p.body)
	form.Set("user", user)
	if mut != nil {
		mut(form)
	}
	p = b.post(console.DevPath+"/authorize", form)
	require.Equal(b.t, http.StatusSeeOther, p.status, p.body)
	return p.location(b.t, b.e.url)
}

// login signs user in through the whole authorization code flow.
func (e *env) login(user string) *browser {
	e.t.Helper()
	b := e.browser()
	cb := b.pick(b.startLogin(), user, nil)
	p := b.get(cb)
	require.Equal(e.t, http.StatusSeeOther, p.status, p.body)
	require.Equal(e.t, "/", p.header.Get("Location"))
	home := b.get("/")
	require.Equal(e.t, 200, home.status)
	require.Contains(e.t, home.body, `data-testid="subject">`+user+`<`)
	return b
}

// submit asks for task through the console's form and returns the new
// request's id.
func (b *browser) submit(task, reason string) string {
	b.t.Helper()
	p := b.post("/requests", url.Values{"csrf": {b.csrf()}, "target": {"task:" + task}, "reason": {reason}, "duration": {"1h"}})
	require.Equal(b.t, http.StatusSeeOther, p.status, p.body)
	loc := p.header.Get("Location")
	require.True(b.t, strings.HasPrefix(loc, "/requests/req-"), loc)
	return strings.TrimPrefix(loc, "/requests/")
}

// status reads a request's status through the API, as root.
func (e *env) status(id string) string {
	e.t.Helper()
	st, body := e.apiCall("GET", "/v1/requests/"+id, e.token("root", "admins"), "")
	require.Equal(e.t, 200, st, body)
	m := regexp.MustCompile(`"status": "([a-z]+)"`).FindStringSubmatch(body)
	require.NotNil(e.t, m, body)
	return m[1]
}

// records reads the audit log.
func (e *env) records() []audit.Record {
	e.t.Helper()
	return e.parts.Records(e.t)
}
