package proxy_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/internal/etcdtest"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/rego"
	"github.com/elevate-pam/elevate/telemetry"
)

const (
	benchIssuer = "https://issuer.bench.test"
	benchTask   = `Exchange\Search-Mailbox`
)

// benchEnv is a Gate built from real parts: an RS256 verifier, a grant
// store watching an embedded etcd (fsync on), the default Rego bundle, an
// audit log with fsync in a temporary directory, and tracing through the
// tail sampler to a no-op exporter. alice holds an approved grant for
// benchTask; bob holds none.
type benchEnv struct {
	gate, coldGate *proxy.Gate
	engine         *policy.Engine
	alice, bob     string
	log            *audit.Log
}

func newBenchEnv(b *testing.B) *benchEnv { return newBenchEnvWith(b, rego.Bundle) }

// newBenchEnvWith builds the environment on the policy bundle given.
func newBenchEnvWith(b *testing.B, bundle fs.FS) *benchEnv {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()

	tel, err := telemetry.Setup(ctx, telemetry.Config{Logger: slog.New(slog.DiscardHandler)},
		telemetry.WithSpanExporter(tracetest.NewNoopExporter()))
	require.NoError(b, err)
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(b, err)
	verifier := func(cacheSize int) *identity.Verifier {
		v, err := identity.New(ctx, identity.Config{
			Issuers: []identity.Issuer{{
				Issuer: benchIssuer, Audience: []string{"elevate"}, Algorithms: []string{"RS256"},
				Keys: map[string]crypto.PublicKey{"k1": &key.PublicKey},
			}},
			CacheSize: cacheSize,
			Logger:    slog.New(slog.DiscardHandler),
		})
		require.NoError(b, err)
		return v
	}

	engine, err := policy.New(ctx, policy.Config{Bundle: bundle})
	require.NoError(b, err)

	cli := startBenchEtcd(b, filepath.Join(dir, "etcd"))
	store, err := grants.New(grants.Config{
		Client: cli, Prefix: "/bench/",
		OnState: func(c grants.Control, ps []grants.Policy) {
			if err := engine.SetState(ctx, proxy.PolicyState(c, ps)); err != nil {
				b.Error(err)
			}
		},
	})
	require.NoError(b, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- store.Run(runCtx) }()
	b.Cleanup(func() { stop(); <-done })
	require.NoError(b, store.WaitReady(ctx))

	enabled, approvers := true, "approvers"
	_, _, err = store.UpdateControl(ctx, grants.ControlPatch{Enabled: &enabled, DefaultApprovers: &approvers})
	require.NoError(b, err)
	pol, err := store.CreatePolicy(ctx, grants.Policy{Scope: grants.ScopeTask, Target: benchTask, Approval: grants.ApprovalManual, CreatedBy: "ada"})
	require.NoError(b, err)
	req, err := store.Submit(ctx, grants.NewRequest{Requester: grants.Actor{Subject: "alice"}, Scope: grants.ScopeTask,
		Target: benchTask, Reason: "benchmark", PolicyID: pol.ID})
	require.NoError(b, err)
	_, err = store.Approve(ctx, req.ID, grants.Actor{Subject: "carol", Groups: []string{approvers}}, "ok")
	require.NoError(b, err)
	require.Eventually(b, func() bool { return len(store.LiveGrants("alice", time.Now())) == 1 }, 10*time.Second, 5*time.Millisecond)

	log, err := audit.Open(audit.Config{Path: filepath.Join(dir, "audit.log")})
	require.NoError(b, err)

	env := &benchEnv{alice: benchToken(b, key, "alice"), bob: benchToken(b, key, "bob"), log: log, engine: engine}
	gate := func(v proxy.Verifier) *proxy.Gate {
		g, err := proxy.NewGate(proxy.GateConfig{Verifier: v, Grants: store, Policy: engine, Audit: log, Uses: store,
			Logger: slog.New(slog.DiscardHandler)})
		require.NoError(b, err)
		return g
	}
	env.gate, env.coldGate = gate(verifier(0)), gate(verifier(-1))
	b.Cleanup(func() {
		env.gate.Drain()
		env.coldGate.Drain()
		_ = log.Close()
	})
	// The state reaches Rego asynchronously: wait for the first allow.
	require.Eventually(b, func() bool {
		return env.gate.Check(ctx, env.call(env.alice, true)).Allowed
	}, 10*time.Second, 5*time.Millisecond)
	return env
}

// call is the gated call judged by the benchmarks.
func (e *benchEnv) call(token string, dry bool) proxy.Call {
	return proxy.Call{Method: http.MethodPost, Upstream: "exchange", Host: "exchange.elevate.test",
		Path: []string{"mailboxes", "mbx-1", "search"}, Query: url.Values{}, Token: token, DryRun: dry}
}

func benchToken(b *testing.B, key *rsa.PrivateKey, sub string) string {
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": benchIssuer, "aud": "elevate", "sub": sub, "groups": []string{"helpdesk"},
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	t.Header["kid"] = "k1"
	s, err := t.SignedString(key)
	require.NoError(b, err)
	return s
}

