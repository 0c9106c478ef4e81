package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults used by Validate for keys left at their zero value.
const (
	DefaultQueueSize      = 1000
	DefaultRetries        = 5
	DefaultRetryBase      = time.Second
	DefaultSMTPTimeout    = 10 * time.Second
	DefaultWebhookTimeout = 5 * time.Second
)

// Values of SMTP.TLS.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS, which the server must offer
	TLSImplicit = "tls"      // TLS from the first byte (usually port 465)
	TLSNone     = "none"     // no encryption; allowed only towards a loopback address
)

// ErrInvalidConfig is wrapped by every error of Validate and New about the
// configuration. The message names the key at fault.
var ErrInvalidConfig = errors.New("notify: invalid configuration")

// configError names the key at fault and may wrap a cause (an I/O error);
// it never carries the content of a secret.
type configError struct {
	key   string
	msg   string
	cause error
}

func (e *configError) Error() string {
	if e.cause == nil {
		return e.key + ": " + e.msg
	}
	return e.key + ": " + e.msg + ": " + e.cause.Error()
}

func (e *configError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidConfig}
	}
	return []error{ErrInvalidConfig, e.cause}
}

func invalid(key, format string, args ...any) error {
	return &configError{key: key, msg: fmt.Sprintf(format, args...)}
}

// Config configures a Notifier. The zero value is valid: nothing is sent
// anywhere, and every Notify is queued and then has no delivery to make.
type Config struct {
	// SMTP is the mail relay. Mail is off when SMTP.Addr is empty.
	SMTP SMTP `yaml:"smtp"`
	// Groups maps an approver group to the mail address that reaches its
	// members, for example "approvers": "pam-approvers@example.com".
	// Setting it requires SMTP.Addr.
	Groups map[string]string `yaml:"group_addresses"`
	// Webhooks receive every event they subscribe to as JSON.
	Webhooks []Webhook `yaml:"webhooks"`
	// QueueSize bounds the deliveries waiting to be made, including those
	// waiting for a retry. When the queue is full, the oldest waiting
	// delivery is dropped and counted in Stats.Dropped. Default 1000.
	QueueSize int `yaml:"queue_size"`
	// Retries is the number of attempts per delivery, the first one
	// included. Default 5.
	Retries int `yaml:"retries"`
	// RetryBase is the wait after the first failed attempt; each further
	// wait doubles (capped at 5 minutes). Default 1s.
	RetryBase time.Duration `yaml:"retry_base"`
	// Logger receives delivery failures and drops. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Now stamps the Date of mail and the At of events that have none.
	// Default time.Now. Waits between attempts use the runtime's timers.
	Now func() time.Time `yaml:"-"`
}

