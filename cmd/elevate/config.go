package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/elevate-pam/elevate/audit"
	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/grants"
	"github.com/elevate-pam/elevate/notify"
	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
	"github.com/elevate-pam/elevate/proxy/api"
	"github.com/elevate-pam/elevate/proxy/identity"
	"github.com/elevate-pam/elevate/rego"
	"github.com/elevate-pam/elevate/telemetry"
)

// Config is the file given to `elevate serve --config`. Each section that
// configures a package is that package's own Config, so that the package's
// documentation, defaults and Validate are the only ones; the sections
// elevate serve owns (listeners, etcd, data_dir) are defined here. Every
// field says its default; validate names the key of the first problem.
type Config struct {
	// ProxyAddr is the proxy listener. Default 127.0.0.1:8080.
	ProxyAddr string `yaml:"proxy_addr"`
	// ControlAddr is the side API and console listener. Default 127.0.0.1:8081.
	ControlAddr string `yaml:"control_addr"`
	// DataDir holds the dev issuer key, the dev CA and embedded etcd.
	// Default ./.elevate.
	DataDir string `yaml:"data_dir"`

	Etcd     EtcdConfig      `yaml:"etcd"`
	Identity identity.Config `yaml:"identity"`
	Policy   PolicyConfig    `yaml:"policy"`
	// API configures the control listener. In --dev, break_glass_group
	// defaults to break-glass.
	API APIConfig `yaml:"api"`
	// Requests bounds access requests and grants; etcd.prefix is the
	// store's prefix.
	Requests grants.Config `yaml:"requests"`
	// Audit says where audit records go. audit.path is required, but in
	// --dev, where it defaults to DATA_DIR/audit.log. In --dev without
	// audit.body_key_file or audit.body_key_env, body digests are keyed
	// by DATA_DIR/audit-body.key, created on first start.
	Audit   audit.Config  `yaml:"audit"`
	Proxy   ProxyConfig   `yaml:"proxy"`
	Notify  notify.Config `yaml:"notify"`
	Console ConsoleConfig `yaml:"console"`
	// Telemetry configures trace sampling; export follows the OTEL_*
	// environment variables.
	Telemetry telemetry.Config `yaml:"telemetry"`

	// Upstreams are the admin APIs behind elevate (proxy.Config.Upstreams).
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

// PolicyConfig says where the Rego bundle comes from.
type PolicyConfig struct {
	// Dir replaces the embedded default bundle with a directory, compiled
	// again at SIGHUP. Default: the embedded bundle.
	Dir string `yaml:"dir"`
	// Dirs layers directories over the embedded bundle, each over the ones
	// before it: their catalogs, route tables and condition files are
	// added, and a file at the path of one below (catalog/exchange.yaml,
	// say) replaces it. Read again at SIGHUP. Not with dir. Default: none.
	Dirs []string `yaml:"dirs"`
	// The engine's settings (decision_cache).
	policy.Config `yaml:",inline"`
}

// APIConfig configures the control listener: the side API's settings and
// the listener's TLS and timeouts.
type APIConfig struct {
	api.Config     `yaml:",inline"`
	ListenerConfig `yaml:",inline"`
}

// ConsoleConfig configures the web console on the control listener.
type ConsoleConfig struct {
	// Enabled serves the console. Default true when it can sign people
	// in: with issuer set, or in --dev (the dev issuer's sign-in page).
	Enabled *bool `yaml:"enabled"`
	// ClientSecretFile holds the client secret. Default: none, a public
	// client protected by PKCE.
	ClientSecretFile string `yaml:"client_secret_file"`
	// The console's settings. Its issuer must be one of identity.issuers;
	// its public URL is redirect_url's origin, else the control
	// listener's. Default in --dev without an issuer: the dev issuer's
	// sign-in page.
	console.Config `yaml:",inline"`
}

// on reports whether the console is served.
func (c ConsoleConfig) on(dev bool) bool {
	if c.Enabled != nil {
		return *c.Enabled
	}
	return c.Issuer != "" || dev
}

// ProxyConfig tunes the proxy listener.
type ProxyConfig struct {
	// The handler's settings (upstream_timeout); its upstreams are the
	// top-level key upstreams.
	proxy.Config `yaml:",inline"`
	// The gate's settings (reads_when_stale, reads_without_audit).
	Gate proxy.GateConfig `yaml:",inline"`
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

// defaults fills in what the file left out of the sections elevate serve
// owns, and what --dev changes. The packages fill in their own sections'
// defaults.
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
		c.Etcd.Prefix = grants.DefaultPrefix
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
	if dev && c.API.BreakGlassGroup == "" {
		c.API.BreakGlassGroup = "break-glass"
	}
	if dev && c.Audit.Path == "" {
		c.Audit.Path = c.DataDir + "/audit.log"
	}
}

// validate checks the sections elevate serve owns, then hands each other
// section to its package's Validate, as the package will get it; errors
// name the key. Validating reads the upstreams' CA and credential files,
// as starting does.
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
	if err := c.Policy.validate(); err != nil {
		return err
	}

	// In --dev, the dev issuer and the demo upstream join the file's; they
	// do not exist yet, so stand-ins with their names take their place.
	var devIssuer *identity.Issuer
	var demo *proxy.Upstream
	if dev {
		devIssuer = &identity.Issuer{Issuer: identity.DevIssuerName, Audience: []string{identity.DevAudience},
			PEMFiles: []string{filepath.Join(c.DataDir, identity.DevKeyFile)}} // not read by Validate
		d := demoRoute("http://127.0.0.1/")
		demo = &d
	}
	store, apiCfg, notifyCfg := c.storeConfig(), c.API.Config, c.Notify // Validate fills in defaults
	for _, v := range []interface{ Validate() error }{
		c.identityConfig(devIssuer), c.policyConfig(), &apiCfg, &store, c.Audit,
		c.proxyConfig(demo), &notifyCfg, c.Telemetry,
	} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if !c.Console.on(dev) {
		return nil
	}
	if is := c.Console.Issuer; is != "" && !slices.ContainsFunc(c.Identity.Issuers, func(i identity.Issuer) bool { return i.Issuer == is }) {
		return fmt.Errorf("console.issuer: %q is not one of identity.issuers", is)
	}
	scheme := "http://"
	if c.API.TLSCertFile != "" {
		scheme = "https://"
	}
	cc, err := consoleConfig(c.Console, dev, scheme+c.ControlAddr)
	if err != nil {
		return err
	}
	return cc.Validate()
}

