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
// dev issuer). Every refusal wraps ErrUnauthenticated and ends with a short
// reason that is safe to show to the caller; the token itself never appears
// in an error.
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

// ErrUnauthenticated is wrapped by every verification failure. The text after
// the last ": " of such an error is a short reason that may be shown to the
// caller, such as "token expired" or "wrong audience".
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

// refusal is a verification failure with a reason safe to show.
type refusal string

func (r refusal) Error() string { return string(r) }

// Reasons given for refused tokens. None contains ": ", so the reason is the
// text after the last ": " of the error.
const (
	reasonTooLarge      refusal = "token too large"
	reasonMalformed     refusal = "malformed token"
	reasonMalformedKID  refusal = "malformed kid header"
	reasonBadClaims     refusal = "malformed claims"
	reasonNoIssuer      refusal = "missing iss claim"
	reasonUnknownIssuer refusal = "unknown issuer"
	reasonWrongIssuer   refusal = "wrong issuer"
	reasonAlgorithm     refusal = "signing algorithm not allowed"
	reasonCrit          refusal = "critical header not supported"
	reasonContentType   refusal = "content type header not supported"
	reasonUnknownKey    refusal = "unknown signing key"
	reasonKeyMismatch   refusal = "signing key does not fit the algorithm"
	reasonSignature     refusal = "invalid signature"
	reasonExpired       refusal = "token expired"
	reasonNotYetValid   refusal = "token not valid yet"
	reasonIssuedFuture  refusal = "token issued in the future"
	reasonNoExp         refusal = "missing exp claim"
	reasonNoAudience    refusal = "missing aud claim"
	reasonWrongAudience refusal = "wrong audience"
	reasonNoSubject     refusal = "missing subject"
	reasonBadGroups     refusal = "malformed groups claim"
	reasonBadAMR        refusal = "malformed amr claim"
	reasonBadEmail      refusal = "malformed email claim"
	reasonCancelled     refusal = "verification cancelled"
	reasonInvalid       refusal = "invalid token"
)

// ErrExpired is matched (errors.Is) by the refusal of a token past its exp,
// so that callers can say how to get a new one.
var ErrExpired error = reasonExpired

// Reason returns the part of a verification error that may be shown to the
// caller, such as "token expired"; "" for an error Verify did not give.
func Reason(err error) string {
	var r refusal
	if errors.As(err, &r) {
		return string(r)
	}
	return ""
}

// refuse wraps a reason in ErrUnauthenticated.
func refuse(r refusal) error {
	return fmt.Errorf("%w: %w", ErrUnauthenticated, r)
}
