package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"go.opentelemetry.io/otel"

	"go.opentelemetry.io/otel/metric"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/certs"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/notify"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/api"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/telemetry"
)

type serveFlags struct {
	config      string
	dev         bool
	dataDir     string
	proxyAddr   string
	controlAddr string
}

func serveCmd() *cobra.Command {
	var f serveFlags
	c := &cobra.Command{
		Use:   "serve [--config FILE] [--dev] [--data-dir DIR]",
		Short: "Run the proxy and control listeners",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return serve(ctx, f, cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&f.config, "config", "", "YAML configuration file")
	c.Flags().BoolVar(&f.dev, "dev", false, "development mode: embedded etcd, dev token issuer, demo upstream")
	c.Flags().StringVar(&f.dataDir, "data-dir", "", "data directory (default: the config file's data_dir, else env ELEVATE_DATA_DIR, else ./.elevate)")
	c.Flags().StringVar(&f.proxyAddr, "proxy-addr", "", "proxy listener address (default 127.0.0.1:8080)")
	c.Flags().StringVar(&f.controlAddr, "control-addr", "", "control listener address (default 127.0.0.1:8081)")
	return c
}

// serve runs until ctx ends, then shuts down in order: listeners first (so
// no call is judged against a closing store), then the store, then the
// audit log, then embedded etcd.
func serve(ctx context.Context, f serveFlags, out io.Writer) error {
	started := time.Now()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var cfg Config
	if f.config != "" {
		var err error
		if cfg, err = loadConfig(f.config); err != nil {
			return err
		}
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	} else if cfg.DataDir == "" {
		cfg.DataDir = os.Getenv("ELEVATE_DATA_DIR") // below the file, which is explicit
	}
	if f.proxyAddr != "" {
		cfg.ProxyAddr = f.proxyAddr
	}
	if f.controlAddr != "" {
		cfg.ControlAddr = f.controlAddr
	}
	cfg.defaults(f.dev)
	if err := cfg.validate(f.dev); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}

	cfg.Telemetry.Logger = log
	tel, err := telemetry.Setup(ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	meter := otel.Meter(telemetry.MeterName)
	fsyncs, err := meter.Float64Histogram("elevate.audit.fsync.duration", metric.WithUnit("s"),
		metric.WithDescription("Time each fsync of the audit log took; concurrent records share one."))
	if err != nil {
		return err
	}

	// Listeners first: a taken port is the most common start-up mistake.
	proxyLn, err := net.Listen("tcp", cfg.ProxyAddr)
	if err != nil {
		return fmt.Errorf("proxy_addr: %w", err)
	}
	defer proxyLn.Close()
	controlLn, err := net.Listen("tcp", cfg.ControlAddr)
	if err != nil {
		return fmt.Errorf("control_addr: %w", err)
	}
	defer controlLn.Close()
	// Then the certificates, before waiting for anything.
	proxyCerts, err := listenerCerts("proxy", cfg.Proxy.ListenerConfig, log)
	if err != nil {
		return err
	}
	controlCerts, err := listenerCerts("api", cfg.API.ListenerConfig, log)
	if err != nil {
		return err
	}
	// The control listener answers from the start: /healthz 200, /readyz
	// and everything else 503 until the side API takes over below, so that
	// probes and load balancers get an answer while etcd is awaited.
	control := &startingHandler{}
	controlSrv := newServer(cfg.API.ListenerConfig, controlCerts, control, log)
	defer controlSrv.Close()
	errc := make(chan error, 2)
	go func() { errc <- serveOn(controlSrv, controlLn) }()

	// Live state.
	endpoints := cfg.Etcd.Endpoints
	if f.dev && len(endpoints) == 0 {
		e, url, err := startEmbeddedEtcd(ctx, cfg.DataDir, cfg.Etcd.StartTimeout)
		if err != nil {
			return err
		}
		defer e.Close()
		endpoints = []string{url}
	}
	cli, err := connectEtcd(ctx, cfg.Etcd, endpoints, log)
	if err != nil {
		return err
	}
	defer cli.Close()

	// Identity.
	var devIssuer *identity.DevIssuer
	var devIs *identity.Issuer
	if f.dev {
		if devIssuer, err = identity.LoadOrCreateDevIssuer(cfg.DataDir); err != nil {
			return err
		}
		is := devIssuer.Issuer()
		devIs = &is
	}
	verifier, err := identity.New(ctx, cfg.identityConfig(devIs))
	if err != nil {
		return err
	}

	// Policy.
	engine, err := policy.New(ctx, cfg.policyConfig())
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	logCacheable(log, engine)

	// Audit.
	ac := cfg.Audit
	ac.OnFsync = func(d time.Duration) { fsyncs.Record(context.Background(), d.Seconds()) }
	auditLog, err := audit.Open(ac)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer auditLog.Close()

	// Notifications: never block a decision.
	cfg.Notify.Logger = log
	notifier, err := notify.New(cfg.Notify)
	if err != nil {
		return err
	}
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	notifyDone := make(chan struct{})
	go func() { notifier.Run(notifyCtx); close(notifyDone) }()
	defer func() { stopNotify(); <-notifyDone }()

	// Grants, watched into memory; Rego sees control settings and policies.
	// Expiries are swept by one elected replica and recorded here; their
	// notifications wait in etcd until one replica has delivered them.
	var stateLoaded atomic.Bool
	gc := cfg.storeConfig()
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
		rec, err := auditLog.Write(ectx, rec)
		span.End()
		if err != nil {
			log.Error("audit write failed", "event", event, "request", e.Request.ID, "err", err)
		}
		if !e.Outbox { // else Deliver below
			notifier.Notify(api.NotifyEvent(event, e.Request, "", e.By, e.Comment, rec.ID, rec.TraceID, e.At))
		}
	}
	gc.Deliver = func(ctx context.Context, e grants.Event) error {
		return notifier.Deliver(ctx, api.NotifyEvent(auditEvents[e.Kind], e.Request, "", e.By, e.Comment, "", "", e.At))
	}
	gc.OnState = func(c grants.Control, ps []grants.Policy) {
		if err := engine.SetState(ctx, policyState(c, ps)); err != nil {
			log.Error("policy state update failed", "err", err)
			stateLoaded.Store(false)
			return
		}
		stateLoaded.Store(true)
	}
	store, err := grants.New(gc)
	if err != nil {
		return err
	}
	storeCtx, stopStore := context.WithCancel(context.Background())
	storeDone := make(chan error, 1)
	go func() { storeDone <- store.Run(storeCtx) }()
	defer func() { stopStore(); <-storeDone }()

	for _, g := range []struct {
		name, unit, desc string
		f                func() int64
	}{
		{"elevate.grants.live", "{grant}", "Grants live now, in this replica's view.", func() int64 { n, _ := store.Counts(); return int64(n) }},
		{"elevate.requests.pending", "{request}", "Requests waiting for a decision, in this replica's view.", func() int64 { _, n := store.Counts(); return int64(n) }},
		{"elevate.audit.queue", "{record}", "Audit records accepted and not yet durable.", func() int64 { return int64(auditLog.Stats().QueueDepth) }},
	} {
		if err := tel.Gauge(g.name, g.unit, g.desc, g.f); err != nil {
			return err
		}
	}

	// Upstreams.
	var demo *proxy.Upstream
	if f.dev {
		demoLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		demoSrv := &http.Server{Handler: newDemoUpstream().handler(), ReadHeaderTimeout: 5 * time.Second}
		go demoSrv.Serve(demoLn)
		defer demoSrv.Close()
		d := demoRoute("http://" + demoLn.Addr().String())
		demo = &d
	}
	pc := cfg.proxyConfig(demo)
	pc.Logger = log
	ups := pc.Upstreams

	gateCfg := cfg.Proxy.Gate
	gateCfg.Verifier, gateCfg.Grants, gateCfg.Policy, gateCfg.Audit, gateCfg.Uses, gateCfg.Logger = verifier, store, engine, auditLog, store, log
	gate, err := proxy.NewGate(gateCfg)
	if err != nil {
		return err
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
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate[0]})
	pc.CA = &ca
	px, err := proxy.New(pc, gate)
	if err != nil {
		return err
	}
	// The web console calls the side API in process; it is built first
	// and reaches the API once both exist.
	var side *api.Server
	controlURL := "http://" + controlLn.Addr().String()
	if controlCerts != nil {
		controlURL = "https://" + controlLn.Addr().String()
	}
	web, err := newConsole(cfg.Console, consoleDeps{dev: f.dev, devIssuer: devIssuer, controlURL: controlURL,
		api:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { side.ServeHTTP(w, r) }),
		verifier: verifier, catalog: engine, log: log})
	if err != nil {
		return err
	}
	sc := cfg.API.Config
	sc.CACert, sc.ProxyURL, sc.Upstreams = caPEM, publicURL(cfg, proxyLn), upstreamInfo(ups)
	sc.Verifier, sc.Store, sc.Catalog, sc.Resolver, sc.Gate, sc.Audit, sc.Notifier = verifier, store, engine, px, gate, auditLog, notifier
	sc.Ready = func() bool { return store.Ready() && stateLoaded.Load() && store.Fresh() }
	sc.Metrics, sc.Console, sc.Logger = tel.MetricsHandler(), web, log
	side, err = api.New(sc)
	if err != nil {
		return err
	}

	proxySrv := newServer(cfg.Proxy.ListenerConfig, proxyCerts, px, log)
	control.set(side)

	// The proxy serves only after the first full sync and policy load.
	readyCtx, cancel := context.WithTimeout(ctx, cfg.Etcd.StartTimeout)
	err = store.WaitReady(readyCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("etcd: first sync did not finish: %w", err)
	}
	go func() { errc <- serveOn(proxySrv, proxyLn) }()

	log.Info("elevate ready", "proxy", proxyLn.Addr().String(), "control", controlLn.Addr().String(),
		"startup", time.Since(started).Round(time.Millisecond).String())
	if f.dev {
		printTour(out, cfg, baseURL(proxySrv, proxyLn), baseURL(controlSrv, controlLn), web != nil)
	}

	// SIGHUP reads the listeners' certificate files again and reloads the
	// policy bundle from policy.dir; a pair that does not load, or a bundle
	// that does not compile or fails its checks, leaves the running one in
	// place.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			for _, r := range []*certs.Reloader{proxyCerts, controlCerts} {
				if r != nil {
					_ = r.Reload() // failures are logged by the reloader
				}
			}
			if cfg.Policy.Dir == "" {
				log.Warn("SIGHUP: no policy.dir configured; the embedded bundle stays")
				continue
			}
			if err := engine.Reload(ctx, os.DirFS(cfg.Policy.Dir)); err != nil {
				log.Error("policy reload refused; the running bundle stays", "dir", cfg.Policy.Dir, "err", err)
				continue
			}
			if _, err := auditLog.Write(ctx, audit.Record{Kind: audit.KindLifecycle, Event: audit.EventPolicyReloaded, Time: time.Now(), Comment: cfg.Policy.Dir}); err != nil {
				log.Error("audit write failed", "event", audit.EventPolicyReloaded, "err", err)
			}
			log.Info("policy bundle reloaded", "dir", cfg.Policy.Dir)
			logCacheable(log, engine)
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			break wait
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = proxySrv.Shutdown(sctx)
	_ = controlSrv.Shutdown(sctx)
	gate.Drain() // outcome records reach the log before it closes
	return nil
}

