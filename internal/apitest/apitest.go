// Package apitest builds what the side API and the console stand on, on
// real parts, for their tests: the grant store on embedded etcd (a key
// prefix of the test's own on the package's shared member), the default
// Rego bundle fed the store's state, a hash-chained audit log, dev-issuer
// keys and tokens, and the Gate and proxy in front of an httptest upstream.
// It stops short of the side API itself, so the API's own tests can use it.
package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/etcdtest"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/rego"
)

// Parts are the running parts, closed when the test ends.
type Parts struct {
	Dev       *identity.DevIssuer // signs tokens the Verifier accepts
	Verifier  *identity.Verifier
	Engine    *policy.Engine // the default bundle, following the Store's state
	Store     *grants.Store  // running, its view synced
	Audit     *audit.Log
	AuditPath string
	Gate      *proxy.Gate
	Proxy     *proxy.Proxy // one upstream, "exchange" under /exchange/, that answers 200
	Logger    *slog.Logger // discards
}

// New builds and starts the parts for t on etcd's shared member.
func New(t *testing.T, etcd *etcdtest.Shared) *Parts {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	p := &Parts{AuditPath: filepath.Join(dir, "audit.log"), Logger: slog.New(slog.DiscardHandler)}
	var err error
	p.Dev, err = identity.LoadOrCreateDevIssuer(dir)
	require.NoError(t, err)
	p.Verifier, err = identity.New(ctx, identity.Config{Issuers: []identity.Issuer{p.Dev.Issuer()}})
	require.NoError(t, err)
	p.Engine, err = policy.New(ctx, policy.Config{Bundle: rego.Bundle})
	require.NoError(t, err)
	p.Audit, err = audit.Open(audit.Config{Path: p.AuditPath})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Audit.Close() })

	p.Store, err = grants.New(grants.Config{Client: etcd.Client(t), Prefix: etcd.Prefix(t),
		OnState: func(c grants.Control, ps []grants.Policy) { _ = p.Engine.SetState(ctx, proxy.PolicyState(c, ps)) }})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Store.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, p.Store.WaitReady(wctx))

	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(upstream.Close)
	p.Gate, err = proxy.NewGate(proxy.GateConfig{Verifier: p.Verifier, Grants: p.Store, Policy: p.Engine, Audit: p.Audit, Uses: p.Store, Logger: p.Logger})
	require.NoError(t, err)
	p.Proxy, err = proxy.New(proxy.Config{Upstreams: []proxy.Upstream{{Name: "exchange", URL: upstream.URL, Prefix: "/exchange/"}}, Logger: p.Logger}, p.Gate)
	require.NoError(t, err)
	return p
}

// Token signs a dev token for sub with groups.
func (p *Parts) Token(t testing.TB, sub string, groups ...string) string {
	t.Helper()
	tok, err := p.Dev.Sign(identity.DevToken{Subject: sub, Groups: groups})
	require.NoError(t, err)
	return tok
}

// Records reads every audit record written so far.
func (p *Parts) Records(t testing.TB) []audit.Record {
	t.Helper()
	f, err := os.Open(p.AuditPath)
	require.NoError(t, err)
	defer f.Close()
	var out []audit.Record
	dec := json.NewDecoder(f)
	for {
		var r audit.Record
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, r)
	}
}
