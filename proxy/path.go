package proxy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ErrAmbiguousPath is wrapped by every path that elevate refuses to judge
// because two reasonable servers could read it differently.
var ErrAmbiguousPath = errors.New("ambiguous path")

// pathError says which rule a refused path broke, in words safe to show.
type pathError struct{ reason string }

func (e *pathError) Error() string { return "ambiguous path: " + e.reason }
func (e *pathError) Unwrap() error { return ErrAmbiguousPath }

func badPath(format string, args ...any) error {
	return &pathError{reason: fmt.Sprintf(format, args...)}
}

// maxPathBytes bounds the escaped path; longer request targets are refused.
const maxPathBytes = 8 << 10

// parsePath splits an escaped request path into decoded segments, once.
//
// The path must start with "/". It is split on the literal "/" only, so an
// encoded slash ("%2F") stays inside its segment as data: RabbitMQ's default
// vhost "/" travels as "%2F" and is one segment. A trailing "/" yields a final
// empty segment, so "/config/" is ["config", ""]. Everything that servers
// disagree on is refused, so that no upstream can read a judged path as
// another one:
//
//   - dot segments in any encoding (".", "..", "%2e", "%2E%2e", "..;x"), also
//     between encoded slashes ("a%2F..%2Fb");
//   - double-encoded separators or dots ("%252F", "%252e");
//   - backslashes (raw or "%5C"), and an encoded "?" or "#", which a server
//     that decodes before it routes reads as the end of the path;
//   - a segment that starts with ";" (empty to servers that strip path
//     parameters);
//   - NUL and other control bytes, raw non-ASCII bytes, raw "#", invalid
//     escapes and empty segments in the middle ("//");
//   - decoded bytes that are not valid UTF-8, such as the overlong "%C0%AE"
//     that lax decoders read as ".";
//   - characters that Unicode compatibility normalisation (NFKC) turns into
//     a separator, a dot, "%" or ";" (the fullwidth solidus "%EF%BC%8F",
//     the two-dot leader "%E2%80%A5", ...), and look-alikes of "/", "\"
//     and "." that some servers map by code page (division and fraction
//     slash, yen and won sign, ideographic full stop).
func parsePath(escaped string) ([]string, error) {
	if escaped == "" || escaped[0] != '/' {
		return nil, badPath("path must start with /")
	}
	if len(escaped) > maxPathBytes {
		return nil, badPath("path longer than %d bytes", maxPathBytes)
	}
	if escaped == "/" {
		return []string{}, nil
	}
	raw := strings.Split(escaped[1:], "/")
	segs := make([]string, 0, len(raw))
	for i, r := range raw {
		if r == "" && i != len(raw)-1 {
			return nil, badPath("empty path segment")
		}
		seg, err := decodeSegment(r)
		if err != nil {
			return nil, err
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// decodeSegment percent-decodes one raw segment and applies the refusal rules.
func decodeSegment(raw string) (string, error) {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", badPath("invalid percent escape")
			}
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		case c == '#':
			return "", badPath("raw # in path")
		case c >= 0x80:
			return "", badPath("raw non-ASCII byte in path")
		}
		if c == 0 || c < 0x20 || c == 0x7f {
			return "", badPath("control byte in path")
		}
		if c == '\\' {
			return "", badPath("backslash in path")
		}
		b.WriteByte(c)
	}
	seg := b.String()
	if !utf8.ValidString(seg) {
		return "", badPath("encoded bytes that are not valid UTF-8")
	}
	// A decoded segment that still holds an escape would mean something
	// else to a server that decodes twice.
	for i := 0; i+2 < len(seg); i++ {
		if seg[i] == '%' && isHex(seg[i+1]) && isHex(seg[i+2]) {
			return "", badPath("double-encoded escape")
		}
	}
	if strings.ContainsAny(seg, "?#") {
		return "", badPath("encoded ? or # in a segment")
	}
	if isDotSegment(seg) {
		return "", badPath("dot segment")
	}
	if strings.HasPrefix(seg, ";") {
		return "", badPath("segment with a parameter and no name")
	}
	if strings.Contains(seg, "/") {
		for _, piece := range strings.Split(seg, "/") {
			if isDotSegment(piece) {
				return "", badPath("dot segment between encoded slashes")
			}
		}
	}
	if lookAlike(seg) {
		return "", badPath("look-alike of a separator or a dot")
	}
	return seg, nil
}

// lookAlikes are characters that NFKC leaves alone but that servers map to
// "/", "\" or "." by best-fit code pages or confusable folding.
var lookAlikes = map[rune]bool{
	'\u2044': true, // fraction slash
	'\u2215': true, // division slash
	'\u29F8': true, // big solidus
	'\u2216': true, // set minus
	'\u29F5': true, // reverse solidus operator
	'\u29F9': true, // big reverse solidus
	'\u00A5': true, // yen sign, a backslash in Japanese code pages
	'\u20A9': true, // won sign, a backslash in Korean code pages
	'\u3002': true, // ideographic full stop
}

// normalised are the ASCII characters a segment may not gain through NFKC.
const normalised = "/\\?#%;."

// lookAlike reports whether a decoded segment holds a look-alike of a
// separator or a dot: one of lookAlikes, or a character that NFKC turns
// into one of the characters of normalised.
func lookAlike(seg string) bool {
	ascii := true
	for i := 0; i < len(seg); i++ {
		if seg[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return false
	}
	for _, r := range seg {
		if lookAlikes[r] {
			return true
		}
	}
	n := norm.NFKC.String(seg)
	if n == seg {
		return false
	}
	for i := 0; i < len(normalised); i++ {
		c := normalised[i : i+1]
		if strings.Count(n, c) != strings.Count(seg, c) {
			return true
		}
	}
	return false
}

// isDotSegment reports "." and ".." and the matrix-parameter forms some
// servers strip before resolving them ("..;x", ".;x").
func isDotSegment(seg string) bool {
	if i := strings.IndexByte(seg, ';'); i >= 0 {
		seg = seg[:i]
	}
	return seg == "." || seg == ".."
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// escapeSegments is the one encoder for forwarded paths: unreserved
// characters and the sub-delimiters RFC 3986 allows in a segment stay as they
// are, everything else (including "/" inside a segment) is percent-encoded
// with upper-case hex. The upstream decodes exactly the segments that were
// judged.
func escapeSegments(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		for i := 0; i < len(s); i++ {
			c := s[i]
			if segmentSafe(c) {
				b.WriteByte(c)
				continue
			}
			const hexdig = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hexdig[c>>4])
			b.WriteByte(hexdig[c&15])
		}
	}
	return b.String()
}

func segmentSafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}
