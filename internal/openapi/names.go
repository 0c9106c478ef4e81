package openapi

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/getkin/kin-openapi/openapi3"
)

// words splits an identifier or a phrase into words: at anything that is
// not a letter or a digit, between a lower-case letter or digit and an
// upper-case one (listUsers), and before the last capital of a run that a
// lower-case letter follows (HTTPConfig: HTTP, Config).
func words(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = nil
		}
	}
	rs := []rune(s)
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) || r > unicode.MaxASCII {
			flush()
			continue
		}
		if unicode.IsUpper(r) && len(cur) > 0 {
			prev := cur[len(cur)-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || unicode.IsUpper(prev) && nextLower {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	return out
}

// capital upper-cases a word's first letter; an all-capitals word (an
// acronym such as HTTP) stays as it is.
func capital(w string) string {
	if w == "" {
		return w
	}
	return strings.ToUpper(w[:1]) + w[1:]
}

func capitals(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = capital(w)
	}
	return out
}

// nameFromPath names an operation that has no operationId by its method and
// path: DELETE /zones/{zone} is Delete-Zones-Zone.
func nameFromPath(method, pattern string) string {
	ws := []string{capital(strings.ToLower(method))}
	return strings.Join(append(ws, capitals(words(pattern))...), "-")
}

// readWords are the words that name a read; a POST named with one may be a
// read that the draft gates, or a read of something sensitive.
var readWords = map[string]bool{
	"query": true, "search": true, "list": true, "get": true, "find": true, "lookup": true,
	"read": true, "fetch": true, "describe": true, "show": true, "count": true, "inspect": true,
	"view": true, "retrieve": true, "browse": true,
}

// readWord is the first word of the operation's name (its operationId, else
// its path's last literal segment) that names a read, or "".
func readWord(operationID, path string) string {
	name := operationID
	if name == "" {
		segs := strings.Split(path, "/")
		for i := len(segs) - 1; i >= 0; i-- {
			if segs[i] != "" && !strings.HasPrefix(segs[i], "{") {
				name = segs[i]
				break
			}
		}
	}
	for _, w := range words(name) {
		if readWords[strings.ToLower(w)] {
			return strings.ToLower(w)
		}
	}
	return ""
}

// secretWords are the words of a property name that look like a secret;
// secretParts are looked for inside a name's words run together
// (apikey, privatekey).
var (
	secretWords = map[string]bool{
		"password": true, "passwd": true, "pwd": true, "passphrase": true, "secret": true, "secrets": true,
		"token": true, "tokens": true, "key": true, "keys": true, "apikey": true, "private": true,
		"credential": true, "credentials": true,
	}
	secretParts = []string{"password", "passwd", "secret", "token", "apikey", "privatekey", "credential"}
)

// notSecret are words that make a name with a secret word in it a public
// thing: PublicKey, PrivatePort, PrivateAddress.
var notSecret = map[string]bool{"public": true, "port": true, "ip": true, "address": true, "network": true, "count": true, "expiry": true, "expires": true}

func secretName(name string) bool {
	ws := words(name)
	for _, w := range ws {
		if notSecret[strings.ToLower(w)] {
			return false
		}
	}
	for _, w := range ws {
		if secretWords[strings.ToLower(w)] {
			return true
		}
	}
	joined := strings.ToLower(strings.Join(ws, ""))
	for _, p := range secretParts {
		if strings.Contains(joined, p) {
			return true
		}
	}
	return false
}

// maxDepth bounds the walk through a response's schemas and their $refs.
const maxDepth = 10

// secretFields lists the properties of the operation's successful (2xx and
// default) responses whose names look like secrets, as dotted paths.
func secretFields(o *openapi3.Operation) []string {
	if o.Responses == nil {
		return nil
	}
	found := map[string]bool{}
	for code, r := range o.Responses.Map() {
		if r == nil || r.Value == nil || !(strings.HasPrefix(code, "2") || code == "default") {
			continue
		}
		for _, mt := range r.Value.Content {
			if mt != nil {
				walkSchema(mt.Schema, "", 0, map[*openapi3.Schema]bool{}, found)
			}
		}
		for name := range r.Value.Headers {
			if secretName(name) {
				found["header "+name] = true
			}
		}
	}
	out := make([]string, 0, len(found))
	for f := range found {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

func walkSchema(ref *openapi3.SchemaRef, at string, depth int, seen map[*openapi3.Schema]bool, found map[string]bool) {
	if ref == nil || ref.Value == nil || depth > maxDepth || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	defer delete(seen, s) // the same schema under another property is walked again
	join := func(name string) string {
		if at == "" {
			return name
		}
		return at + "." + name
	}
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if secretName(name) {
			found[join(name)] = true
		}
		walkSchema(s.Properties[name], join(name), depth+1, seen, found)
	}
	walkSchema(s.Items, at+"[]", depth+1, seen, found)
	if ap := s.AdditionalProperties.Schema; ap != nil {
		walkSchema(ap, join("*"), depth+1, seen, found)
	}
	for _, group := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, sub := range group {
			walkSchema(sub, at, depth+1, seen, found)
		}
	}
}

// describeBase says where the draft's paths start, for its top comment.
func describeBase(basePath, baseFrom string) string {
	if basePath == "" {
		return "Paths are as the document writes them: it names no base path."
	}
	return fmt.Sprintf("Paths are relative to the upstream's base URL: the document's base path %s (%s) is left out of every route.", basePath, oneLine(baseFrom))
}
