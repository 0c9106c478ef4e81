package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/notify"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/telemetry"
)

// Config is the file given to `elevate serve --config`. Every field says its
// default; Validate names the key of the first problem.
type Config struct {
	// ProxyAddr is the proxy listener. Default 127.0.0.1:8080.
	ProxyAddr string `yaml:"proxy_addr"`
	// ControlAddr is the side API and console listener. Default 127.0.0.1:8081.
	ControlAddr string `yaml:"control_addr"`
	// DataDir holds the dev issuer key, the dev CA and embedded etcd.
	// Default ./.elevate.
	DataDir string `yaml:"data_dir"`

	Etcd     EtcdConfig     `yaml:"etcd"`
	Identity IdentityConfig `yaml:"identity"`
	Policy   PolicyConfig   `yaml:"policy"`
	API      APIConfig      `yaml:"api"`
	Requests RequestsConfig `yaml:"requests"`
	Audit    AuditConfig    `yaml:"audit"`
	Proxy    ProxyConfig    `yaml:"proxy"`
	Notify   notify.Config  `yaml:"notify"`
	Console  ConsoleConfig  `yaml:"console"`
	// Telemetry configures trace sampling; export follows the OTEL_*
	// environment variables.
	Telemetry telemetry.Config `yaml:"telemetry"`

	// Upstreams are the admin APIs behind elevate.
	Upstreams []proxy.Upstream `yaml:"upstreams"`
}

// EtcdConfig says where live state is kept.
type EtcdConfig struct {
	// Endpoints of the etcd cluster. Required unless --dev (embedded etcd).
	Endpoints []string `yaml:"endpoints"`
	// Prefix for every key elevate writes. Default /elevate/.
	Prefix string `yaml:"prefix"`
	// DialTimeout bounds each connection attempt. Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// StartTimeout bounds waiting for etcd at start-up; then elevate exits
	// non-zero. Default 15s.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// CAFile holds the PEM certificates that etcd's server certificates
	// must chain to. Default: the system's roots. Needs https:// endpoints.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// an etcd that runs with --client-cert-auth. Renewed files are used
	// from the next connection on. Default: none. Need https:// endpoints.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Username authenticates to an etcd with auth enabled, with the
	// password read from PasswordFile or from the environment variable
	// named by PasswordEnv (exactly one). Default: none.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
}

