package identity

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

func TestVerify(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}})

	// A server for the attacker's key URLs: it must never be asked.
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	t.Cleanup(attacker.Close)
	attackerJWK := rsaJWK("attacker", &attackerKey().PublicKey, nil)

	rsaPub := &rsaKey().PublicKey
	pkix, err := x509.MarshalPKIXPublicKey(rsaPub)
	require.NoError(t, err)
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})

	good := claimsAt(now)
	rs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), c) }
	valid := rs(good)
	p := parts(t, valid)

	tests := []struct {
		desc   string
		token  string
		reason string // empty: accepted
		check  func(t *testing.T, id Identity)
	}{
		{
			desc: "valid RS256", token: valid,
			check: func(t *testing.T, id Identity) {
				require.Equal(t, Identity{
					Subject: "alice", Groups: []string{"ops", "admins"}, AMR: []string{"pwd", "mfa"},
					Email: "alice@example.test", Issuer: testIssuer, ExpiresAt: now.Add(time.Hour),
				}, id)
				require.True(t, id.MFA())
				require.True(t, id.InGroup("admins"))
			},
		},
		{
			desc:  "valid ES256",
			token: sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), with(good, "sub", "bob")),
			check: func(t *testing.T, id Identity) { require.Equal(t, "bob", id.Subject) },
		},
		{
			desc:  "aud array holding one accepted audience",
			token: rs(with(good, "aud", []string{"someone-else", "second-audience"})),
		},
		{desc: "expired", token: rs(with(good, "exp", now.Add(-time.Hour).Unix())), reason: "token expired"},
		{desc: "nbf in the future", token: rs(with(good, "nbf", now.Add(time.Hour).Unix())), reason: "token not valid yet"},
		{desc: "iat in the future", token: rs(with(good, "iat", now.Add(time.Hour).Unix())), reason: "token issued in the future"},
		{desc: "wrong iss", token: rs(with(good, "iss", "https://evil.example.test")), reason: "unknown issuer"},
		{desc: "iss differing in case only", token: rs(with(good, "iss", strings.ToUpper(testIssuer))), reason: "unknown issuer"},
		{desc: "missing iss", token: rs(with(good, "iss", nil)), reason: "missing iss claim"},
		{desc: "iss not a string", token: rs(with(good, "iss", 7)), reason: "missing iss claim"},
		{desc: "wrong aud", token: rs(with(good, "aud", "someone-else")), reason: "wrong audience"},
		{desc: "missing aud", token: rs(with(good, "aud", nil)), reason: "missing aud claim"},
		{desc: "empty aud", token: rs(with(good, "aud", "")), reason: "missing aud claim"},
		{desc: "missing exp", token: rs(with(good, "exp", nil)), reason: "missing exp claim"},
		{desc: "exp not a number", token: rs(with(good, "exp", "tomorrow")), reason: "malformed claims"},
		{
			desc:   "alg none",
			token:  sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid("rsa1"), good),
			reason: "signing algorithm not allowed",
		},
		{
			desc:   "HS256 signed with the RSA public key PEM as secret",
			token:  sign(t, jwt.SigningMethodHS256, rsaPubPEM, kid("rsa1"), good),
			reason: "signing algorithm not allowed",
		},
		{
			desc:   "HS256 signed with the RSA public key DER as secret",
			token:  sign(t, jwt.SigningMethodHS256, pkix, kid("rsa1"), good),
			reason: "signing algorithm not allowed",
		},
		{
			desc:   "RS384 is not in the allow-list",
			token:  sign(t, jwt.SigningMethodRS384, rsaKey(), kid("rsa1"), good),
			reason: "signing algorithm not allowed",
		},
		{
			desc:   "alg header missing",
			token:  b64JSON(t, map[string]any{"kid": "rsa1"}) + "." + p[1] + "." + p[2],
			reason: "signing algorithm not allowed",
		},
		{
			desc:   "ES256 header with the kid of an RSA key",
			token:  sign(t, jwt.SigningMethodES256, ecKey(), kid("rsa1"), good),
			reason: "signing key does not fit the algorithm",
		},
		{
			desc:   "RS256 header with the kid of an EC key",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), kid("ec1"), good),
			reason: "signing key does not fit the algorithm",
		},
		{desc: "unknown kid", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("nope"), good), reason: "unknown signing key"},
		{
			desc:   "no kid while the issuer has two keys",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), nil, good),
			reason: "unknown signing key",
		},
		{
			desc:   "kid not a string",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": 1}, good),
			reason: "malformed kid header",
		},
		{
			desc:   "tampered payload",
			token:  p[0] + "." + b64JSON(t, with(good, "sub", "root")) + "." + p[2],
			reason: "invalid signature",
		},
		{
			desc: "tampered signature",
			token: func() string {
				sig, err := base64.RawURLEncoding.DecodeString(p[2])
				require.NoError(t, err)
				sig[len(sig)/2] ^= 0x01
				return p[0] + "." + p[1] + "." + b64(sig)
			}(),
			reason: "invalid signature",
		},
		{desc: "signature stripped", token: p[0] + "." + p[1] + ".", reason: "invalid signature"},
		{
			desc:   "signed by another key under a trusted kid",
			token:  sign(t, jwt.SigningMethodRS256, attackerKey(), kid("rsa1"), good),
			reason: "invalid signature",
		},
		{
			desc:   "jku header with the attacker's key",
			token:  sign(t, jwt.SigningMethodRS256, attackerKey(), map[string]any{"kid": "attacker", "jku": attacker.URL + "/jwks"}, good),
			reason: "unknown signing key",
		},
		{
			desc:   "x5u header with the attacker's key",
			token:  sign(t, jwt.SigningMethodRS256, attackerKey(), map[string]any{"kid": "attacker", "x5u": attacker.URL + "/cert.pem"}, good),
			reason: "unknown signing key",
		},
		{
			desc:   "jwk header with the attacker's key",
			token:  sign(t, jwt.SigningMethodRS256, attackerKey(), map[string]any{"kid": "attacker", "jwk": attackerJWK}, good),
			reason: "unknown signing key",
		},
		{
			desc:   "jwk header with the attacker's key and no kid",
			token:  sign(t, jwt.SigningMethodRS256, attackerKey(), map[string]any{"jwk": attackerJWK}, good),
			reason: "unknown signing key",
		},
		{
			desc:   "jku header with the attacker's key under a trusted kid",
			token:  sign(t, jwt.SigningMethodRS256, attackerKey(), map[string]any{"kid": "rsa1", "jku": attacker.URL + "/jwks"}, good),
			reason: "invalid signature",
		},
		{
			desc:   "crit header",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": "rsa1", "crit": []string{"exp"}, "exp": 1}, good),
			reason: "critical header not supported",
		},
		{
			desc:   "oversized token",
			token:  rs(with(good, "pad", strings.Repeat("x", 16<<10))),
			reason: "token too large",
		},
		{desc: "two parts", token: p[0] + "." + p[1], reason: "malformed token"},
		{desc: "four parts", token: valid + "." + p[2], reason: "malformed token"},
		{desc: "one part", token: "garbage", reason: "malformed token"},
		{desc: "bad base64 in header", token: "!!!." + p[1] + "." + p[2], reason: "malformed token"},
		{desc: "bad base64 in payload", token: p[0] + ".@@@." + p[2], reason: "malformed token"},
		{desc: "bad base64 in signature", token: p[0] + "." + p[1] + ".***", reason: "malformed token"},
		{desc: "padded base64", token: p[0] + "." + p[1] + "." + p[2] + "==", reason: "malformed token"},
		{desc: "header not JSON", token: b64([]byte("not json")) + "." + p[1] + "." + p[2], reason: "malformed token"},
		{desc: "payload not JSON", token: p[0] + "." + b64([]byte("[1,2")) + "." + p[2], reason: "malformed token"},
		{desc: "payload a JSON array", token: p[0] + "." + b64([]byte("[1,2]")) + "." + p[2], reason: "malformed token"},
		{desc: "missing subject", token: rs(with(good, "sub", nil)), reason: "missing subject"},
		{desc: "empty subject", token: rs(with(good, "sub", "")), reason: "missing subject"},
		{desc: "blank subject", token: rs(with(good, "sub", "  ")), reason: "missing subject"},
		{desc: "subject not a string", token: rs(with(good, "sub", 42)), reason: "missing subject"},
		{desc: "groups a number", token: rs(with(good, "groups", 3)), reason: "malformed groups claim"},
		{desc: "groups an array with a number", token: rs(with(good, "groups", []any{"ops", 3})), reason: "malformed groups claim"},
		{desc: "groups an object", token: rs(with(good, "groups", map[string]any{"ops": true})), reason: "malformed groups claim"},
		{desc: "amr a number", token: rs(with(good, "amr", 1)), reason: "malformed amr claim"},
		{desc: "email a number", token: rs(with(good, "email", 1)), reason: "malformed email claim"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			id, err := v.Verify(t.Context(), tc.token)
			if tc.reason != "" {
				requireRefused(t, err, tc.reason, tc.token)
				require.Zero(t, id)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, id)
			}
		})
	}
	require.Zero(t, attackerHits.Load(), "a key URL of a token header was fetched")

	t.Run("empty token", func(t *testing.T) {
		_, err := v.Verify(t.Context(), "")
		require.ErrorIs(t, err, ErrNoToken)
		require.ErrorIs(t, err, ErrUnauthenticated)
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := v.Verify(ctx, valid)
		requireRefused(t, err, "verification cancelled", valid)
	})
}

