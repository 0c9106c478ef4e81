package identity

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const (
	// DevIssuerName is the "iss" of the dev issuer's tokens.
	DevIssuerName = "elevate-dev"
	// DevAudience is the "aud" of the dev issuer's tokens.
	DevAudience = "elevate"
	// DevKeyFile is the name of the dev issuer's key in the data directory.
	DevKeyFile = "dev-issuer.key"
	// defaultDevTTL is the lifetime of a dev token whose TTL is zero.
	defaultDevTTL = time.Hour
)

// DevIssuer signs tokens for development with an RSA key kept in the data
// directory, shared by `elevate serve --dev` and `elevate token`.
type DevIssuer struct {
	key *rsa.PrivateKey
	kid string
}

// DevToken describes a token to sign with the dev issuer. The claims use the
// default names: sub, groups, amr, email.
type DevToken struct {
	// Subject is the caller's name. Required.
	Subject string
	// Groups are the caller's groups.
	Groups []string
	// MFA sets amr to ["pwd","mfa"] instead of ["pwd"].
	MFA bool
	// Email is the caller's e-mail address; omitted when empty.
	Email string
	// Nonce is the OpenID Connect nonce of the sign-in the token answers;
	// omitted when empty.
	Nonce string
	// TTL is the token's lifetime. Default one hour.
	TTL time.Duration
	// Now is the issue time (iat and nbf). Default the current time.
	Now time.Time
}

// LoadOrCreateDevIssuer loads the dev issuer's key from dir/dev-issuer.key,
// creating dir and a new RSA 2048 key (PKCS #8 PEM, mode 0600) if there is
// none. The key file appears whole or not at all; when several processes
// race to create it, all end up with the same key.
func LoadOrCreateDevIssuer(dir string) (*DevIssuer, error) {
	d, err := LoadDevIssuer(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return d, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	if err := createDevKey(dir); err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	return LoadDevIssuer(dir)
}

// createDevKey writes a new key to a temporary file, then links it into
// place; linking fails, harmlessly, if another process got there first.
func createDevKey(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+DevKeyFile+".*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	err = os.Link(tmp.Name(), filepath.Join(dir, DevKeyFile))
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// noDevKeyError says that dir holds no dev issuer key. It matches
// fs.ErrNotExist.
type noDevKeyError struct{ dir string }

func (e noDevKeyError) Error() string {
	return "no dev issuer key in " + e.dir + ": start `elevate serve --dev` first"
}

func (e noDevKeyError) Is(target error) bool { return target == fs.ErrNotExist }

// LoadDevIssuer loads the dev issuer's key from dir/dev-issuer.key. If there
// is none, the error says so and matches fs.ErrNotExist. A key file readable
// by group or others is refused.
func LoadDevIssuer(dir string) (*DevIssuer, error) {
	path := filepath.Join(dir, DevKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noDevKeyError{dir: dir}
	}
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("dev issuer: %s: mode %04o is too open (want 0600)", path, perm)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("dev issuer: %s: no PKCS #8 PRIVATE KEY PEM block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %s: %w", path, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("dev issuer: %s: want an RSA key, got %T", path, parsed)
	}
	if err := checkPublicKey(&key.PublicKey); err != nil {
		return nil, fmt.Errorf("dev issuer: %s: %w", path, err)
	}
	kid, err := thumbprint(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	return &DevIssuer{key: key, kid: kid}, nil
}

// Issuer returns the Issuer that verifies the dev issuer's tokens: its public
// key under its kid (the key's RFC 7638 thumbprint), audience "elevate",
// algorithm RS256.
func (d *DevIssuer) Issuer() Issuer {
	return Issuer{
		Issuer:     DevIssuerName,
		Audience:   []string{DevAudience},
		Keys:       map[string]crypto.PublicKey{d.kid: &d.key.PublicKey},
		Algorithms: []string{"RS256"},
	}
}

// Sign returns a signed RS256 token for t, with a unique jti, iat and nbf set
// to t.Now and exp to t.Now plus t.TTL.
func (d *DevIssuer) Sign(t DevToken) (string, error) {
	if strings.TrimSpace(t.Subject) == "" {
		return "", errors.New("dev issuer: a subject is required")
	}
	if t.TTL < 0 {
		return "", fmt.Errorf("dev issuer: ttl must not be negative, got %s", t.TTL)
	}
	ttl := t.TTL
	if ttl == 0 {
		ttl = defaultDevTTL
	}
	now := t.Now
	if now.IsZero() {
		now = time.Now()
	}
	amr := []string{"pwd"}
	if t.MFA {
		amr = append(amr, "mfa")
	}
	claims := jwt.MapClaims{
		"iss": DevIssuerName,
		"aud": DevAudience,
		"sub": t.Subject,
		"amr": amr,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"jti": uuid.NewString(),
	}
	if len(t.Groups) > 0 {
		claims["groups"] = t.Groups
	}
	if t.Email != "" {
		claims["email"] = t.Email
	}
	if t.Nonce != "" {
		claims["nonce"] = t.Nonce
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = d.kid
	s, err := tok.SignedString(d.key)
	if err != nil {
		return "", fmt.Errorf("dev issuer: %w", err)
	}
	return s, nil
}