// ListenerConfig is what the proxy and the control listener each set for
// themselves.
type ListenerConfig struct {
	// TLSCertFile and TLSKeyFile, both PEM, make the listener serve TLS 1.2
	// or later. Renewed files are picked up without a restart: at the first
	// handshake a second or more after they change, or at SIGHUP; a pair
	// that does not load leaves the running certificate in place and is
	// logged. Default: plain HTTP.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// ReadHeaderTimeout bounds the TLS handshake and reading a request's
	// headers. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included. Default
	// 30s on the control listener; none on the proxy listener, whose
	// bodies stream to the upstream.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes a keep-alive connection that sends no new request
	// for this long. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// IdentityConfig says which tokens are accepted.
type IdentityConfig struct {
	Issuers []identity.Issuer `yaml:"issuers"`
	Claims  struct {
		Subject string `yaml:"subject"`
		Groups  string `yaml:"groups"`
		AMR     string `yaml:"amr"`
		Email   string `yaml:"email"`
	} `yaml:"claims"`
	// Leeway for exp/nbf/iat. Default 30s.
	Leeway time.Duration `yaml:"leeway"`
}

// PolicyConfig says where the Rego bundle comes from.
type PolicyConfig struct {
	// Dir replaces the embedded default bundle with a directory.
	Dir string `yaml:"dir"`
	// DecisionCache is how many decisions are remembered, keyed on the
	// whole Rego input, for bundles that read the clock only to compare it
	// with grant windows. Default 4096; negative turns the cache off.
	DecisionCache int `yaml:"decision_cache"`
}

// APIConfig configures the side API.
type APIConfig struct {
	// AdminsGroup manages control settings and policies. Default admins.
	AdminsGroup string `yaml:"admins_group"`
	// AuditorsGroup reads the whole audit log. Default auditors.
	AuditorsGroup string `yaml:"auditors_group"`
	// MaxBodyBytes bounds side-API bodies. Default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// BreakGlassGroup may grant itself a task at once with a reason.
	// Default break-glass in --dev, empty (off) otherwise.
	BreakGlassGroup string `yaml:"break_glass_group"`
	// RateLimit is each caller's sustained /v1/ calls per second. Default
	// 20; negative turns the limit off.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is how many calls a caller may make at once. Default twice
	// rate_limit.
	RateBurst int `yaml:"rate_burst"`
	// The control listener's TLS and timeouts.
	ListenerConfig `yaml:",inline"`
}

// ConsoleConfig configures the web console on the control listener.
type ConsoleConfig struct {
	// Enabled serves the console. Default true when it can sign people
	// in: with issuer set, or in --dev (the dev issuer's sign-in page).
	Enabled *bool `yaml:"enabled"`
	// Issuer is the OpenID Connect issuer people sign in with; it must be
	// one of identity.issuers. Its discovery document is read from
	// ISSUER/.well-known/openid-configuration. Default in --dev: the dev
	// issuer's sign-in page.
	Issuer string `yaml:"issuer"`
	// ClientID is the console's client at the issuer. Required with issuer.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client secret. Default: none, a public
	// client protected by PKCE.
	ClientSecretFile string `yaml:"client_secret_file"`
	// RedirectURL is the callback registered at the issuer; its origin is
	// the console's. Default: the control listener's URL + /auth/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes asked for. Default [openid, profile, email, groups].
	Scopes []string `yaml:"scopes"`
	// Token is the token the session calls the API with: access (default)
	// or id, for issuers whose access tokens are not JWTs for elevate.
	Token string `yaml:"token"`
	// TraceURL links audit records to their traces, with {trace_id}
	// replaced, such as http://localhost:16686/trace/{trace_id}.
	TraceURL string `yaml:"trace_url"`
}

// on reports whether the console is served.
func (c ConsoleConfig) on(dev bool) bool {
	if c.Enabled != nil {
		return *c.Enabled
	}
	return c.Issuer != "" || dev
}

// validate checks the console section against the identity issuers;
// errors name the key.
func (c ConsoleConfig) validate(dev bool, issuers []identity.Issuer) error {
	if !c.on(dev) {
		return nil
	}
	if c.Issuer == "" && !dev {
		return errors.New("console.issuer: required when the console is enabled (or run with --dev)")
	}
	if c.Issuer != "" {
		known := false
		for _, is := range issuers {
			known = known || is.Issuer == c.Issuer
		}
		if !known {
			return fmt.Errorf("console.issuer: %q is not one of identity.issuers", c.Issuer)
		}
		if c.ClientID == "" {
			return errors.New("console.client_id: required with console.issuer")
		}
	}
	switch c.Token {
	case "", console.TokenAccess, console.TokenID:
	default:
		return fmt.Errorf("console.token: must be %q or %q", console.TokenAccess, console.TokenID)
	}
	if c.RedirectURL != "" && !strings.HasSuffix(c.RedirectURL, "/auth/callback") {
		return errors.New("console.redirect_url: must end in /auth/callback")
	}
	if c.TraceURL != "" && !strings.Contains(c.TraceURL, "{trace_id}") {
		return errors.New("console.trace_url: must contain {trace_id}")
	}
	return nil
}

// RequestsConfig bounds access requests.
type RequestsConfig struct {
	// DefaultDuration of a grant when a request names none. Default 4h.
	DefaultDuration time.Duration `yaml:"default_duration"`
	// MaxDuration caps every grant. Default 24h.
	MaxDuration time.Duration `yaml:"max_duration"`
	// PendingTTL: an undecided request expires after this. Default 24h.
	PendingTTL time.Duration `yaml:"pending_ttl"`
	// BreakGlassDuration of a break-glass grant that names none. Default 1h.
	BreakGlassDuration time.Duration `yaml:"break_glass_duration"`
	// BreakGlassMax caps break-glass grants. Default 4h.
	BreakGlassMax time.Duration `yaml:"break_glass_max"`
	// MaxPolicies limits the number of approval policies. Default 0 (none).
	MaxPolicies int `yaml:"max_policies"`
}

// AuditConfig says where audit records go.
type AuditConfig struct {
	// Path of the audit log. Required unless --dev (DATA_DIR/audit.log).
	Path string `yaml:"path"`
	// MaxBytes rotates the file beyond this size. Default 64 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
}

// ProxyConfig tunes the proxy listener.
type ProxyConfig struct {
	// UpstreamTimeout bounds waiting for upstream response headers. Default 60s.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// ReadsWhenStale lets calls that need no grant through while etcd is
	// unreachable. Default false.
	ReadsWhenStale bool `yaml:"reads_when_stale"`
	// ReadsWithoutAudit lets calls that need no grant through when the audit
	// log cannot be written. Default false.
	ReadsWithoutAudit bool `yaml:"reads_without_audit"`
	// CACert and CAKey are the PEM files of the CA that signs intercepted
	// HTTPS in forward mode. Default: DATA_DIR/ca.crt and DATA_DIR/ca.key,
	// created on first start.
	CACert string `yaml:"ca_cert"`
	CAKey  string `yaml:"ca_key"`
	// PublicURL is the proxy's address as callers reach it, for `elevate
	// connect`. Default: http:// (https:// with TLS) and the proxy
	// listener's address.
	PublicURL string `yaml:"public_url"`
	// The proxy listener's TLS and timeouts.
	ListenerConfig `yaml:",inline"`
}

// loadConfig reads a YAML file strictly: unknown keys are errors.
func loadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return parseConfig(b)
}

