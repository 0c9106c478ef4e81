package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/console"
)

// TestConsoleConfig: the console section is checked at start-up against
// the identity issuers; errors name the key.
func TestConsoleConfig(t *testing.T) {
	const base = `
etcd: {endpoints: ["http://127.0.0.1:2379"]}
audit: {path: /tmp/audit.log}
upstreams: [{name: a, url: "http://127.0.0.1:9", prefix: /a/}]
identity:
  issuers: [{issuer: "https://login.example.com/", audience: [elevate], jwks_url: "https://login.example.com/jwks"}]
`
	for _, tc := range []struct {
		desc    string
		console string
		dev     bool
		on      bool
		err     string
	}{
		{"absent: off outside --dev", "", false, false, ""},
		{"absent: on in --dev", "", true, true, ""},
		{"explicitly off in --dev", "console: {enabled: false}", true, false, ""},
		{"a configured issuer", `console: {issuer: "https://login.example.com/", client_id: elevate, trace_url: "http://jaeger:16686/trace/{trace_id}"}`, false, true, ""},
		{"enabled without an issuer", "console: {enabled: true}", false, true, "console.issuer: required"},
		{"an issuer elevate does not trust", `console: {issuer: "https://other.example.com/", client_id: elevate}`, false, true, "console.issuer: \"https://other.example.com/\" is not one of identity.issuers"},
		{"no client id", `console: {issuer: "https://login.example.com/"}`, false, true, "console.client_id"},
		{"an unknown token kind", `console: {issuer: "https://login.example.com/", client_id: e, token: refresh}`, false, true, "console.token"},
		{"a callback elsewhere", `console: {issuer: "https://login.example.com/", client_id: e, redirect_url: "https://e.example.com/cb"}`, false, true, "console.redirect_url"},
		{"a trace URL without the id", `console: {issuer: "https://login.example.com/", client_id: e, trace_url: "http://jaeger/trace"}`, false, true, "console.trace_url"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := parseConfig([]byte(base + tc.console))
			require.NoError(t, err)
			c.defaults(tc.dev)
			require.Equal(t, tc.on, c.Console.on(tc.dev))
			err = c.validate(tc.dev)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
	_, err := parseConfig([]byte("console: {trace_ur: x}\n"))
	require.ErrorContains(t, err, "trace_ur")
}

// TestConsolePublicURL: the console's origin is redirect_url's, else the
// control listener's; a listener on every address needs redirect_url
// outside --dev.
func TestConsolePublicURL(t *testing.T) {
	for _, tc := range []struct {
		desc, redirect, control string
		dev                     bool
		want, err               string
	}{
		{"the control listener", "", "http://127.0.0.1:8081", false, "http://127.0.0.1:8081", ""},
		{"with TLS", "", "https://127.0.0.1:8443", false, "https://127.0.0.1:8443", ""},
		{"redirect_url's origin", "https://elevate.example.com/auth/callback", "http://0.0.0.0:8081", false, "https://elevate.example.com", ""},
		{"every address in --dev", "", "http://0.0.0.0:8081", true, "http://127.0.0.1:8081", ""},
		{"every IPv6 address in --dev", "", "http://[::]:8081", true, "http://[::1]:8081", ""},
		{"every address otherwise", "", "http://0.0.0.0:8081", false, "", "console.redirect_url: required"},
		{"a relative redirect_url", "/auth/callback", "http://127.0.0.1:8081", false, "", "console.redirect_url"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := consolePublicURL(ConsoleConfig{Config: console.Config{RedirectURL: tc.redirect}}, consoleDeps{dev: tc.dev, controlURL: tc.control})
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
