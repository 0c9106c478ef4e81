package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/clocktest"
)

const (
	testIssuer   = "https://idp.example.test"
	testAudience = "elevate-test"
)

// t0 is the test clock's start.
var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// newClock returns a clock the test moves by hand, at t0.
func newClock() *clocktest.Clock { return clocktest.New(t0) }

// Keys generated once per test binary: RSA generation is slow.
var (
	rsaKey      = sync.OnceValue(func() *rsa.PrivateKey { return genRSA(2048) })
	rsaKey2     = sync.OnceValue(func() *rsa.PrivateKey { return genRSA(2048) })
	attackerKey = sync.OnceValue(func() *rsa.PrivateKey { return genRSA(2048) })
	ecKey       = sync.OnceValue(func() *ecdsa.PrivateKey { return genEC(elliptic.P256()) })
	ecKey2      = sync.OnceValue(func() *ecdsa.PrivateKey { return genEC(elliptic.P256()) })
	edKey       = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func genRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func genEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// claimsAt are valid claims for the test issuer, issued at now.
func claimsAt(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":    testIssuer,
		"aud":    testAudience,
		"sub":    "alice",
		"groups": []string{"ops", "admins"},
		"amr":    []string{"pwd", "mfa"},
		"email":  "alice@example.test",
		"iat":    now.Unix(),
		"nbf":    now.Unix(),
		"exp":    now.Add(time.Hour).Unix(),
		"jti":    "j-1",
	}
}

// with returns a copy of c with the given claims set; a nil value removes
// the claim.
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

// sign signs claims with method and key; header entries are added to the
// JOSE header (a nil value removes one).
func sign(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func kid(k string) map[string]any { return map[string]any{"kid": k} }

// b64 encodes a token segment.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b64(b)
}

// signRaw signs a token whose header and payload are given as JSON text,
// byte for byte, so that the test controls duplicate keys, number syntax and
// the like.
func signRaw(t testing.TB, method jwt.SigningMethod, key any, header, payload string) string {
	t.Helper()
	in := b64([]byte(header)) + "." + b64([]byte(payload))
	sig, err := method.Sign(in, key)
	require.NoError(t, err)
	return in + "." + b64(sig)
}

// parts splits a token into its three segments.
func parts(t testing.TB, tok string) []string {
	t.Helper()
	p := strings.Split(tok, ".")
	require.Len(t, p, 3)
	return p
}

// rsaJWK and ecJWK write public keys as JWK members, by hand.
func rsaJWK(kid string, k *rsa.PublicKey, extra map[string]any) map[string]any {
	m := map[string]any{
		"kty": "RSA", "kid": kid,
		"n": b64(k.N.Bytes()),
		"e": b64([]byte{1, 0, 1}),
	}
	for key, v := range extra {
		m[key] = v
	}
	return m
}

func ecJWK(t testing.TB, kid string, k *ecdsa.PublicKey, extra map[string]any) map[string]any {
	t.Helper()
	pt, err := k.Bytes()
	require.NoError(t, err)
	n := (len(pt) - 1) / 2
	m := map[string]any{
		"kty": "EC", "kid": kid, "crv": "P-256",
		"x": b64(pt[1 : 1+n]),
		"y": b64(pt[1+n:]),
	}
	for key, v := range extra {
		m[key] = v
	}
	return m
}

// staticIssuer trusts the test RSA and EC keys, given in code.
func staticIssuer() Issuer {
	return Issuer{
		Issuer:   testIssuer,
		Audience: []string{testAudience, "second-audience"},
		Keys: map[string]crypto.PublicKey{
			"rsa1": &rsaKey().PublicKey,
			"ec1":  &ecKey().PublicKey,
		},
	}
}

// newVerifier builds a Verifier on the test clock.
func newVerifier(t testing.TB, clk *clocktest.Clock, cfg Config) *Verifier {
	t.Helper()
	cfg.Now = clk.Now
	v, err := New(t.Context(), cfg)
	require.NoError(t, err)
	return v
}

// requireRefused checks that err is a refusal with exactly this reason and
// that it does not repeat the token.
func requireRefused(t testing.TB, err error, reason, token string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, ErrUnauthenticated)
	require.Equal(t, "unauthenticated: "+reason, err.Error())
	if len(token) > 8 {
		require.NotContains(t, err.Error(), token)
	}
}