// startingHandler serves the control listener while elevate starts, then
// hands every call to the handler set with set.
type startingHandler struct {
	h atomic.Pointer[http.Handler]
}

func (s *startingHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *startingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/healthz" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"starting"}`+"\n")
		return
	}
	proxy.NewProblem(http.StatusServiceUnavailable, "not-ready", "elevate is starting: waiting for etcd").Write(w)
}

// logCacheable says when the bundle's decisions cannot be cached, which
// costs a Rego evaluation on every call.
func logCacheable(log *slog.Logger, e *policy.Engine) {
	if ok, why := e.Cacheable(); !ok {
		log.Info("policy decisions are evaluated for every call", "why", why)
	}
}

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

func policyState(c grants.Control, ps []grants.Policy) policy.State {
	st := policy.State{Control: policy.Control{Enabled: c.Enabled, DefaultApprovers: c.DefaultApprovers, SystemAccounts: c.SystemAccounts}}
	for _, p := range ps {
		st.Policies = append(st.Policies, policy.ApprovalPolicy{ID: p.ID, Scope: string(p.Scope), Target: p.Target, Approval: p.Approval, Approvers: p.Approvers})
	}
	return st
}

// printTour shows a new user the way from a refused call to an approved one.
func printTour(w io.Writer, cfg Config, proxyURL, controlURL string, web bool) {
	dd := cfg.DataDir
	if abs, err := filepath.Abs(dd); err == nil {
		dd = abs
	}
	// The commands work pasted in any directory: the environment names
	// this binary's directory, the server and the data directory.
	bin := "$PWD/bin"
	if exe, err := os.Executable(); err == nil {
		bin = shellQuote(filepath.Dir(exe))
	}
	webLine := ""
	if web {
		webLine = fmt.Sprintf("  console  %s/   (web console: sign in as ada, bob or eve)\n", controlURL)
	}
	fmt.Fprintf(w, `
elevate is running in dev mode.
  proxy    %[1]s   (demo Exchange API under /exchange/)
  control  %[2]s   (side API under /v1/)
%[4]s  data     %[3]s   (embedded etcd, dev issuer key, audit.log)

Try it (Microsoft 365 PAM's four steps) in another terminal, from any directory:
  export PATH=%[5]s:"$PATH" ELEVATE_SERVER=%[2]s ELEVATE_DATA_DIR=%[6]s
  ADMIN=$(elevate token --sub ada --groups admins,approvers)
  BOB=$(elevate token --sub bob)
  elevate --token "$ADMIN" control enable --approvers approvers                        # 1-2
  elevate --token "$ADMIN" policy new --task 'Exchange\New-MoveRequest' --approval manual  # 3
  curl -s -X POST -H "Authorization: Bearer $BOB" %[1]s/exchange/mailboxes/alice/move-requests  # 403
  ID=$(elevate --token "$BOB" request new --task 'Exchange\New-MoveRequest' --reason 'move alice' --duration 2m -q)
  elevate --token "$ADMIN" request approve "$ID" --comment ok                          # 4
  curl -s -X POST -H "Authorization: Bearer $BOB" %[1]s/exchange/mailboxes/alice/move-requests  # 201
The README walks through it step by step.

`, proxyURL, controlURL, dd, webLine, bin, shellQuote(dd))
}

