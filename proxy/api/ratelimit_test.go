// Threats proven mitigated here (docs/threat-model.md): a caller flooding
// the side API, with or without a valid token, to exhaust it, the audit log
// or etcd; a caller dodging the limit with forged forwarding headers or by
// rotating bad tokens; unbounded limiter memory under many source addresses.
package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRateLimit walks one caller's bucket through burst, refusal and
// refill on the API's injected clock; nothing sleeps.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit, c.RateBurst = 2, 3 })
	bob, carl := e.token("bob"), e.token("carl")
	whoami := func(tok string) reply { return e.call("GET", "/v1/whoami", tok, "") }

	t.Run("burst-then-429", func(t *testing.T) {
		for i := range 3 {
			require.Equal(t, http.StatusOK, whoami(bob).status, "call %d of the burst", i+1)
		}
		r := whoami(bob)
		requireProblem(t, r, http.StatusTooManyRequests)
		require.Contains(t, r.body, "rate-limited")
		require.Equal(t, "1", r.header.Get("Retry-After"), "2/s: the next call is 0.5s away, rounded up")
		require.NotEmpty(t, r.header.Get("Elevate-Decision-Id"), "the first refusal is audited")
	})

	t.Run("other-identity-unaffected", func(t *testing.T) {
		require.Equal(t, http.StatusOK, whoami(carl).status)
	})

	t.Run("refusals-audited-once-per-minute", func(t *testing.T) {
		requireProblem(t, whoami(bob), http.StatusTooManyRequests)
		requireProblem(t, whoami(bob), http.StatusTooManyRequests)
		recs := limited(e)
		require.Len(t, recs, 1, "later refusals within the minute are counted, not written")
		require.Equal(t, "bob", recs[0].Subject)
		require.Equal(t, "/v1/whoami", recs[0].Path)
		require.Equal(t, http.StatusTooManyRequests, recs[0].Status)
	})

	t.Run("recovers-after-refill", func(t *testing.T) {
		e.clock.Add(500 * time.Millisecond) // one call's worth at 2/s
		require.Equal(t, http.StatusOK, whoami(bob).status)
		requireProblem(t, whoami(bob), http.StatusTooManyRequests)
		e.clock.Add(time.Minute) // full again
		for range 3 {
			require.Equal(t, http.StatusOK, whoami(bob).status)
		}
		r := whoami(bob)
		requireProblem(t, r, http.StatusTooManyRequests)
		recs := limited(e)
		require.Len(t, recs, 2, "a minute later a refusal is written again")
		require.Contains(t, recs[1].Reason, "3 more refusals since the last record")
	})

	t.Run("every-v1-path-counts", func(t *testing.T) {
		dora := e.token("dora")
		for _, p := range []string{"/v1/whoami", "/v1/ca", "/v1/nowhere"} {
			require.NotEqual(t, http.StatusTooManyRequests, e.call("GET", p, dora, "").status, p)
		}
		requireProblem(t, e.call("POST", "/v1/requests", dora, `{}`), http.StatusTooManyRequests)
	})

	t.Run("health-metrics-console-not-limited", func(t *testing.T) {
		for range 10 {
			for _, p := range []string{"/healthz", "/readyz", "/"} {
				require.Equal(t, http.StatusOK, e.call("GET", p, bob, "").status, p)
			}
		}
	})
}

// TestRateLimitAnonymous: calls without a valid token share their client
// address's bucket, whatever subject a refused token claims and whatever
// forwarding headers say; IPv6 clients are counted by /64.
func TestRateLimitAnonymous(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit, c.RateBurst = 1, 2 })
	forged := forgedToken(t, "bob") // signed by an issuer nobody trusts

	t.Run("by-address", func(t *testing.T) {
		require.Equal(t, http.StatusUnauthorized, e.serve("GET", "/v1/whoami", "", "192.0.2.1:1000").status)
		require.Equal(t, http.StatusUnauthorized, e.serve("GET", "/v1/whoami", forged, "192.0.2.1:1001").status)
		r := e.serve("GET", "/v1/whoami", "", "192.0.2.1:1002", "X-Forwarded-For", "198.51.100.7", "Forwarded", "for=198.51.100.7")
		requireProblem(t, r, http.StatusTooManyRequests, "forwarding headers do not pick the bucket")
		require.Equal(t, http.StatusUnauthorized, e.serve("GET", "/v1/whoami", "", "192.0.2.2:1000").status, "another address has its own")
	})

	t.Run("refused-tokens-do-not-touch-the-claimed-subject", func(t *testing.T) {
		bob := e.token("bob")
		for range 2 {
			require.Equal(t, http.StatusOK, e.serve("GET", "/v1/whoami", bob, "192.0.2.1:1003").status)
		}
	})

	t.Run("no-unauthenticated-record-when-limited", func(t *testing.T) {
		before := e.events()["unauthenticated"]
		requireProblem(t, e.serve("GET", "/v1/whoami", forged, "192.0.2.1:1004"), http.StatusTooManyRequests)
		require.Equal(t, before, e.events()["unauthenticated"], "a flood of bad tokens does not flood the audit log")
	})

	t.Run("ipv6-by-64", func(t *testing.T) {
		require.Equal(t, http.StatusUnauthorized, e.serve("GET", "/v1/whoami", "", "[2001:db8::1]:1").status)
		require.Equal(t, http.StatusUnauthorized, e.serve("GET", "/v1/whoami", "", "[2001:db8::2]:1").status)
		requireProblem(t, e.serve("GET", "/v1/whoami", "", "[2001:db8::3]:1"), http.StatusTooManyRequests)
		require.Equal(t, http.StatusUnauthorized, e.serve("GET", "/v1/whoami", "", "[2001:db8:0:1::1]:1").status)
	})

	t.Run("ipv4-mapped-is-ipv4", func(t *testing.T) {
		require.Equal(t, http.StatusUnauthorized, e.serve("GET", "/v1/whoami", "", "192.0.2.9:1").status)
		require.Equal(t, http.StatusUnauthorized, e.serve("GET", "/v1/whoami", "", "[::ffff:192.0.2.9]:1").status)
		requireProblem(t, e.serve("GET", "/v1/whoami", "", "192.0.2.9:2"), http.StatusTooManyRequests)
	})
}

