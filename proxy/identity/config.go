package identity

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults and limits of Config.
const (
	// defaultLeeway is the clock skew allowed when Config.Leeway is zero.
	defaultLeeway = 30 * time.Second
	// maxLeeway is the largest Config.Leeway accepted.
	maxLeeway = 5 * time.Minute
	// defaultCacheSize is the number of verified tokens kept when
	// Config.CacheSize is zero.
	defaultCacheSize = 10000
	// maxCacheSize is the largest Config.CacheSize accepted.
	maxCacheSize = 1000000
	// defaultRefreshInterval is how often a JWKS URL is fetched again when
	// Issuer.RefreshInterval is zero.
	defaultRefreshInterval = 5 * time.Minute
	// minRefreshInterval and maxRefreshInterval bound Issuer.RefreshInterval.
	minRefreshInterval = time.Second
	maxRefreshInterval = 24 * time.Hour
)

// maxTokenSize is the length above which a token is refused unparsed.
const maxTokenSize = 16 << 10

// defaultAlgorithms is the allow-list of an Issuer that names none.
var defaultAlgorithms = []string{"RS256", "ES256"}

// supportedAlgorithms are the asymmetric algorithms an issuer may allow.
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// Config configures a Verifier. The zero value of each field means its
// default.
type Config struct {
	// Issuers are the token issuers trusted; at least one is required.
	Issuers []Issuer `yaml:"issuers"`
	// Claims names the claims read from a token.
	Claims Claims `yaml:"claims"`
	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	// Default 30s; at most 5m.
	Leeway time.Duration `yaml:"leeway"`
	// CacheSize bounds the cache of verified tokens. Default 10000;
	// negative turns the cache off; at most 1000000.
	CacheSize int `yaml:"cache_size"`
	// Now is the clock. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Logger receives failed JWKS refreshes. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Issuer is one trusted token issuer. Exactly one of JWKSURL, PEMFiles and
// Keys gives its keys.
type Issuer struct {
	// Issuer must equal the token's "iss" exactly. Required.
	Issuer string `yaml:"issuer"`
	// Audience lists the accepted audiences; the token's "aud" must contain
	// one of them. At least one is required.
	Audience []string `yaml:"audience"`
	// JWKSURL is a JWK Set URL, fetched at start-up and every
	// RefreshInterval. It must use https, except on a loopback host. A token
	// from such an issuer must name its key with "kid". If a fetch fails, the
	// last keys fetched stay in use; until one succeeds, the issuer has no
	// keys and its tokens are refused.
	JWKSURL string `yaml:"jwks_url"`
	// RefreshInterval is how often JWKSURL is fetched again. Default 5m;
	// between 1s and 24h. A token naming a kid that the keys lack also
	// causes a fetch, at most one every 30s per issuer, without waiting for
	// the previous one; within that gap such tokens are refused at once. A
	// new kid is trusted, and a removed one refused, from the next fetch on.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// PEMFiles are files that each hold one public key, as a PKIX "PUBLIC
	// KEY" or a "CERTIFICATE" PEM block. A key's kid is the file's base name
	// without its extension; its RFC 7638 thumbprint names it too.
	PEMFiles []string `yaml:"pem_files"`
	// Keys are public keys given in code, by kid.
	Keys map[string]crypto.PublicKey `yaml:"-"`
	// Algorithms is the allow-list of the token's "alg". Default
	// ["RS256","ES256"]. Supported: RS256/384/512, PS256/384/512,
	// ES256/384/512 and EdDSA; "none" and HS* are never allowed.
	Algorithms []string `yaml:"algorithms"`
}

// Claims names the claims read from a token. An empty name means the
// default.
type Claims struct {
	// Subject is the caller's name. Default "sub".
	Subject string `yaml:"subject"`
	// Groups is an array of strings or a space-separated string.
	// Default "groups".
	Groups string `yaml:"groups"`
	// AMR is an array of strings or a space-separated string. Default "amr".
	AMR string `yaml:"amr"`
	// Email is a string. Default "email".
	Email string `yaml:"email"`
}

// Validate checks the configuration without reading files or the network.
// Each problem is reported on its own line and names its key, for example
// "identity.issuers[0].audience: at least one audience is required".
func (c Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("identity.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Issuers) == 0 {
		add("issuers", "at least one issuer is required")
	}
	if c.Leeway < 0 || c.Leeway > maxLeeway {
		add("leeway", "must be between 0 and %s, got %s", maxLeeway, c.Leeway)
	}
	if c.CacheSize > maxCacheSize {
		add("cache_size", "must be at most %d, got %d", maxCacheSize, c.CacheSize)
	}
	claims := []struct{ key, name string }{
		{"subject", c.Claims.Subject}, {"groups", c.Claims.Groups},
		{"amr", c.Claims.AMR}, {"email", c.Claims.Email},
	}
	for _, cl := range claims {
		if cl.name != strings.TrimSpace(cl.name) {
			add("claims."+cl.key, "must not have leading or trailing spaces")
		}
	}
	seen := make(map[string]int)
	for i, is := range c.Issuers {
		key := fmt.Sprintf("issuers[%d]", i)
		switch {
		case is.Issuer == "":
			add(key+".issuer", "required")
		case seen[is.Issuer] > 0:
			add(key+".issuer", "%q is already issuers[%d]", is.Issuer, seen[is.Issuer]-1)
		default:
			seen[is.Issuer] = i + 1
		}
		if len(is.Audience) == 0 {
			add(key+".audience", "at least one audience is required")
		}
		for j, a := range is.Audience {
			if a == "" {
				add(fmt.Sprintf("%s.audience[%d]", key, j), "must not be empty")
			}
		}
		sources := 0
		if is.JWKSURL != "" {
			sources++
			if err := checkJWKSURL(is.JWKSURL); err != nil {
				add(key+".jwks_url", "%v", err)
			}
		}
		if len(is.PEMFiles) > 0 {
			sources++
			for j, f := range is.PEMFiles {
				if f == "" {
					add(fmt.Sprintf("%s.pem_files[%d]", key, j), "must not be empty")
				}
			}
		}
		if len(is.Keys) > 0 {
			sources++
			for kid, k := range is.Keys {
				if kid == "" {
					add(key+".keys", "a key has an empty kid")
					continue
				}
				if err := checkPublicKey(k); err != nil {
					add(fmt.Sprintf("%s.keys[%q]", key, kid), "%v", err)
				}
			}
		}
		if sources != 1 {
			add(key, "exactly one of jwks_url, pem_files or keys is required")
		}
		if is.RefreshInterval != 0 {
			if is.JWKSURL == "" {
				add(key+".refresh_interval", "only applies with jwks_url")
			} else if is.RefreshInterval < minRefreshInterval || is.RefreshInterval > maxRefreshInterval {
				add(key+".refresh_interval", "must be between %s and %s, got %s", minRefreshInterval, maxRefreshInterval, is.RefreshInterval)
			}
		}
		for j, alg := range is.Algorithms {
			akey := fmt.Sprintf("%s.algorithms[%d]", key, j)
			switch {
			case strings.EqualFold(alg, "none") || strings.HasPrefix(strings.ToUpper(alg), "HS"):
				add(akey, "%q is never allowed", alg)
			case !slices.Contains(supportedAlgorithms, alg):
				add(akey, "%q is not supported (use one of %s)", alg, strings.Join(supportedAlgorithms, ", "))
			}
		}
	}
	return errors.Join(errs...)
}

// checkJWKSURL requires an absolute https URL, or http on a loopback host.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("must be an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return errors.New("must use https (http only on a loopback host)")
	default:
		return errors.New("must use https (http only on a loopback host)")
	}
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Leeway == 0 {
		c.Leeway = defaultLeeway
	}
	if c.CacheSize == 0 {
		c.CacheSize = defaultCacheSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Claims = c.Claims.withDefaults()
	return c
}

func (c Claims) withDefaults() Claims {
	if c.Subject == "" {
		c.Subject = "sub"
	}
	if c.Groups == "" {
		c.Groups = "groups"
	}
	if c.AMR == "" {
		c.AMR = "amr"
	}
	if c.Email == "" {
		c.Email = "email"
	}
	return c
}
