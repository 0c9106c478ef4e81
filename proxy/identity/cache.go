package identity

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// cacheEntry is one verified token.
type cacheEntry struct {
	id     Identity
	claims jwt.RegisteredClaims // checked again on every hit
	iss    *issuer
	gen    uint64 // iss.gen when the key was read
}

// tokenCache keeps verified tokens by the SHA-256 of the token. A hit counts
// only if the token still passes the issuer's clock and claim check and the
// issuer's key set has not changed since; otherwise the entry is dropped and
// the token verified afresh.
type tokenCache struct {
	mu  sync.Mutex
	max int
	m   map[[sha256.Size]byte]*cacheEntry
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{max: size, m: make(map[[sha256.Size]byte]*cacheEntry)}
}

func (c *tokenCache) get(k [sha256.Size]byte) (Identity, bool) {
	c.mu.Lock()
	e := c.m[k]
	c.mu.Unlock()
	if e == nil {
		return Identity{}, false
	}
	if e.iss.gen.Load() != e.gen || e.iss.check(&e.claims) != nil {
		c.mu.Lock()
		if c.m[k] == e {
			delete(c.m, k)
		}
		c.mu.Unlock()
		return Identity{}, false
	}
	return e.id.clone(), true
}

func (c *tokenCache) put(k [sha256.Size]byte, e *cacheEntry, now time.Time, leeway time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.evict(now, leeway)
	}
	c.m[k] = e
}

// evict drops the entries that can no longer hit, then, if the cache is
// still full, an eighth of it (at least one entry), chosen at random. Called
// with c.mu held.
func (c *tokenCache) evict(now time.Time, leeway time.Duration) {
	for k, e := range c.m {
		if !now.Before(e.claims.ExpiresAt.Add(leeway)) || e.iss.gen.Load() != e.gen {
			delete(c.m, k)
		}
	}
	limit := min(c.max-c.max/8, c.max-1)
	for k := range c.m {
		if len(c.m) <= limit {
			break
		}
		delete(c.m, k)
	}
}

func (c *tokenCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
