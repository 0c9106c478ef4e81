package notify

import (
	"errors"
	"io"
	"log"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// mailServer is a real SMTP server on a loopback port, without TLS. It
// keeps every message it accepts.
type mailServer struct {
	addr string
	// user and pass, when set, make AUTH PLAIN mandatory before MAIL.
	user, pass string

	mu       sync.Mutex
	msgs     []gotMail
	tempFail int // MAIL commands still to refuse with 451
	rcptFail int // when set, every RCPT is refused with this code
	authed   []string
}

// gotMail is one message as the server received it.
type gotMail struct {
	From    string
	To      []string
	Header  netmail.Header
	Subject string
	Body    string
}

type mailServerOption func(*mailServer)

func withAuth(user, pass string) mailServerOption {
	return func(s *mailServer) { s.user, s.pass = user, pass }
}

func withTempFailures(n int) mailServerOption {
	return func(s *mailServer) { s.tempFail = n }
}

func withRcptFailure(code int) mailServerOption {
	return func(s *mailServer) { s.rcptFail = code }
}

func newMailServer(t *testing.T, opts ...mailServerOption) *mailServer {
	t.Helper()
	ms := &mailServer{}
	for _, o := range opts {
		o(ms)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &mailSession{srv: ms}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // loopback, as notify.smtp.tls "none" requires
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ms.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		_ = srv.Serve(l)
		close(done)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		// Serve may not have registered l yet, and then Close cannot
		// reach it: closing it here makes Serve return in any case.
		_ = l.Close()
		<-done
	})
	return ms
}

func (s *mailServer) messages() []gotMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gotMail(nil), s.msgs...)
}

// to returns the messages whose envelope lists rcpt.
func (s *mailServer) to(rcpt string) []gotMail {
	var out []gotMail
	for _, m := range s.messages() {
		for _, r := range m.To {
			if strings.EqualFold(r, rcpt) {
				out = append(out, m)
			}
		}
	}
	return out
}

func (s *mailServer) logins() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.authed...)
}

type mailSession struct {
	srv    *mailServer
	authed bool
	from   string
	to     []string
}

func (s *mailSession) AuthMechanisms() []string {
	if s.srv.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.srv.user || pass != s.srv.pass {
			return errors.New("invalid credentials")
		}
		s.authed = true
		s.srv.mu.Lock()
		s.srv.authed = append(s.srv.authed, user)
		s.srv.mu.Unlock()
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.tempFail > 0 {
		s.srv.tempFail--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if code := s.srv.rcptFail; code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 1, 1}, Message: "no such mailbox"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	m, err := netmail.ReadMessage(r)
	if err != nil {
		return err
	}
	var body io.Reader = m.Body
	switch strings.ToLower(m.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(m.Body)
	case "base64":
		return errors.New("test server: base64 bodies not expected")
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, gotMail{From: s.from, To: s.to, Header: m.Header, Subject: subject, Body: string(b)})
	s.srv.mu.Unlock()
	return nil
}

func (s *mailSession) Reset() { s.from, s.to = "", nil }

func (s *mailSession) Logout() error { return nil }

// plainSMTP is the configuration of a relay on a loopback address without
// TLS.
func plainSMTP(addr string) SMTP {
	return SMTP{Addr: addr, From: "elevate@example.com", TLS: TLSNone, Timeout: 5 * time.Second}
}

var groups = map[string]string{
	"exchange-admins": "exchange-admins@example.com",
	"ad-admins":       "ad-admins@example.com",
}

func TestMailSubmittedGoesToTheApproverGroup(t *testing.T) {
	ms := newMailServer(t)
	n, _ := start(t, Config{SMTP: plainSMTP(ms.addr), Groups: groups})
	n.Notify(sample(KindSubmitted, "req-42"))
	waitStats(t, n, Stats{Queued: 1, Sent: 1})

	msgs := ms.messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, "elevate@example.com", m.From)
	require.Equal(t, []string{"exchange-admins@example.com"}, m.To)
	require.Equal(t, `[elevate] submitted: Exchange\New-MoveRequest for bob (req-42)`, m.Subject)
	for _, want := range []string{
		"bob asks for Exchange\\New-MoveRequest and needs an approval from exchange-admins (request req-42).",
		"Request:    req-42",
		"Requester:  bob <bob@example.com>",
		"Target:     Exchange\\New-MoveRequest",
		"Reason:     INC-7 move the mailbox of the sales team",
		"At:         2031-03-04T05:06:07Z",
		"elevate request approve req-42",
	} {
		require.Contains(t, m.Body, want)
	}
	require.Equal(t, KindSubmitted, m.Header.Get("X-Elevate-Event"))
	require.Equal(t, "req-42", m.Header.Get("X-Elevate-Request"))
	require.Equal(t, "req-42/"+KindSubmitted, m.Header.Get("X-Elevate-Event-Id"))
	require.Equal(t, "auto-generated", m.Header.Get("Auto-Submitted"))
	date, err := m.Header.Date()
	require.NoError(t, err)
	require.True(t, date.Equal(clock), "Date comes from Config.Now, got %s", date)
}

