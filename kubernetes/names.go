package kubernetes

import "strings"

// checkSegment applies the rules every path segment must keep: the API
// server's path segment name rules (not "." or "..", no "/" or "%"),
// nothing empty, and only printable ASCII without "\", "?" or "#".
func checkSegment(s string) error {
	switch s {
	case "":
		return refuse("empty path segment")
	case ".", "..":
		return refuse("dot segment %q", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			return refuse("encoded slash in segment %q", s)
		case c == '%', c == '\\', c == '?', c == '#':
			return refuse("%q in a path segment", string(c))
		case c <= ' ' || c >= 0x7f:
			return refuse("control, space or non-ASCII byte in a path segment")
		}
	}
	return nil
}

// maxLabel and maxSubdomain are the DNS-1123 length limits.
const (
	maxLabel     = 63
	maxSubdomain = 253
)

// checkDNSLabel checks a lower-case DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?,
// at most 63 bytes; letterFirst asks for a letter first (DNS-1035), as
// resource, subresource and version names have.
func checkDNSLabel(what, s string, letterFirst bool) error {
	if s == "" || len(s) > maxLabel {
		return refuse("%s %q is not 1 to %d characters", what, s, maxLabel)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		lower, digit := c >= 'a' && c <= 'z', c >= '0' && c <= '9'
		switch {
		case lower, digit && !(i == 0 && letterFirst):
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return refuse("%s %q is not a lower-case DNS label", what, s)
		}
	}
	return nil
}

// checkGroup checks an API group: a lower-case DNS-1123 subdomain.
func checkGroup(g string) error {
	if len(g) > maxSubdomain {
		return refuse("group longer than %d characters", maxSubdomain)
	}
	for _, label := range strings.Split(g, ".") {
		if err := checkDNSLabel("group", label, false); err != nil {
			return refuse("group %q is not a lower-case DNS subdomain", g)
		}
	}
	return nil
}

// queryParams are the parameters Parse reads; each may be given once, in
// exactly this spelling.
var queryParams = []string{"watch", "dryRun", "fieldSelector", "labelSelector"}

// checkQueryNames refuses a parameter Parse reads given twice or spelled
// in another case, which the API server would ignore.
func checkQueryNames(query map[string][]string) error {
	for name, values := range query {
		for _, p := range queryParams {
			switch {
			case name == p && len(values) > 1:
				return refuse("?%s given %d times", p, len(values))
			case name != p && strings.EqualFold(name, p):
				return refuse("?%s spelled %q", p, name)
			}
		}
	}
	return nil
}

// watchParam reads ?watch: true, 1, false or 0 only.
func watchParam(query map[string][]string) (bool, error) {
	values, ok := query["watch"]
	if !ok {
		return false, nil
	}
	switch v := first(values); v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	default:
		return false, refuse("?watch=%q is neither true, 1, false nor 0", v)
	}
}

// dryRunParam reads ?dryRun, whose one valid value is All.
func dryRunParam(query map[string][]string) (bool, error) {
	values, ok := query["dryRun"]
	if !ok {
		return false, nil
	}
	if v := first(values); v != "All" {
		return false, refuse("?dryRun=%q is not All", v)
	}
	return true, nil
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// selectedName returns X when a field selector requires metadata.name=X
// (or ==X) among terms joined by ",", as the API server does for a list or
// watch. A selector with escapes ("\") names nothing: no name is safer
// than a misread one, as a grant scoped to a name then does not match.
func selectedName(selector string) (string, bool) {
	if selector == "" || strings.Contains(selector, `\`) {
		return "", false
	}
	name, found := "", false
	for _, term := range strings.Split(selector, ",") {
		field, value, ok := strings.Cut(term, "==")
		if !ok {
			field, value, ok = strings.Cut(term, "=")
		}
		if !ok || strings.HasSuffix(field, "!") || field != "metadata.name" {
			continue
		}
		if found || checkSegment(value) != nil {
			return "", false
		}
		name, found = value, true
	}
	return name, found
}