func startBenchEtcd(b *testing.B, dir string) *clientv3.Client {
	b.Helper()
	e, endpoint, err := etcdtest.Start(dir, "bench")
	require.NoError(b, err)
	b.Cleanup(e.Close)
	return etcdtest.Client(b, endpoint)
}

// judge runs one Check under a root span, as the proxy's handler does.
func judge(tr trace.Tracer, g *proxy.Gate, c proxy.Call) proxy.Verdict {
	ctx, span := tr.Start(context.Background(), "elevate.proxy POST", trace.WithSpanKind(trace.SpanKindServer))
	v := g.Check(ctx, c)
	span.End()
	return v
}

// BenchmarkCheck measures the whole decision on a gated call with real
// parts: token verification, the grant lookup, Rego, and the durable audit
// record (fsync) that an allowed call waits for. "serial" waits for one
// fsync per call; "parallel" lets 8 callers per CPU share them. "dry run"
// skips the audit record: identity, grants and Rego only.
func BenchmarkCheck(b *testing.B) {
	env := newBenchEnv(b)
	tr := otel.Tracer("bench")
	for _, bc := range []struct {
		name     string
		gate     *proxy.Gate
		call     proxy.Call
		allowed  bool
		parallel bool
	}{
		{name: "allowed serial", gate: env.gate, call: env.call(env.alice, false), allowed: true},
		{name: "allowed parallel", gate: env.gate, call: env.call(env.alice, false), allowed: true, parallel: true},
		{name: "allowed token verified each call", gate: env.coldGate, call: env.call(env.alice, false), allowed: true},
		{name: "grant required", gate: env.gate, call: env.call(env.bob, false)},
		{name: "allowed dry run", gate: env.gate, call: env.call(env.alice, true), allowed: true},
		{name: "allowed dry run parallel", gate: env.gate, call: env.call(env.alice, true), allowed: true, parallel: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			require.Equal(b, bc.allowed, judge(tr, bc.gate, bc.call).Allowed)
			b.ReportAllocs()
			if bc.parallel {
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if judge(tr, bc.gate, bc.call).Allowed != bc.allowed {
							b.Error("unexpected verdict")
							return
						}
					}
				})
				return
			}
			for b.Loop() {
				if judge(tr, bc.gate, bc.call).Allowed != bc.allowed {
					b.Fatal("unexpected verdict")
				}
			}
		})
	}
}

// BenchmarkProxy measures a whole proxied call in process: an HTTP client
// with keep-alive, the proxy listener's handler (routing, path parsing,
// Check, forwarding, the outcome record) and an httptest upstream.
func BenchmarkProxy(b *testing.B) {
	benchmarkProxy(b, newBenchEnv(b), "")
}

// BenchmarkProxyJudgedBody is BenchmarkProxy with the demo catalog's table
// declaring body: json, so that the call's body is read, checked as strict
// JSON and given to Rego before the same decision: the cost of judging a
// body, against BenchmarkProxy's path-judged call.
func BenchmarkProxyJudgedBody(b *testing.B) {
	table, err := fs.ReadFile(rego.Bundle, "catalog/exchange.yaml")
	require.NoError(b, err)
	judged := strings.Replace(string(table), "upstream: exchange\n", "upstream: exchange\nbody: json\n", 1)
	require.NotEqual(b, string(table), judged)
	layer := fstest.MapFS{"catalog/exchange.yaml": &fstest.MapFile{Data: []byte(judged)}}
	env := newBenchEnvWith(b, policy.Layers(rego.Bundle, layer))
	require.Equal(b, "json", env.engine.Body("exchange", "POST", []string{"mailboxes", "mbx-1", "search"}).Kind)
	benchmarkProxy(b, env, "application/json")
}

func benchmarkProxy(b *testing.B, env *benchEnv, contentType string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(up.Close)
	px, err := proxy.New(proxy.Config{
		Upstreams: []proxy.Upstream{{Name: "exchange", URL: up.URL, Prefix: "/exchange/"}},
		Bodies:    env.engine,
		Logger:    slog.New(slog.DiscardHandler),
	}, env.gate)
	require.NoError(b, err)
	front := httptest.NewServer(px)
	b.Cleanup(front.Close)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.Cleanup(hc.CloseIdleConnections)
	target := front.URL + "/exchange/mailboxes/mbx-1/search"
	do := func() error {
		req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(`{"q":"x"}`))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+env.alice)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
	require.NoError(b, do())
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		fsyncs := env.log.Stats().Fsyncs
		for b.Loop() {
			if err := do(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(env.log.Stats().Fsyncs-fsyncs)/float64(b.N), "fsyncs/op")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		fsyncs := env.log.Stats().Fsyncs
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := do(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(env.log.Stats().Fsyncs-fsyncs)/float64(b.N), "fsyncs/op")
	})
}