func TestVerifyClaims(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	tests := []struct {
		desc   string
		claims Claims
		set    []any // claims to change, as in with
		want   Identity
	}{
		{
			desc: "groups as an array",
			set:  []any{"groups", []string{"a", "b"}, "amr", nil, "email", nil},
			want: Identity{Subject: "alice", Groups: []string{"a", "b"}},
		},
		{
			desc: "groups as a space-separated string",
			set:  []any{"groups", " a  b\tc ", "amr", nil, "email", nil},
			want: Identity{Subject: "alice", Groups: []string{"a", "b", "c"}},
		},
		{
			desc: "groups absent",
			set:  []any{"groups", nil, "amr", nil, "email", nil},
			want: Identity{Subject: "alice"},
		},
		{
			desc: "amr as a string without mfa",
			set:  []any{"groups", nil, "amr", "pwd otp", "email", nil},
			want: Identity{Subject: "alice", AMR: []string{"pwd", "otp"}},
		},
		{
			desc:   "custom claim names",
			claims: Claims{Subject: "preferred_username", Groups: "roles", AMR: "methods", Email: "mail"},
			set: []any{
				"preferred_username", "carol", "roles", []string{"approvers"}, "methods", []string{"mfa"},
				"mail", "carol@example.test",
			},
			want: Identity{
				Subject: "carol", Groups: []string{"approvers"}, AMR: []string{"mfa"},
				Email: "carol@example.test",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}, Claims: tc.claims})
			tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), with(claimsAt(now), tc.set...))
			id, err := v.Verify(t.Context(), tok)
			require.NoError(t, err)
			tc.want.Issuer, tc.want.ExpiresAt = testIssuer, now.Add(time.Hour)
			require.Equal(t, tc.want, id)
		})
	}

	t.Run("custom subject claim missing", func(t *testing.T) {
		v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}, Claims: Claims{Subject: "oid"}})
		tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), claimsAt(now))
		_, err := v.Verify(t.Context(), tok)
		requireRefused(t, err, "missing subject", tok)
	})
}

