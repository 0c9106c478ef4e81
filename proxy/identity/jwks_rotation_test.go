// JWKS rotation and outages. Threats proved mitigated here, by the subtests
// of TestJWKSRotation:
//
//   - a key the issuer retired keeps being trusted (removed-kid-*,
//     periodic-refresh);
//   - a key the issuer added is refused for long, so that operators turn
//     checks off (new-kid-*);
//   - tokens naming made-up kids make the verifier hammer the issuer's JWKS
//     endpoint, or wait on it (unknown-kids-*, endpoint-hanging-*);
//   - an unreachable or failing JWKS endpoint makes the verifier fail open,
//     drop the keys it has, hang at start, or take the other issuers down
//     (endpoint-*, unreachable-at-start-*, start-*).
package identity

import (
	"context"
	"fmt"
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

	"github.com/elevate-pam/elevate/internal/clocktest"
)

// rotationEnv is a JWKS server, a verifier that trusts it, and the verifier's
// clock and log.
type rotationEnv struct {
	srv  *jwksServer
	clk  *clocktest.Clock
	v    *Verifier
	logs *syncBuffer
}

// newRotationEnv serves keys and builds a verifier without a cache (so that
// every answer comes from the keys the verifier holds), with the refresh
// interval given (0: the default, which no test waits for).
func newRotationEnv(t *testing.T, interval time.Duration, keys ...map[string]any) *rotationEnv {
	t.Helper()
	env := &rotationEnv{srv: newJWKSServer(t, keys...), clk: newClock(), logs: new(syncBuffer)}
	is := jwksIssuer(env.srv.URL)
	is.RefreshInterval = interval
	env.v = newVerifier(t, env.clk, Config{
		Issuers:   []Issuer{is},
		CacheSize: -1,
		Logger:    slog.New(slog.NewTextHandler(env.logs, nil)),
	})
	return env
}

// token signs valid claims for the JWKS issuer under kid.
func (env *rotationEnv) token(t *testing.T, kid string) string {
	t.Helper()
	if strings.HasPrefix(kid, "ec") {
		return sign(t, jwt.SigningMethodES256, ecKey(), map[string]any{"kid": kid}, claimsAt(env.clk.Now()))
	}
	return sign(t, jwt.SigningMethodRS256, rsaKey(), map[string]any{"kid": kid}, claimsAt(env.clk.Now()))
}

func (env *rotationEnv) accepts(t *testing.T, tok string) {
	t.Helper()
	_, err := env.v.Verify(t.Context(), tok)
	require.NoError(t, err)
}

func (env *rotationEnv) refuses(t *testing.T, tok, reason string) {
	t.Helper()
	_, err := env.v.Verify(t.Context(), tok)
	requireRefused(t, err, reason, tok)
}

