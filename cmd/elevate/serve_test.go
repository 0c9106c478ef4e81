package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/telemetry"
)

// TestBuildServesNoListener: build wires the components of serve --dev
// without serving the proxy or control listener; its two handlers answer
// in process, a call through the proxy handler reaching the demo upstream.
func TestBuildServesNoListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The test holds the listeners' addresses: build would fail to bind them.
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	cfg, err := serveConfig(serveFlags{dev: true, dataDir: t.TempDir(), proxyAddr: addrs[0], controlAddr: addrs[1]})
	require.NoError(t, err)
	layer := t.TempDir() // a policy.dirs layer, empty at first
	cfg.Policy.Dirs = []string{layer}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tel, err := telemetry.Setup(ctx, telemetry.Config{Logger: log})
	require.NoError(t, err)
	defer func() { _ = tel.Shutdown(context.Background()) }()

	c, err := build(ctx, cfg, true, wiring{log: log, tel: tel, controlURL: "http://" + cfg.ControlAddr, proxyURL: "http://" + cfg.ProxyAddr})
	require.NoError(t, err)
	defer c.close()
	require.NoError(t, c.store.WaitReady(ctx))
	require.True(t, c.console)

	dev, err := identity.LoadDevIssuer(cfg.DataDir)
	require.NoError(t, err)
	tok, err := dev.Sign(identity.DevToken{Subject: "build-bob", TTL: time.Hour, Now: time.Now()})
	require.NoError(t, err)
	get := func(h http.Handler, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := get(c.control, "/v1/whoami")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"build-bob"`)
	require.Eventually(t, func() bool { return get(c.control, "/readyz").Code == http.StatusOK }, 10*time.Second, 10*time.Millisecond)
	rec = get(c.proxy, "/exchange/mailboxes")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	// In --dev, judged bodies are digested under a key kept in the data dir.
	st, err := os.Stat(filepath.Join(cfg.DataDir, devBodyKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.Len(t, c.audit.BodyHMAC([]byte("{}")), 64)

	// SIGHUP reads the policy.dirs layers again, over the embedded bundle.
	require.NoError(t, os.Mkdir(filepath.Join(layer, "catalog"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(layer, "catalog", "readers.rego"),
		[]byte(`package elevate.catalog

roles["Exchange\\Mailbox Readers"] := {"Exchange\\Get-Mailbox"}
`), 0o600))
	c.reloadPolicy(ctx)
	require.Equal(t, []string{`Exchange\Get-Mailbox`}, c.engine.Catalog().Roles[`Exchange\Mailbox Readers`])
	require.Contains(t, c.engine.Catalog().Roles, `Exchange\Mailbox Import Export`, "the embedded catalogs stay")
}
