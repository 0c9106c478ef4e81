// Threats proved mitigated here:
//   - a network attacker reads or alters calls, tokens and decisions on the
//     wire: both listeners serve TLS 1.2 or later from certificate files
//     (TestTLSListeners/both-listeners-serve-their-certificate,
//     TestTLSListeners/old-protocol-versions-refused), and plain HTTP to a
//     TLS listener never reaches a handler (TestTLSListeners/plain-http-refused);
//   - an operator's certificate renewal needs a restart, or a bad renewal
//     takes the service down: renewed files are served without a restart,
//     and a broken pair leaves the running certificate in place
//     (TestTLSListeners/renewed-files-picked-up,
//     TestTLSListeners/broken-replacement-keeps-the-old-certificate);
//   - a client that opens a TLS connection and sends nothing holds it
//     forever (TestTLSListeners/silent-handshake-cut-off);
//   - an operator's broken certificate files at start: elevate does not
//     start, and says which keys (TestTLSBadFilesAtStart);
//   - a network attacker or another tenant of the etcd cluster reads or
//     rewrites grants: elevate speaks TLS to etcd, verifies its server
//     certificate, authenticates with a client certificate
//     (TestEtcdTLS) or a user and password (TestEtcdPassword), and does
//     not start, with one line naming etcd, when etcd refuses it.
package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/elevate-pam/elevate/internal/etcdtest"
)

// pki is a certificate authority the test owns.
type pki struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemFile string
	serial  atomic.Int64
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &pki{cert: cert, key: k, pemFile: filepath.Join(t.TempDir(), name+".pem")}
	p.serial.Store(1000)
	require.NoError(t, os.WriteFile(p.pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return p
}

// issue signs a certificate for loopback with the given serial (0: the
// next one), for servers and clients alike, named cn.
func (p *pki) issue(t *testing.T, cn string, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	if serial == 0 {
		serial = p.serial.Add(1)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &k.PublicKey, p.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// writeFile replaces path the way renewal tools do: a new file renamed
// over the old one.
func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path+".new", b, 0o600))
	require.NoError(t, os.Rename(path+".new", path))
}

// pairFiles issues a pair and writes it to dir/name.crt and dir/name.key.
func (p *pki) pairFiles(t *testing.T, dir, name string, serial int64) (certFile, keyFile string) {
	t.Helper()
	c, k := p.issue(t, name, serial)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFile(t, certFile, c)
	writeFile(t, keyFile, k)
	return certFile, keyFile
}

func (p *pki) pool(t *testing.T, more ...[]byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	for _, b := range more {
		require.True(t, pool.AppendCertsFromPEM(b))
	}
	return pool
}

// servedSerial completes a fresh handshake with addr and returns the
// serial of the certificate it presented.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) (int64, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// startTLSDev runs `elevate serve --dev` with the given configuration file
// and waits until the control listener answers /readyz over TLS. A port
// taken by another process between choosing and binding it is chosen again.
func startTLSDev(t *testing.T, config string, pool *x509.CertPool) *server {
	t.Helper()
	dataDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(config), 0o600))
	return retryPortClash(t, func(int) (*server, error) { return tryTLSDev(t, dataDir, cfg, pool) })
}

func tryTLSDev(t *testing.T, dataDir, cfg string, pool *x509.CertPool) (*server, error) {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, proxyAddr: freeAddr(t), controlAddr: freeAddr(t)}
	if err := s.launch("serve", "--dev", "--config", cfg, "--data-dir", dataDir,
		"--proxy-addr", s.proxyAddr, "--control-addr", s.controlAddr); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := s.awaitReady(client, "https://"+s.controlAddr+"/readyz"); err != nil {
		return nil, err
	}
	return s, nil
}

// cliTLS runs the CLI against the control listener over TLS.
func (s *server) cliTLS(env []string, args ...string) result {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(append(os.Environ(), "ELEVATE_SERVER=https://"+s.controlAddr, "ELEVATE_CA_FILE="), env...)
	cmd.Dir = s.dataDir
	return runCommand(s.t, cmd)
}

