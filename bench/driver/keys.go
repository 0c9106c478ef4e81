package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The benchmark's token issuer: elevate and OPA both trust its RSA key.
const (
	issuerName = "https://issuer.bench.elevate.test"
	audience   = "elevate"
	keyID      = "bench"
)

// issuer signs the benchmark's RS256 tokens.
type issuer struct {
	key    *rsa.PrivateKey
	pubPEM []byte
	// PubFile holds pubPEM; its base name without extension is the kid.
	pubFile string
}

// newIssuer makes a fresh RSA 2048 key and writes its public half to
// dir/bench.pem.
func newIssuer(dir string) (*issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("issuer key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("issuer key: %w", err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(dir, keyID+".pem")
	if err := os.WriteFile(path, pub, 0o600); err != nil {
		return nil, fmt.Errorf("issuer key: %w", err)
	}
	return &issuer{key: key, pubPEM: pub, pubFile: path}, nil
}

// token signs a token for sub in groups, valid for ttl from now.
func (is *issuer) token(sub string, groups []string, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": issuerName,
		"aud": audience,
		"sub": sub,
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(ttl).Unix(),
		"amr": []string{"pwd", "mfa"},
	}
	if len(groups) > 0 {
		claims["groups"] = groups
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = keyID
	s, err := t.SignedString(is.key)
	if err != nil {
		return "", fmt.Errorf("sign token for %s: %w", sub, err)
	}
	return s, nil
}
