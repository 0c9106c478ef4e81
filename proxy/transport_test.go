package proxy

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/stretchr/testify/require"
)

// TestUpstreamTransport: New gives each route the one upstream transport,
// trusting the route's ca_file (else the system roots), never a proxy named
// by the environment, and waiting at most upstream_timeout for an answer's
// headers.
func TestUpstreamTransport(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	stuck := make(chan struct{})
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stuck" {
			select {
			case <-stuck:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	up.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	up.StartTLS()
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(stuck) })
	caFile := filepath.Join(t.TempDir(), "upstream-ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600))

	p, err := New(Config{Upstreams: []Upstream{
		{Name: "own-ca", URL: up.URL, Prefix: "/own/", CAFile: caFile},
		{Name: "system-roots", URL: up.URL, Prefix: "/system/"},
	}, UpstreamTimeout: 200 * time.Millisecond}, &Gate{})
	require.NoError(t, err)
	require.Nil(t, p.gp.Tr.Proxy, "the engine's own transport never follows the environment's proxy either")
	send := func(route, path string) (*http.Response, error) {
		t.Helper()
		for _, rt := range p.routes {
			if rt.Name == route {
				// A bound well past upstream_timeout, so that a wait without
				// one fails instead of hanging.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t.Cleanup(cancel)
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, up.URL+path, nil)
				require.NoError(t, err)
				return rt.roundTripper.RoundTrip(req, &goproxy.ProxyCtx{})
			}
		}
		t.Fatalf("no route %s", route)
		return nil, nil
	}

	resp, err := send("own-ca", "/x")
	require.NoError(t, err, "ca_file is trusted, and the environment's proxy is not used")
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	_, err = send("system-roots", "/x")
	require.ErrorContains(t, err, "certificate", "without ca_file only the system roots are trusted")

	_, err = send("own-ca", "/stuck")
	require.ErrorContains(t, err, "timeout awaiting response headers", "upstream_timeout bounds the wait for headers")
}

// TestNewRefusesBadConfig: New builds the routes once and refuses what
// Validate refuses, naming the key.
func TestNewRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		key string
	}{
		{Config{}, "upstreams:"},
		{Config{Upstreams: []Upstream{{Name: "a", URL: "ftp://a", Prefix: "/a/"}}}, "upstreams[0].url:"},
		{Config{Upstreams: []Upstream{{Name: "a", URL: "http://a", Prefix: "/a/"}}, UpstreamTimeout: -1}, "proxy.upstream_timeout:"},
		{Config{Upstreams: []Upstream{{Name: "a", URL: "http://a", Prefix: "/a/", CAFile: filepath.Join(t.TempDir(), "none.pem")}}}, "upstreams[0].ca_file:"},
	} {
		require.ErrorContains(t, tc.cfg.Validate(), tc.key)
		_, err := New(tc.cfg, &Gate{})
		require.ErrorContains(t, err, tc.key)
	}
	_, err := New(Config{Upstreams: []Upstream{{Name: "a", URL: "http://a", Prefix: "/a/"}}}, nil)
	require.ErrorContains(t, err, "a gate is required")
}