func TestTLSListeners(t *testing.T) {
	ca := newPKI(t, "listeners-ca")
	dir := t.TempDir()
	proxyCert, proxyKey := ca.pairFiles(t, dir, "proxy", 101)
	controlCert, controlKey := ca.pairFiles(t, dir, "control", 201)
	s := startTLSDev(t, fmt.Sprintf(`
proxy:
  tls_cert_file: %s
  tls_key_file: %s
  read_header_timeout: 2s
api:
  tls_cert_file: %s
  tls_key_file: %s
`, proxyCert, proxyKey, controlCert, controlKey), ca.pool(t))
	bob := strings.TrimSpace(s.ok("", "token", "--data-dir", s.dataDir, "--sub", "bob"))
	interceptCA := s.ok("", "ca", "--data-dir", s.dataDir)
	pool := ca.pool(t)
	httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(t *testing.T, url, token string) int {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpsClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}

	t.Run("both-listeners-serve-their-certificate", func(t *testing.T) {
		for addr, want := range map[string]int64{s.proxyAddr: 101, s.controlAddr: 201} {
			got, err := servedSerial(t, addr, pool)
			require.NoError(t, err)
			require.Equal(t, want, got, addr)
		}
		require.Equal(t, http.StatusOK, get(t, "https://"+s.proxyAddr+"/exchange/mailboxes", bob), "reverse mode over TLS")
		require.Equal(t, http.StatusOK, get(t, "https://"+s.controlAddr+"/readyz", ""))
	})

	t.Run("cli-with-ca-file", func(t *testing.T) {
		r := s.cliTLS([]string{"ELEVATE_TOKEN=" + bob}, "--ca-file", ca.pemFile, "whoami")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "bob")
		r = s.cliTLS([]string{"ELEVATE_TOKEN=" + bob, "ELEVATE_CA_FILE=" + ca.pemFile}, "whoami")
		require.Equal(t, 0, r.code, "the variable serves as well: %s", r.stderr)
		r = s.cliTLS([]string{"ELEVATE_TOKEN=" + bob}, "whoami")
		require.NotEqual(t, 0, r.code, "a certificate of an unknown CA is refused")
		require.Contains(t, r.stderr, "certificate")
		require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %s", r.stderr)
	})

	t.Run("old-protocol-versions-refused", func(t *testing.T) {
		for _, addr := range []string{s.proxyAddr, s.controlAddr} {
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			if err == nil {
				c.Close()
			}
			require.Error(t, err, addr)
		}
	})

	t.Run("plain-http-refused", func(t *testing.T) {
		for _, target := range []string{
			"GET /readyz HTTP/1.1\r\nHost: " + s.controlAddr + "\r\n\r\n",
			"GET /exchange/mailboxes HTTP/1.1\r\nHost: " + s.proxyAddr + "\r\nAuthorization: Bearer " + bob + "\r\n\r\n",
		} {
			addr := s.controlAddr
			if strings.Contains(target, "/exchange/") {
				addr = s.proxyAddr
			}
			status := rawRequest(t, addr, target)
			require.True(t, strings.HasPrefix(status, "HTTP/1.0 400"), "%s: %q", addr, status)
		}
		resp, err := http.Get("http://" + s.controlAddr + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})

	t.Run("forward-mode-inside-tls", func(t *testing.T) {
		// The client speaks TLS to the proxy, sends CONNECT inside it, then
		// TLS again to the intercepted host.
		pu := &url.URL{Scheme: "https", Host: s.proxyAddr, User: url.UserPassword("bob", bob)}
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			Proxy:           http.ProxyURL(pu),
			TLSClientConfig: &tls.Config{RootCAs: ca.pool(t, []byte(interceptCA))},
		}}
		for _, u := range []string{"https://exchange.elevate.test/mailboxes", "http://exchange.elevate.test/mailboxes"} {
			resp, err := cl.Get(u)
			require.NoError(t, err, u)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, u)
		}
	})

	t.Run("silent-handshake-cut-off", func(t *testing.T) {
		// proxy.read_header_timeout (2s) bounds the handshake as well.
		c, err := net.DialTimeout("tcp", s.proxyAddr, 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, closedByServer(c, 15*time.Second))
	})

	t.Run("renewed-files-picked-up", func(t *testing.T) {
		ca.pairFiles(t, dir, "proxy", 102)
		ca.pairFiles(t, dir, "control", 202)
		for addr, want := range map[string]int64{s.proxyAddr: 102, s.controlAddr: 202} {
			require.Eventually(t, func() bool {
				got, err := servedSerial(t, addr, pool)
				return err == nil && got == want
			}, 15*time.Second, 100*time.Millisecond, "%s never served serial %d", addr, want)
		}
		require.Equal(t, http.StatusOK, get(t, "https://"+s.proxyAddr+"/exchange/mailboxes", bob))
	})

	t.Run("broken-replacement-keeps-the-old-certificate", func(t *testing.T) {
		writeFile(t, proxyCert, []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"))
		require.Eventually(t, func() bool {
			// Handshakes make the listener look at its files.
			_, _ = servedSerial(t, s.proxyAddr, pool)
			return strings.Contains(s.stderr.String(), "TLS certificate reload failed")
		}, 15*time.Second, 100*time.Millisecond, "the broken pair was never looked at; stderr:\n%s", s.stderr)
		for range 3 {
			got, err := servedSerial(t, s.proxyAddr, pool)
			require.NoError(t, err)
			require.Equal(t, int64(102), got)
		}
		require.Equal(t, http.StatusOK, get(t, "https://"+s.proxyAddr+"/exchange/mailboxes", bob))

		// A key that belongs to another certificate is refused the same way.
		c, _ := ca.issue(t, "proxy", 103)
		writeFile(t, proxyCert, c)
		require.Eventually(t, func() bool {
			_, _ = servedSerial(t, s.proxyAddr, pool)
			return strings.Count(s.stderr.String(), "TLS certificate reload failed") >= 2
		}, 15*time.Second, 100*time.Millisecond)
		got, err := servedSerial(t, s.proxyAddr, pool)
		require.NoError(t, err)
		require.Equal(t, int64(102), got)

		// A good pair again is served.
		ca.pairFiles(t, dir, "proxy", 104)
		require.Eventually(t, func() bool {
			got, err := servedSerial(t, s.proxyAddr, pool)
			return err == nil && got == 104
		}, 15*time.Second, 100*time.Millisecond)
	})
}