// SMTP configures the mail relay.
type SMTP struct {
	// Addr is the relay as host:port. Empty turns mail off, and then no
	// other key of SMTP may be set.
	Addr string `yaml:"addr"`
	// From is the sender address; required when Addr is set.
	From string `yaml:"from"`
	// Username for SMTP AUTH; set together with PasswordFile, or neither
	// (no AUTH).
	Username string `yaml:"username"`
	// PasswordFile holds the SMTP AUTH password; trailing line breaks are
	// ignored. The password is never written inline in the configuration.
	PasswordFile string `yaml:"password_file"`
	// TLS is TLSStartTLS (default; the relay must offer STARTTLS), TLSImplicit,
	// or TLSNone, which Validate accepts only for a loopback Addr.
	TLS string `yaml:"tls"`
	// CAFile is a PEM bundle of the certificate authorities trusted for the
	// relay's certificate, instead of the system roots. Optional.
	CAFile string `yaml:"ca_file"`
	// Timeout bounds one delivery attempt (connect, TLS, AUTH, send).
	// Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// Webhook is one HTTP(S) endpoint that receives events as JSON by POST.
type Webhook struct {
	// URL is the http or https endpoint. It may itself be a secret (chat
	// webhooks often are), so only its host ever appears in logs and errors.
	URL string `yaml:"url"`
	// Events lists the event kinds sent to this endpoint; empty means all.
	Events []string `yaml:"events"`
	// Timeout bounds one delivery attempt. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// HeaderName and HeaderValueFile add an optional secret header (for
	// example a token) to every request; the value is read from the file,
	// trailing line breaks ignored. Set both or neither. A secret header is
	// sent over plain http only to a loopback host.
	HeaderName      string `yaml:"header_name"`
	HeaderValueFile string `yaml:"header_value_file"`
}

// Validate checks the configuration and fills in the defaults of keys left
// at their zero value. Its errors wrap ErrInvalidConfig and name the key, for
// example "notify.smtp.from: required when notify.smtp.addr is set". It
// does not read the files the configuration names; New does.
func (c *Config) Validate() error {
	if err := c.SMTP.validate(); err != nil {
		return err
	}
	if len(c.Groups) > 0 && c.SMTP.Addr == "" {
		return invalid("notify.group_addresses", "requires notify.smtp.addr")
	}
	groups := make([]string, 0, len(c.Groups))
	for g := range c.Groups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		if strings.TrimSpace(g) == "" {
			return invalid("notify.group_addresses", "empty group name")
		}
		if err := checkAddress(c.Groups[g]); err != nil {
			return invalid("notify.group_addresses."+g, "%s", err)
		}
	}
	for i := range c.Webhooks {
		if err := c.Webhooks[i].validate(fmt.Sprintf("notify.webhooks[%d]", i)); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{
		{"notify.retry_base", &c.RetryBase, DefaultRetryBase},
		{"notify.smtp.timeout", &c.SMTP.Timeout, DefaultSMTPTimeout},
	} {
		if *d.v < 0 {
			return invalid(d.key, "must not be negative, got %s", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, n := range []struct {
		key string
		v   *int
		def int
	}{
		{"notify.queue_size", &c.QueueSize, DefaultQueueSize},
		{"notify.retries", &c.Retries, DefaultRetries},
	} {
		if *n.v < 0 {
			return invalid(n.key, "must not be negative, got %d", *n.v)
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func (s *SMTP) validate() error {
	if s.Addr == "" {
		// Mail is off. A relay half configured is a mistake, not a wish
		// for silence: refuse it rather than send nothing.
		if s.From != "" || s.Username != "" || s.PasswordFile != "" || s.TLS != "" || s.CAFile != "" || s.Timeout != 0 {
			return invalid("notify.smtp.addr", "required when other notify.smtp keys are set")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil || host == "" {
		return invalid("notify.smtp.addr", "must be host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return invalid("notify.smtp.addr", "port must be a number from 1 to 65535")
	}
	if s.From == "" {
		return invalid("notify.smtp.from", "required when notify.smtp.addr is set")
	}
	if err := checkAddress(s.From); err != nil {
		return invalid("notify.smtp.from", "%s", err)
	}
	if s.Username != "" && s.PasswordFile == "" {
		return invalid("notify.smtp.password_file", "required when notify.smtp.username is set")
	}
	if s.PasswordFile != "" && s.Username == "" {
		return invalid("notify.smtp.username", "required when notify.smtp.password_file is set")
	}
	switch s.TLS {
	case "":
		s.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !isLoopback(host) {
			return invalid("notify.smtp.tls", `"none" is allowed only when notify.smtp.addr is a loopback address`)
		}
		if s.CAFile != "" {
			return invalid("notify.smtp.ca_file", `not used when notify.smtp.tls is "none"`)
		}
	default:
		return invalid("notify.smtp.tls", `must be "starttls", "tls" or "none", got %q`, s.TLS)
	}
	return nil
}

func (w *Webhook) validate(key string) error {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself may be a secret: it is not repeated here.
		return invalid(key+".url", "must be an absolute http or https URL")
	}
	for _, e := range w.Events {
		if !slices.Contains(kinds, e) {
			return invalid(key+".events", "unknown event %q", e)
		}
	}
	if w.Timeout < 0 {
		return invalid(key+".timeout", "must not be negative, got %s", w.Timeout)
	}
	if w.Timeout == 0 {
		w.Timeout = DefaultWebhookTimeout
	}
	if w.HeaderName != "" && w.HeaderValueFile == "" {
		return invalid(key+".header_value_file", "required when %s.header_name is set", key)
	}
	if w.HeaderValueFile != "" && w.HeaderName == "" {
		return invalid(key+".header_name", "required when %s.header_value_file is set", key)
	}
	if w.HeaderName != "" {
		if !isToken(w.HeaderName) {
			return invalid(key+".header_name", "not a valid header name")
		}
		switch strings.ToLower(w.HeaderName) {
		case "host", "content-type", "content-length", "transfer-encoding", "connection":
			return invalid(key+".header_name", "%s is set by the notifier", w.HeaderName)
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			return invalid(key+".url", "must be https when a secret header is set (plain http only to a loopback host)")
		}
	}
	return nil
}

// checkAddress accepts one bare mail address (no display name, no list).
func checkAddress(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return errors.New("not a valid mail address")
	}
	if a.Name != "" || a.Address != strings.TrimSpace(s) {
		return errors.New("must be a bare address such as name@example.com")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isToken reports whether s is an HTTP field name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}
