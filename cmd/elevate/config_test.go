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
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/notify"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/api"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/telemetry"
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

// everyKey is a configuration file with every key set, each to a value that
// is not its default. DIR is a directory holding the files validation
// reads. A key added to a package's Config needs a value here.
const everyKey = `
proxy_addr: 127.0.0.1:18080
control_addr: 127.0.0.1:18081
data_dir: DIR/data
etcd:
  endpoints: [https://etcd-1:2379, https://etcd-2:2379]
  prefix: /pam/
  dial_timeout: 7s
  start_timeout: 21s
  ca_file: /k/etcd-ca.pem
  cert_file: /k/etcd.crt
  key_file: /k/etcd.key
  username: elevate
  password_file: /k/etcd.pw
  password_env: ELEVATE_TEST_ETCD_PW   # excludes password_file: cleared before validating
identity:
  issuers:
    - issuer: https://login.example.com/
      audience: [elevate]
      jwks_url: https://login.example.com/jwks
      refresh_interval: 10m
      algorithms: [ES256]
    - issuer: https://other.example.com/
      audience: [elevate-2]
      pem_files: [/k/other.pem]
  claims: {subject: oid, groups: roles, amr: methods, email: mail}
  leeway: 45s
  cache_size: 500
policy:
  dir: DIR/policy
  dirs: [DIR/policy]
  decision_cache: 17
api:
  admins_group: pam-admins
  auditors_group: pam-auditors
  max_body_bytes: 131072
  break_glass_group: firefighters
  rate_limit: 7.5
  rate_burst: 9
  tls_cert_file: /k/control.crt
  tls_key_file: /k/control.key
  read_header_timeout: 11s
  read_timeout: 31s
  idle_timeout: 121s
requests:
  default_duration: 2h
  max_duration: 36h
  pending_ttl: 12h
  break_glass_duration: 30m
  break_glass_max: 3h
  max_policies: 50
audit:
  path: DIR/audit/audit.log
  max_bytes: 1048576
  body_key_file: DIR/body.key
  body_key_env: ELEVATE_TEST_BODY_KEY   # excludes body_key_file: cleared before validating
proxy:
  upstream_timeout: 90s
  max_judged_body: 2097152
  reads_when_stale: true
  reads_without_audit: true
  ca_cert: /k/ca.crt
  ca_key: /k/ca.key
  public_url: https://elevate.example.com:8443
  tls_cert_file: /k/proxy.crt
  tls_key_file: /k/proxy.key
  read_header_timeout: 12s
  read_timeout: 5m
  idle_timeout: 122s
notify:
  smtp: {addr: "smtp.example.com:465", from: elevate@example.com, username: elevate, password_file: /k/smtp.pw, tls: tls, ca_file: /k/smtp-ca.pem, timeout: 11s}
  group_addresses: {approvers: approvers@example.com}
  webhooks:
    - url: https://chat.example.com/hooks/x
      events: [request.submitted]
      timeout: 6s
      header_name: X-Token
      header_value_file: /k/hook.token
  queue_size: 99
  retries: 3
  retry_base: 2s
console:
  enabled: true
  issuer: https://login.example.com/
  client_id: elevate-console
  client_secret_file: /k/console.secret
  redirect_url: https://elevate.example.com/auth/callback
  scopes: [openid, email]
  token: id
  trace_url: http://jaeger:16686/trace/{trace_id}
telemetry:
  sample_ratio: 0.25
  service_name: pam
  service_version: 1.2.3
upstreams:
  - name: rabbitmq
    url: https://rabbitmq.internal:15671
    ca_file: DIR/rabbitmq-ca.pem
    prefix: /rabbitmq/
    hosts: [rabbitmq.internal]
    credential: {type: basic, username: elevate, value_file: DIR/rabbitmq.secret}
    credential_params: [access_token]
    credential_params_action: refuse
    allow_websocket: true
  - name: search
    url: https://search.internal:9200
    prefix: /search/
    credential: {type: header, header: X-Api-Key, value_env: ELEVATE_TEST_SEARCH_KEY}
  - name: caddy
    url: http://caddy.internal:2019
    prefix: /caddy/
    pass_through: true
  - name: aria2
    url: http://aria2.internal:6800
    prefix: /aria2/
    credential: {type: jsonrpc-token, prefix: "secret:", value_file: DIR/rabbitmq.secret}
    max_judged_body: 65536
  - name: prod
    type: kubernetes
    url: https://kube.internal:6443
    prefix: /kubernetes/prod/
    credential: {type: bearer, value_file: DIR/rabbitmq.secret}
    kubernetes:
      groups: [cluster-operators, developers]
      group_map: {ops: cluster-operators}
      user_prefix: "elevate:"
`

