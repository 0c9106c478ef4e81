package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The configuration shown in the README is read with the same strict
// decoder as a real file: every key in it exists.
func TestReadmeConfigParses(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(b), "## Running it for real")
	require.True(t, ok)
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	require.True(t, ok)
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	c, err := parseConfig([]byte(block))
	require.NoError(t, err)
	require.NotEmpty(t, c.Upstreams)
	require.NotEmpty(t, c.Notify.Webhooks)

	_, err = parseConfig([]byte("proxy:\n  upstream_timeot: 5s\n"))
	require.ErrorContains(t, err, "upstream_timeot")
}

// TestListenerConfig: both listeners take the same keys, with their own
// defaults.
func TestListenerConfig(t *testing.T) {
	c, err := parseConfig([]byte(`
proxy:
  tls_cert_file: /p.crt
  tls_key_file: /p.key
  read_header_timeout: 1s
  idle_timeout: 2s
api:
  tls_cert_file: /a.crt
  tls_key_file: /a.key
  read_timeout: 3s
`))
	require.NoError(t, err)
	c.defaults(true)
	require.NoError(t, c.validate(true))
	require.Equal(t, ListenerConfig{TLSCertFile: "/p.crt", TLSKeyFile: "/p.key", ReadHeaderTimeout: time.Second, IdleTimeout: 2 * time.Second}, c.Proxy.ListenerConfig,
		"no read timeout on the proxy unless set")
	require.Equal(t, ListenerConfig{TLSCertFile: "/a.crt", TLSKeyFile: "/a.key", ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 3 * time.Second, IdleTimeout: 120 * time.Second}, c.API.ListenerConfig)

	var d Config
	d.defaults(true)
	require.Equal(t, 30*time.Second, d.API.ReadTimeout)
	require.Zero(t, d.Proxy.ReadTimeout)
}