// shellQuote quotes s for a POSIX shell, unless it needs no quotes.
func shellQuote(s string) string {
	if plainWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// demoRoute is the route to the demo Exchange API of --dev, served at
// url.
func demoRoute(url string) proxy.Upstream {
	return proxy.Upstream{Name: "exchange", URL: url, Prefix: "/exchange/", Hosts: []string{"exchange.elevate.test"}}
}

// publicURL is where callers reach the proxy listener.
func publicURL(cfg Config, ln net.Listener) string {
	if cfg.Proxy.PublicURL != "" {
		return strings.TrimSuffix(cfg.Proxy.PublicURL, "/")
	}
	if cfg.Proxy.TLSCertFile != "" {
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

// listenerCerts loads a listener's certificate files; nil without TLS.
func listenerCerts(section string, l ListenerConfig, log *slog.Logger) (*certs.Reloader, error) {
	if l.TLSCertFile == "" {
		return nil, nil
	}
	r, err := certs.New(certs.Config{CertFile: l.TLSCertFile, KeyFile: l.TLSKeyFile, Logger: log.With("listener", section)})
	if err != nil {
		return nil, fmt.Errorf("%[1]s.tls_cert_file, %[1]s.tls_key_file: %[2]w", section, err)
	}
	return r, nil
}

// newServer builds the server of one listener: its timeouts, HTTP/1.1 only
// (no h2 or h2c to judge), and TLS from its certificates when it has them.
func newServer(l ListenerConfig, r *certs.Reloader, h http.Handler, log *slog.Logger) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{Handler: h, Protocols: &protocols,
		ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout, IdleTimeout: l.IdleTimeout,
		MaxHeaderBytes: proxy.MaxHeaderBytes, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// "OPTIONS *" reaches the handler, which refuses it, instead of
		// being answered by net/http.
		DisableGeneralOptionsHandler: true}
	if r != nil {
		srv.TLSConfig = r.TLSConfig()
	}
	return srv
}

// serveOn serves ln, in TLS when the server has a TLS configuration.
func serveOn(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// baseURL is how a caller on this host reaches ln.
func baseURL(srv *http.Server, ln net.Listener) string {
	if srv.TLSConfig != nil {
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

func upstreamInfo(ups []proxy.Upstream) []api.UpstreamInfo {
	out := make([]api.UpstreamInfo, 0, len(ups))
	for _, u := range ups {
		out = append(out, api.UpstreamInfo{Name: u.Name, Prefix: u.Prefix, Hosts: u.Hosts})
	}
	return out
}