func parseConfig(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file is an empty config.
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config: %v", err)
	}
	return c, nil
}

// defaults fills what the file left out.
func (c *Config) defaults(dev bool) {
	if c.ProxyAddr == "" {
		c.ProxyAddr = "127.0.0.1:8080"
	}
	if c.ControlAddr == "" {
		c.ControlAddr = "127.0.0.1:8081"
	}
	if c.DataDir == "" {
		c.DataDir = ".elevate"
	}
	if c.Etcd.Prefix == "" {
		c.Etcd.Prefix = "/elevate/"
	}
	if c.Etcd.DialTimeout == 0 {
		c.Etcd.DialTimeout = 5 * time.Second
	}
	if c.Etcd.StartTimeout == 0 {
		c.Etcd.StartTimeout = 15 * time.Second
	}
	for _, l := range []*ListenerConfig{&c.Proxy.ListenerConfig, &c.API.ListenerConfig} {
		if l.ReadHeaderTimeout == 0 {
			l.ReadHeaderTimeout = 10 * time.Second
		}
		if l.IdleTimeout == 0 {
			l.IdleTimeout = 120 * time.Second
		}
	}
	if c.API.ReadTimeout == 0 {
		c.API.ReadTimeout = 30 * time.Second
	}
	if c.Identity.Leeway == 0 {
		c.Identity.Leeway = 30 * time.Second
	}
	if c.Requests.DefaultDuration == 0 {
		c.Requests.DefaultDuration = 4 * time.Hour
	}
	if c.Requests.MaxDuration == 0 {
		c.Requests.MaxDuration = 24 * time.Hour
	}
	if c.Requests.PendingTTL == 0 {
		c.Requests.PendingTTL = 24 * time.Hour
	}
	if dev && c.API.BreakGlassGroup == "" {
		c.API.BreakGlassGroup = "break-glass"
	}
	if dev && c.Audit.Path == "" {
		c.Audit.Path = c.DataDir + "/audit.log"
	}
}