// TestConfigEveryKey: a file with every key set loads through the functions
// serve uses, and each value reaches the configuration of its package,
// as serve builds it: a key the file sets but a package never sees (as
// identity.cache_size once was) fails, and so does a key a package adds
// without a value in everyKey.
func TestConfigEveryKey(t *testing.T) {
	dir := t.TempDir()
	ca, _, _ := selfSigned(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rabbitmq-ca.pem"), []byte(ca), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rabbitmq.secret"), []byte("s3cret\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "body.key"), []byte(strings.Repeat("k", 32)+"\n"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "policy"), 0o700))
	t.Setenv("ELEVATE_TEST_SEARCH_KEY", "k3y")
	file := filepath.Join(dir, "elevate.yaml")
	require.NoError(t, os.WriteFile(file, []byte(strings.ReplaceAll(everyKey, "DIR", dir)), 0o600))

	c, err := loadConfig(file)
	require.NoError(t, err)
	c.defaults(false)
	require.Empty(t, unsetKeys(t, c), "keys without a value in everyKey")

	require.Equal(t, identity.Config{
		Issuers: []identity.Issuer{
			{Issuer: "https://login.example.com/", Audience: []string{"elevate"}, JWKSURL: "https://login.example.com/jwks", RefreshInterval: 10 * time.Minute, Algorithms: []string{"ES256"}},
			{Issuer: "https://other.example.com/", Audience: []string{"elevate-2"}, PEMFiles: []string{"/k/other.pem"}},
		},
		Claims: identity.Claims{Subject: "oid", Groups: "roles", AMR: "methods", Email: "mail"},
		Leeway: 45 * time.Second, CacheSize: 500,
	}, c.identityConfig(nil))
	require.Equal(t, policy.Config{Bundle: os.DirFS(filepath.Join(dir, "policy")), CacheSize: 17}, c.policyConfig())
	require.Equal(t, api.Config{AdminsGroup: "pam-admins", AuditorsGroup: "pam-auditors", MaxBodyBytes: 131072,
		BreakGlassGroup: "firefighters", RateLimit: 7.5, RateBurst: 9}, c.API.Config)
	require.Equal(t, ListenerConfig{TLSCertFile: "/k/control.crt", TLSKeyFile: "/k/control.key",
		ReadHeaderTimeout: 11 * time.Second, ReadTimeout: 31 * time.Second, IdleTimeout: 121 * time.Second}, c.API.ListenerConfig)
	require.Equal(t, grants.Config{Prefix: "/pam/", DefaultDuration: 2 * time.Hour, MaxDuration: 36 * time.Hour, PendingTTL: 12 * time.Hour,
		BreakGlassDuration: 30 * time.Minute, BreakGlassMax: 3 * time.Hour, MaxPolicies: 50}, c.storeConfig())
	require.Equal(t, audit.Config{Path: filepath.Join(dir, "audit", "audit.log"), MaxBytes: 1 << 20,
		BodyKeyFile: filepath.Join(dir, "body.key"), BodyKeyEnv: "ELEVATE_TEST_BODY_KEY"}, c.Audit)
	require.Equal(t, proxy.Config{UpstreamTimeout: 90 * time.Second, MaxJudgedBody: 2 << 20, Upstreams: []proxy.Upstream{
		{Name: "rabbitmq", URL: "https://rabbitmq.internal:15671", CAFile: filepath.Join(dir, "rabbitmq-ca.pem"), Prefix: "/rabbitmq/", Hosts: []string{"rabbitmq.internal"},
			Credential:       &proxy.Credential{Type: "basic", Username: "elevate", ValueFile: filepath.Join(dir, "rabbitmq.secret")},
			CredentialParams: []string{"access_token"}, CredentialParamsAction: "refuse", AllowWebsocket: true},
		{Name: "search", URL: "https://search.internal:9200", Prefix: "/search/",
			Credential: &proxy.Credential{Type: "header", Header: "X-Api-Key", ValueEnv: "ELEVATE_TEST_SEARCH_KEY"}},
		{Name: "caddy", URL: "http://caddy.internal:2019", Prefix: "/caddy/", PassThrough: true},
		{Name: "aria2", URL: "http://aria2.internal:6800", Prefix: "/aria2/", MaxJudgedBody: 64 << 10,
			Credential: &proxy.Credential{Type: "jsonrpc-token", Prefix: "secret:", ValueFile: filepath.Join(dir, "rabbitmq.secret")}},
		{Name: "prod", Type: "kubernetes", URL: "https://kube.internal:6443", Prefix: "/kubernetes/prod/",
			Credential: &proxy.Credential{Type: "bearer", ValueFile: filepath.Join(dir, "rabbitmq.secret")},
			Kubernetes: proxy.KubernetesOptions{Groups: []string{"cluster-operators", "developers"},
				GroupMap: map[string]string{"ops": "cluster-operators"}, UserPrefix: "elevate:"}},
	}}, c.proxyConfig(nil))
	require.Equal(t, proxy.GateConfig{ReadsWhenStale: true, ReadsWithoutAudit: true}, c.Proxy.Gate)
	require.Equal(t, notify.Config{
		SMTP: notify.SMTP{Addr: "smtp.example.com:465", From: "elevate@example.com", Username: "elevate", PasswordFile: "/k/smtp.pw",
			TLS: notify.TLSImplicit, CAFile: "/k/smtp-ca.pem", Timeout: 11 * time.Second},
		Groups: map[string]string{"approvers": "approvers@example.com"},
		Webhooks: []notify.Webhook{{URL: "https://chat.example.com/hooks/x", Events: []string{"request.submitted"}, Timeout: 6 * time.Second,
			HeaderName: "X-Token", HeaderValueFile: "/k/hook.token"}},
		QueueSize: 99, Retries: 3, RetryBase: 2 * time.Second,
	}, c.Notify)
	require.Equal(t, telemetry.Config{SampleRatio: new(0.25), ServiceName: "pam", ServiceVersion: "1.2.3"}, c.Telemetry)
	cc, err := consoleConfig(c.Console, false, "https://"+c.ControlAddr)
	require.NoError(t, err)
	require.Equal(t, console.Config{PublicURL: "https://elevate.example.com", Issuer: "https://login.example.com/", ClientID: "elevate-console",
		RedirectURL: "https://elevate.example.com/auth/callback", Scopes: []string{"openid", "email"}, Token: console.TokenID,
		TraceURL: "http://jaeger:16686/trace/{trace_id}"}, cc)

	// The keys serve reads itself.
	require.Equal(t, []string{"127.0.0.1:18080", "127.0.0.1:18081", filepath.Join(dir, "data")}, []string{c.ProxyAddr, c.ControlAddr, c.DataDir})
	require.Equal(t, EtcdConfig{Endpoints: []string{"https://etcd-1:2379", "https://etcd-2:2379"}, Prefix: "/pam/", DialTimeout: 7 * time.Second,
		StartTimeout: 21 * time.Second, CAFile: "/k/etcd-ca.pem", CertFile: "/k/etcd.crt", KeyFile: "/k/etcd.key", Username: "elevate",
		PasswordFile: "/k/etcd.pw", PasswordEnv: "ELEVATE_TEST_ETCD_PW"}, c.Etcd)
	require.Equal(t, ListenerConfig{TLSCertFile: "/k/proxy.crt", TLSKeyFile: "/k/proxy.key",
		ReadHeaderTimeout: 12 * time.Second, ReadTimeout: 5 * time.Minute, IdleTimeout: 122 * time.Second}, c.Proxy.ListenerConfig)
	require.Equal(t, []string{"/k/ca.crt", "/k/ca.key", "https://elevate.example.com:8443"}, []string{c.Proxy.CACert, c.Proxy.CAKey, c.Proxy.PublicURL})
	require.Equal(t, "/k/console.secret", c.Console.ClientSecretFile)
	require.True(t, c.Console.on(false))
	require.Equal(t, filepath.Join(dir, "policy"), c.Policy.Dir)
	require.Equal(t, []string{filepath.Join(dir, "policy")}, c.Policy.Dirs)

	// The whole file is valid, but for the keys that exclude another.
	c.Etcd.PasswordEnv = ""
	c.Policy.Dirs = nil
	c.Audit.BodyKeyEnv = ""
	require.NoError(t, c.validate(false))
}

// TestConfigDefaults: serve fills in the defaults of the keys it reads
// itself, and leaves each package's section as the file left it, for the
// package's own defaults (one set of them) to apply.
func TestConfigDefaults(t *testing.T) {
	for _, dev := range []bool{false, true} {
		var c Config
		c.defaults(dev)
		require.Zero(t, c.Identity)
		require.Zero(t, c.Policy.Config)
		require.Zero(t, c.Requests)
		require.Zero(t, c.Notify)
		require.Zero(t, c.Telemetry)
		require.Zero(t, c.Proxy.Config)
		require.Zero(t, c.Proxy.Gate)
		require.Zero(t, c.Console.Config)
		if !dev {
			require.Zero(t, c.API.Config)
			require.Zero(t, c.Audit)
			continue
		}
		// --dev turns break-glass on and keeps the audit log in the data dir.
		require.Equal(t, api.Config{BreakGlassGroup: "break-glass"}, c.API.Config)
		require.Equal(t, audit.Config{Path: ".elevate/audit.log"}, c.Audit)
	}

	// What the store then runs with is what grants and the README document.
	var c Config
	c.defaults(true)
	sc := c.storeConfig()
	require.NoError(t, sc.Validate())
	require.Equal(t, grants.DefaultPrefix, sc.Prefix)
	require.Equal(t, 4*time.Hour, sc.DefaultDuration)
	require.Equal(t, 24*time.Hour, sc.MaxDuration)
	require.Equal(t, 24*time.Hour, sc.PendingTTL)
}

// TestConfigValidateNamesKey: each section is checked once, by its
// package, and the error names the key as the file spells it.
func TestConfigValidateNamesKey(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		dev  bool
		want string
	}{
		{yaml: "requests: {max_duration: -1h}", dev: true, want: "requests.max_duration: must not be negative"},
		{yaml: "requests: {default_duration: 30h}", dev: true, want: "requests.default_duration: 30h0m0s exceeds requests.max_duration (24h0m0s)"},
		{yaml: "requests: {break_glass_max: 30h}", dev: true, want: "requests.break_glass_max: 30h0m0s exceeds requests.max_duration (24h0m0s)"},
		{yaml: "etcd: {prefix: elevate/}", dev: true, want: `etcd.prefix: must start with "/"`},
		{yaml: "identity: {cache_size: 2000000}", dev: true, want: "identity.cache_size: must be at most"},
		{yaml: "identity: {leeway: 10m}", dev: true, want: "identity.leeway"},
		{yaml: "api: {max_body_bytes: 10}", dev: true, want: "api.max_body_bytes"},
		{yaml: "api: {rate_burst: -1}", dev: true, want: "api.rate_burst"},
		{yaml: "audit: {max_bytes: -1}", dev: true, want: "audit.max_bytes"},
		{yaml: "proxy: {upstream_timeout: -1s}", dev: true, want: "proxy.upstream_timeout"},
		{yaml: "proxy: {max_judged_body: -1}", dev: true, want: "proxy.max_judged_body: must not be negative"},
		{yaml: `upstreams: [{name: a, url: "http://a.internal", prefix: /a/, max_judged_body: -1}]`, dev: true, want: "upstreams[0].max_judged_body"},
		{yaml: `upstreams: [{name: a, url: "http://a.internal", prefix: /a/, credential: {type: bearer, prefix: "x:", value_env: HOME}}]`, dev: true,
			want: "upstreams[0].credential.prefix: only for type jsonrpc-token"},
		{yaml: "audit: {body_key_env: ELEVATE_TEST_UNSET_BODY_KEY}", dev: true, want: "audit.body_key_env: ELEVATE_TEST_UNSET_BODY_KEY: the key must hold at least 32 characters"},
		{yaml: `upstreams: [{name: a, url: "ftp://a.internal", prefix: /a/}]`, dev: true, want: "upstreams[0].url"},
		{yaml: "notify: {retries: -1}", dev: true, want: "notify.retries"},
		{yaml: "telemetry: {sample_ratio: 2}", dev: true, want: "telemetry.sample_ratio"},
		{yaml: "console: {scopes: [profile]}", dev: true, want: "console.scopes"},
		{yaml: "etcd: {endpoints: [http://e:2379]}", want: "identity.issuers: at least one issuer is required"},
		{yaml: "etcd: {endpoints: [http://e:2379]}\nidentity: {issuers: [{issuer: i, audience: [a], jwks_url: \"https://i/jwks\"}]}", want: "audit.path: required"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			c, err := parseConfig([]byte(tc.yaml))
			require.NoError(t, err)
			c.defaults(tc.dev)
			require.ErrorContains(t, c.validate(tc.dev), tc.want)
		})
	}
}