// TestRateLimitOff: a negative rate_limit turns the limit off.
func TestRateLimitOff(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit = -1 })
	require.Nil(t, e.srv.limits)
	bob := e.token("bob")
	for range 100 {
		require.Equal(t, http.StatusOK, e.serve("GET", "/v1/whoami", bob, "192.0.2.1:1").status)
	}
}

// TestRateLimitConfig: defaults, and errors that name the key.
func TestRateLimitConfig(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		limit     float64
		burst     int
		wantLimit float64
		wantBurst int
		err       string
	}{
		{desc: "defaults", wantLimit: 20, wantBurst: 40},
		{desc: "burst follows limit", limit: 5, wantLimit: 5, wantBurst: 10},
		{desc: "small limit", limit: 0.2, wantLimit: 0.2, wantBurst: 1},
		{desc: "explicit burst", limit: 5, burst: 7, wantLimit: 5, wantBurst: 7},
		{desc: "off", limit: -1, wantLimit: -1},
		{desc: "NaN", limit: math.NaN(), err: "api.rate_limit"},
		{desc: "infinite", limit: math.Inf(1), err: "api.rate_limit"},
		{desc: "negative burst", limit: 5, burst: -1, err: "api.rate_burst"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := Config{RateLimit: tc.limit, RateBurst: tc.burst}
			err := c.Validate()
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			// The wiring is missing here: New checks it, Validate does not.
			require.NoError(t, err)
			require.Equal(t, tc.wantLimit, c.RateLimit)
			require.Equal(t, tc.wantBurst, c.RateBurst)
		})
	}
}

// TestLimiterMemory: the buckets stay bounded, and an idle bucket, once
// refilled, is dropped without changing any answer.
func TestLimiterMemory(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("bounded", func(t *testing.T) {
		l := newLimiter(1, 1)
		for i := range maxBuckets + 500 {
			require.True(t, l.take("addr:"+strconv.Itoa(i), t0).allowed)
		}
		require.LessOrEqual(t, l.size(), maxBuckets)
	})

	t.Run("idle-evicted", func(t *testing.T) {
		l := newLimiter(10, 5) // refills from empty in 0.5s
		for range 5 {
			require.True(t, l.take("sub:bob", t0).allowed)
		}
		require.False(t, l.take("sub:bob", t0).allowed)
		later := t0.Add(sweepEvery + auditEvery)
		require.True(t, l.take("sub:carl", later).allowed)
		require.Equal(t, 1, l.size(), "bob's refilled bucket was dropped")
		for range 5 {
			require.True(t, l.take("sub:bob", later).allowed, "a new bucket answers as the refilled one would")
		}
		require.False(t, l.take("sub:bob", later).allowed)
	})

	t.Run("busy-kept", func(t *testing.T) {
		l := newLimiter(1, 2)
		require.True(t, l.take("sub:bob", t0).allowed)
		require.True(t, l.take("sub:bob", t0).allowed)
		require.False(t, l.take("sub:bob", t0).allowed)
		// A sweep a minute later drops nothing that is still refusing.
		l.lastSweep = time.Time{}
		require.True(t, l.take("sub:carl", t0.Add(time.Second/2)).allowed)
		require.Equal(t, 2, l.size())
		require.False(t, l.take("sub:bob", t0.Add(time.Second/2)).allowed, "bob's bucket was not reset by the sweep")
	})

	t.Run("retry-after", func(t *testing.T) {
		for _, tc := range []struct {
			d    time.Duration
			want int
		}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {5 * time.Second, 5}} {
			require.Equal(t, tc.want, retryAfterSeconds(tc.d), fmt.Sprint(tc.d))
		}
	})
}

// limited returns the audit records of rate-limit refusals.
func limited(e *env) []auditRecord {
	var out []auditRecord
	for _, r := range e.records() {
		if r.Event == "api.rate_limited" {
			out = append(out, r)
		}
	}
	return out
}

// TestLimiterConcurrent: callers racing on one bucket get exactly its
// burst between them.
func TestLimiterConcurrent(t *testing.T) {
	l := newLimiter(1, 50)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if l.take("sub:bob", t0).allowed {
					allowed.Add(1)
				}
				l.take("sub:g"+strconv.Itoa(g), t0)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(50), allowed.Load())
}