// validate checks what the packages do not; errors name the key.
func (c *Config) validate(dev bool) error {
	for key, addr := range map[string]string{"proxy_addr": c.ProxyAddr, "control_addr": c.ControlAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: %q is not host:port", key, addr)
		}
	}
	if c.ProxyAddr == c.ControlAddr {
		return errors.New("control_addr: must differ from proxy_addr")
	}
	if !dev && len(c.Etcd.Endpoints) == 0 {
		return errors.New("etcd.endpoints: at least one endpoint is required (or run with --dev)")
	}
	for i, e := range c.Etcd.Endpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			return fmt.Errorf("etcd.endpoints[%d]: %q must start with http:// or https://", i, e)
		}
	}
	if c.Etcd.DialTimeout < 0 || c.Etcd.StartTimeout < 0 {
		return errors.New("etcd.dial_timeout, etcd.start_timeout: must be positive")
	}
	if err := c.Etcd.validate(dev); err != nil {
		return err
	}
	if err := c.Proxy.ListenerConfig.validate("proxy"); err != nil {
		return err
	}
	if err := c.API.ListenerConfig.validate("api"); err != nil {
		return err
	}
	if !dev && len(c.Identity.Issuers) == 0 {
		return errors.New("identity.issuers: at least one issuer is required (or run with --dev)")
	}
	if c.Requests.DefaultDuration < 0 || c.Requests.MaxDuration < 0 || c.Requests.PendingTTL < 0 {
		return errors.New("requests: durations must be positive")
	}
	if c.Requests.DefaultDuration > c.Requests.MaxDuration {
		return errors.New("requests.default_duration: must not exceed requests.max_duration")
	}
	if c.Audit.Path == "" {
		return errors.New("audit.path: required (or run with --dev)")
	}
	if !dev && len(c.Upstreams) == 0 {
		return errors.New("upstreams: at least one upstream is required (or run with --dev)")
	}
	if err := c.Telemetry.Validate(); err != nil {
		return err
	}
	if err := c.Console.validate(dev, c.Identity.Issuers); err != nil {
		return err
	}
	if c.Policy.Dir != "" {
		if st, err := os.Stat(c.Policy.Dir); err != nil || !st.IsDir() {
			return fmt.Errorf("policy.dir: %q is not a directory", c.Policy.Dir)
		}
	}
	return nil
}

// validate checks the TLS and auth settings against the endpoints; errors
// name the key.
func (e EtcdConfig) validate(dev bool) error {
	var https, plain bool
	for _, ep := range e.Endpoints {
		https = https || strings.HasPrefix(ep, "https://")
		plain = plain || strings.HasPrefix(ep, "http://")
	}
	if https && plain {
		return errors.New("etcd.endpoints: all http:// or all https://, not both")
	}
	tlsKey := ""
	switch {
	case e.CAFile != "":
		tlsKey = "etcd.ca_file"
	case e.CertFile != "":
		tlsKey = "etcd.cert_file"
	case e.KeyFile != "":
		tlsKey = "etcd.key_file"
	}
	if tlsKey != "" && !https {
		// The etcd client ignores TLS settings for http:// endpoints.
		return fmt.Errorf("%s: needs https:// etcd.endpoints", tlsKey)
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		return errors.New("etcd.cert_file, etcd.key_file: give both or neither")
	}
	if e.PasswordFile != "" && e.PasswordEnv != "" {
		return errors.New("etcd.password_file, etcd.password_env: give one, not both")
	}
	if e.Username == "" && (e.PasswordFile != "" || e.PasswordEnv != "") {
		return errors.New("etcd.username: required with a password")
	}
	if e.Username != "" && e.PasswordFile == "" && e.PasswordEnv == "" {
		return errors.New("etcd.password_file or etcd.password_env: required with etcd.username")
	}
	if dev && len(e.Endpoints) == 0 && (tlsKey != "" || e.Username != "") {
		return errors.New("etcd.endpoints: TLS and auth settings need the endpoints they are for (--dev alone runs an embedded etcd without them)")
	}
	return nil
}

// validate checks one listener's settings; errors name the key under
// section.
func (l ListenerConfig) validate(section string) error {
	if (l.TLSCertFile == "") != (l.TLSKeyFile == "") {
		return fmt.Errorf("%[1]s.tls_cert_file, %[1]s.tls_key_file: give both or neither", section)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"read_header_timeout", l.ReadHeaderTimeout}, {"read_timeout", l.ReadTimeout}, {"idle_timeout", l.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s.%s: must not be negative", section, d.key)
		}
	}
	return nil
}
