package notify

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestValidate(t *testing.T) {
	relay := func(edit func(*SMTP)) SMTP {
		s := SMTP{Addr: "mail.example.com:587", From: "elevate@example.com"}
		if edit != nil {
			edit(&s)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		key  string // "" when valid
		not  string // must not appear in the error
	}{
		{name: "zero value", cfg: Config{}},
		{name: "relay with defaults", cfg: Config{SMTP: relay(nil), Groups: map[string]string{"admins": "admins@example.com"}}},
		{name: "implicit tls with auth", cfg: Config{SMTP: relay(func(s *SMTP) {
			s.Addr, s.TLS, s.Username, s.PasswordFile = "mail.example.com:465", TLSImplicit, "relay", "/run/secrets/smtp"
		})}},
		{name: "no tls on 127.0.0.1", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr, s.TLS = "127.0.0.1:25", TLSNone })}},
		{name: "no tls on localhost", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr, s.TLS = "localhost:1025", TLSNone })}},
		{name: "no tls on ::1", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr, s.TLS = "[::1]:25", TLSNone })}},
		{name: "webhooks", cfg: Config{Webhooks: []Webhook{
			{URL: "https://chat.example.com/hooks/abc"},
			{URL: "http://127.0.0.1:9000/in", Events: []string{KindBreakGlass}, HeaderName: "X-Token", HeaderValueFile: "/run/secrets/hook"},
		}}},

		{name: "smtp keys without addr", cfg: Config{SMTP: SMTP{From: "elevate@example.com"}}, key: "notify.smtp.addr"},
		{name: "smtp username without addr", cfg: Config{SMTP: SMTP{Username: "relay", PasswordFile: "/p"}}, key: "notify.smtp.addr"},
		{name: "addr without port", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr = "mail.example.com" })}, key: "notify.smtp.addr"},
		{name: "addr without host", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr = ":25" })}, key: "notify.smtp.addr"},
		{name: "port zero", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr = "mail.example.com:0" })}, key: "notify.smtp.addr"},
		{name: "port too big", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr = "mail.example.com:65536" })}, key: "notify.smtp.addr"},
		{name: "port by name", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr = "mail.example.com:smtp" })}, key: "notify.smtp.addr"},
		{name: "from missing", cfg: Config{SMTP: relay(func(s *SMTP) { s.From = "" })}, key: "notify.smtp.from"},
		{name: "from not an address", cfg: Config{SMTP: relay(func(s *SMTP) { s.From = "elevate" })}, key: "notify.smtp.from"},
		{name: "from with a display name", cfg: Config{SMTP: relay(func(s *SMTP) { s.From = "Elevate <elevate@example.com>" })}, key: "notify.smtp.from"},
		{name: "from as a list", cfg: Config{SMTP: relay(func(s *SMTP) { s.From = "a@example.com, b@example.com" })}, key: "notify.smtp.from"},
		{name: "username without password file", cfg: Config{SMTP: relay(func(s *SMTP) { s.Username = "relay" })}, key: "notify.smtp.password_file"},
		{name: "password file without username", cfg: Config{SMTP: relay(func(s *SMTP) { s.PasswordFile = "/p" })}, key: "notify.smtp.username"},
		{name: "no tls to a remote relay", cfg: Config{SMTP: relay(func(s *SMTP) { s.TLS = TLSNone })}, key: "notify.smtp.tls"},
		{name: "no tls to a private address", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr, s.TLS = "10.1.2.3:25", TLSNone })}, key: "notify.smtp.tls"},
		{name: "no tls to a name that only looks local", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr, s.TLS = "localhost.example.com:25", TLSNone })}, key: "notify.smtp.tls"},
		{name: "unknown tls mode", cfg: Config{SMTP: relay(func(s *SMTP) { s.TLS = "ssl" })}, key: "notify.smtp.tls"},
		{name: "ca file without tls", cfg: Config{SMTP: relay(func(s *SMTP) { s.Addr, s.TLS, s.CAFile = "127.0.0.1:25", TLSNone, "/ca.pem" })}, key: "notify.smtp.ca_file"},
		{name: "negative smtp timeout", cfg: Config{SMTP: relay(func(s *SMTP) { s.Timeout = -time.Second })}, key: "notify.smtp.timeout"},

		{name: "group addresses without relay", cfg: Config{Groups: map[string]string{"admins": "admins@example.com"}}, key: "notify.group_addresses"},
		{name: "group address not an address", cfg: Config{SMTP: relay(nil), Groups: map[string]string{"admins": "admins"}}, key: "notify.group_addresses.admins"},
		{name: "group address empty", cfg: Config{SMTP: relay(nil), Groups: map[string]string{"admins": ""}}, key: "notify.group_addresses.admins"},
		{name: "group name empty", cfg: Config{SMTP: relay(nil), Groups: map[string]string{" ": "admins@example.com"}}, key: "notify.group_addresses"},

		{name: "webhook url empty", cfg: Config{Webhooks: []Webhook{{}}}, key: "notify.webhooks[0].url"},
		{name: "webhook url relative", cfg: Config{Webhooks: []Webhook{{URL: "/hooks/abc"}}}, key: "notify.webhooks[0].url"},
		{name: "webhook url not http", cfg: Config{Webhooks: []Webhook{{URL: "ftp://example.com/tokenABC"}}}, key: "notify.webhooks[0].url", not: "tokenABC"},
		{name: "webhook url unparsable", cfg: Config{Webhooks: []Webhook{{URL: "https://exa mple.com/%zzSecret"}}}, key: "notify.webhooks[0].url", not: "Secret"},
		{name: "unknown event kind", cfg: Config{Webhooks: []Webhook{{URL: "https://example.com"}, {URL: "https://example.com", Events: []string{"request.created"}}}}, key: "notify.webhooks[1].events"},
		{name: "event kind without prefix", cfg: Config{Webhooks: []Webhook{{URL: "https://example.com", Events: []string{"approved"}}}}, key: "notify.webhooks[0].events"},
		{name: "negative webhook timeout", cfg: Config{Webhooks: []Webhook{{URL: "https://example.com", Timeout: -1}}}, key: "notify.webhooks[0].timeout"},
		{name: "header name without value file", cfg: Config{Webhooks: []Webhook{{URL: "https://example.com", HeaderName: "X-Token"}}}, key: "notify.webhooks[0].header_value_file"},
		{name: "header value file without name", cfg: Config{Webhooks: []Webhook{{URL: "https://example.com", HeaderValueFile: "/t"}}}, key: "notify.webhooks[0].header_name"},
		{name: "header name with a space", cfg: Config{Webhooks: []Webhook{{URL: "https://example.com", HeaderName: "X Token", HeaderValueFile: "/t"}}}, key: "notify.webhooks[0].header_name"},
		{name: "header name set by the notifier", cfg: Config{Webhooks: []Webhook{{URL: "https://example.com", HeaderName: "content-type", HeaderValueFile: "/t"}}}, key: "notify.webhooks[0].header_name"},
		{name: "secret header over plain http", cfg: Config{Webhooks: []Webhook{{URL: "http://chat.example.com/in", HeaderName: "X-Token", HeaderValueFile: "/t"}}}, key: "notify.webhooks[0].url"},

		{name: "negative queue size", cfg: Config{QueueSize: -1}, key: "notify.queue_size"},
		{name: "negative retries", cfg: Config{Retries: -1}, key: "notify.retries"},
		{name: "negative retry base", cfg: Config{RetryBase: -time.Second}, key: "notify.retry_base"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.key == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.True(t, strings.HasPrefix(err.Error(), tc.key+": "), "error %q names %s", err, tc.key)
			if tc.not != "" {
				require.NotContains(t, err.Error(), tc.not)
			}
		})
	}
}

