package identity

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// jwksServer serves a JWK Set the test can change.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []map[string]any
	hits atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, err := json.Marshal(map[string]any{"keys": s.keys})
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

func jwksIssuer(url string) Issuer {
	return Issuer{Issuer: testIssuer, Audience: []string{testAudience}, JWKSURL: url + "/jwks.json"}
}

func TestJWKS(t *testing.T) {
	srv := newJWKSServer(t,
		rsaJWK("rsa1", &rsaKey().PublicKey, map[string]any{"use": "sig", "alg": "RS256"}),
		ecJWK(t, "ec1", &ecKey().PublicKey, nil),
		rsaJWK("rs512-only", &rsaKey2().PublicKey, map[string]any{"alg": "RS512"}),
		rsaJWK("for-encryption", &rsaKey2().PublicKey, map[string]any{"use": "enc"}),
		map[string]any{"kty": "oct", "kid": "secret", "k": b64([]byte("a shared secret of 32 bytes !!!!"))},
	)
	clk := newClock()
	now := clk.Now()
	v := newVerifier(t, clk, Config{Issuers: []Issuer{jwksIssuer(srv.URL)}})

	tests := []struct {
		desc   string
		token  string
		reason string
	}{
		{desc: "valid RS256", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), claimsAt(now))},
		{desc: "valid ES256", token: sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), claimsAt(now))},
		{
			desc:   "no kid",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), nil, claimsAt(now)),
			reason: "unknown signing key",
		},
		{
			desc:   "unknown kid",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa9"), claimsAt(now)),
			reason: "unknown signing key",
		},
		{
			desc:   "key whose alg differs from the token's",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey2(), kid("rs512-only"), claimsAt(now)),
			reason: "signing key does not fit the algorithm",
		},
		{
			desc:   "encryption key",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey2(), kid("for-encryption"), claimsAt(now)),
			reason: "signing key does not fit the algorithm",
		},
		{
			desc:   "HS256 with a symmetric key from the set",
			token:  sign(t, jwt.SigningMethodHS256, []byte("a shared secret of 32 bytes !!!!"), kid("secret"), claimsAt(now)),
			reason: "signing algorithm not allowed",
		},
		{
			desc:   "RS256 header naming a symmetric key",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), kid("secret"), claimsAt(now)),
			reason: "signing key does not fit the algorithm",
		},
		{
			desc:   "EC key under an RSA kid",
			token:  sign(t, jwt.SigningMethodES256, ecKey(), kid("rsa1"), claimsAt(now)),
			reason: "signing key does not fit the algorithm",
		},
		{
			desc:   "wrong audience",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), with(claimsAt(now), "aud", "x")),
			reason: "wrong audience",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tc.token)
			if tc.reason != "" {
				requireRefused(t, err, tc.reason, tc.token)
				return
			}
			require.NoError(t, err)
		})
	}
	require.Equal(t, int64(1), srv.hits.Load(), "unknown kids must not make the verifier fetch the set")
}

func TestJWKSRotation(t *testing.T) {
	key1 := rsaJWK("k1", &rsaKey().PublicKey, nil)
	key2 := ecJWK(t, "k2", &ecKey().PublicKey, nil)
	srv := newJWKSServer(t, key1)
	clk := newClock()
	now := clk.Now()
	is := jwksIssuer(srv.URL)
	is.RefreshInterval = minRefreshInterval
	var logs syncBuffer
	v := newVerifier(t, clk, Config{Issuers: []Issuer{is}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	tok1 := sign(t, jwt.SigningMethodRS256, rsaKey(), kid("k1"), claimsAt(now))
	tok2 := sign(t, jwt.SigningMethodES256, ecKey(), kid("k2"), claimsAt(now))
	_, err := v.Verify(t.Context(), tok1)
	require.NoError(t, err)
	_, err = v.Verify(t.Context(), tok2)
	requireRefused(t, err, "unknown signing key", tok2)

	// A new key is picked up at the next refresh.
	srv.set(key1, key2)
	require.Eventually(t, func() bool {
		_, err := v.Verify(t.Context(), tok2)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	_, err = v.Verify(t.Context(), tok1)
	require.NoError(t, err)
	require.Equal(t, 2, v.cache.size())

	// A removed key is refused after the next refresh, although tokens it
	// signed are in the cache.
	srv.set(key2)
	require.Eventually(t, func() bool {
		_, err := v.Verify(t.Context(), tok1)
		return err != nil
	}, 10*time.Second, 20*time.Millisecond)
	_, err = v.Verify(t.Context(), tok1)
	requireRefused(t, err, "unknown signing key", tok1)
	_, err = v.Verify(t.Context(), tok2)
	require.NoError(t, err)

	// A failed refresh is logged and keeps the last keys.
	require.Empty(t, logs.String())
	srv.set(map[string]any{"kty": "RSA", "kid": "broken"})
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "JWKS refresh failed")
	}, 10*time.Second, 20*time.Millisecond)
	_, err = v.Verify(t.Context(), tok2)
	require.NoError(t, err)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestJWKSStartup(t *testing.T) {
	status := func(code int, body string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if code == http.StatusFound {
				http.Redirect(w, r, "/elsewhere", code)
				return
			}
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	big := `{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSSize) + `"}`

	tests := []struct {
		desc string
		url  string
	}{
		{desc: "server error", url: status(http.StatusInternalServerError, "")},
		{desc: "not JSON", url: status(http.StatusOK, "<html>")},
		{desc: "redirect", url: status(http.StatusFound, "")},
		{desc: "larger than the limit", url: status(http.StatusOK, big)},
		{desc: "nobody listening", url: closed.URL},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := New(t.Context(), Config{Issuers: []Issuer{jwksIssuer(tc.url)}})
			require.ErrorContains(t, err, "identity.issuers[0]: jwks_url: ")
		})
	}

	t.Run("a set with no usable key refuses every token", func(t *testing.T) {
		srv := newJWKSServer(t)
		clk := newClock()
		v := newVerifier(t, clk, Config{Issuers: []Issuer{jwksIssuer(srv.URL)}})
		tok := sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), claimsAt(clk.Now()))
		_, err := v.Verify(t.Context(), tok)
		requireRefused(t, err, "unknown signing key", tok)
	})
}
