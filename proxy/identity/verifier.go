package identity

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

const (
	// jwksTimeout bounds one fetch of a JWKS URL.
	jwksTimeout = 10 * time.Second
	// maxJWKSSize bounds the body of a JWKS response; a longer one fails to
	// parse and the last keys stay in use.
	maxJWKSSize = 1 << 20
	// unknownKIDGap is the least time between two fetches of an issuer's
	// JWKS URL caused by tokens naming a kid the issuer's set lacks.
	unknownKIDGap = 30 * time.Second
	// maxNumericDate is the largest exp, nbf or iat accepted: the end of the
	// year 9999, in seconds since the epoch. Larger values, and negative
	// ones, are refused before any conversion could overflow.
	maxNumericDate = 253402300799
)

// Verifier verifies bearer tokens. It is safe for concurrent use.
type Verifier struct {
	cfg     Config
	parser  *jwt.Parser
	algs    []string // union of the issuers' allow-lists
	issuers map[string]*issuer
	cache   *tokenCache        // nil when turned off
	stop    context.CancelFunc // ends the JWKS refreshes, as the end of New's ctx does
}

// issuer is a configured Issuer, ready to verify.
type issuer struct {
	name      string
	algs      []string
	static    map[string]crypto.PublicKey // by kid (PEM files and keys in code)
	single    crypto.PublicKey            // the only static key, if there is one
	jwks      keyfunc.Keyfunc             // JWKS issuers: the keys last fetched
	refetch   keyfunc.Keyfunc             // JWKS issuers: fetches the set again, then looks up
	gate      *fetchGate                  // JWKS issuers: spaces out the fetches of refetch
	gen       *atomic.Uint64              // moves whenever the key set changes
	validator *jwt.Validator
}

// New checks cfg, loads the issuers' PEM files and fetches their JWKS URLs
// once, then returns a Verifier. Each fetch takes at most 10s. A JWKS URL
// that cannot be fetched does not fail New: it is logged, and the issuer
// refuses every token until a later fetch succeeds. JWKS URLs are fetched
// again in the background until ctx ends; after that the last keys fetched
// stay in use. New fails if ctx ends before it returns.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, stop := context.WithCancel(ctx)
	v := &Verifier{
		cfg:     cfg,
		issuers: make(map[string]*issuer, len(cfg.Issuers)),
		stop:    stop,
	}
	for i, ic := range cfg.Issuers {
		is, err := v.newIssuer(ctx, ic)
		if err != nil {
			stop()
			return nil, fmt.Errorf("identity.issuers[%d]: %w", i, err)
		}
		v.issuers[is.name] = is
		for _, a := range is.algs {
			if !slices.Contains(v.algs, a) {
				v.algs = append(v.algs, a)
			}
		}
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.algs),
		jwt.WithStrictDecoding(),
		jwt.WithoutClaimsValidation(), // done per issuer, in check
	)
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	if err := ctx.Err(); err != nil {
		stop()
		return nil, fmt.Errorf("identity: %w", err)
	}
	return v, nil
}