// The configurations serve gives the packages, built from the file: each
// section as it is, with what the file keeps elsewhere filled in. build
// adds the wiring (clients, callbacks, loggers); each package fills in its
// defaults.

// identityConfig is the identity section, with the dev issuer when there
// is one.
func (c *Config) identityConfig(dev *identity.Issuer) identity.Config {
	ic := c.Identity
	if dev != nil {
		ic.Issuers = append(slices.Clip(ic.Issuers), *dev)
	}
	return ic
}

// policyConfig is the policy section with its bundle: policy.dir, else
// the embedded one with policy.dirs layered over it.
func (c *Config) policyConfig() policy.Config {
	pc := c.Policy.Config
	pc.Bundle = c.Policy.bundle()
	return pc
}

// validate checks where the bundle comes from: one of dir and dirs, each
// a directory.
func (p *PolicyConfig) validate() error {
	if p.Dir != "" && len(p.Dirs) > 0 {
		return errors.New("policy.dir, policy.dirs: set one, not both (dir replaces the embedded bundle, dirs layer over it)")
	}
	if p.Dir != "" {
		if st, err := os.Stat(p.Dir); err != nil || !st.IsDir() {
			return fmt.Errorf("policy.dir: %q is not a directory", p.Dir)
		}
	}
	for i, d := range p.Dirs {
		if st, err := os.Stat(d); d == "" || err != nil || !st.IsDir() {
			return fmt.Errorf("policy.dirs[%d]: %q is not a directory", i, d)
		}
	}
	return nil
}

// bundle is policy.dir, else the embedded bundle with policy.dirs layered
// over it.
func (p *PolicyConfig) bundle() fs.FS {
	if p.Dir != "" {
		return os.DirFS(p.Dir)
	}
	return layeredBundle(p.Dirs)
}

// layeredBundle is the embedded bundle with dirs layered over it, the last
// uppermost.
func layeredBundle(dirs []string) fs.FS {
	if len(dirs) == 0 {
		return rego.Bundle
	}
	layers := []fs.FS{rego.Bundle}
	for _, d := range dirs {
		layers = append(layers, os.DirFS(d))
	}
	return policy.Layers(layers...)
}

// dirs names the directories the bundle is read from, for logs and the
// audit record; empty for the embedded bundle alone.
func (p *PolicyConfig) dirs() string {
	if p.Dir != "" {
		return p.Dir
	}
	return strings.Join(p.Dirs, ", ")
}

// storeConfig is the requests section, under etcd.prefix.
func (c *Config) storeConfig() grants.Config {
	gc := c.Requests
	gc.Prefix = c.Etcd.Prefix
	return gc
}

// proxyConfig is the proxy section with the upstreams, and the demo
// upstream when there is one.
func (c *Config) proxyConfig(demo *proxy.Upstream) proxy.Config {
	pc := c.Proxy.Config
	pc.Upstreams = slices.Clip(c.Upstreams)
	if demo != nil {
		pc.Upstreams = append(pc.Upstreams, *demo)
	}
	return pc
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