// unsetKeys returns the yaml keys of c that hold their zero value, as
// paths such as identity.issuers[].jwks_url; a key of a list's elements
// counts as set when one element sets it. Every exported field must name
// its key or say yaml:"-", so that none becomes a key by its Go name.
func unsetKeys(t *testing.T, c Config) []string {
	t.Helper()
	all, set := map[string]bool{}, map[string]bool{}
	var walk func(typ reflect.Type, v reflect.Value, path string)
	walk = func(typ reflect.Type, v reflect.Value, path string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, ok := f.Tag.Lookup("yaml")
			require.True(t, ok, "%s.%s has no yaml tag: give it its key, or yaml:\"-\"", typ, f.Name)
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			p := path
			if opts != "inline" {
				p = strings.TrimPrefix(path+"."+name, ".")
			}
			ft := f.Type
			var fv reflect.Value
			if v.IsValid() {
				fv = v.Field(i)
			}
			if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
				ft = ft.Elem()
				if fv.IsValid() {
					fv = fv.Elem() // invalid when nil
				}
			}
			switch {
			case ft.Kind() == reflect.Struct:
				walk(ft, fv, p)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), reflect.Value{}, p+"[]")
				for j := 0; fv.IsValid() && j < fv.Len(); j++ {
					walk(ft.Elem(), fv.Index(j), p+"[]")
				}
			default:
				all[p] = true
				if fv.IsValid() && !fv.IsZero() {
					set[p] = true
				}
			}
		}
	}
	walk(reflect.TypeOf(c), reflect.ValueOf(c), "")
	var unset []string
	for k := range all {
		if !set[k] {
			unset = append(unset, k)
		}
	}
	sort.Strings(unset)
	return unset
}

