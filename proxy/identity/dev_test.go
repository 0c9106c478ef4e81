package identity

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// devClaims decodes a token's payload without verifying it.
func devClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(parts(t, tok)[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func TestDevIssuer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	dev, err := LoadOrCreateDevIssuer(dir)
	require.NoError(t, err)

	st, err := os.Stat(filepath.Join(dir, DevKeyFile))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "temporary files were left behind")

	again, err := LoadOrCreateDevIssuer(dir)
	require.NoError(t, err)
	loaded, err := LoadDevIssuer(dir)
	require.NoError(t, err)
	require.Equal(t, dev.Issuer(), again.Issuer())
	require.Equal(t, dev.Issuer(), loaded.Issuer())

	is := dev.Issuer()
	require.Equal(t, DevIssuerName, is.Issuer)
	require.Equal(t, []string{DevAudience}, is.Audience)
	require.Equal(t, []string{"RS256"}, is.Algorithms)
	require.Len(t, is.Keys, 1)
	for kid := range is.Keys {
		tp, err := thumbprint(&dev.key.PublicKey)
		require.NoError(t, err)
		require.Equal(t, tp, kid)
	}

	clk := newClock()
	now := clk.Now()
	v := newVerifier(t, clk, Config{Issuers: []Issuer{is}})

	tests := []struct {
		desc string
		tok  DevToken
		want Identity
	}{
		{
			desc: "with MFA, groups and e-mail",
			tok:  DevToken{Subject: "alice", Groups: []string{"admins", "ops"}, MFA: true, Email: "alice@example.test", Now: now},
			want: Identity{
				Subject: "alice", Groups: []string{"admins", "ops"}, AMR: []string{"pwd", "mfa"},
				Email: "alice@example.test", Issuer: DevIssuerName, ExpiresAt: now.Add(defaultDevTTL),
			},
		},
		{
			desc: "password only, no groups, custom TTL",
			tok:  DevToken{Subject: "bob", TTL: 10 * time.Minute, Now: now},
			want: Identity{Subject: "bob", AMR: []string{"pwd"}, Issuer: DevIssuerName, ExpiresAt: now.Add(10 * time.Minute)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			tok, err := dev.Sign(tc.tok)
			require.NoError(t, err)
			id, err := v.Verify(t.Context(), tok)
			require.NoError(t, err)
			require.Equal(t, tc.want, id)
			require.Equal(t, tc.tok.MFA, id.MFA())

			c := devClaims(t, tok)
			require.Equal(t, float64(now.Unix()), c["iat"])
			require.Equal(t, float64(now.Unix()), c["nbf"])
			require.Equal(t, DevAudience, c["aud"])
			require.NotEmpty(t, c["jti"])
		})
	}

	t.Run("unique jti", func(t *testing.T) {
		seen := map[any]bool{}
		for range 5 {
			tok, err := dev.Sign(DevToken{Subject: "alice", Now: now})
			require.NoError(t, err)
			jti := devClaims(t, tok)["jti"]
			require.False(t, seen[jti], "jti %v repeated", jti)
			seen[jti] = true
		}
	})

	t.Run("expires after its TTL", func(t *testing.T) {
		tok, err := dev.Sign(DevToken{Subject: "alice", TTL: time.Minute, Now: now})
		require.NoError(t, err)
		_, err = v.Verify(t.Context(), tok)
		require.NoError(t, err)
		clk.Set(now.Add(time.Minute + defaultLeeway))
		defer clk.Set(now)
		_, err = v.Verify(t.Context(), tok)
		requireRefused(t, err, "token expired", tok)
	})

	t.Run("another dev key is not trusted", func(t *testing.T) {
		other, err := LoadOrCreateDevIssuer(t.TempDir())
		require.NoError(t, err)
		tok, err := other.Sign(DevToken{Subject: "mallory", Now: now})
		require.NoError(t, err)
		_, err = v.Verify(t.Context(), tok)
		requireRefused(t, err, "unknown signing key", tok)
	})

	t.Run("sign refuses bad input", func(t *testing.T) {
		for _, tc := range []struct {
			desc string
			tok  DevToken
			want string
		}{
			{desc: "no subject", tok: DevToken{}, want: "dev issuer: a subject is required"},
			{desc: "blank subject", tok: DevToken{Subject: " "}, want: "dev issuer: a subject is required"},
			{desc: "negative TTL", tok: DevToken{Subject: "a", TTL: -time.Second}, want: "dev issuer: ttl must not be negative, got -1s"},
		} {
			_, err := dev.Sign(tc.tok)
			require.EqualError(t, err, tc.want, tc.desc)
		}
	})
}

func TestLoadDevIssuer(t *testing.T) {
	t.Run("missing key", func(t *testing.T) {
		dir := t.TempDir()
		_, err := LoadDevIssuer(dir)
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.EqualError(t, err, "no dev issuer key in "+dir+": start `elevate serve --dev` first")
		_, err = os.Stat(filepath.Join(dir, DevKeyFile))
		require.ErrorIs(t, err, fs.ErrNotExist, "loading must not create a key")
	})

	write := func(t *testing.T, data []byte, mode fs.FileMode) string {
		dir := t.TempDir()
		path := filepath.Join(dir, DevKeyFile)
		require.NoError(t, os.WriteFile(path, data, mode))
		require.NoError(t, os.Chmod(path, mode))
		return dir
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey())
	require.NoError(t, err)
	rsaDER, err := x509.MarshalPKCS8PrivateKey(rsaKey())
	require.NoError(t, err)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER})

	tests := []struct {
		desc string
		data []byte
		mode fs.FileMode
		want string
	}{
		{desc: "readable by others", data: rsaPEM, mode: 0o644, want: "mode 0644 is too open (want 0600)"},
		{desc: "not PEM", data: []byte("garbage"), mode: 0o600, want: "no PKCS #8 PRIVATE KEY PEM block"},
		{desc: "PKCS #1 block", data: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey())}), mode: 0o600, want: "no PKCS #8 PRIVATE KEY PEM block"},
		{desc: "an EC key", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), mode: 0o600, want: "want an RSA key, got *ecdsa.PrivateKey"},
		{desc: "corrupt DER", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), mode: 0o600, want: DevKeyFile + ": "},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			dir := write(t, tc.data, tc.mode)
			_, err := LoadDevIssuer(dir)
			require.ErrorContains(t, err, tc.want)
			require.NotErrorIs(t, err, fs.ErrNotExist)
			_, err = LoadOrCreateDevIssuer(dir)
			require.ErrorContains(t, err, tc.want, "a bad key must not be replaced")
		})
	}

	t.Run("an existing key is used", func(t *testing.T) {
		dir := write(t, rsaPEM, 0o600)
		dev, err := LoadOrCreateDevIssuer(dir)
		require.NoError(t, err)
		require.True(t, rsaKey().Equal(dev.key))
	})
}

func TestLoadOrCreateDevIssuerRace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	const n = 4
	kids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			dev, err := LoadOrCreateDevIssuer(dir)
			errs[i] = err
			if err == nil {
				kids[i] = devKID(dev)
			}
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, kids[0], kids[i])
	}
	loaded, err := LoadDevIssuer(dir)
	require.NoError(t, err)
	require.Equal(t, kids[0], devKID(loaded))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{DevKeyFile}, names, "temporary files were left behind: %s", strings.Join(names, ", "))
}

func devKID(d *DevIssuer) string {
	for kid := range d.Issuer().Keys {
		return kid
	}
	return ""
}