// TestValidateTLSAndAuth: settings that would silently not apply stop
// start-up with the key named.
func TestValidateTLSAndAuth(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{name: "proxy cert without key", yaml: "proxy: {tls_cert_file: /c}", wantErr: "proxy.tls_cert_file, proxy.tls_key_file: give both"},
		{name: "api key without cert", yaml: "api: {tls_key_file: /k}", wantErr: "api.tls_cert_file, api.tls_key_file: give both"},
		{name: "negative timeout", yaml: "api: {idle_timeout: -1s}", wantErr: "api.idle_timeout"},
		{name: "negative proxy read timeout", yaml: "proxy: {read_timeout: -1s}", wantErr: "proxy.read_timeout"},
		{name: "etcd TLS over http", yaml: "etcd: {endpoints: [http://e:2379], ca_file: /ca}", wantErr: "etcd.ca_file: needs https://"},
		{name: "etcd client cert over http", yaml: "etcd: {endpoints: [http://e:2379], cert_file: /c, key_file: /k}", wantErr: "etcd.cert_file: needs https://"},
		{name: "etcd mixed schemes", yaml: "etcd: {endpoints: [http://e1:2379, https://e2:2379]}", wantErr: "etcd.endpoints: all http:// or all https://"},
		{name: "etcd cert without key", yaml: "etcd: {endpoints: [https://e:2379], cert_file: /c}", wantErr: "etcd.cert_file, etcd.key_file"},
		{name: "etcd user without password", yaml: "etcd: {endpoints: [http://e:2379], username: elevate}", wantErr: "etcd.password_file or etcd.password_env"},
		{name: "etcd password without user", yaml: "etcd: {endpoints: [http://e:2379], password_env: PW}", wantErr: "etcd.username"},
		{name: "etcd two passwords", yaml: "etcd: {endpoints: [http://e:2379], username: u, password_env: PW, password_file: /pw}", wantErr: "give one, not both"},
		{name: "etcd auth for the embedded etcd", yaml: "etcd: {username: u, password_env: PW}", wantErr: "etcd.endpoints"},
		{name: "etcd TLS and auth", yaml: "etcd: {endpoints: [https://e:2379], ca_file: /ca, cert_file: /c, key_file: /k, username: u, password_file: /pw}"},
		{name: "TLS on both listeners", yaml: "proxy: {tls_cert_file: /c, tls_key_file: /k}\napi: {tls_cert_file: /c, tls_key_file: /k}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tc.yaml))
			require.NoError(t, err)
			c.defaults(true)
			err = c.validate(true)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestEtcdClientConfig: TLS and the password come from their files or
// variable; a password never shows in an error.
func TestEtcdClientConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	caPEM, certPEM, keyPEM := selfSigned(t)
	ca, cert, key := write("ca.pem", caPEM), write("client.crt", certPEM), write("client.key", keyPEM)
	pw, empty, notPEM := write("pw", "s3cret-pw\n"), write("empty", "\n"), write("not.pem", "hello")
	t.Setenv("ELEVATE_TEST_ETCD_PW", "env-s3cret")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	https, plain := []string{"https://127.0.0.1:2379"}, []string{"http://127.0.0.1:2379"}

	for _, tc := range []struct {
		name      string
		c         EtcdConfig
		endpoints []string
		wantErr   string
		check     func(t *testing.T, cc clientv3.Config)
	}{
		{name: "plain", c: EtcdConfig{}, endpoints: plain, check: func(t *testing.T, cc clientv3.Config) {
			require.Nil(t, cc.TLS)
			require.Empty(t, cc.Username)
		}},
		{name: "https with system roots", c: EtcdConfig{}, endpoints: https, check: func(t *testing.T, cc clientv3.Config) {
			require.NotNil(t, cc.TLS)
			require.Nil(t, cc.TLS.RootCAs)
			require.Equal(t, uint16(tls.VersionTLS12), cc.TLS.MinVersion)
		}},
		{name: "https with CA and client certificate", c: EtcdConfig{CAFile: ca, CertFile: cert, KeyFile: key}, endpoints: https, check: func(t *testing.T, cc clientv3.Config) {
			require.NotNil(t, cc.TLS.RootCAs)
			c, err := cc.TLS.GetClientCertificate(&tls.CertificateRequestInfo{})
			require.NoError(t, err)
			require.NotNil(t, c.Leaf)
		}},
		{name: "password file", c: EtcdConfig{Username: "elevate", PasswordFile: pw}, endpoints: plain, check: func(t *testing.T, cc clientv3.Config) {
			require.Equal(t, "elevate", cc.Username)
			require.Equal(t, "s3cret-pw", cc.Password)
		}},
		{name: "password variable", c: EtcdConfig{Username: "elevate", PasswordEnv: "ELEVATE_TEST_ETCD_PW"}, endpoints: plain, check: func(t *testing.T, cc clientv3.Config) {
			require.Equal(t, "env-s3cret", cc.Password)
		}},
		{name: "CA file absent", c: EtcdConfig{CAFile: filepath.Join(dir, "absent")}, endpoints: https, wantErr: "etcd.ca_file"},
		{name: "CA file not PEM", c: EtcdConfig{CAFile: notPEM}, endpoints: https, wantErr: "etcd.ca_file"},
		{name: "client key of no certificate", c: EtcdConfig{CertFile: cert, KeyFile: notPEM}, endpoints: https, wantErr: "etcd.cert_file, etcd.key_file"},
		{name: "password file absent", c: EtcdConfig{Username: "u", PasswordFile: filepath.Join(dir, "absent")}, endpoints: plain, wantErr: "etcd.password_file"},
		{name: "password file empty", c: EtcdConfig{Username: "u", PasswordFile: empty}, endpoints: plain, wantErr: "etcd.password_file"},
		{name: "password variable unset", c: EtcdConfig{Username: "u", PasswordEnv: "ELEVATE_TEST_UNSET"}, endpoints: plain, wantErr: "etcd.password_env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := etcdClientConfig(tc.c, tc.endpoints, log)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), "s3cret")
				return
			}
			require.NoError(t, err)
			tc.check(t, cc)
		})
	}
}

// selfSigned is a CA-less certificate and key, in PEM; the certificate
// also serves as its own CA file.
func selfSigned(t *testing.T) (ca, cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "elevate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	cert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return cert, cert, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}
