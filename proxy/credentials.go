package proxy

// Upstream credential parameters: found in the query and in form bodies in
// any case and encoding an upstream may read them in, then stripped before
// the call is judged or refused, as the route says.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// credentialName reports whether the parameter name k is one of names
// (lower case), and which: compared with Unicode case folding (so that
// "API-KEY", "Api-Key" and Java's equalsIgnoreCase reading of "ſ" as "s"
// all match), and again after each further percent-decoding, for upstreams
// that decode twice.
func credentialName(k string, names map[string]bool) (string, bool) {
	for range 3 {
		if l := strings.ToLower(k); names[l] {
			return l, true
		}
		for n := range names {
			if strings.EqualFold(k, n) {
				return n, true
			}
		}
		d := lenientUnescape(k)
		if d == k {
			break
		}
		k = d
	}
	return "", false
}

// lenientUnescape decodes a query or form name as the most lenient
// servers do: "+" is a space, valid escapes are decoded, invalid ones are
// kept as they are.
func lenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// credentialInRequest is the refusal of a call that carries an upstream
// credential parameter where the route says refuse.
func credentialInRequest(name, where string) *Problem {
	return NewProblem(http.StatusBadRequest, "credential-in-request",
		"the "+where+" carries the upstream credential parameter "+name+
			"; elevate presents the upstream's credential itself: send the call without it")
}

// stripParams removes from a raw query or form body every "&"-separated
// pair whose name is one of names (see credentialName), keeping every
// other pair exactly as sent. A pair is also removed when a ";"-separated
// part of it names one, for servers that split on ";" too. found is the
// first name removed.
func stripParams(raw string, names map[string]bool) (kept, found string) {
	if raw == "" || len(names) == 0 {
		return raw, ""
	}
	var out []string
	for _, pair := range strings.Split(raw, "&") {
		if name, ok := credentialPair(pair, names); ok {
			if found == "" {
				found = name
			}
			continue
		}
		out = append(out, pair)
	}
	if found == "" {
		return raw, ""
	}
	return strings.Join(out, "&"), found
}

func credentialPair(pair string, names map[string]bool) (string, bool) {
	for _, part := range strings.Split(pair, ";") {
		k, _, _ := strings.Cut(part, "=")
		if name, ok := credentialName(lenientUnescape(k), names); ok {
			return name, true
		}
	}
	return "", false
}

// maxFormBytes bounds a form body read to find credential parameters:
// forms of parameters are small, and anything else should say what it is.
const maxFormBytes = 1 << 20

// formBody applies a route's credential parameters to a request body that
// its upstream may read as form parameters: one typed
// application/x-www-form-urlencoded, or one without a Content-Type (Rack
// reads those as forms). Such a body is read whole (at most maxFormBytes)
// and returned to forward in place of r.Body, without the credential
// parameters, or the call is refused. nil means forward r.Body as it is.
func formBody(r *http.Request, rt *route) ([]byte, *Problem, string) {
	if len(rt.params) == 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || !formType(r.Header.Values("Content-Type")) {
		return nil, nil, ""
	}
	if ce := r.Header.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return nil, NewProblem(http.StatusBadRequest, "bad-body",
			"a form body sent to this upstream must not be compressed: elevate reads it for credential parameters"), "a compressed form body"
	}
	tooLarge := NewProblem(http.StatusRequestEntityTooLarge, "body-too-large",
		fmt.Sprintf("a form body (or a body without Content-Type) sent to this upstream may hold at most %d bytes: "+
			"elevate reads it for credential parameters; send other bodies with their own Content-Type", maxFormBytes))
	if r.ContentLength > maxFormBytes {
		return nil, tooLarge, "a form body over the limit"
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	switch {
	case err != nil:
		return nil, NewProblem(http.StatusBadRequest, "bad-body", "the request body could not be read"), "an unreadable body"
	case len(b) > maxFormBytes:
		return nil, tooLarge, "a form body over the limit"
	}
	kept, name := stripParams(string(b), rt.params)
	switch {
	case name == "":
		return b, nil, ""
	case rt.refuseParams:
		return nil, credentialInRequest(name, "form body"), "the form body carries the upstream credential parameter " + name
	}
	return []byte(kept), nil, ""
}

// formType reports whether a body with these Content-Type values may be
// read as form parameters by some upstream: no type at all, or any value
// whose media type is application/x-www-form-urlencoded, however it is
// cased or parameterised.
func formType(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		mt, _, _ := strings.Cut(v, ";")
		if mt = strings.TrimSpace(mt); mt == "" || strings.EqualFold(mt, "application/x-www-form-urlencoded") {
			return true
		}
	}
	return false
}