func (v *Verifier) newIssuer(ctx context.Context, ic Issuer) (*issuer, error) {
	is := &issuer{
		name: ic.Issuer,
		algs: ic.Algorithms,
		gen:  new(atomic.Uint64),
		validator: jwt.NewValidator(
			jwt.WithIssuer(ic.Issuer),
			jwt.WithAudience(slices.Clone(ic.Audience)...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(v.cfg.Leeway),
			jwt.WithTimeFunc(v.cfg.Now),
		),
	}
	if len(is.algs) == 0 {
		is.algs = defaultAlgorithms
	}
	is.algs = slices.Clone(is.algs)

	switch {
	case ic.JWKSURL != "":
		if err := is.fetchJWKS(ctx, ic, v.cfg); err != nil {
			return nil, err
		}
		return is, nil
	case len(ic.PEMFiles) > 0:
		is.static = make(map[string]crypto.PublicKey)
		for j, f := range ic.PEMFiles {
			k, err := loadPEMKey(f)
			if err != nil {
				return nil, fmt.Errorf("pem_files[%d]: %s: %w", j, f, err)
			}
			tp, err := thumbprint(k)
			if err != nil {
				return nil, fmt.Errorf("pem_files[%d]: %s: %w", j, f, err)
			}
			for _, kid := range []string{pemKID(f), tp} {
				if prev, ok := is.static[kid]; ok && !keysEqual(prev, k) {
					return nil, fmt.Errorf("pem_files[%d]: %s: kid %q is already taken by another key", j, f, kid)
				}
				is.static[kid] = k
			}
		}
	default:
		is.static = make(map[string]crypto.PublicKey, len(ic.Keys))
		for kid, k := range ic.Keys {
			is.static[kid] = k
		}
	}
	var distinct []crypto.PublicKey
	for _, k := range is.static {
		if !slices.ContainsFunc(distinct, func(d crypto.PublicKey) bool { return keysEqual(d, k) }) {
			distinct = append(distinct, k)
		}
	}
	for _, k := range distinct {
		if !slices.ContainsFunc(is.algs, func(a string) bool { return fits(a, k) }) {
			return nil, fmt.Errorf("a %T key fits none of the algorithms %v", k, is.algs)
		}
	}
	if len(distinct) == 1 {
		is.single = distinct[0]
	}
	return is, nil
}

func keysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// fetchJWKS fetches the issuer's JWK Set once and keeps it fresh until ctx
// ends: every RefreshInterval, and when a token names a kid the set lacks, at
// most once per unknownKIDGap. A failed fetch keeps the last keys; a failed
// first fetch leaves the issuer without keys.
func (is *issuer) fetchJWKS(ctx context.Context, ic Issuer, cfg Config) error {
	interval := ic.RefreshInterval
	if interval == 0 {
		interval = defaultRefreshInterval
	}
	logger, gen := cfg.Logger, is.gen
	shownURL := ic.JWKSURL
	if u, err := url.Parse(ic.JWKSURL); err == nil {
		shownURL = u.Redacted() // no password in the logs
	}
	storage, err := jwkset.NewStorageFromHTTP(ic.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    jwksClient(),
		Ctx:                       ctx,
		HTTPTimeout:               jwksTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshInterval:           interval,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			msg := "JWKS refresh failed; the last keys stay in use"
			if gen.Load() == 0 {
				msg = "JWKS fetch failed; the issuer's tokens are refused until a fetch succeeds"
			}
			logger.WarnContext(ctx, msg, "issuer", ic.Issuer, "jwks_url", shownURL, "err", err)
		},
		Storage: &countingStorage{MemoryJWKSet: jwkset.NewMemoryStorage(), gen: gen},
	})
	if err != nil {
		return fmt.Errorf("jwks_url: %w", err)
	}
	// refetching looks a kid up and, if the set lacks it, fetches the set
	// again and looks once more; the gate decides when it may be used.
	refetching, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{ic.JWKSURL: storage},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return fmt.Errorf("jwks_url: %w", err)
	}
	use := []jwkset.USE{jwkset.UseSig, ""}
	if is.jwks, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: storage, UseWhitelist: use}); err != nil {
		return fmt.Errorf("jwks_url: %w", err)
	}
	if is.refetch, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: refetching, UseWhitelist: use}); err != nil {
		return fmt.Errorf("jwks_url: %w", err)
	}
	is.gate = &fetchGate{gap: unknownKIDGap, now: cfg.Now}
	return nil
}

// fetchGate lets one fetch through per gap of its clock, and refuses the
// others without waiting.
type fetchGate struct {
	gap  time.Duration
	now  func() time.Time
	mu   sync.Mutex
	last time.Time // of the last fetch let through; zero before the first
}

func (g *fetchGate) allow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	// A clock set back before the last fetch does not hold fetches off.
	if !g.last.IsZero() && !now.Before(g.last) && now.Sub(g.last) < g.gap {
		return false
	}
	g.last = now
	return true
}

// countingStorage moves gen after every change of the key set, so that
// cached verifications made with an older key set are done again.
type countingStorage struct {
	*jwkset.MemoryJWKSet
	gen *atomic.Uint64
}