// TestTLSBadFilesAtStart: a pair that does not load stops start-up with
// one line that names the keys.
func TestTLSBadFilesAtStart(t *testing.T) {
	ca := newPKI(t, "listeners-ca")
	dir := t.TempDir()
	certFile, _ := ca.pairFiles(t, dir, "proxy", 0)
	_, otherKey := ca.pairFiles(t, dir, "other", 0)
	for _, tc := range []struct{ name, yaml, want string }{
		{name: "key-of-another-certificate", yaml: fmt.Sprintf("proxy: {tls_cert_file: %s, tls_key_file: %s}", certFile, otherKey), want: "proxy.tls_cert_file, proxy.tls_key_file"},
		{name: "missing-file", yaml: fmt.Sprintf("api: {tls_cert_file: %s, tls_key_file: %s}", filepath.Join(dir, "absent.crt"), otherKey), want: "api.tls_cert_file, api.tls_key_file"},
		{name: "cert-without-key", yaml: fmt.Sprintf("api: {tls_cert_file: %s}", certFile), want: "api.tls_cert_file, api.tls_key_file: give both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "elevate.yaml")
			require.NoError(t, os.WriteFile(cfg, []byte(tc.yaml), 0o600))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "serve", "--dev", "--config", cfg, "--data-dir", t.TempDir(),
				"--proxy-addr", freeAddr(t), "--control-addr", freeAddr(t))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "elevate must exit non-zero: %v", err)
			line := strings.TrimSpace(stderr.String())
			require.Equal(t, 1, strings.Count(line, "\n")+1, "one line: %s", line)
			require.Contains(t, line, tc.want)
		})
	}
}

// startSecureEtcd runs a real one-member etcd in this test process whose
// client URL is https and asks for client certificates from ca.
func startSecureEtcd(t *testing.T, ca *pki) string {
	t.Helper()
	certFile, keyFile := ca.pairFiles(t, t.TempDir(), "etcd-server", 0)
	_, endpoint := startEtcd(t, etcdtest.ClientTLS(certFile, keyFile, ca.pemFile))
	return endpoint
}

// etcdConfig is a full configuration (no --dev) whose etcd section ends
// with the given lines.
func etcdConfig(iss issuer, endpoint, etcdLines, upstream string) string {
	return fmt.Sprintf(`
proxy_addr: PROXY_ADDR
control_addr: CONTROL_ADDR
data_dir: DATA_DIR
etcd:
  endpoints: [%s]
  start_timeout: 3s
  dial_timeout: 2s
%s
identity:
  issuers:
    - issuer: https://idp.test
      audience: [elevate]
      pem_files: [%s]
      algorithms: [RS256]
audit:
  path: DATA_DIR/audit.log
upstreams:
  - name: exchange
    url: %s
    prefix: /exchange/
`, endpoint, etcdLines, iss.pemFile, upstream)
}

// lifecycleWorks takes one task through policy, request, approval and a
// gated call, all of it written to and read from etcd.
func lifecycleWorks(t *testing.T, s *server, iss issuer) {
	t.Helper()
	s.waitReady(t)
	admin := iss.token(t, "ada", "admins", "approvers")
	bob := iss.token(t, "bob")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", moveTask, "--approval", "manual")
	id := strings.TrimSpace(s.ok(bob, "request", "new", "--task", moveTask, "--reason", "maintenance", "-q"))
	s.ok(admin, "request", "approve", id)
	move := "http://" + s.proxyAddr + "/exchange/mailboxes/alice/move-requests"
	require.Eventually(t, func() bool { return do(t, "POST", move, bob, "").status == http.StatusCreated }, 10*time.Second, 50*time.Millisecond)
}

