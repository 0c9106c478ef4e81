package main

import (
	"context"
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

	"github.com/elevate-pam/elevate/certs"
	"github.com/elevate-pam/elevate/proxy"
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
			return serve(ctx, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	c.Flags().StringVar(&f.config, "config", "", "YAML configuration file")
	c.Flags().BoolVar(&f.dev, "dev", false, "development mode: embedded etcd, dev token issuer, demo upstream")
	c.Flags().StringVar(&f.dataDir, "data-dir", "", "data directory (default: the config file's data_dir, else env ELEVATE_DATA_DIR, else ./.elevate)")
	c.Flags().StringVar(&f.proxyAddr, "proxy-addr", "", "proxy listener address (default 127.0.0.1:8080)")
	c.Flags().StringVar(&f.controlAddr, "control-addr", "", "control listener address (default 127.0.0.1:8081)")
	return c
}

// serve runs elevate serve: the configuration from the flags, the file and
// the environment, then runServer until ctx ends.
func serve(ctx context.Context, f serveFlags, out, logTo io.Writer) error {
	started := time.Now()
	cfg, err := serveConfig(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	return runServer(ctx, cfg, f.dev, started, out, logTo)
}

// serveConfig is the configuration serve runs with: the file's, then the
// flags over it, the data directory from --data-dir, else the file, else
// ELEVATE_DATA_DIR; defaults filled in and validated.
func serveConfig(f serveFlags) (Config, error) {
	var cfg Config
	if f.config != "" {
		var err error
		if cfg, err = loadConfig(f.config); err != nil {
			return cfg, err
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
	return cfg, cfg.validate(f.dev)
}

// runServer binds the two listeners, builds the components behind them,
// serves until ctx ends, then shuts down in order: listeners first (so no
// call is judged against a closing store), then the components (the store,
// the audit log, then embedded etcd).
func runServer(ctx context.Context, cfg Config, dev bool, started time.Time, out, logTo io.Writer) error {
	log := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelInfo}))
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

	c, err := build(ctx, cfg, dev, wiring{log: log, tel: tel,
		controlURL: baseURL(controlSrv, controlLn), proxyURL: publicURL(cfg, proxyLn)})
	if err != nil {
		return err
	}
	defer c.close()
	proxySrv := newServer(cfg.Proxy.ListenerConfig, proxyCerts, c.proxy, log)
	control.set(c.control)

	// The proxy serves only after the first full sync and policy load.
	readyCtx, cancel := context.WithTimeout(ctx, cfg.Etcd.StartTimeout)
	err = c.store.WaitReady(readyCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("etcd: first sync did not finish: %w", err)
	}
	go func() { errc <- serveOn(proxySrv, proxyLn) }()

	log.Info("elevate ready", "proxy", proxyLn.Addr().String(), "control", controlLn.Addr().String(),
		"startup", time.Since(started).Round(time.Millisecond).String())
	if dev {
		printTour(out, cfg, baseURL(proxySrv, proxyLn), baseURL(controlSrv, controlLn), c.console)
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
			c.reloadPolicy(ctx)
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
	c.gate.Drain() // outcome records reach the log before it closes
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