func TestLeeway(t *testing.T) {
	tests := []struct {
		desc   string
		leeway time.Duration
		claim  string
		offset time.Duration // claim = now + offset
		reason string
	}{
		{desc: "exp passed within the default leeway", claim: "exp", offset: -29 * time.Second},
		{desc: "exp passed by the default leeway", claim: "exp", offset: -30 * time.Second, reason: "token expired"},
		{desc: "nbf ahead within the default leeway", claim: "nbf", offset: 30 * time.Second},
		{desc: "nbf ahead beyond the default leeway", claim: "nbf", offset: 31 * time.Second, reason: "token not valid yet"},
		{desc: "iat ahead within the default leeway", claim: "iat", offset: 30 * time.Second},
		{desc: "iat ahead beyond the default leeway", claim: "iat", offset: 31 * time.Second, reason: "token issued in the future"},
		{desc: "exp passed within a 2m leeway", leeway: 2 * time.Minute, claim: "exp", offset: -119 * time.Second},
		{desc: "exp passed beyond a 2m leeway", leeway: 2 * time.Minute, claim: "exp", offset: -121 * time.Second, reason: "token expired"},
		{desc: "nbf ahead within a 2m leeway", leeway: 2 * time.Minute, claim: "nbf", offset: 2 * time.Minute},
		{desc: "exp passed by 1s with a 1s leeway", leeway: time.Second, claim: "exp", offset: -time.Second, reason: "token expired"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			clk := newClock()
			now := clk.Now()
			v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}, Leeway: tc.leeway})
			c := with(claimsAt(now), tc.claim, now.Add(tc.offset).Unix())
			if tc.claim != "exp" {
				c = with(c, "exp", now.Add(time.Hour).Unix())
			}
			tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), c)
			_, err := v.Verify(t.Context(), tok)
			if tc.reason != "" {
				requireRefused(t, err, tc.reason, tok)
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestPEMIssuer(t *testing.T) {
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644))
		return path
	}
	pkixDER, err := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	require.NoError(t, err)
	pubFile := write("signer-a.pem", "PUBLIC KEY", pkixDER)

	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "token signer"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey().PublicKey, ecKey())
	require.NoError(t, err)
	certFile := write("signer-b.crt", "CERTIFICATE", certDER)

	clk := newClock()
	now := clk.Now()
	both := Issuer{Issuer: testIssuer, Audience: []string{testAudience}, PEMFiles: []string{pubFile, certFile}}
	v := newVerifier(t, clk, Config{Issuers: []Issuer{both}})
	rsaTP, err := thumbprint(&rsaKey().PublicKey)
	require.NoError(t, err)

	tests := []struct {
		desc   string
		token  string
		reason string
	}{
		{desc: "kid is the file name", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("signer-a"), claimsAt(now))},
		{desc: "kid is the key thumbprint", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid(rsaTP), claimsAt(now))},
		{desc: "key from a certificate", token: sign(t, jwt.SigningMethodES256, ecKey(), kid("signer-b"), claimsAt(now))},
		{
			desc:   "kid of the other file",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), kid("signer-b"), claimsAt(now)),
			reason: "signing key does not fit the algorithm",
		},
		{
			desc:   "kid with the extension",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), kid("signer-a.pem"), claimsAt(now)),
			reason: "unknown signing key",
		},
		{
			desc:   "no kid with two keys",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), nil, claimsAt(now)),
			reason: "unknown signing key",
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

	t.Run("single key without kid", func(t *testing.T) {
		one := Issuer{Issuer: testIssuer, Audience: []string{testAudience}, PEMFiles: []string{pubFile}}
		v := newVerifier(t, clk, Config{Issuers: []Issuer{one}})
		_, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, rsaKey(), nil, claimsAt(now)))
		require.NoError(t, err)
		tok := sign(t, jwt.SigningMethodRS256, rsaKey(), kid("other"), claimsAt(now))
		_, err = v.Verify(t.Context(), tok)
		requireRefused(t, err, "unknown signing key", tok)
	})

	ecPriv, err := x509.MarshalPKCS8PrivateKey(ecKey())
	require.NoError(t, err)
	smallDER, err := x509.MarshalPKIXPublicKey(&genRSA(1024).PublicKey)
	require.NoError(t, err)
	p384DER, err := x509.MarshalPKIXPublicKey(&genEC(elliptic.P384()).PublicKey)
	require.NoError(t, err)
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not pem"), 0o644))
	sameName := filepath.Join(t.TempDir(), "signer-a.pem")
	ecPubDER, err := x509.MarshalPKIXPublicKey(&ecKey().PublicKey)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(sameName, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER}), 0o644))

	bad := []struct {
		desc  string
		files []string
		algs  []string
		want  string
	}{
		{desc: "missing file", files: []string{filepath.Join(dir, "absent.pem")}, want: "no such file"},
		{desc: "not PEM", files: []string{garbage}, want: "no PEM block found"},
		{desc: "a private key", files: []string{write("private.pem", "PRIVATE KEY", ecPriv)}, want: `PEM block "PRIVATE KEY" is not a public key or certificate`},
		{desc: "RSA key under 2048 bits", files: []string{write("small.pem", "PUBLIC KEY", smallDER)}, want: "RSA key of 1024 bits is too small"},
		{desc: "key fits no allowed algorithm", files: []string{write("p384.pem", "PUBLIC KEY", p384DER)}, want: "fits none of the algorithms"},
		{desc: "two files with the same kid", files: []string{pubFile, sameName}, want: `kid "signer-a" is already taken`},
		{desc: "EC key with RSA algorithms only", files: []string{certFile}, algs: []string{"RS256"}, want: "fits none of the algorithms"},
	}
	for _, tc := range bad {
		t.Run("refused at start: "+tc.desc, func(t *testing.T) {
			is := Issuer{Issuer: testIssuer, Audience: []string{testAudience}, PEMFiles: tc.files, Algorithms: tc.algs}
			_, err := New(t.Context(), Config{Issuers: []Issuer{is}})
			require.ErrorContains(t, err, "identity.issuers[0]: ")
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestVerifyEdDSAAndPS256(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	is := Issuer{
		Issuer: testIssuer, Audience: []string{testAudience},
		Keys:       map[string]crypto.PublicKey{"ed": edPriv.Public(), "rsa": &rsaKey().PublicKey},
		Algorithms: []string{"EdDSA", "PS256"},
	}
	v := newVerifier(t, clk, Config{Issuers: []Issuer{is}})
	for _, tc := range []struct {
		desc   string
		token  string
		reason string
	}{
		{desc: "EdDSA", token: sign(t, jwt.SigningMethodEdDSA, edPriv, kid("ed"), claimsAt(now))},
		{desc: "PS256", token: sign(t, jwt.SigningMethodPS256, rsaKey(), kid("rsa"), claimsAt(now))},
		{
			desc:   "RS256 not allowed here",
			token:  sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa"), claimsAt(now)),
			reason: "signing algorithm not allowed",
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := v.Verify(t.Context(), tc.token)
			if tc.reason != "" {
				requireRefused(t, err, tc.reason, tc.token)
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestMultipleIssuers(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	other := Issuer{
		Issuer: "https://other.example.test", Audience: []string{"other-aud"},
		Keys: map[string]crypto.PublicKey{"k": &ecKey2().PublicKey},
	}
	v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer(), other}})
	otherClaims := with(claimsAt(now), "iss", other.Issuer, "aud", "other-aud")

	tok := sign(t, jwt.SigningMethodES256, ecKey2(), kid("k"), otherClaims)
	id, err := v.Verify(t.Context(), tok)
	require.NoError(t, err)
	require.Equal(t, other.Issuer, id.Issuer)

	// Each issuer's keys and audiences stay its own.
	tok = sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), otherClaims)
	_, err = v.Verify(t.Context(), tok)
	requireRefused(t, err, "unknown signing key", tok)
	tok = sign(t, jwt.SigningMethodES256, ecKey2(), kid("k"), with(otherClaims, "aud", testAudience))
	_, err = v.Verify(t.Context(), tok)
	requireRefused(t, err, "wrong audience", tok)
}

func TestCache(t *testing.T) {
	t.Run("never accepts an expired token", func(t *testing.T) {
		clk := newClock()
		now := clk.Now()
		v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}})
		tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), with(claimsAt(now), "exp", now.Add(time.Minute).Unix()))

		_, err := v.Verify(t.Context(), tok)
		require.NoError(t, err)
		require.Equal(t, 1, v.cache.size())

		clk.Set(now.Add(time.Minute + defaultLeeway - time.Second))
		_, err = v.Verify(t.Context(), tok) // a hit, within the leeway
		require.NoError(t, err)
		require.Equal(t, 1, v.cache.size())

		clk.Add(time.Second)
		_, err = v.Verify(t.Context(), tok)
		requireRefused(t, err, "token expired", tok)
		require.Zero(t, v.cache.size(), "the expired entry stays cached")
		_, err = v.Verify(t.Context(), tok)
		requireRefused(t, err, "token expired", tok)
	})

	t.Run("re-checks nbf when the clock goes back", func(t *testing.T) {
		clk := newClock()
		now := clk.Now()
		v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}})
		tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), with(claimsAt(now), "iat", nil))
		_, err := v.Verify(t.Context(), tok)
		require.NoError(t, err)
		clk.Set(now.Add(-time.Hour))
		_, err = v.Verify(t.Context(), tok)
		requireRefused(t, err, "token not valid yet", tok)
	})

	t.Run("is bounded", func(t *testing.T) {
		clk := newClock()
		now := clk.Now()
		v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}, CacheSize: 8})
		for i := range 40 {
			tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), with(claimsAt(now), "jti", fmt.Sprint(i)))
			_, err := v.Verify(t.Context(), tok)
			require.NoError(t, err)
			require.LessOrEqual(t, v.cache.size(), 8)
		}
	})

	t.Run("drops expired entries first when full", func(t *testing.T) {
		clk := newClock()
		now := clk.Now()
		v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}, CacheSize: 4})
		for i := range 4 {
			tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"),
				with(claimsAt(now), "jti", fmt.Sprint(i), "exp", now.Add(time.Minute).Unix()))
			_, err := v.Verify(t.Context(), tok)
			require.NoError(t, err)
		}
		require.Equal(t, 4, v.cache.size())
		clk.Add(time.Hour)
		tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), claimsAt(clk.Now()))
		_, err := v.Verify(t.Context(), tok)
		require.NoError(t, err)
		require.Equal(t, 1, v.cache.size())
	})

	t.Run("can be turned off", func(t *testing.T) {
		clk := newClock()
		v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}, CacheSize: -1})
		require.Nil(t, v.cache)
		tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), claimsAt(clk.Now()))
		for range 2 {
			_, err := v.Verify(t.Context(), tok)
			require.NoError(t, err)
		}
	})

	t.Run("hands out copies", func(t *testing.T) {
		clk := newClock()
		v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}})
		tok := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), claimsAt(clk.Now()))
		for range 3 {
			id, err := v.Verify(t.Context(), tok)
			require.NoError(t, err)
			require.Equal(t, []string{"ops", "admins"}, id.Groups)
			require.Equal(t, []string{"pwd", "mfa"}, id.AMR)
			id.Groups[0], id.AMR[1] = "root", "x"
		}
	})
}

