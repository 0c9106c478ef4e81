package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/notify"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/api"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/telemetry"
)

// components are the parts of elevate serve, built from the configuration
// and wired to each other by build: live state (etcd and the grants
// store), identity, policy, audit, notifications, the gate, and the two
// handlers that runServer serves, proxy and control.
//
// Building serves neither listener. It starts what the parts need in order
// to exist: embedded etcd and the demo upstream in --dev, the store's watch
// and the notifier's deliveries. close stops them, the last started first.
type components struct {
	cfg     Config
	log     *slog.Logger
	engine  *policy.Engine
	audit   *audit.Log
	store   *grants.Store
	gate    *proxy.Gate
	proxy   http.Handler // the proxy listener's
	control http.Handler // the control listener's: side API, console, probes, metrics
	console bool         // control serves the web console

	// stateLoaded says the engine holds the control settings and policies
	// the store last reported.
	stateLoaded atomic.Bool
	closers     []func()
}

// wiring is what build takes besides the configuration: how the process
// logs and measures, and where its listeners are reached.
type wiring struct {
	log        *slog.Logger
	tel        *telemetry.Telemetry
	controlURL string // the control listener, as this host reaches it
	proxyURL   string // the proxy listener, as callers reach it
}

// atClose adds f to what close runs.
func (c *components) atClose(f func()) { c.closers = append(c.closers, f) }

// close stops what build started, in reverse: the store before the audit
// log, the audit log before etcd.
func (c *components) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}