// exitsNamingEtcd waits for elevate to give up and checks the one line it
// leaves.
func exitsNamingEtcd(t *testing.T, s *server, want ...string) {
	t.Helper()
	select {
	case err := <-s.exited:
		require.Error(t, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("elevate kept waiting; stderr:\n%s", s.stderr)
	}
	line := strings.TrimSpace(s.stderr.String())
	t.Logf("elevate said: %s", line)
	require.Equal(t, 1, strings.Count(line, "\n")+1, "one line: %s", line)
	require.True(t, strings.HasPrefix(line, "elevate: etcd"), line)
	for _, w := range want {
		require.Contains(t, line, w)
	}
	resp, err := http.Get("http://" + s.controlAddr + "/readyz")
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "nothing listens after exit")
}

// createdUpstream answers 201 to every call.
func createdUpstream(t *testing.T) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) }))
	t.Cleanup(up.Close)
	return up.URL
}

func TestEtcdTLS(t *testing.T) {
	ca := newPKI(t, "etcd-ca")
	endpoint := startSecureEtcd(t, ca)
	dir := t.TempDir()
	clientCert, clientKey := ca.pairFiles(t, dir, "elevate", 0)
	rogueCert, rogueKey := newPKI(t, "rogue-ca").pairFiles(t, dir, "rogue", 0)
	upstream := createdUpstream(t)
	iss := newIssuer(t)

	t.Run("client-certificate", func(t *testing.T) {
		lines := fmt.Sprintf("  ca_file: %s\n  cert_file: %s\n  key_file: %s", ca.pemFile, clientCert, clientKey)
		lifecycleWorks(t, startConfigured(t, etcdConfig(iss, endpoint, lines, upstream)), iss)
	})
	for _, tc := range []struct {
		name  string
		lines string
		want  []string
	}{
		{name: "no-client-certificate", lines: "  ca_file: " + ca.pemFile, want: []string{endpoint, "certificate required"}},
		{name: "client-certificate-of-another-ca", lines: fmt.Sprintf("  ca_file: %s\n  cert_file: %s\n  key_file: %s", ca.pemFile, rogueCert, rogueKey), want: []string{"unknown certificate authority"}},
		{name: "server-of-an-unknown-ca", lines: fmt.Sprintf("  cert_file: %s\n  key_file: %s", clientCert, clientKey), want: []string{"certificate signed by unknown authority"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exitsNamingEtcd(t, startConfigured(t, etcdConfig(iss, endpoint, tc.lines, upstream)), tc.want...)
		})
	}
}

func TestEtcdPassword(t *testing.T) {
	_, endpoint := startEtcd(t)
	// Auth on: a root user, and a user for elevate that may use /elevate/
	// only.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "elevate"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "elevate", "/elevate/", clientv3.GetPrefixRangeEnd("/elevate/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, "elevate", "elevate-pw"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "elevate", "elevate"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		require.NoError(t, step())
	}
	cli.Close()

	dir := t.TempDir()
	good, wrong := filepath.Join(dir, "good.pw"), filepath.Join(dir, "wrong.pw")
	require.NoError(t, os.WriteFile(good, []byte("elevate-pw\n"), 0o600))
	require.NoError(t, os.WriteFile(wrong, []byte("guess\n"), 0o600))
	upstream := createdUpstream(t)
	iss := newIssuer(t)

	t.Run("password-file", func(t *testing.T) {
		cfg := etcdConfig(iss, endpoint, "  username: elevate\n  password_file: "+good, upstream)
		lifecycleWorks(t, startConfigured(t, cfg), iss)
	})
	for _, tc := range []struct {
		name  string
		lines string
		want  []string
	}{
		{name: "wrong-password", lines: "  username: elevate\n  password_file: " + wrong, want: []string{`user "elevate"`, "wrong user name or password", "etcd.password_file"}},
		{name: "no-credentials", lines: "", want: []string{"authentication needed"}},
		{name: "prefix-not-permitted", lines: "  prefix: /other/\n  username: elevate\n  password_file: " + good, want: []string{"permission denied", "/other/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startConfigured(t, etcdConfig(iss, endpoint, tc.lines, upstream))
			exitsNamingEtcd(t, s, tc.want...)
			require.NotContains(t, s.stderr.String(), "elevate-pw")
			require.NotContains(t, s.stderr.String(), "guess")
		})
	}
}