func TestValidateFillsDefaults(t *testing.T) {
	cfg := Config{
		SMTP:     SMTP{Addr: "mail.example.com:587", From: "elevate@example.com"},
		Webhooks: []Webhook{{URL: "https://example.com/in"}, {URL: "https://example.com/in2", Timeout: time.Second}},
	}
	require.NoError(t, cfg.Validate())
	require.Equal(t, DefaultQueueSize, cfg.QueueSize)
	require.Equal(t, DefaultRetries, cfg.Retries)
	require.Equal(t, DefaultRetryBase, cfg.RetryBase)
	require.Equal(t, TLSStartTLS, cfg.SMTP.TLS)
	require.Equal(t, DefaultSMTPTimeout, cfg.SMTP.Timeout)
	require.Equal(t, DefaultWebhookTimeout, cfg.Webhooks[0].Timeout)
	require.Equal(t, time.Second, cfg.Webhooks[1].Timeout, "a value given is kept")
	require.NotNil(t, cfg.Logger)
	require.NotNil(t, cfg.Now)
}

func TestConfigFromYAML(t *testing.T) {
	const doc = `
smtp:
  addr: 127.0.0.1:2525
  from: elevate@example.com
  username: relay
  password_file: /run/secrets/smtp
  tls: none
  timeout: 3s
group_addresses:
  exchange-admins: exchange-admins@example.com
webhooks:
  - url: https://chat.example.com/hooks/abc
    events: [request.submitted, request.break_glass]
    timeout: 2s
    header_name: X-Token
    header_value_file: /run/secrets/hook
queue_size: 50
retries: 3
retry_base: 250ms
`
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg))
	require.Equal(t, Config{
		SMTP: SMTP{
			Addr: "127.0.0.1:2525", From: "elevate@example.com", Username: "relay",
			PasswordFile: "/run/secrets/smtp", TLS: TLSNone, Timeout: 3 * time.Second,
		},
		Groups: map[string]string{"exchange-admins": "exchange-admins@example.com"},
		Webhooks: []Webhook{{
			URL: "https://chat.example.com/hooks/abc", Events: []string{KindSubmitted, KindBreakGlass},
			Timeout: 2 * time.Second, HeaderName: "X-Token", HeaderValueFile: "/run/secrets/hook",
		}},
		QueueSize: 50, Retries: 3, RetryBase: 250 * time.Millisecond,
	}, cfg)
	require.NoError(t, cfg.Validate())
}