// TestConfigPolicyDirs: policy.dirs layers directories over the embedded
// bundle, the last uppermost; policy.dir replaces it; not both.
func TestConfigPolicyDirs(t *testing.T) {
	dir := t.TempDir()
	lower, upper := filepath.Join(dir, "lower"), filepath.Join(dir, "upper")
	for name, src := range map[string]string{
		filepath.Join(lower, "catalog", "acme.rego"):   "lower acme",
		filepath.Join(lower, "catalog", "widget.rego"): "lower widget",
		filepath.Join(upper, "catalog", "acme.rego"):   "upper acme",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o700))
		require.NoError(t, os.WriteFile(name, []byte(src), 0o600))
	}

	c, err := parseConfig([]byte("policy: {dirs: [" + lower + ", " + upper + "]}"))
	require.NoError(t, err)
	c.defaults(true)
	require.NoError(t, c.validate(true))
	b := c.policyConfig().Bundle
	for name, want := range map[string]string{"catalog/acme.rego": "upper acme", "catalog/widget.rego": "lower widget"} {
		got, err := fs.ReadFile(b, name)
		require.NoError(t, err)
		require.Equal(t, want, string(got))
	}
	_, err = fs.Stat(b, "elevate.rego")
	require.NoError(t, err, "the embedded bundle is below the layers")
	require.Equal(t, lower+", "+upper, c.Policy.dirs())

	for _, tc := range []struct{ yaml, wantErr string }{
		{"policy: {dir: " + lower + ", dirs: [" + upper + "]}", "policy.dir, policy.dirs: set one, not both"},
		{"policy: {dirs: [" + lower + ", " + filepath.Join(dir, "missing") + "]}", "policy.dirs[1]: "},
		{"policy: {dirs: [\"\"]}", "policy.dirs[0]: "},
	} {
		c, err := parseConfig([]byte(tc.yaml))
		require.NoError(t, err)
		c.defaults(true)
		require.ErrorContains(t, c.validate(true), tc.wantErr, tc.yaml)
	}
}