// build makes the components of elevate serve from cfg. On an error it
// stops what it had started.
func build(ctx context.Context, cfg Config, dev bool, w wiring) (_ *components, err error) {
	c := &components{cfg: cfg, log: w.log}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	log := w.log
	fsyncs, err := otel.Meter(telemetry.MeterName).Float64Histogram("elevate.audit.fsync.duration", metric.WithUnit("s"),
		metric.WithDescription("Time each fsync of the audit log took; concurrent records share one."))
	if err != nil {
		return nil, err
	}

	// Live state.
	endpoints := cfg.Etcd.Endpoints
	if dev && len(endpoints) == 0 {
		e, url, err := startEmbeddedEtcd(ctx, cfg.DataDir, cfg.Etcd.StartTimeout)
		if err != nil {
			return nil, err
		}
		c.atClose(e.Close)
		endpoints = []string{url}
	}
	cli, err := connectEtcd(ctx, cfg.Etcd, endpoints, log)
	if err != nil {
		return nil, err
	}
	c.atClose(func() { _ = cli.Close() })

	// Identity.
	var devIssuer *identity.DevIssuer
	var devIs *identity.Issuer
	if dev {
		if devIssuer, err = identity.LoadOrCreateDevIssuer(cfg.DataDir); err != nil {
			return nil, err
		}
		is := devIssuer.Issuer()
		devIs = &is
	}
	verifier, err := identity.New(ctx, cfg.identityConfig(devIs))
	if err != nil {
		return nil, err
	}

	// Policy. Route tables may route only to configured upstreams (the
	// built-in catalogs excepted); a configured upstream nothing routes to
	// is a warning.
	pcfg := cfg.policyConfig()
	if pcfg.Upstreams, err = bundleUpstreams(ctx, cfg, dev); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if c.engine, err = policy.New(ctx, pcfg); err != nil {
		return nil, err // it names the policy
	}
	logCacheable(log, c.engine)

	// Audit.
	ac := cfg.Audit
	ac.OnFsync = func(d time.Duration) { fsyncs.Record(context.Background(), d.Seconds()) }
	if dev && ac.BodyKeyFile == "" && ac.BodyKeyEnv == "" {
		// Body digests in --dev: a key kept in the data dir.
		ac.BodyKeyFile = filepath.Join(cfg.DataDir, devBodyKeyFile)
		if err := audit.CreateBodyKey(ac.BodyKeyFile); err != nil {
			return nil, fmt.Errorf("audit: body key: %w", err)
		}
	}
	if c.audit, err = audit.Open(ac); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	c.atClose(func() { _ = c.audit.Close() })

	// Notifications: never block a decision.
	cfg.Notify.Logger = log
	notifier, err := notify.New(cfg.Notify)
	if err != nil {
		return nil, err
	}
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	notifyDone := make(chan struct{})
	go func() { notifier.Run(notifyCtx); close(notifyDone) }()
	c.atClose(func() { stopNotify(); <-notifyDone })

	// Grants, watched into memory; Rego sees control settings and policies.
	if c.store, err = grants.New(c.grantsConfig(ctx, cli, notifier)); err != nil {
		return nil, err
	}
	storeCtx, stopStore := context.WithCancel(context.Background())
	storeDone := make(chan error, 1)
	go func() { storeDone <- c.store.Run(storeCtx) }()
	c.atClose(func() { stopStore(); <-storeDone })

	for _, g := range []struct {
		name, unit, desc string
		f                func() int64
	}{
		{"elevate.grants.live", "{grant}", "Grants live now, in this replica's view.", func() int64 { n, _ := c.store.Counts(); return int64(n) }},
		{"elevate.requests.pending", "{request}", "Requests waiting for a decision, in this replica's view.", func() int64 { _, n := c.store.Counts(); return int64(n) }},
		{"elevate.audit.queue", "{record}", "Audit records accepted and not yet durable.", func() int64 { return int64(c.audit.Stats().QueueDepth) }},
	} {
		if err := w.tel.Gauge(g.name, g.unit, g.desc, g.f); err != nil {
			return nil, err
		}
	}

	// Upstreams.
	var demo *proxy.Upstream
	if dev {
		demoLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		demoSrv := &http.Server{Handler: newDemoUpstream().handler(), ReadHeaderTimeout: 5 * time.Second}
		go demoSrv.Serve(demoLn)
		c.atClose(func() { _ = demoSrv.Close() })
		d := demoRoute("http://" + demoLn.Addr().String())
		demo = &d
	}
	pc := cfg.proxyConfig(demo)
	pc.Logger, pc.Bodies = log, c.engine

	// The gate, and the proxy in front of it.
	gateCfg := cfg.Proxy.Gate
	gateCfg.Verifier, gateCfg.Grants, gateCfg.Policy, gateCfg.Audit, gateCfg.Uses, gateCfg.Logger = verifier, c.store, c.engine, c.audit, c.store, log
	gateCfg.Digest = c.audit
	if c.gate, err = proxy.NewGate(gateCfg); err != nil {
		return nil, err
	}
	// Forward-mode HTTPS interception: the CA from config, or one kept in
	// the data dir.
	var ca tls.Certificate
	if cfg.Proxy.CACert != "" || cfg.Proxy.CAKey != "" {
		ca, err = proxy.LoadCA(cfg.Proxy.CACert, cfg.Proxy.CAKey)
	} else {
		ca, err = proxy.LoadOrCreateCA(cfg.DataDir)
	}
	if err != nil {
		return nil, err
	}
	pc.CA = &ca
	px, err := proxy.New(pc, c.gate)
	if err != nil {
		return nil, err
	}
	c.proxy = px

	// The web console calls the side API in process; it is built first
	// and reaches the API once both exist.
	var side *api.Server
	web, err := newConsole(cfg.Console, consoleDeps{dev: dev, devIssuer: devIssuer, controlURL: w.controlURL,
		api:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { side.ServeHTTP(w, r) }),
		verifier: verifier, catalog: c.engine, log: log})
	if err != nil {
		return nil, err
	}
	sc := cfg.API.Config
	sc.CACert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate[0]})
	sc.ProxyURL, sc.Upstreams = w.proxyURL, upstreamInfo(pc.Upstreams)
	sc.Verifier, sc.Store, sc.Catalog, sc.Resolver, sc.Gate, sc.Audit, sc.Notifier = verifier, c.store, c.engine, px, c.gate, c.audit, notifier
	sc.Ready = func() bool { return c.store.Ready() && c.stateLoaded.Load() && c.store.Fresh() }
	sc.Metrics, sc.Console, sc.Logger = w.tel.MetricsHandler(), web, log
	if side, err = api.New(sc); err != nil {
		return nil, err
	}
	c.control, c.console = side, web != nil
	return c, nil
}

