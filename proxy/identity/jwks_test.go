package identity

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// jwksServer serves a JWK Set the test can change, or fails as the test
// says.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	keys   []map[string]any
	status int  // when not zero, answer with this status and no set
	hang   bool // when set, answer nothing until the client gives up
	hits   atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, hang := s.status, s.hang
		body, err := json.Marshal(map[string]any{"keys": s.keys})
		s.mu.Unlock()
		if hang {
			<-r.Context().Done()
			return
		}
		if status != 0 {
			http.Error(w, "unavailable", status)
			return
		}
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

// fail makes the server answer with status (0: serve the set again).
func (s *jwksServer) fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// setHang makes the server hold every request until the client gives up.
func (s *jwksServer) setHang(hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = hang
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
	// The start, and one fetch for the unknown kid: the other refusals need
	// none, and the gap holds any more off.
	require.Equal(t, int64(2), srv.hits.Load())
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
