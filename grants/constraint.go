package grants

import (
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Constraint narrows a request, and its grant, to the calls whose
// attributes (as the catalog of the task exposes them to Rego, for example
// a Kubernetes namespace and object name) have these values: the grant
// covers a call only if every key of its constraint is an attribute of
// the call with that value. Nil or empty: no narrowing. The policy checks
// it (elevate.rego, constraint_holds); the store only keeps it well formed.
type Constraint map[string]string

// Constraint limits: few keys, short values.
const (
	maxConstraintKeys  = 8
	maxConstraintValue = 253
)

// constraintKey is an attribute name: lower-case letters, digits and "_",
// starting with a letter.
var constraintKey = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// check refuses a malformed constraint: too many keys, a key that is not an
// attribute name, an empty or overlong value, or one with white space,
// control or invalid UTF-8 bytes.
func (c Constraint) check() error {
	if len(c) > maxConstraintKeys {
		return invalid("constraint", "at most %d attributes, got %d", maxConstraintKeys, len(c))
	}
	for k, v := range c {
		switch {
		case !constraintKey.MatchString(k):
			return invalid("constraint", "%q is not an attribute name (lower-case letters, digits and _)", k)
		case v == "":
			return invalid("constraint", "%s: the value must not be empty", k)
		case len(v) > maxConstraintValue:
			return invalid("constraint", "%s: the value is longer than %d bytes", k, maxConstraintValue)
		case !utf8.ValidString(v) || strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			return invalid("constraint", "%s: the value holds white space or control characters", k)
		}
	}
	return nil
}

// String is the constraint as people read it: "name=web, namespace=prod",
// keys sorted; "" when empty.
func (c Constraint) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + c[k]
	}
	return strings.Join(parts, ", ")
}

// keyPart is the constraint as one escaped key level of the pending index:
// "" when empty, so that an unconstrained request keeps its key.
func (c Constraint) keyPart() string {
	if len(c) == 0 {
		return ""
	}
	return "/" + url.PathEscape(c.String())
}

// clone copies c; nil stays nil.
func (c Constraint) clone() Constraint {
	if len(c) == 0 {
		return nil
	}
	return maps.Clone(c)
}

// missing are the keys of required that c does not set, in order.
func (c Constraint) missing(required []string) []string {
	var out []string
	for _, k := range required {
		if _, ok := c[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}
