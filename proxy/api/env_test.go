package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/etcdtest"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/rego"
)

// The package's tests run the side API on real parts: embedded etcd (one
// member for the package, started on first use), the grant store, the
// default Rego bundle, a hash-chained audit log and dev-issuer tokens.

var (
	etcdOnce sync.Once
	etcdURL  string
	etcdErr  error
	etcdDone func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if etcdDone != nil {
		etcdDone()
	}
	os.Exit(code)
}

// sharedEtcd returns the client URL of the package's etcd member.
func sharedEtcd(t testing.TB) string {
	t.Helper()
	etcdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "api-etcd-")
		if err != nil {
			etcdErr = err
			return
		}
		var e *embed.Etcd
		if e, etcdURL, etcdErr = etcdtest.Start(dir, "api-test"); etcdErr == nil {
			etcdDone = func() { e.Close(); os.RemoveAll(dir) }
		}
	})
	require.NoError(t, etcdErr, "embedded etcd")
	return etcdURL
}

// clock is the API's clock; tests move it by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one side API on real parts, served by an httptest server.
type env struct {
	t         *testing.T
	srv       *Server
	http      *httptest.Server
	dev       *identity.DevIssuer
	auditPath string
	clock     *clock
	store     *grants.Store
	engine    *policy.Engine
}

// envSeq numbers the envs of a test binary.
var envSeq atomic.Int64

// newEnv builds the side API; mut adjusts its Config before New.
func newEnv(t *testing.T, mut func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	dev, err := identity.LoadOrCreateDevIssuer(dir)
	require.NoError(t, err)
	verifier, err := identity.New(ctx, identity.Config{Issuers: []identity.Issuer{dev.Issuer()}})
	require.NoError(t, err)
	engine, err := policy.New(ctx, policy.Config{Bundle: rego.Bundle})
	require.NoError(t, err)
	auditPath := filepath.Join(dir, "audit.log")
	log, err := audit.Open(audit.Config{Path: auditPath})
	require.NoError(t, err)
	t.Cleanup(func() { _ = log.Close() })

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{sharedEtcd(t)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	// Each env gets a prefix of its own, also when a test runs again
	// (go test -count=N) against the same shared etcd.
	prefix := fmt.Sprintf("/%s-%d/", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), envSeq.Add(1))
	store, err := grants.New(grants.Config{Client: cli, Prefix: prefix,
		OnState: func(c grants.Control, ps []grants.Policy) {
			st := policy.State{Control: policy.Control{Enabled: c.Enabled, DefaultApprovers: c.DefaultApprovers, SystemAccounts: c.SystemAccounts}}
			for _, p := range ps {
				st.Policies = append(st.Policies, policy.ApprovalPolicy{ID: p.ID, Scope: string(p.Scope), Target: p.Target, Approval: p.Approval, Approvers: p.Approvers})
			}
			_ = engine.SetState(ctx, st)
		}})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- store.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, store.WaitReady(wctx))

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(upstream.Close)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gate, err := proxy.NewGate(proxy.GateConfig{Verifier: verifier, Grants: store, Policy: engine, Audit: log, Uses: store, Logger: quiet})
	require.NoError(t, err)
	px, err := proxy.New(proxy.Config{Upstreams: []proxy.Upstream{{Name: "exchange", URL: upstream.URL, Prefix: "/exchange/"}}, Logger: quiet}, gate)
	require.NoError(t, err)

	clk := &clock{t: time.Now()}
	cfg := Config{Verifier: verifier, Store: store, Catalog: engine, Resolver: px, Gate: gate, Audit: log,
		Ready: store.Ready, Logger: quiet, Now: clk.Now, BreakGlassGroup: "break-glass"}
	if mut != nil {
		mut(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, http: hs, dev: dev, auditPath: auditPath, clock: clk, store: store, engine: engine}
}

// token signs a dev token for sub with groups.
func (e *env) token(sub string, groups ...string) string {
	e.t.Helper()
	tok, err := e.dev.Sign(identity.DevToken{Subject: sub, Groups: groups})
	require.NoError(e.t, err)
	return tok
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
	f, err := os.Open(e.auditPath)
	require.NoError(e.t, err)
	defer f.Close()
	var out []audit.Record
	dec := json.NewDecoder(f)
	for {
		var r audit.Record
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(e.t, err)
		out = append(out, r)
	}
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