func (s *countingStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	defer s.gen.Add(1)
	return s.MemoryJWKSet.KeyReplaceAll(ctx, given)
}

func (s *countingStorage) KeyWrite(ctx context.Context, jwk jwkset.JWK) error {
	defer s.gen.Add(1)
	return s.MemoryJWKSet.KeyWrite(ctx, jwk)
}

func (s *countingStorage) KeyDelete(ctx context.Context, keyID string) (bool, error) {
	defer s.gen.Add(1)
	return s.MemoryJWKSet.KeyDelete(ctx, keyID)
}

// jwksClient fetches JWK Sets: bounded in time and size, no redirects.
func jwksClient() *http.Client {
	return &http.Client{
		Transport: limitedTransport{http.DefaultTransport.(*http.Transport).Clone()},
		Timeout:   jwksTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type limitedTransport struct{ rt http.RoundTripper }

func (t limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxJWKSSize), resp.Body}
	return resp, nil
}

// Verify checks token and returns the caller it names. Every error wraps
// ErrUnauthenticated; an empty token gives ErrNoToken.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoToken
	}
	if len(token) > maxTokenSize {
		return Identity{}, refuse(reasonTooLarge) // before hashing or parsing
	}
	if ctx.Err() != nil {
		return Identity{}, refuse(reasonCancelled)
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		if id, ok := v.cache.get(sum); ok {
			return id, nil
		}
	}
	e, err := v.verify(ctx, token)
	if err != nil {
		var r Refusal
		if !errors.As(err, &r) {
			r = reasonInvalid
		}
		return Identity{}, refuse(r)
	}
	if v.cache != nil {
		v.cache.put(sum, e, v.cfg.Now(), v.cfg.Leeway)
	}
	return e.id.clone(), nil
}

// verify does a full verification. Errors are always a refusal.
func (v *Verifier) verify(ctx context.Context, token string) (*cacheEntry, error) {
	if err := checkFront(token); err != nil {
		return nil, err
	}
	var (
		is  *issuer
		gen uint64
	)
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, reasonCrit
		}
		if _, ok := t.Header["cty"]; ok {
			return nil, reasonContentType // a nested token, or not claims
		}
		// The unverified iss only picks the keys; check verifies it again.
		name, ok := claims["iss"].(string)
		if !ok || name == "" {
			return nil, reasonNoIssuer
		}
		is = v.issuers[name]
		if is == nil {
			return nil, reasonUnknownIssuer
		}
		alg := t.Method.Alg()
		if !slices.Contains(is.algs, alg) {
			return nil, reasonAlgorithm
		}
		gen = is.gen.Load() // before the key is read: a later change re-verifies
		key, err := is.key(ctx, t)
		if err != nil {
			return nil, err
		}
		if !fits(alg, key) {
			return nil, reasonKeyMismatch
		}
		return key, nil
	})
	if err != nil {
		return nil, v.parseRefusal(tok, err)
	}
	rc, err := registered(claims)
	if err != nil {
		return nil, err
	}
	if err := is.check(&rc); err != nil {
		return nil, err
	}
	id, err := v.identity(claims, is.name, rc.ExpiresAt.UTC())
	if err != nil {
		return nil, err
	}
	return &cacheEntry{id: id, claims: rc, iss: is, gen: gen}, nil
}

// key finds the key that verifies t.
func (is *issuer) key(ctx context.Context, t *jwt.Token) (any, error) {
	var kid string
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok {
			return nil, reasonMalformedKID
		}
		kid = s
	}
	if is.jwks != nil {
		if kid == "" {
			return nil, reasonUnknownKey
		}
		key, err := is.jwks.KeyfuncCtx(ctx)(t)
		if errors.Is(err, jwkset.ErrKeyNotFound) && is.gate.allow() {
			// Perhaps a key the issuer added since the last fetch.
			key, err = is.refetch.KeyfuncCtx(ctx)(t)
		}
		switch {
		case errors.Is(err, jwkset.ErrKeyNotFound):
			return nil, reasonUnknownKey
		case err != nil:
			return nil, reasonKeyMismatch // the key's alg or use does not allow it
		}
		return key, nil
	}
	if kid == "" {
		if is.single == nil {
			return nil, reasonUnknownKey
		}
		return is.single, nil
	}
	key, ok := is.static[kid]
	if !ok {
		return nil, reasonUnknownKey
	}
	return key, nil
}

