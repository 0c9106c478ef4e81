package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// upstreamBody is what the tiny upstream answers to every call.
var upstreamBody = []byte(`{"ok":true}` + "\n")

// upstreamHandler is the tiny upstream: it reads the request body and
// answers 200 with a few bytes at once.
func upstreamHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(upstreamBody)
	})
}

func upstreamCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serveUntil(ctx, *addr, upstreamHandler())
}

// revproxyHandler is the Go floor: net/http/httputil.ReverseProxy with no
// checks, its connections to the upstream pooled.
func revproxyHandler(target *url.URL) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return rp
}

func revproxyCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("revproxy", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	target := fs.String("target", "", "upstream base URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("revproxy: --target %q is not a URL", *target)
	}
	return serveUntil(ctx, *addr, revproxyHandler(u))
}

// otlpSink receives OTLP/HTTP exports and discards them, counting requests
// and bytes; GET /stats reports the counts.
type otlpSink struct {
	traceRequests, traceBytes   atomic.Int64
	metricRequests, metricBytes atomic.Int64
}

// sinkStats is the body of the sink's GET /stats.
type sinkStats struct {
	TraceRequests  int64 `json:"trace_requests"`
	TraceBytes     int64 `json:"trace_bytes"`
	MetricRequests int64 `json:"metric_requests"`
	MetricBytes    int64 `json:"metric_bytes"`
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/stats":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(sinkStats{
			TraceRequests: s.traceRequests.Load(), TraceBytes: s.traceBytes.Load(),
			MetricRequests: s.metricRequests.Load(), MetricBytes: s.metricBytes.Load(),
		})
		return
	case r.Method != http.MethodPost:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	n, _ := io.Copy(io.Discard, r.Body)
	switch r.URL.Path {
	case "/v1/traces":
		s.traceRequests.Add(1)
		s.traceBytes.Add(n)
	case "/v1/metrics":
		s.metricRequests.Add(1)
		s.metricBytes.Add(n)
	}
	// An empty body is an empty Export*ServiceResponse: all accepted.
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func otlpCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("otlp", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serveUntil(ctx, *addr, &otlpSink{})
}

// serveUntil serves h on addr until ctx ends.
func serveUntil(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// etcdCmd runs a one-member etcd with its data in --dir, fsync on, as
// elevate's dev mode does, until ctx ends.
func etcdCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	addr := fs.String("addr", "", "client listen address host:port")
	peer := fs.String("peer", "", "peer listen address host:port")
	dir := fs.String("dir", "", "data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" || *peer == "" || *dir == "" {
		return errors.New("etcd: --addr, --peer and --dir are required")
	}
	cfg := embed.NewConfig()
	cfg.Name = "bench"
	cfg.Dir = *dir
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	client := url.URL{Scheme: "http", Host: *addr}
	peerURL := url.URL{Scheme: "http", Host: *peer}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// One member: elect at once, as elevate's embedded etcd does.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-time.After(30 * time.Second):
		return errors.New("etcd: not ready after 30s")
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-e.Err():
		return fmt.Errorf("etcd: %w", err)
	case <-ctx.Done():
		return nil
	}
}