// grantsConfig is the store's section (storeConfig) wired to the rest:
// expiries are swept by one elected replica and recorded here; their
// notifications wait in etcd until one replica has delivered them; every
// change of control settings or policies reaches the policy engine.
func (c *components) grantsConfig(ctx context.Context, cli *clientv3.Client, notifier *notify.Notifier) grants.Config {
	gc := c.cfg.storeConfig()
	gc.Client = cli
	gc.OnEvent = func(e grants.Event) {
		// The side API records and announces the changes its callers
		// make, with their trace; expiries and used-up grants happen
		// here, once, on the replica that swept them or spent a grant's
		// last use (after the record of the call that spent it).
		if e.Kind != grants.EventExpired && e.Kind != grants.EventUsedUp {
			return
		}
		event := auditEvents[e.Kind]
		rec := audit.Record{Kind: audit.KindLifecycle, Event: event, Time: e.At,
			Subject: e.By, Task: e.Request.Target, RequestID: e.Request.ID, PolicyID: e.Request.PolicyID,
			Comment: e.Comment, After: jsonOf(e.Request)}
		ectx, span := api.EventSpan(context.Background(), otel.Tracer("github.com/elevate-pam/elevate"), rec)
		rec, err := c.audit.Write(ectx, rec)
		span.End()
		if err != nil {
			c.log.Error("audit write failed", "event", event, "request", e.Request.ID, "err", err)
		}
		if !e.Outbox { // else Deliver below
			notifier.Notify(api.NotifyEvent(event, e.Request, "", e.By, e.Comment, rec.ID, rec.TraceID, e.At))
		}
	}
	gc.Deliver = func(ctx context.Context, e grants.Event) error {
		return notifier.Deliver(ctx, api.NotifyEvent(auditEvents[e.Kind], e.Request, "", e.By, e.Comment, "", "", e.At))
	}
	gc.OnState = func(ctl grants.Control, ps []grants.Policy) {
		if err := c.engine.SetState(ctx, proxy.PolicyState(ctl, ps)); err != nil {
			c.log.Error("policy state update failed", "err", err)
			c.stateLoaded.Store(false)
			return
		}
		c.stateLoaded.Store(true)
	}
	return gc
}

// reloadPolicy compiles the bundle of policy.dir, or of policy.dirs over
// the embedded one, again (at SIGHUP); a bundle that does not compile or
// fails its checks leaves the running one in place.
func (c *components) reloadPolicy(ctx context.Context) {
	dir := c.cfg.Policy.dirs()
	if dir == "" {
		c.log.Warn("SIGHUP: no policy.dir or policy.dirs configured; the embedded bundle stays")
		return
	}
	if err := c.engine.Reload(ctx, c.cfg.Policy.bundle()); err != nil {
		c.log.Error("policy reload refused; the running bundle stays", "dir", dir, "err", err)
		return
	}
	if _, err := c.audit.Write(ctx, audit.Record{Kind: audit.KindLifecycle, Event: audit.EventPolicyReloaded, Time: time.Now(), Comment: dir}); err != nil {
		c.log.Error("audit write failed", "event", audit.EventPolicyReloaded, "err", err)
	}
	c.log.Info("policy bundle reloaded", "dir", dir)
	logCacheable(c.log, c.engine)
}

// logCacheable says when the bundle's decisions cannot be cached, which
// costs a Rego evaluation on every call.
func logCacheable(log *slog.Logger, e *policy.Engine) {
	if ok, why := e.Cacheable(); !ok {
		log.Info("policy decisions are evaluated for every call", "why", why)
	}
	for _, w := range e.Warnings() {
		log.Warn("policy bundle", "warning", w)
	}
}

// devBodyKeyFile holds the key of body digests in --dev, in the data dir.
const devBodyKeyFile = "audit-body.key"

// auditEvents name in the audit log, and in notifications, the changes of
// a request that grants reports to OnEvent and Deliver.
var auditEvents = map[string]string{
	grants.EventSubmitted:  audit.EventRequestSubmitted,
	grants.EventApproved:   audit.EventRequestApproved,
	grants.EventDenied:     audit.EventRequestDenied,
	grants.EventRevoked:    audit.EventRequestRevoked,
	grants.EventExpired:    audit.EventRequestExpired,
	grants.EventUsedUp:     audit.EventRequestUsedUp,
	grants.EventBreakGlass: audit.EventRequestBreakGlass,
}

func jsonOf(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// demoRoute is the route to the demo Exchange API of --dev, served at
// url.
func demoRoute(url string) proxy.Upstream {
	return proxy.Upstream{Name: "exchange", URL: url, Prefix: "/exchange/", Hosts: []string{"exchange.elevate.test"}}
}

func upstreamInfo(ups []proxy.Upstream) []api.UpstreamInfo {
	out := make([]api.UpstreamInfo, 0, len(ups))
	for _, u := range ups {
		out = append(out, api.UpstreamInfo{Name: u.Name, Type: cmp.Or(u.Type, proxy.TypeHTTP), Prefix: u.Prefix, Hosts: u.Hosts})
	}
	return out
}