// check validates the registered claims of a token of this issuer against
// the clock. It is the same check for a fresh verification and a cache hit.
func (is *issuer) check(rc *jwt.RegisteredClaims) error {
	if rc.ExpiresAt == nil {
		return reasonNoExp
	}
	if !slices.ContainsFunc(rc.Audience, func(a string) bool { return a != "" }) {
		return reasonNoAudience
	}
	err := is.validator.Validate(rc)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrTokenExpired):
		return reasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return reasonNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reasonIssuedFuture
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return reasonWrongIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return reasonWrongAudience
	default:
		return reasonInvalid
	}
}

// parseRefusal turns an error of the JWT parser into a refusal.
func (v *Verifier) parseRefusal(tok *jwt.Token, err error) Refusal {
	var r Refusal
	switch {
	case errors.As(err, &r):
		return r
	case errors.Is(err, jwt.ErrTokenMalformed):
		return reasonMalformed
	}
	if tok != nil {
		if alg, ok := tok.Header["alg"].(string); !ok || !slices.Contains(v.algs, alg) {
			return reasonAlgorithm
		}
	}
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		return reasonSignature
	}
	return reasonInvalid
}

// registered reads the registered claims that check needs.
func registered(c jwt.MapClaims) (jwt.RegisteredClaims, error) {
	var (
		rc   jwt.RegisteredClaims
		errs [5]error
	)
	rc.Issuer, errs[0] = c.GetIssuer()
	rc.Audience, errs[1] = c.GetAudience()
	rc.ExpiresAt, errs[2] = c.GetExpirationTime()
	rc.NotBefore, errs[3] = c.GetNotBefore()
	rc.IssuedAt, errs[4] = c.GetIssuedAt()
	if errors.Join(errs[:]...) != nil || !dateInRange(c["exp"]) || !dateInRange(c["nbf"]) || !dateInRange(c["iat"]) {
		return jwt.RegisteredClaims{}, reasonBadClaims
	}
	return rc, nil
}

// dateInRange reports whether a date claim is absent or a number of seconds
// between 0 and maxNumericDate.
func dateInRange(raw any) bool {
	var f float64
	switch x := raw.(type) {
	case nil:
		return true
	case float64:
		f = x
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return false
		}
	default:
		return false
	}
	return !math.IsNaN(f) && f >= 0 && f <= maxNumericDate
}

// identity reads the caller from verified claims.
func (v *Verifier) identity(c jwt.MapClaims, iss string, exp time.Time) (Identity, error) {
	names := v.cfg.Claims
	sub, _ := c[names.Subject].(string)
	if strings.TrimSpace(sub) == "" {
		return Identity{}, reasonNoSubject
	}
	groups, ok := stringList(c[names.Groups])
	if !ok {
		return Identity{}, reasonBadGroups
	}
	amr, ok := stringList(c[names.AMR])
	if !ok {
		return Identity{}, reasonBadAMR
	}
	var email string
	switch e := c[names.Email].(type) {
	case nil:
	case string:
		email = e
	default:
		return Identity{}, reasonBadEmail
	}
	return Identity{Subject: sub, Groups: groups, AMR: amr, Email: email, Issuer: iss, ExpiresAt: exp}, nil
}

// stringList reads a claim that is a JSON array of strings or one
// space-separated string. An absent claim is an empty list.
func stringList(raw any) ([]string, bool) {
	switch x := raw.(type) {
	case nil:
		return nil, true
	case string:
		return strings.Fields(x), true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			if s != "" {
				out = append(out, s)
			}
		}
		return out, true
	default:
		return nil, false
	}
}

func (i Identity) clone() Identity {
	i.Groups = slices.Clone(i.Groups)
	i.AMR = slices.Clone(i.AMR)
	return i
}
