package api

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate limiting of the side API: one token bucket per caller. A caller is a
// token subject, or, for calls without a valid token, the client address
// (an IPv6 client by its /64, which one host usually owns whole).
const (
	// DefaultRateLimit is Config.RateLimit when none is set: calls per
	// second per caller.
	DefaultRateLimit = 20
	// maxBuckets bounds the memory the limiter holds. A new caller past
	// it drops an arbitrary bucket (whose caller starts again with a full
	// one); refilled buckets are swept every sweepEvery.
	maxBuckets = 10000
	// sweepEvery is how often idle buckets are dropped.
	sweepEvery = time.Minute
	// auditEvery: a caller's refusals are audited at most once per
	// interval; the next record counts those left out.
	auditEvery = time.Minute
)

// limiter holds the buckets. A bucket idle long enough to have refilled
// is equivalent to a new one, so dropping it changes nothing.
type limiter struct {
	limit rate.Limit
	burst int
	// idle is how long a bucket takes to refill from empty.
	idle time.Duration

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time // last call seen
	// lastAudit is when a refusal was last written to the audit log;
	// suppressed counts the refusals since then that were not.
	lastAudit  time.Time
	suppressed int
}

// verdict is the limiter's answer for one call.
type verdict struct {
	allowed bool
	// retryAfter is when the caller's next call would be allowed.
	retryAfter time.Duration
	// audit says this refusal is to be recorded; suppressed is how many
	// refusals of the same caller went unrecorded before it.
	audit      bool
	suppressed int
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		idle:    time.Duration(float64(burst) / perSecond * float64(time.Second)),
		buckets: map[string]*bucket{},
	}
}

// take spends one call of key's bucket at now.
func (l *limiter) take(key string, now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if now.Sub(l.lastSweep) >= sweepEvery {
			l.sweep(now)
		}
		if len(l.buckets) >= maxBuckets {
			l.evictOne()
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return verdict{allowed: true}
	}
	wait := time.Duration((1 - b.lim.TokensAt(now)) / float64(l.limit) * float64(time.Second))
	v := verdict{retryAfter: wait}
	if b.lastAudit.IsZero() || now.Sub(b.lastAudit) >= auditEvery {
		v.audit, v.suppressed = true, b.suppressed
		b.lastAudit, b.suppressed = now, 0
	} else {
		b.suppressed++
	}
	return v
}

// sweep drops the buckets that have refilled and have no refusal to
// count. Callers hold l.mu.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.idle && (b.lastAudit.IsZero() || now.Sub(b.lastAudit) >= auditEvery) {
			delete(l.buckets, k)
		}
	}
}

// evictOne drops an arbitrary bucket to make room. Callers hold l.mu.
func (l *limiter) evictOne() {
	for k := range l.buckets {
		delete(l.buckets, k)
		return
	}
}

// size is the number of buckets held.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// clientKey is the bucket of a call without a valid token: its client
// address from the connection (never from a header a caller can set),
// IPv6 by /64.
func clientKey(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		// Not host:port (a unix socket, a test): one shared bucket.
		return "addr:" + remoteAddr
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "net:" + p.String()
	}
	return "addr:" + a.String()
}

// retryAfterSeconds renders d for the Retry-After header: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
