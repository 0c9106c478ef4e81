package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/apitest"
	"github.com/elevate-pam/elevate/internal/clocktest"
	"github.com/elevate-pam/elevate/internal/etcdtest"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// The package's tests run the side API on real parts (internal/apitest):
// embedded etcd (one member for the package, started on first use), the
// grant store, the default Rego bundle, a hash-chained audit log and
// dev-issuer tokens.

var etcd etcdtest.Shared

func TestMain(m *testing.M) { os.Exit(etcd.Run(m)) }

// env is one side API on real parts, served by an httptest server.
type env struct {
	t         *testing.T
	parts     *apitest.Parts
	srv       *Server
	http      *httptest.Server
	dev       *identity.DevIssuer
	auditPath string
	clock     *clocktest.Clock // the API's clock
	store     *grants.Store
	engine    *policy.Engine
}

// newEnv builds the side API; mut adjusts its Config before New.
func newEnv(t *testing.T, mut func(*Config)) *env {
	t.Helper()
	p := apitest.New(t, &etcd)
	clk := clocktest.New(time.Now())
	cfg := Config{Verifier: p.Verifier, Store: p.Store, Catalog: p.Engine, Resolver: p.Proxy, Gate: p.Gate, Audit: p.Audit,
		Ready: p.Store.Ready, Logger: p.Logger, Now: clk.Now, BreakGlassGroup: "break-glass"}
	if mut != nil {
		mut(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &env{t: t, parts: p, srv: srv, http: hs, dev: p.Dev, auditPath: p.AuditPath, clock: clk, store: p.Store, engine: p.Engine}
}

// token signs a dev token for sub with groups.
func (e *env) token(sub string, groups ...string) string {
	e.t.Helper()
	return e.parts.Token(e.t, sub, groups...)
}

// reply is one answer of the side API.
type reply struct {
	status int
	header http.Header
	body   string
}

// call sends one request through the real listener. hdr are name, value
// pairs that replace the defaults; an empty value removes the header, and a
// name given twice is sent twice.
func (e *env) call(method, path, token, body string, hdr ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	replaced := map[string]bool{}
	for i := 0; i+1 < len(hdr); i += 2 {
		if !replaced[hdr[i]] {
			req.Header.Del(hdr[i])
			replaced[hdr[i]] = true
		}
		if hdr[i+1] != "" {
			req.Header.Add(hdr[i], hdr[i+1])
		}
	}
	resp, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// raw writes req as it is on a new connection to the listener and reads
// the answer, for shapes the client does not send.
func (e *env) raw(req string) reply {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", e.http.Listener.Addr().String(), 5*time.Second)
	require.NoError(e.t, err)
	defer c.Close()
	require.NoError(e.t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, req)
	require.NoError(e.t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// serve calls the handler directly, from remote address addr (host:port).
func (e *env) serve(method, path, token, addr string, hdr ...string) reply {
	e.t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = addr
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return reply{status: rec.Code, header: rec.Result().Header, body: rec.Body.String()}
}

// events counts the audit log's records by event.
func (e *env) events() map[string]int {
	e.t.Helper()
	recs := e.records()
	out := map[string]int{}
	for _, r := range recs {
		out[r.Event]++
	}
	return out
}

// records reads every audit record written so far.
func (e *env) records() []audit.Record {
	e.t.Helper()
	return e.parts.Records(e.t)
}

func requireProblem(t *testing.T, r reply, status int, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, status, r.status, "%s %s", fmt.Sprint(msgAndArgs...), r.body)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), r.body)
	require.Contains(t, r.body, fmt.Sprintf(`"status":%d`, status))
}

type auditRecord = audit.Record

// forgedToken is a well-formed token for sub from a dev issuer the API
// does not trust.
func forgedToken(t *testing.T, sub string) string {
	t.Helper()
	other, err := identity.LoadOrCreateDevIssuer(t.TempDir())
	require.NoError(t, err)
	tok, err := other.Sign(identity.DevToken{Subject: sub})
	require.NoError(t, err)
	return tok
}
