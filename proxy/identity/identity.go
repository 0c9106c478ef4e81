// Package identity answers "who is calling": it verifies the caller's bearer
// token (a signed JWT) against the configured issuers and returns the caller's
// Identity.
//
// A token is accepted only when all of these hold:
//
//   - it is at most 16 KiB long and made of three base64url parts, without
//     padding or white space, whose header and payload are each one JSON
//     object in valid UTF-8 with no key twice (JSON parsers disagree on
//     which of two equal keys wins);
//   - its "iss" names a configured issuer exactly (the unverified "iss" only
//     picks the issuer's keys; it is checked again after the signature);
//   - its "alg" header is in that issuer's allow-list ("none" and HS* never
//     are) and fits the type and size of the key that verifies it;
//   - its "kid" names a key of that issuer (a single-key issuer also accepts a
//     token without "kid"); "jku", "x5u", "jwk" and "x5c" headers are ignored,
//     never fetched nor trusted, and a "crit" or "cty" header (an extension
//     this package cannot honour, or a nested token) refuses the token;
//   - "exp", "iss" and "aud" are present, "aud" holds one of the issuer's
//     audiences, "exp" has not passed and "nbf" and "iat" are not in the
//     future, each allowing for the configured leeway; "exp", "nbf" and
//     "iat" are numbers between 0 and the end of the year 9999;
//   - the subject claim is a non-empty string and the groups, amr and email
//     claims, when present, have the expected types.
//
// Keys come from a JWKS URL (fetched again in the background, and on a token
// naming an unknown kid at most every 30s), from PEM files, or from code (the
// dev issuer). Every refusal wraps ErrUnauthenticated and a Refusal, a short
// reason that is safe to show to the caller (errors.As finds it); the token
// itself never appears in an error.
//
// Verified tokens are kept in a bounded cache keyed by their SHA-256 digest.
// Every hit is checked again against the clock, the leeway and the issuer's
// current key set, so the cache never accepts a token that a fresh
// verification would refuse.
//
// The dev issuer (DevIssuer) signs tokens with an RSA key kept in the data
// directory, for `elevate serve --dev` and `elevate token`.
package identity

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrUnauthenticated is wrapped by every verification failure. The reason
// that may be shown to the caller, such as "token expired" or "wrong
// audience", is the Refusal it also wraps.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrNoToken is returned by Verify for an empty token. It wraps
// ErrUnauthenticated.
var ErrNoToken = fmt.Errorf("%w: no token", ErrUnauthenticated)

// Identity is a verified caller.
type Identity struct {
	// Subject is the caller's stable name, from the subject claim.
	Subject string `json:"subject"`
	// Groups are the caller's groups, from the groups claim.
	Groups []string `json:"groups,omitempty"`
	// AMR lists the authentication methods used (RFC 8176), from the amr claim.
	AMR []string `json:"amr,omitempty"`
	// Email is the caller's e-mail address, when the token carries one.
	Email string `json:"email,omitempty"`
	// Issuer is the "iss" of the token.
	Issuer string `json:"issuer"`
	// ExpiresAt is the "exp" of the token, in UTC.
	ExpiresAt time.Time `json:"expires_at"`
}

// MFA reports whether the caller signed in with more than one factor: the amr
// claim contains "mfa".
func (i Identity) MFA() bool { return slices.Contains(i.AMR, "mfa") }

// InGroup reports whether the caller is a member of group g.
func (i Identity) InGroup(g string) bool { return slices.Contains(i.Groups, g) }

// Refusal is why Verify refused a token, such as "token expired": a short
// reason that is safe to show to the caller. Every error of Verify but
// ErrNoToken wraps one, next to ErrUnauthenticated; match it with
// errors.As (or use Reason), never by the error's text.
type Refusal string

func (r Refusal) Error() string { return string(r) }

// Reasons given for refused tokens.
const (
	reasonTooLarge      Refusal = "token too large"
	reasonMalformed     Refusal = "malformed token"
	reasonMalformedKID  Refusal = "malformed kid header"
	reasonBadClaims     Refusal = "malformed claims"
	reasonNoIssuer      Refusal = "missing iss claim"
	reasonUnknownIssuer Refusal = "unknown issuer"
	reasonWrongIssuer   Refusal = "wrong issuer"
	reasonAlgorithm     Refusal = "signing algorithm not allowed"
	reasonCrit          Refusal = "critical header not supported"
	reasonContentType   Refusal = "content type header not supported"
	reasonUnknownKey    Refusal = "unknown signing key"
	reasonKeyMismatch   Refusal = "signing key does not fit the algorithm"
	reasonSignature     Refusal = "invalid signature"
	reasonExpired       Refusal = "token expired"
	reasonNotYetValid   Refusal = "token not valid yet"
	reasonIssuedFuture  Refusal = "token issued in the future"
	reasonNoExp         Refusal = "missing exp claim"
	reasonNoAudience    Refusal = "missing aud claim"
	reasonWrongAudience Refusal = "wrong audience"
	reasonNoSubject     Refusal = "missing subject"
	reasonBadGroups     Refusal = "malformed groups claim"
	reasonBadAMR        Refusal = "malformed amr claim"
	reasonBadEmail      Refusal = "malformed email claim"
	reasonCancelled     Refusal = "verification cancelled"
	reasonInvalid       Refusal = "invalid token"
)

// ErrExpired is matched (errors.Is) by the refusal of a token past its exp,
// so that callers can say how to get a new one.
var ErrExpired error = reasonExpired

// Reason returns the Refusal in a verification error, the part that may be
// shown to the caller, such as "token expired"; "" for an error that holds
// none (ErrNoToken, or an error Verify did not give).
func Reason(err error) string {
	var r Refusal
	if errors.As(err, &r) {
		return string(r)
	}
	return ""
}

// refuse wraps a reason in ErrUnauthenticated.
func refuse(r Refusal) error {
	return fmt.Errorf("%w: %w", ErrUnauthenticated, r)
}