func TestMailDecisionsGoToTheRequester(t *testing.T) {
	ms := newMailServer(t)
	n, _ := start(t, Config{SMTP: plainSMTP(ms.addr), Groups: groups})
	approved := sample(KindApproved, "req-1")
	approved.By, approved.Comment, approved.Status = "alice", "ok for tonight", "approved"
	denied := sample(KindDenied, "req-2")
	denied.By, denied.Comment, denied.Status = "carol", "use the runbook", "denied"
	n.Notify(approved)
	n.Notify(denied)
	waitStats(t, n, Stats{Queued: 2, Sent: 2})

	require.Empty(t, ms.to("exchange-admins@example.com"), "decisions are not mailed to approvers")
	got := map[string]gotMail{}
	for _, m := range ms.to("bob@example.com") {
		require.Equal(t, []string{"bob@example.com"}, m.To)
		got[m.Header.Get("X-Elevate-Request")] = m
	}
	require.Len(t, got, 2)
	require.Equal(t, `[elevate] approved: Exchange\New-MoveRequest for bob (req-1)`, got["req-1"].Subject)
	require.Contains(t, got["req-1"].Body, "was approved by alice.")
	require.Contains(t, got["req-1"].Body, "Comment:    ok for tonight")
	require.Equal(t, `[elevate] denied: Exchange\New-MoveRequest for bob (req-2)`, got["req-2"].Subject)
	require.Contains(t, got["req-2"].Body, "was denied by carol.")
	require.Contains(t, got["req-2"].Body, "Comment:    use the runbook")
}

func TestMailRecipients(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind string
		edit func(*Event)
		want []string
	}{
		{"revoked: requester and group", KindRevoked, nil, []string{"bob@example.com", "exchange-admins@example.com"}},
		{"expired: requester and group", KindExpired, nil, []string{"bob@example.com", "exchange-admins@example.com"}},
		{"used up: requester and group", KindUsedUp, nil, []string{"bob@example.com", "exchange-admins@example.com"}},
		{"break-glass: every group", KindBreakGlass, nil, []string{"ad-admins@example.com", "exchange-admins@example.com"}},
		{"break-glass without a group: every group", KindBreakGlass, func(e *Event) { e.Approvers = "" }, []string{"ad-admins@example.com", "exchange-admins@example.com"}},
		{"approved without a requester address: nobody", KindApproved, func(e *Event) { e.RequesterEmail = "" }, nil},
		{"submitted to a group without address: nobody", KindSubmitted, func(e *Event) { e.Approvers = "sql-admins" }, nil},
		{"requester who is also the group address: once", KindRevoked, func(e *Event) { e.RequesterEmail = "Exchange-Admins@example.com" }, []string{"Exchange-Admins@example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, _ := newNotifier(t, Config{SMTP: plainSMTP("127.0.0.1:25"), Groups: groups})
			e := sample(tc.kind, "req-1")
			if tc.edit != nil {
				tc.edit(&e)
			}
			require.ElementsMatch(t, tc.want, n.recipients(e))
		})
	}
}

func TestMailBreakGlassReachesEveryApproverGroup(t *testing.T) {
	ms := newMailServer(t)
	n, _ := start(t, Config{SMTP: plainSMTP(ms.addr), Groups: groups})
	e := sample(KindBreakGlass, "req-9")
	e.Status = "granted"
	n.Notify(e)
	waitStats(t, n, Stats{Queued: 2, Sent: 2})

	for _, to := range []string{"exchange-admins@example.com", "ad-admins@example.com"} {
		msgs := ms.to(to)
		require.Len(t, msgs, 1, to)
		m := msgs[0]
		require.Equal(t, []string{to}, m.To, "each address gets its own message")
		require.Equal(t, `[elevate] BREAK-GLASS: Exchange\New-MoveRequest for bob (req-9)`, m.Subject)
		require.Contains(t, m.Body, "BREAK-GLASS: bob took Exchange\\New-MoveRequest without approval (request req-9).")
		require.Contains(t, m.Body, "Reason:     INC-7 move the mailbox of the sales team")
		require.True(t, strings.HasPrefix(m.Header.Get("X-Priority"), "1"), "marked urgent")
	}
	require.Empty(t, ms.to("bob@example.com"))
}

