package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Cookie names.
const (
	sessionCookie = "elevate_session"
	loginCookie   = "elevate_login"
)

// user is the signed-in person as pages see them.
type user struct {
	Subject string
	Groups  []string
	Email   string
	Admin   bool
	Auditor bool
}

// InGroup reports whether the user is a member of group g.
func (u *user) InGroup(g string) bool { return g != "" && slices.Contains(u.Groups, g) }

// session is one signed-in browser. The token never leaves the server.
type session struct {
	key     [sha256.Size]byte
	user    user
	token   string
	csrf    string
	created time.Time
	expires time.Time
}

// sessionStore keeps sessions in memory, by the SHA-256 of their cookie
// value, so that a lookup's timing says nothing about stored ids.
type sessionStore struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	byKey map[[sha256.Size]byte]*session
	flash map[[sha256.Size]byte]string
}

func newSessionStore(max int, now func() time.Time) *sessionStore {
	return &sessionStore{max: max, now: now, byKey: map[[sha256.Size]byte]*session{}, flash: map[[sha256.Size]byte]string{}}
}

// randomToken is 32 random bytes, base64url without padding.
func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// create stores a new session and returns its cookie value. When the store
// is full, expired sessions go first, then the oldest.
func (s *sessionStore) create(u user, token string, expires time.Time) (string, error) {
	id, err := randomToken()
	if err != nil {
		return "", err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", err
	}
	now := s.now()
	ses := &session{key: sha256.Sum256([]byte(id)), user: u, token: token, csrf: csrf, created: now, expires: expires}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byKey) >= s.max {
		s.pruneLocked(now)
	}
	for len(s.byKey) >= s.max {
		var oldest *session
		for _, v := range s.byKey {
			if oldest == nil || v.created.Before(oldest.created) {
				oldest = v
			}
		}
		s.deleteLocked(oldest.key)
	}
	s.byKey[ses.key] = ses
	return id, nil
}

func (s *sessionStore) pruneLocked(now time.Time) {
	for k, v := range s.byKey {
		if !now.Before(v.expires) {
			s.deleteLocked(k)
		}
	}
}

func (s *sessionStore) deleteLocked(k [sha256.Size]byte) {
	delete(s.byKey, k)
	delete(s.flash, k)
}

// get returns the live session of cookie value id; an expired one is
// removed.
func (s *sessionStore) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, ok := s.byKey[k]
	if !ok {
		return nil, false
	}
	if !s.now().Before(ses.expires) {
		s.deleteLocked(k)
		return nil, false
	}
	return ses, true
}

// end removes a session.
func (s *sessionStore) end(ses *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(ses.key)
}

// len is the number of sessions kept.
func (s *sessionStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}

// setFlash keeps a one-time message for the session's next page.
func (s *sessionStore) setFlash(ses *session, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byKey[ses.key]; ok {
		s.flash[ses.key] = msg
	}
}

// takeFlash returns and forgets the session's message.
func (s *sessionStore) takeFlash(ses *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := s.flash[ses.key]
	delete(s.flash, ses.key)
	return msg
}

// validCSRF compares a form's token with the session's in constant time.
func (ses *session) validCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(ses.csrf)) == 1
}

// login is a sign-in under way: what the callback must find again.
type login struct {
	key      [sha256.Size]byte
	state    string
	nonce    string
	verifier string
	next     string
	created  time.Time
}

// loginStore keeps sign-ins under way, bounded in number and age.
type loginStore struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	byKey map[[sha256.Size]byte]*login
}

func newLoginStore(max int, ttl time.Duration, now func() time.Time) *loginStore {
	return &loginStore{max: max, ttl: ttl, now: now, byKey: map[[sha256.Size]byte]*login{}}
}

// start records a new sign-in and returns its cookie value.
func (s *loginStore) start(next string) (string, *login, error) {
	var vals [4]string
	for i := range vals {
		v, err := randomToken()
		if err != nil {
			return "", nil, err
		}
		vals[i] = v
	}
	now := s.now()
	l := &login{key: sha256.Sum256([]byte(vals[0])), state: vals[1], nonce: vals[2], verifier: vals[3], next: next, created: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byKey) >= s.max {
		for k, v := range s.byKey {
			if now.Sub(v.created) >= s.ttl {
				delete(s.byKey, k)
			}
		}
	}
	for len(s.byKey) >= s.max {
		var oldest *login
		for _, v := range s.byKey {
			if oldest == nil || v.created.Before(oldest.created) {
				oldest = v
			}
		}
		delete(s.byKey, oldest.key)
	}
	s.byKey[l.key] = l
	return vals[0], l, nil
}

// take removes and returns the sign-in of cookie value id, if it is still
// young enough. A sign-in is used once, whatever the outcome.
func (s *loginStore) take(id string) (*login, bool) {
	if id == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.byKey[k]
	if !ok {
		return nil, false
	}
	delete(s.byKey, k)
	if s.now().Sub(l.created) >= s.ttl {
		return nil, false
	}
	return l, true
}

// sessionCookieFor is the session cookie: HttpOnly, SameSite=Lax (the
// callback arrives by a top-level navigation from the issuer), Secure over
// https, for the whole console. maxAge < 0 deletes it.
func (c *Console) sessionCookieFor(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode}
}

// loginCookieFor is the cookie that ties a callback to the browser that
// started the sign-in; only /auth/ sees it.
func (c *Console) loginCookieFor(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: loginCookie, Value: value, Path: "/auth/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode}
}

// currentSession is the live session of r's cookie, if any.
func (c *Console) currentSession(r *http.Request) (*session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	return c.sessions.get(ck.Value)
}

// authedHandler serves a signed-in user.
type authedHandler func(w http.ResponseWriter, r *http.Request, s *session)

// authed requires a live session: a GET without one goes to sign-in and
// comes back; a POST without one, or without the session's CSRF token, is
// refused.
func (c *Console) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ses, ok := c.currentSession(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				redirect(w, "/auth/login?next="+url.QueryEscape(r.URL.RequestURI()))
				return
			}
			c.render(w, r, http.StatusUnauthorized, "error", view{Title: "Signed out",
				Error: "Your session has ended; sign in again and repeat the action."})
			return
		}
		if r.Method == http.MethodPost {
			// A form is read only up to 64 KiB.
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil || !ses.validCSRF(r.PostForm.Get("csrf")) {
				c.render(w, r, http.StatusForbidden, "error", c.viewFor(ses, view{Title: "Refused",
					Error: "The form's security token is missing or wrong; reload the page and try again."}))
				return
			}
		}
		h(w, r, ses)
	}
}

// viewFor fills the signed-in parts of a page's view and takes the
// session's one-time message.
func (c *Console) viewFor(ses *session, v view) view {
	u := ses.user
	v.User, v.CSRF = &u, ses.csrf
	if v.Flash == "" {
		v.Flash = c.sessions.takeFlash(ses)
	}
	return v
}
