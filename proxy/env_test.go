package proxy_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/shapes"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/rego"
)

const testIssuer = "https://idp.test"

// tokenIssuer signs ES256 tokens that its verifier, a real one, accepts.
type tokenIssuer struct {
	key      *ecdsa.PrivateKey
	verifier *identity.Verifier
}

func newTestIssuer(t *testing.T) *tokenIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	v, err := identity.New(context.Background(), identity.Config{
		Issuers: []identity.Issuer{{Issuer: testIssuer, Audience: []string{"elevate"}, Algorithms: []string{"ES256"},
			Keys: map[string]crypto.PublicKey{"k1": &key.PublicKey}}},
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	return &tokenIssuer{key: key, verifier: v}
}

// token is sub's token, valid for ttl from now (negative: expired).
func (i *tokenIssuer) token(t *testing.T, sub string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": testIssuer, "aud": "elevate", "sub": sub, "iat": now.Add(min(ttl, 0) - time.Minute).Unix(), "exp": now.Add(ttl).Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(i.key)
	require.NoError(t, err)
	return s
}

// proxyEnv is the proxy listener's handler in process, on real parts
// where they are cheap: a verifier of real tokens, the default Rego
// bundle with the shape corpus's route tables over it (which also say
// which bodies are judged) and its approval policies, an audit log in
// a temporary directory and the corpus's recording upstreams; the view of
// grants is a fake holding bob's grants (shapes.BobTasks, narrowed by
// shapes.BobConstraints). The handler serves on a loopback listener
// configured as elevate serve configures the proxy listener.
type proxyEnv struct {
	*shapes.Env
	gate      *proxy.Gate
	upstreams []proxy.Upstream
	// bodies, when set, says which calls have their body judged.
	bodies proxy.BodyRules
	// grants are bob's.
	grants []grants.Grant
}

func newProxyEnv(t *testing.T) *proxyEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	iss := newTestIssuer(t)

	layer := os.DirFS(filepath.Join("..", "test", "testdata", "shapes", shapes.PolicyLayer))
	engine, err := policy.New(ctx, policy.Config{Bundle: policy.Layers(rego.Bundle, layer)})
	require.NoError(t, err)
	st := policy.State{Control: policy.Control{Enabled: true, DefaultApprovers: "approvers"}}
	for i, p := range shapes.Policies {
		st.Policies = append(st.Policies, policy.ApprovalPolicy{ID: fmt.Sprintf("pol-%d", i), Scope: p[0], Target: p[1],
			Approval: "manual", Approvers: "approvers"})
	}
	require.NoError(t, engine.SetState(ctx, st))

	now := time.Now()
	e := &proxyEnv{bodies: engine}
	for i, task := range shapes.BobTasks {
		e.grants = append(e.grants, grants.Grant{ID: fmt.Sprintf("grt-%d", i), RequestID: fmt.Sprintf("req-%d", i), Subject: "bob",
			Scope: grants.ScopeTask, Target: task, Constraint: shapes.BobConstraints[task],
			NotBefore: now.Add(-time.Minute), ExpiresAt: now.Add(2 * time.Hour), Approvers: []string{"ada"}})
	}
	view := &fakeView{live: map[string][]grants.Grant{"bob": e.grants}}

	logPath := filepath.Join(dir, "audit.log")
	auditLog, err := audit.Open(audit.Config{Path: logPath})
	require.NoError(t, err)
	e.gate, err = proxy.NewGate(proxy.GateConfig{Verifier: iss.verifier, Grants: view, Policy: engine, Audit: auditLog,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() {
		e.gate.Drain()
		require.NoError(t, auditLog.Close())
	})

	ups := shapes.StartUpstreams(t)
	secret := func(name, value string) string {
		f := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(f, []byte(value+"\n"), 0o600))
		return f
	}
	e.upstreams = []proxy.Upstream{
		{Name: "exchange", URL: ups.Exchange.URL, Prefix: shapes.Prefixes["exchange"], Hosts: []string{shapes.UpstreamHosts["exchange"]}},
		{Name: "rabbitmq", URL: ups.RabbitMQ.URL, Prefix: shapes.Prefixes["rabbitmq"], Hosts: []string{shapes.UpstreamHosts["rabbitmq"]},
			Credential:       &proxy.Credential{Type: "basic", Username: shapes.RabbitMQUser, ValueFile: secret("rabbitmq.secret", shapes.RabbitMQSecret)},
			CredentialParams: shapes.RabbitMQParams},
		{Name: "caddy", URL: ups.Caddy.URL, Prefix: shapes.Prefixes["caddy"], AllowWebsocket: true,
			Credential:       &proxy.Credential{Type: "header", Header: shapes.CaddyHeader, ValueFile: secret("caddy.secret", shapes.CaddyKey)},
			CredentialParams: shapes.CaddyParams, CredentialParamsAction: "refuse"},
		{Name: "rpc", URL: ups.RPC.URL, Prefix: shapes.Prefixes["rpc"], MaxJudgedBody: shapes.RPCMaxBody,
			Credential: &proxy.Credential{Type: "jsonrpc-token", ValueFile: secret("rpc.secret", shapes.RPCSecret)}},
		{Name: "gql", URL: ups.GQL.URL, Prefix: shapes.Prefixes["gql"]},
		{Name: "kube", URL: ups.Kube.URL, Prefix: shapes.Prefixes["kube"], Type: proxy.TypeKubernetes,
			Credential: &proxy.Credential{Type: "bearer", ValueFile: secret("kube.token", shapes.KubeToken)},
			Kubernetes: proxy.KubernetesOptions{UserPrefix: shapes.KubeUserPrefix}},
	}
	e.Env = &shapes.Env{Tokens: map[string]string{"bob": iss.token(t, "bob", time.Hour), "dan": iss.token(t, "dan", time.Hour)},
		Upstreams: ups, AuditLog: logPath}
	e.Env = e.at(e.serve(t, e.upstreams))
	return e
}

// at is e's callers and audit log on another proxy listener of e's gate.
func (e *proxyEnv) at(front *httptest.Server) *shapes.Env {
	return &shapes.Env{Addr: front.Listener.Addr().String(), Tokens: e.Tokens, Upstreams: e.Upstreams, AuditLog: e.AuditLog}
}

// serve starts a proxy listener for ups on e's gate, configured as
// elevate serve configures it: HTTP/1.1 only, its header limit, and
// "OPTIONS *" passed to the handler.
func (e *proxyEnv) serve(t *testing.T, ups []proxy.Upstream) *httptest.Server {
	t.Helper()
	ca, err := proxy.LoadOrCreateCA(t.TempDir())
	require.NoError(t, err)
	px, err := proxy.New(proxy.Config{Upstreams: ups, CA: &ca, Bodies: e.bodies, Logger: slog.New(slog.DiscardHandler)}, e.gate)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(px)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv.Config.Protocols = &protocols
	srv.Config.MaxHeaderBytes = proxy.MaxHeaderBytes
	srv.Config.DisableGeneralOptionsHandler = true
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