// secretFile writes content to a file of its own and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestMailAuthPlain(t *testing.T) {
	const password = "correct-horse-battery"
	ms := newMailServer(t, withAuth("elevate-relay", password))
	cfg := plainSMTP(ms.addr)
	cfg.Username = "elevate-relay"
	cfg.PasswordFile = secretFile(t, password+"\n")
	n, logs := start(t, Config{SMTP: cfg, Groups: groups})
	n.Notify(sample(KindSubmitted, "req-1"))
	waitStats(t, n, Stats{Queued: 1, Sent: 1})

	require.Equal(t, []string{"elevate-relay"}, ms.logins())
	require.Len(t, ms.to("exchange-admins@example.com"), 1)
	require.NotContains(t, logs.String(), password)
}

func TestMailWrongPasswordIsRetriedAndNeverLogged(t *testing.T) {
	const wrong = "wrong-password-4711"
	ms := newMailServer(t, withAuth("elevate-relay", "the-right-one"))
	cfg := plainSMTP(ms.addr)
	cfg.Username = "elevate-relay"
	cfg.PasswordFile = secretFile(t, wrong)
	n, logs := start(t, Config{SMTP: cfg, Groups: groups, Retries: 2, RetryBase: quickRetry})
	n.Notify(sample(KindSubmitted, "req-1"))
	waitStats(t, n, Stats{Queued: 1, Failed: 1, Retried: 1})

	require.Empty(t, ms.messages())
	out := logs.String()
	require.Contains(t, out, "delivery failed")
	require.Contains(t, out, "mail exchange-admins@example.com")
	require.NotContains(t, out, wrong)
}

func TestMailServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there any more

	n, logs := start(t, Config{SMTP: plainSMTP(addr), Groups: groups, Retries: 3, RetryBase: quickRetry})
	began := time.Now()
	for _, kind := range kinds {
		n.Notify(sample(kind, "req-1"))
	}
	require.Less(t, time.Since(began), time.Second, "Notify does not wait for the relay")

	// submitted 1, approved 1, denied 1, revoked 2, expired 2, used up 2,
	// break-glass 2
	const deliveries = 11
	waitStats(t, n, Stats{Queued: deliveries, Failed: deliveries, Retried: deliveries * 2})
	out := logs.String()
	require.Equal(t, deliveries*2, strings.Count(out, "will retry"))
	require.Equal(t, deliveries, strings.Count(out, "delivery failed"))
	require.Contains(t, out, "connection refused")
}

func TestMailTemporaryRefusalIsRetried(t *testing.T) {
	ms := newMailServer(t, withTempFailures(2))
	n, logs := start(t, Config{SMTP: plainSMTP(ms.addr), Groups: groups, Retries: 5, RetryBase: quickRetry})
	n.Notify(sample(KindSubmitted, "req-1"))
	waitStats(t, n, Stats{Queued: 1, Sent: 1, Retried: 2})
	require.Len(t, ms.messages(), 1)
	require.Contains(t, logs.String(), "451")
}

func TestMailPermanentRefusalIsFinal(t *testing.T) {
	ms := newMailServer(t, withRcptFailure(550))
	n, logs := start(t, Config{SMTP: plainSMTP(ms.addr), Groups: groups, Retries: 5, RetryBase: quickRetry})
	n.Notify(sample(KindSubmitted, "req-1"))
	waitStats(t, n, Stats{Queued: 1, Failed: 1})
	require.Empty(t, ms.messages())
	require.Contains(t, logs.String(), "550")
}

func TestMailBadRequesterAddressIsFinal(t *testing.T) {
	ms := newMailServer(t)
	n, _ := start(t, Config{SMTP: plainSMTP(ms.addr), Groups: groups, Retries: 5, RetryBase: quickRetry})
	e := sample(KindApproved, "req-1")
	e.RequesterEmail = "bob at example dot com"
	n.Notify(e)
	waitStats(t, n, Stats{Queued: 1, Failed: 1})
	require.Empty(t, ms.messages())
}

func TestMailStartTLSIsMandatoryByDefault(t *testing.T) {
	ms := newMailServer(t) // offers no STARTTLS
	cfg := plainSMTP(ms.addr)
	cfg.TLS = "" // the default, starttls
	n, logs := start(t, Config{SMTP: cfg, Groups: groups, Retries: 1})
	n.Notify(sample(KindSubmitted, "req-1"))
	waitStats(t, n, Stats{Queued: 1, Failed: 1})
	require.Empty(t, ms.messages(), "nothing is sent in the clear")
	require.Contains(t, logs.String(), "STARTTLS")
}
