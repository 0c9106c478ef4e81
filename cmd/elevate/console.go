package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// consoleDeps is what the web console is built from.
type consoleDeps struct {
	dev        bool
	devIssuer  *identity.DevIssuer // set in --dev
	controlURL string              // the control listener, as this host reaches it
	api        http.Handler
	verifier   console.Verifier
	catalog    console.Catalog
	log        *slog.Logger
}

// newConsole builds the web console for the control listener; nil when the
// console is off. In --dev without console.issuer, people sign in at the
// dev issuer's picker, mounted under /dev/oidc/.
func newConsole(cc ConsoleConfig, d consoleDeps) (http.Handler, error) {
	if !cc.on(d.dev) {
		return nil, nil
	}
	cfg, err := consoleConfig(cc, d.dev, d.controlURL)
	if err != nil {
		return nil, err
	}
	cfg.API, cfg.Verifier, cfg.Catalog, cfg.Logger = d.api, d.verifier, d.catalog, d.log
	if cc.ClientSecretFile != "" {
		b, err := os.ReadFile(cc.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("console.client_secret_file: %w", err)
		}
		if cfg.ClientSecret = strings.TrimSpace(string(b)); cfg.ClientSecret == "" {
			return nil, errors.New("console.client_secret_file: the file is empty")
		}
	}
	var devp *console.DevProvider
	if cc.Issuer == "" && d.dev {
		devp, err = console.NewDevProvider(console.DevProviderConfig{Issuer: d.devIssuer, BaseURL: cfg.PublicURL,
			RedirectURLs: []string{redirectOrDefault(cc.RedirectURL, cfg.PublicURL)}})
		if err != nil {
			return nil, err
		}
		cfg.HTTPClient = devp.Client()
	}
	con, err := console.New(cfg)
	if err != nil {
		return nil, err
	}
	if devp == nil {
		return con, nil
	}
	m := http.NewServeMux()
	m.Handle(console.DevPath+"/", devp)
	m.Handle("/", con)
	return m, nil
}

// consoleConfig is the console section as the console gets it, but for its
// wiring and client secret: its public URL (see consolePublicURL) and, in
// --dev without console.issuer, the dev issuer's sign-in page as issuer.
func consoleConfig(cc ConsoleConfig, dev bool, controlURL string) (console.Config, error) {
	public, err := consolePublicURL(cc, consoleDeps{dev: dev, controlURL: controlURL})
	if err != nil {
		return console.Config{}, err
	}
	cfg := cc.Config
	cfg.PublicURL = public
	if cc.Issuer == "" && dev {
		cfg.Issuer, cfg.ClientID = identity.DevIssuerName, console.DevClientID
		cfg.DiscoveryURL = public + console.DevPath + "/.well-known/openid-configuration"
	}
	return cfg, nil
}

func redirectOrDefault(redirect, public string) string {
	if redirect != "" {
		return redirect
	}
	return public + "/auth/callback"
}

// consolePublicURL is the console's origin: redirect_url's, else the
// control listener's. A listener on every address has no origin a browser
// could use, so redirect_url is required then, except in --dev, where the
// console is reached on loopback.
func consolePublicURL(cc ConsoleConfig, d consoleDeps) (string, error) {
	if cc.RedirectURL != "" {
		u, err := url.Parse(cc.RedirectURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("console.redirect_url: %q must be an absolute http:// or https:// URL", cc.RedirectURL)
		}
		return u.Scheme + "://" + u.Host, nil
	}
	u, err := url.Parse(d.controlURL)
	if err != nil {
		return "", fmt.Errorf("control_addr: %w", err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", fmt.Errorf("control_addr: %w", err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if !d.dev {
			return "", errors.New("console.redirect_url: required when control_addr listens on every address")
		}
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(host, port), nil
}
