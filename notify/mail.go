package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
)

// mailer sends one message per recipient address through the relay.
type mailer struct {
	host, from string
	port       int
	mode       string // TLSStartTLS, TLSImplicit or TLSNone
	username   string
	password   string
	roots      *x509.CertPool // nil: the system roots
	timeout    time.Duration
	now        func() time.Time
}

// newMailer reads the files the SMTP configuration names. s has been
// validated and s.Addr is set.
func newMailer(s SMTP, now func() time.Time) (*mailer, error) {
	host, port, _ := net.SplitHostPort(s.Addr)
	p, _ := strconv.Atoi(port)
	m := &mailer{host: host, port: p, from: s.From, mode: s.TLS, username: s.Username, timeout: s.Timeout, now: now}
	if s.PasswordFile != "" {
		pw, err := readSecret("notify.smtp.password_file", s.PasswordFile)
		if err != nil {
			return nil, err
		}
		m.password = pw
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, &configError{key: "notify.smtp.ca_file", msg: "cannot read the file", cause: err}
		}
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(pem) {
			return nil, invalid("notify.smtp.ca_file", "no PEM certificate in the file")
		}
	}
	return m, nil
}

// readSecret reads a secret from a file: trailing line breaks are dropped,
// and an empty secret or one spanning several lines is refused. Errors name
// the key and never quote the content.
func readSecret(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &configError{key: key, msg: "cannot read the file", cause: err}
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", invalid(key, "the file is empty")
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", invalid(key, "the file must hold a single line")
	}
	return s, nil
}

// message builds the mail about e for one recipient. Its errors are
// permanent: trying again would build the same message.
func (m *mailer) message(to string, e Event) (*mail.Msg, error) {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(m.from); err != nil {
		return nil, fmt.Errorf("sender address: %w", err)
	}
	if err := checkAddress(to); err != nil {
		return nil, fmt.Errorf("recipient address: %w", err)
	}
	if err := msg.To(to); err != nil {
		return nil, fmt.Errorf("recipient address: %w", err)
	}
	msg.Subject(headline(e))
	msg.SetGenHeader("X-Elevate-Event", oneLine(e.Kind))
	msg.SetGenHeader("X-Elevate-Request", oneLine(e.RequestID))
	msg.SetGenHeader("X-Elevate-Event-Id", oneLine(e.ID))
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	if e.Kind == KindBreakGlass {
		msg.SetImportance(mail.ImportanceUrgent)
	}
	msg.SetDateWithValue(m.now())
	msg.SetMessageID()
	msg.SetBodyString(mail.TypeTextPlain, mailBody(e))
	return msg, nil
}

// send makes one attempt to deliver msg.
func (m *mailer) send(ctx context.Context, msg *mail.Msg) error {
	opts := []mail.Option{mail.WithPort(m.port), mail.WithTimeout(m.timeout)}
	tlsConfig := &tls.Config{ServerName: m.host, RootCAs: m.roots, MinVersion: tls.VersionTLS12}
	switch m.mode {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL(), mail.WithTLSConfig(tlsConfig))
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(tlsConfig))
	}
	if m.username != "" {
		auth := mail.SMTPAuthAutoDiscover
		if m.mode == TLSNone {
			// Validate allows no encryption only towards a loopback address.
			auth = mail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(m.username), mail.WithPassword(m.password))
	}
	c, err := mail.NewClient(m.host, opts...)
	if err != nil {
		return permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	err = c.DialAndSendWithContext(ctx, msg)
	switch {
	case err == nil:
		return nil
	case msg.IsDelivered():
		// The relay took the message; only what came after (RSET, QUIT)
		// failed. Another attempt would send it twice.
		return nil
	}
	if se, ok := errors.AsType[*mail.SendError](err); ok && se.ErrorCode() >= 500 && se.ErrorCode() <= 599 {
		// The relay refused the sender, a recipient or the message for good.
		return permanent(err)
	}
	return err
}

// mailTarget is the delivery of one event to one mail address.
type mailTarget struct {
	m  *mailer
	to string
}

func (t mailTarget) String() string { return "mail " + t.to }

func (t mailTarget) deliver(ctx context.Context, e Event) error {
	msg, err := t.m.message(t.to, e)
	if err != nil {
		return permanent(err)
	}
	return t.m.send(ctx, msg)
}