func TestJWKSRotation(t *testing.T) {
	rsa1 := rsaJWK("rsa1", &rsaKey().PublicKey, nil)
	ec2 := ecJWK(t, "ec2", &ecKey().PublicKey, nil)

	t.Run("new-kid-accepted-after-on-demand-fetch", func(t *testing.T) {
		env := newRotationEnv(t, 0, rsa1)
		require.Equal(t, int64(1), env.srv.hits.Load())
		env.accepts(t, env.token(t, "rsa1"))

		env.srv.set(rsa1, ec2)
		env.accepts(t, env.token(t, "ec2")) // fetched while verifying
		require.Equal(t, int64(2), env.srv.hits.Load())
		env.accepts(t, env.token(t, "rsa1"))
		env.accepts(t, env.token(t, "ec2"))
		require.Equal(t, int64(2), env.srv.hits.Load(), "known kids cause no fetch")
	})

	t.Run("new-kid-within-the-gap-waits-for-the-next-fetch", func(t *testing.T) {
		env := newRotationEnv(t, 0, rsa1)
		env.refuses(t, env.token(t, "ec2"), "unknown signing key") // fetches; not there yet
		env.srv.set(rsa1, ec2)
		env.refuses(t, env.token(t, "ec2"), "unknown signing key") // within the gap: no fetch
		require.Equal(t, int64(2), env.srv.hits.Load())
		env.clk.Add(unknownKIDGap)
		env.accepts(t, env.token(t, "ec2"))
		require.Equal(t, int64(3), env.srv.hits.Load())
	})

	t.Run("removed-kid-refused-after-refresh", func(t *testing.T) {
		srv := newJWKSServer(t, rsa1, ec2)
		clk := newClock()
		v := newVerifier(t, clk, Config{Issuers: []Issuer{jwksIssuer(srv.URL)}}) // with the cache
		tok1 := sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), claimsAt(clk.Now()))
		tok2 := sign(t, jwt.SigningMethodES256, ecKey(), kid("ec2"), claimsAt(clk.Now()))
		_, err := v.Verify(t.Context(), tok1)
		require.NoError(t, err)
		require.Equal(t, 1, v.cache.size())

		srv.set(ec2)
		_, err = v.Verify(t.Context(), tok1) // no fetch yet: the key is still held
		require.NoError(t, err)

		// Any fetch, here one caused by an unknown kid, drops the key, and
		// the cached verification with it.
		unknown := sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa9"), claimsAt(clk.Now()))
		_, err = v.Verify(t.Context(), unknown)
		requireRefused(t, err, "unknown signing key", unknown)
		require.Equal(t, int64(2), srv.hits.Load())
		_, err = v.Verify(t.Context(), tok1)
		requireRefused(t, err, "unknown signing key", tok1)
		require.Zero(t, v.cache.size())
		_, err = v.Verify(t.Context(), tok2)
		require.NoError(t, err)

		// The refused kid is unknown now, so it may cause a fetch itself, but
		// only once per gap, and the server's answer stands.
		clk.Add(unknownKIDGap)
		_, err = v.Verify(t.Context(), tok1)
		requireRefused(t, err, "unknown signing key", tok1)
		require.Equal(t, int64(3), srv.hits.Load())
	})

	t.Run("periodic-refresh", func(t *testing.T) {
		env := newRotationEnv(t, minRefreshInterval, rsa1)
		tok1, tok2 := env.token(t, "rsa1"), env.token(t, "ec2")
		env.accepts(t, tok1)
		env.refuses(t, tok2, "unknown signing key") // uses the one on-demand fetch of the gap

		// The clock does not move: only the background refresh can help.
		env.srv.set(rsa1, ec2)
		require.Eventually(t, func() bool {
			_, err := env.v.Verify(t.Context(), tok2)
			return err == nil
		}, 10*time.Second, 20*time.Millisecond)
		env.srv.set(ec2)
		require.Eventually(t, func() bool {
			_, err := env.v.Verify(t.Context(), tok1)
			return err != nil
		}, 10*time.Second, 20*time.Millisecond)
		env.refuses(t, tok1, "unknown signing key")
		env.accepts(t, tok2)

		// A failed refresh is logged and keeps the last keys.
		require.Empty(t, env.logs.String())
		env.srv.set(map[string]any{"kty": "RSA", "kid": "broken"})
		require.Eventually(t, func() bool {
			return strings.Contains(env.logs.String(), "JWKS refresh failed; the last keys stay in use")
		}, 10*time.Second, 20*time.Millisecond)
		env.accepts(t, tok2)
	})

	t.Run("unknown-kids-fetch-at-most-once-per-gap", func(t *testing.T) {
		env := newRotationEnv(t, 0, rsa1)
		for i := range 50 {
			env.refuses(t, env.token(t, fmt.Sprintf("made-up-%d", i)), "unknown signing key")
		}
		require.Equal(t, int64(2), env.srv.hits.Load(), "one fetch at start, one for the first unknown kid")

		env.clk.Add(unknownKIDGap - time.Second)
		env.refuses(t, env.token(t, "made-up-x"), "unknown signing key")
		require.Equal(t, int64(2), env.srv.hits.Load())

		// Many at once, after the gap: one fetch between them.
		env.clk.Add(time.Second)
		toks := make([]string, 8)
		for i := range toks {
			toks[i] = env.token(t, fmt.Sprintf("burst-%d", i))
		}
		var wg sync.WaitGroup
		var accepted atomic.Int64
		for g := range 8 {
			wg.Go(func() {
				for range 25 {
					if _, err := env.v.Verify(context.Background(), toks[g]); err == nil {
						accepted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		require.Zero(t, accepted.Load())
		require.Equal(t, int64(3), env.srv.hits.Load())
		env.accepts(t, env.token(t, "rsa1"))
	})

	t.Run("endpoint-500-known-kids-work-unknown-refused", func(t *testing.T) {
		env := newRotationEnv(t, 0, rsa1)
		known := env.token(t, "rsa1")
		env.srv.fail(http.StatusInternalServerError)
		for i := range 20 {
			env.accepts(t, known)
			env.refuses(t, env.token(t, fmt.Sprintf("made-up-%d", i)), "unknown signing key")
		}
		require.Equal(t, int64(2), env.srv.hits.Load(), "the failing endpoint is not hammered")
		require.Contains(t, env.logs.String(), "JWKS refresh failed; the last keys stay in use")
		require.NotContains(t, env.logs.String(), known)

		// A failed fetch keeps the keys; the next is allowed after the gap.
		env.clk.Add(unknownKIDGap)
		env.refuses(t, env.token(t, "ec2"), "unknown signing key")
		require.Equal(t, int64(3), env.srv.hits.Load())
		env.accepts(t, known)

		// Back up: the new kid is picked up at the next allowed fetch.
		env.srv.fail(0)
		env.srv.set(rsa1, ec2)
		env.clk.Add(unknownKIDGap)
		env.accepts(t, env.token(t, "ec2"))
		env.accepts(t, known)
	})

	t.Run("endpoint-closed-known-kids-work-unknown-refused", func(t *testing.T) {
		env := newRotationEnv(t, 0, rsa1)
		known := env.token(t, "rsa1")
		env.srv.Close()
		env.accepts(t, known)
		env.refuses(t, env.token(t, "ec2"), "unknown signing key") // the fetch fails at once
		env.accepts(t, known)
		env.clk.Add(unknownKIDGap)
		env.refuses(t, env.token(t, "ec2"), "unknown signing key")
		env.accepts(t, known)
		require.Contains(t, env.logs.String(), "JWKS refresh failed; the last keys stay in use")
	})

	t.Run("endpoint-hanging-does-not-block-others", func(t *testing.T) {
		env := newRotationEnv(t, 0, rsa1)
		known := env.token(t, "rsa1")
		env.srv.setHang(true)

		// One caller with an unknown kid waits on the fetch, no longer than
		// its own context...
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		waiting := env.token(t, "ec2")
		go func() {
			_, err := env.v.Verify(ctx, waiting)
			done <- err
		}()
		require.Eventually(t, func() bool { return env.srv.hits.Load() == 2 }, 10*time.Second, 10*time.Millisecond)

		// ...while the others are answered at once: known kids accepted,
		// unknown ones refused without a second fetch.
		env.accepts(t, known)
		env.refuses(t, env.token(t, "made-up"), "unknown signing key")
		require.Equal(t, int64(2), env.srv.hits.Load())

		cancel()
		err := <-done
		requireRefused(t, err, "unknown signing key", waiting)
		env.srv.setHang(false)
		env.accepts(t, known)
	})

	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (url string, recover func())
	}{
		{name: "unreachable-at-start-server-error", start: func(t *testing.T) (string, func()) {
			srv := newJWKSServer(t, rsa1)
			srv.fail(http.StatusInternalServerError)
			return srv.URL, func() { srv.fail(0) }
		}},
		{name: "unreachable-at-start-not-json", start: func(t *testing.T) (string, func()) {
			return statusServer(t, http.StatusOK, "<html>"), nil
		}},
		{name: "unreachable-at-start-redirect", start: func(t *testing.T) (string, func()) {
			return statusServer(t, http.StatusFound, ""), nil
		}},
		{name: "unreachable-at-start-larger-than-the-limit", start: func(t *testing.T) (string, func()) {
			return statusServer(t, http.StatusOK, `{"keys":[],"pad":"`+strings.Repeat("x", maxJWKSSize)+`"}`), nil
		}},
		{name: "unreachable-at-start-nobody-listening", start: func(t *testing.T) (string, func()) {
			closed := httptest.NewServer(http.NotFoundHandler())
			closed.Close()
			return closed.URL, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, recover := tc.start(t)
			clk := newClock()
			var logs syncBuffer
			static := staticIssuer()
			static.Issuer = "https://static.example.test"
			fromJWKS := jwksIssuer(url)
			cfg := Config{
				Issuers: []Issuer{fromJWKS, static}, CacheSize: -1, Now: clk.Now,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			}
			v, err := New(t.Context(), cfg)
			require.NoError(t, err, "an unreachable JWKS URL does not stop the start")
			require.Contains(t, logs.String(), "JWKS fetch failed; the issuer's tokens are refused until a fetch succeeds")

			tok := sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), claimsAt(clk.Now()))
			_, err = v.Verify(t.Context(), tok)
			requireRefused(t, err, "unknown signing key", tok)

			// Other issuers are unaffected.
			other := sign(t, jwt.SigningMethodRS256, rsaKey(), kid("rsa1"), with(claimsAt(clk.Now()), "iss", static.Issuer))
			_, err = v.Verify(t.Context(), other)
			require.NoError(t, err)

			if recover == nil {
				return
			}
			// Reachable again: the issuer works from the next allowed fetch.
			recover()
			_, err = v.Verify(t.Context(), tok)
			requireRefused(t, err, "unknown signing key", tok)
			clk.Add(unknownKIDGap)
			_, err = v.Verify(t.Context(), tok)
			require.NoError(t, err)
		})
	}

	// A JWKS URL that does not answer holds the start for at most
	// jwksTimeout; whoever starts the verifier can give up sooner.
	t.Run("start-ends-with-its-context", func(t *testing.T) {
		srv := newJWKSServer(t, rsa1)
		srv.setHang(true)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := New(ctx, Config{Issuers: []Issuer{jwksIssuer(srv.URL)}})
			done <- err
		}()
		require.Eventually(t, func() bool { return srv.hits.Load() == 1 }, 10*time.Second, 10*time.Millisecond)
		cancel()
		err := <-done
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("fetch-gate-clock-set-back", func(t *testing.T) {
		clk := newClock()
		g := &fetchGate{gap: unknownKIDGap, now: clk.Now}
		require.True(t, g.allow())
		require.False(t, g.allow())
		clk.Add(unknownKIDGap - time.Nanosecond)
		require.False(t, g.allow())
		clk.Add(time.Nanosecond)
		require.True(t, g.allow())
		clk.Add(-time.Hour) // set back: a fetch is allowed, then the gap again
		require.True(t, g.allow())
		require.False(t, g.allow())
	})
}

// statusServer answers every request with code and body.
func statusServer(t *testing.T, code int, body string) string {
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
