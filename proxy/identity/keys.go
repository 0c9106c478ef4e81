package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
)

// minRSABits is the smallest RSA modulus accepted for a signing key.
const minRSABits = 2048

// checkPublicKey accepts the key types the supported algorithms verify with.
func checkPublicKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return errors.New("empty RSA key")
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too small (at least %d)", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return errors.New("empty ECDSA key")
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("ECDSA curve %s is not supported", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("malformed Ed25519 key")
		}
	default:
		return fmt.Errorf("key type %T is not supported (RSA, ECDSA or Ed25519 public keys only)", k)
	}
	return nil
}

// fits reports whether key verifies signatures of algorithm alg.
func fits(alg string, key any) bool {
	if checkPublicKey(key) != nil {
		return false
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// thumbprint is the RFC 7638 JWK thumbprint of a supported public key.
func thumbprint(k crypto.PublicKey) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var members string
	switch k := k.(type) {
	case *rsa.PublicKey:
		e := big.NewInt(int64(k.E)).Bytes()
		members = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(e), b64(k.N.Bytes()))
	case *ecdsa.PublicKey:
		pt, err := k.Bytes() // 0x04 || X || Y, each padded to the field size
		if err != nil {
			return "", err
		}
		n := (len(pt) - 1) / 2
		members = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Curve.Params().Name, b64(pt[1:1+n]), b64(pt[1+n:]))
	case ed25519.PublicKey:
		members = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":%q}`, b64(k))
	default:
		return "", fmt.Errorf("key type %T is not supported", k)
	}
	sum := sha256.Sum256([]byte(members))
	return b64(sum[:]), nil
}

// loadPEMKey reads the one public key of a PEM file: the first block, which
// must be a PKIX "PUBLIC KEY" or a "CERTIFICATE".
func loadPEMKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key crypto.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
	}
	if err != nil {
		return nil, err
	}
	if err := checkPublicKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// pemKID is the kid a PEM file's key goes by: its base name without the
// extension.
func pemKID(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}
