package test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// forwardClient uses elevate as its proxy for every URL, trusting the CA
// that `elevate ca` prints, with the token as the proxy password.
func forwardClient(t *testing.T, s *server, token string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(s.ok("", "ca"))))
	pu := &url.URL{Scheme: "http", Host: s.proxyAddr}
	if token != "" {
		pu.User = url.UserPassword("bob", token)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:           http.ProxyURL(pu),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
}

func TestCredentialBrokering(t *testing.T) {
	s, rc, up := startBrokered(t)
	bob := s.token("--sub", "bob")
	injected := "Basic " + base64.StdEncoding.EncodeToString([]byte("elevate-svc:s3cret"))
	upHost := strings.TrimPrefix(up.URL, "http://")

	t.Run("reverse mode", func(t *testing.T) {
		rep := do(t, "GET", "http://"+s.proxyAddr+"/rmq/api/overview?access_token=caller-secret&columns=x", bob, "",
			"Cookie", "session=caller", "Origin", "http://"+s.proxyAddr)
		require.Equal(t, http.StatusOK, rep.status, string(rep.body))
		r := rc.got()
		require.Equal(t, injected, r.Header.Get("Authorization"), "elevate's credential, not the caller's token")
		require.Empty(t, r.Header.Get("Cookie"))
		require.Equal(t, "columns=x", r.URL.RawQuery, "credential parameters are removed")
		require.Equal(t, upHost, r.Host, "the upstream sees its own Host")
		require.Equal(t, up.URL, r.Header.Get("Origin"), "and its own Origin")
		require.Equal(t, "/api/overview", r.URL.Path)
	})

	t.Run("token as the Basic password", func(t *testing.T) {
		rep := do(t, "GET", "http://"+s.proxyAddr+"/rmq/api/overview", "", "",
			"Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("bob:"+bob)))
		require.Equal(t, http.StatusOK, rep.status, string(rep.body))
		require.Equal(t, injected, rc.got().Header.Get("Authorization"))
		rep = do(t, "GET", "http://"+s.proxyAddr+"/rmq/api/overview", "", "",
			"Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("bob:guest")))
		require.Equal(t, http.StatusUnauthorized, rep.status)
	})

	t.Run("forward mode HTTPS", func(t *testing.T) {
		cl := forwardClient(t, s, bob)
		req, _ := http.NewRequest("GET", "https://rabbitmq.elevate.test/api/overview", nil)
		req.SetBasicAuth("guest", "guest")
		resp, err := cl.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		r := rc.got()
		require.Equal(t, injected, r.Header.Get("Authorization"), "the caller's own credential is replaced")
		require.Empty(t, r.Header.Get("Proxy-Authorization"))
		require.Equal(t, "https", r.Header.Get("X-Forwarded-Proto"))

		// Plain HTTP in absolute form through the same proxy.
		resp, err = cl.Get("http://exchange.elevate.test/mailboxes")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("forward mode gates privileged calls", func(t *testing.T) {
		admin := s.token("--sub", "ada", "--groups", "admins,approvers")
		s.ok(admin, "control", "enable", "--approvers", "approvers")
		s.ok(admin, "policy", "new", "--task", `RabbitMQ\New-User`, "--approval", "manual")
		cl := forwardClient(t, s, bob)
		require.Eventually(t, func() bool {
			req, _ := http.NewRequest("PUT", "https://rabbitmq.elevate.test/api/users/carol", strings.NewReader(`{"password":"x","tags":""}`))
			resp, err := cl.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusForbidden
		}, 3*time.Second, 20*time.Millisecond)
		s.ok(admin, "control", "disable")
	})

	t.Run("no token: 407", func(t *testing.T) {
		status := rawRequest(t, s.proxyAddr, "CONNECT rabbitmq.elevate.test:443 HTTP/1.1\r\nHost: rabbitmq.elevate.test:443\r\n\r\n")
		require.True(t, strings.HasPrefix(status, "HTTP/1.1 407"), status)
		resp, err := forwardClient(t, s, "").Get("http://exchange.elevate.test/mailboxes")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusProxyAuthRequired, resp.StatusCode)
		require.Contains(t, resp.Header.Values("Proxy-Authenticate"), `Bearer realm="elevate"`)
	})

	t.Run("never an open proxy", func(t *testing.T) {
		auth := "Proxy-Authorization: Bearer " + bob + "\r\n"
		status := rawRequest(t, s.proxyAddr, "CONNECT example.invalid:443 HTTP/1.1\r\nHost: example.invalid:443\r\n"+auth+"\r\n")
		require.True(t, strings.HasPrefix(status, "HTTP/1.1 403"), status)
		status = rawRequest(t, s.proxyAddr, "GET http://elsewhere.invalid/ HTTP/1.1\r\nHost: elsewhere.invalid\r\n"+auth+"\r\n")
		require.True(t, strings.HasPrefix(status, "HTTP/1.1 403"), status)
		status = rawRequest(t, s.proxyAddr, "GET https://rabbitmq.elevate.test/api/overview HTTP/1.1\r\nHost: rabbitmq.elevate.test\r\n"+auth+"\r\n")
		require.True(t, strings.HasPrefix(status, "HTTP/1.1 400"), "https without CONNECT: %s", status)
		hosts := map[string]bool{}
		for _, rec := range s.auditRecords() {
			if rec["event"] == "denied" {
				h, _ := rec["host"].(string)
				hosts[h] = true
			}
		}
		require.True(t, hosts["example.invalid"], "CONNECT refusal audited")
		require.True(t, hosts["elsewhere.invalid"], "absolute-URI refusal audited")
	})

	t.Run("oversized headers", func(t *testing.T) {
		rep := do(t, "GET", "http://"+s.proxyAddr+"/rmq/api/overview", bob, "", "X-Padding", strings.Repeat("a", 66<<10))
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, rep.status)
		rep = do(t, "GET", "http://"+s.proxyAddr+"/rmq/api/overview", bob, "", "X-Padding", strings.Repeat("a", 1<<20))
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, rep.status)
	})

	t.Run("a tunnel serves its own host only", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", s.proxyAddr, 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT rabbitmq.elevate.test:443 HTTP/1.1\r\nHost: rabbitmq.elevate.test:443\r\nProxy-Authorization: Bearer %s\r\n\r\n", bob)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM([]byte(s.ok("", "ca"))))
		tc := tls.Client(c, &tls.Config{ServerName: "rabbitmq.elevate.test", RootCAs: pool})
		require.NoError(t, tc.Handshake(), "the leaf certificate is signed by elevate's CA for the host")
		fmt.Fprintf(tc, "GET /mailboxes HTTP/1.1\r\nHost: exchange.elevate.test\r\n\r\n")
		resp, err = http.ReadResponse(bufio.NewReader(tc), nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	})
}

// TestUpstreamTLS: upstream certificates are verified, against the system
// roots or the route's ca_file.
func TestUpstreamTLS(t *testing.T) {
	up := httptest.NewTLSServer(&recorder{})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "upstream-ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o644))
	cfg := filepath.Join(dir, "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`upstreams:
  - name: rabbitmq
    url: %s
    prefix: /trusted/
    ca_file: %s
  - name: caddy
    url: %s
    prefix: /untrusted/
`, up.URL, caFile, up.URL)), 0o600))
	s := startDev(t, "--config", cfg)
	bob := s.token("--sub", "bob")
	rep := do(t, "GET", "http://"+s.proxyAddr+"/trusted/api/overview", bob, "")
	require.Equal(t, http.StatusOK, rep.status, string(rep.body))
	rep = do(t, "GET", "http://"+s.proxyAddr+"/untrusted/config/", bob, "")
	require.Equal(t, http.StatusBadGateway, rep.status, "an unverifiable upstream certificate is never accepted")
	require.Contains(t, string(rep.body), "upstream-unreachable")
}