func TestVerifyConcurrent(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}, CacheSize: 4})
	var toks []string
	for i := range 6 {
		toks = append(toks, sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), with(claimsAt(now), "jti", fmt.Sprint(i))))
	}
	bad := sign(t, jwt.SigningMethodES256, ecKey2(), kid("ec1"), claimsAt(now))
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := v.Verify(context.Background(), toks[(g+i)%len(toks)]); err != nil {
					errs <- err
				}
				if _, err := v.Verify(context.Background(), bad); err == nil {
					errs <- fmt.Errorf("a token signed by a stranger passed")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		desc    string
		id      Identity
		mfa     bool
		group   string
		inGroup bool
	}{
		{desc: "zero identity", group: "admins"},
		{desc: "mfa and member", id: Identity{AMR: []string{"pwd", "mfa"}, Groups: []string{"ops", "admins"}}, mfa: true, group: "admins", inGroup: true},
		{desc: "password only, other group", id: Identity{AMR: []string{"pwd"}, Groups: []string{"ops"}}, group: "admins"},
		{desc: "group names are exact", id: Identity{AMR: []string{"MFA"}, Groups: []string{"Admins", "admins-x"}}, group: "admins"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			require.Equal(t, tc.mfa, tc.id.MFA())
			require.Equal(t, tc.inGroup, tc.id.InGroup(tc.group))
		})
	}
}

func TestThumbprint(t *testing.T) {
	// RFC 7638 section 3.1 gives this RSA key and its thumbprint.
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	require.NoError(t, err)
	tp, err := thumbprint(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537})
	require.NoError(t, err)
	require.Equal(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", tp)

	ec := &ecKey().PublicKey
	tp1, err := thumbprint(ec)
	require.NoError(t, err)
	tp2, err := thumbprint(&ecKey2().PublicKey)
	require.NoError(t, err)
	require.NotEqual(t, tp1, tp2)
	_, err = thumbprint([]byte("secret"))
	require.Error(t, err)
}

func BenchmarkVerify(b *testing.B) {
	clk := newClock()
	tok := sign(b, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), claimsAt(clk.Now()))
	for _, bc := range []struct {
		name      string
		cacheSize int
	}{
		{name: "cold", cacheSize: -1},
		{name: "cached", cacheSize: 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := newVerifier(b, clk, Config{Issuers: []Issuer{staticIssuer()}, CacheSize: bc.cacheSize})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