func TestNewReadsTheFiles(t *testing.T) {
	relay := func(edit func(*SMTP)) Config {
		s := SMTP{Addr: "mail.example.com:587", From: "elevate@example.com", Username: "relay"}
		edit(&s)
		return Config{SMTP: s}
	}
	hook := func(file string) Config {
		return Config{Webhooks: []Webhook{{URL: "https://example.com/in", HeaderName: "X-Token", HeaderValueFile: file}}}
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name  string
		cfg   Config
		key   string
		cause error
		not   string
	}{
		{name: "password file missing", cfg: relay(func(s *SMTP) { s.PasswordFile = missing }), key: "notify.smtp.password_file", cause: fs.ErrNotExist},
		{name: "password file empty", cfg: relay(func(s *SMTP) { s.PasswordFile = secretFile(t, "\n") }), key: "notify.smtp.password_file"},
		{name: "password file of two lines", cfg: relay(func(s *SMTP) { s.PasswordFile = secretFile(t, "hunter2\nhunter3\n") }), key: "notify.smtp.password_file", not: "hunter"},
		{name: "ca file missing", cfg: relay(func(s *SMTP) { s.PasswordFile, s.CAFile = secretFile(t, "pw"), missing }), key: "notify.smtp.ca_file", cause: fs.ErrNotExist},
		{name: "ca file without PEM", cfg: relay(func(s *SMTP) { s.PasswordFile, s.CAFile = secretFile(t, "pw"), secretFile(t, "not a certificate") }), key: "notify.smtp.ca_file"},
		{name: "header value file missing", cfg: hook(missing), key: "notify.webhooks[0].header_value_file", cause: fs.ErrNotExist},
		{name: "header value file empty", cfg: hook(secretFile(t, "")), key: "notify.webhooks[0].header_value_file"},
		{name: "header value with a line break", cfg: hook(secretFile(t, "tok\r\nInjected: yes")), key: "notify.webhooks[0].header_value_file", not: "Injected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg)
			require.Nil(t, n)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.True(t, strings.HasPrefix(err.Error(), tc.key+": "), "error %q names %s", err, tc.key)
			if tc.cause != nil {
				require.ErrorIs(t, err, tc.cause)
			}
			if tc.not != "" {
				require.NotContains(t, err.Error(), tc.not)
			}
		})
	}
}

func TestNewLeavesTheCallersConfigAlone(t *testing.T) {
	cfg := Config{Webhooks: []Webhook{{URL: "https://example.com/in"}}}
	_, err := New(cfg)
	require.NoError(t, err)
	require.Zero(t, cfg.Webhooks[0].Timeout)
	require.Nil(t, cfg.Logger)
}
