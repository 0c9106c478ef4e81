package identity

import (
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{Issuers: []Issuer{{
			Issuer:   testIssuer,
			Audience: []string{testAudience},
			JWKSURL:  "https://idp.example.test/.well-known/jwks.json",
		}}}
	}
	tests := []struct {
		desc   string
		change func(c *Config)
		want   string // a line of the error; empty: valid
	}{
		{desc: "valid", change: func(c *Config) {}},
		{desc: "valid with every field", change: func(c *Config) {
			c.Issuers[0].Algorithms = []string{"RS256", "PS512", "ES384", "EdDSA"}
			c.Issuers[0].RefreshInterval = time.Minute
			c.Leeway, c.CacheSize = maxLeeway, maxCacheSize
			c.Claims = Claims{Subject: "oid", Groups: "roles", AMR: "amr", Email: "upn"}
		}},
		{desc: "http on loopback", change: func(c *Config) { c.Issuers[0].JWKSURL = "http://127.0.0.1:9000/jwks" }},
		{desc: "http on localhost", change: func(c *Config) { c.Issuers[0].JWKSURL = "http://localhost/jwks" }},
		{desc: "cache off", change: func(c *Config) { c.CacheSize = -1 }},
		{desc: "no issuers", change: func(c *Config) { c.Issuers = nil }, want: "identity.issuers: at least one issuer is required"},
		{desc: "no issuer name", change: func(c *Config) { c.Issuers[0].Issuer = "" }, want: "identity.issuers[0].issuer: required"},
		{
			desc:   "issuer twice",
			change: func(c *Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) },
			want:   `identity.issuers[1].issuer: "https://idp.example.test" is already issuers[0]`,
		},
		{
			desc:   "no audience",
			change: func(c *Config) { c.Issuers[0].Audience = nil },
			want:   "identity.issuers[0].audience: at least one audience is required",
		},
		{
			desc:   "empty audience",
			change: func(c *Config) { c.Issuers[0].Audience = []string{"a", ""} },
			want:   "identity.issuers[0].audience[1]: must not be empty",
		},
		{
			desc:   "no key source",
			change: func(c *Config) { c.Issuers[0].JWKSURL = "" },
			want:   "identity.issuers[0]: exactly one of jwks_url, pem_files or keys is required",
		},
		{
			desc:   "two key sources",
			change: func(c *Config) { c.Issuers[0].PEMFiles = []string{"k.pem"} },
			want:   "identity.issuers[0]: exactly one of jwks_url, pem_files or keys is required",
		},
		{
			desc:   "http JWKS URL on another host",
			change: func(c *Config) { c.Issuers[0].JWKSURL = "http://idp.example.test/jwks" },
			want:   "identity.issuers[0].jwks_url: must use https (http only on a loopback host)",
		},
		{
			desc:   "relative JWKS URL",
			change: func(c *Config) { c.Issuers[0].JWKSURL = "/jwks.json" },
			want:   "identity.issuers[0].jwks_url: must be an absolute URL",
		},
		{
			desc:   "file JWKS URL",
			change: func(c *Config) { c.Issuers[0].JWKSURL = "file://host/etc/jwks.json" },
			want:   "identity.issuers[0].jwks_url: must use https (http only on a loopback host)",
		},
		{
			desc:   "refresh interval too short",
			change: func(c *Config) { c.Issuers[0].RefreshInterval = 10 * time.Millisecond },
			want:   "identity.issuers[0].refresh_interval: must be between 1s and 24h0m0s, got 10ms",
		},
		{
			desc: "refresh interval without a JWKS URL",
			change: func(c *Config) {
				c.Issuers[0].JWKSURL, c.Issuers[0].PEMFiles = "", []string{"k.pem"}
				c.Issuers[0].RefreshInterval = time.Minute
			},
			want: "identity.issuers[0].refresh_interval: only applies with jwks_url",
		},
		{
			desc:   "empty PEM file name",
			change: func(c *Config) { c.Issuers[0].JWKSURL, c.Issuers[0].PEMFiles = "", []string{""} },
			want:   "identity.issuers[0].pem_files[0]: must not be empty",
		},
		{
			desc: "key with an empty kid",
			change: func(c *Config) {
				c.Issuers[0].JWKSURL = ""
				c.Issuers[0].Keys = map[string]crypto.PublicKey{"": &ecKey().PublicKey}
			},
			want: "identity.issuers[0].keys: a key has an empty kid",
		},
		{
			desc: "symmetric key",
			change: func(c *Config) {
				c.Issuers[0].JWKSURL = ""
				c.Issuers[0].Keys = map[string]crypto.PublicKey{"k": []byte("secret")}
			},
			want: `identity.issuers[0].keys["k"]: key type []uint8 is not supported (RSA, ECDSA or Ed25519 public keys only)`,
		},
		{
			desc: "private key",
			change: func(c *Config) {
				c.Issuers[0].JWKSURL = ""
				c.Issuers[0].Keys = map[string]crypto.PublicKey{"k": ecKey()}
			},
			want: `identity.issuers[0].keys["k"]: key type *ecdsa.PrivateKey is not supported (RSA, ECDSA or Ed25519 public keys only)`,
		},
		{
			desc:   "alg none",
			change: func(c *Config) { c.Issuers[0].Algorithms = []string{"RS256", "none"} },
			want:   `identity.issuers[0].algorithms[1]: "none" is never allowed`,
		},
		{
			desc:   "HS256",
			change: func(c *Config) { c.Issuers[0].Algorithms = []string{"HS256"} },
			want:   `identity.issuers[0].algorithms[0]: "HS256" is never allowed`,
		},
		{
			desc:   "hs512 in lower case",
			change: func(c *Config) { c.Issuers[0].Algorithms = []string{"hs512"} },
			want:   `identity.issuers[0].algorithms[0]: "hs512" is never allowed`,
		},
		{
			desc:   "unknown algorithm",
			change: func(c *Config) { c.Issuers[0].Algorithms = []string{"RS1"} },
			want:   `identity.issuers[0].algorithms[0]: "RS1" is not supported (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
		},
		{desc: "negative leeway", change: func(c *Config) { c.Leeway = -time.Second }, want: "identity.leeway: must be between 0 and 5m0s, got -1s"},
		{desc: "leeway too long", change: func(c *Config) { c.Leeway = 6 * time.Minute }, want: "identity.leeway: must be between 0 and 5m0s, got 6m0s"},
		{desc: "cache too large", change: func(c *Config) { c.CacheSize = maxCacheSize + 1 }, want: "identity.cache_size: must be at most 1000000, got 1000001"},
		{
			desc:   "claim name with spaces",
			change: func(c *Config) { c.Claims.Groups = " groups" },
			want:   "identity.claims.groups: must not have leading or trailing spaces",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, strings.Split(err.Error(), "\n"), tc.want)

			_, err = New(t.Context(), c)
			require.Error(t, err, "New must refuse what Validate refuses")
			require.Contains(t, strings.Split(err.Error(), "\n"), tc.want)
		})
	}

	t.Run("every problem is reported", func(t *testing.T) {
		err := Config{Issuers: []Issuer{{}}, Leeway: time.Hour}.Validate()
		require.Error(t, err)
		lines := strings.Split(err.Error(), "\n")
		require.Contains(t, lines, "identity.issuers[0].issuer: required")
		require.Contains(t, lines, "identity.issuers[0].audience: at least one audience is required")
		require.Contains(t, lines, "identity.leeway: must be between 0 and 5m0s, got 1h0m0s")
	})
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	require.Equal(t, defaultLeeway, c.Leeway)
	require.Equal(t, defaultCacheSize, c.CacheSize)
	require.NotNil(t, c.Now)
	require.NotNil(t, c.Logger)
	require.Equal(t, Claims{Subject: "sub", Groups: "groups", AMR: "amr", Email: "email"}, c.Claims)

	clk := newClock()
	v := newVerifier(t, clk, Config{Issuers: []Issuer{staticIssuer()}})
	require.Equal(t, []string{"RS256", "ES256"}, v.issuers[testIssuer].algs)
}
