package proxy

// Strict JSON for judged bodies: one parser, which refuses what upstreams
// could read differently from what was judged.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of a judged JSON body.
const maxJSONDepth = 64

// jsonError is why a body is not strict JSON; its text is safe to show the
// caller (it never quotes the body beyond a member name).
type jsonError struct{ msg string }

func (e *jsonError) Error() string { return e.msg }

// parseJSON parses b as exactly one JSON value, strictly: valid UTF-8,
// nothing but white space after the value, at most maxJSONDepth levels of
// nesting, and no member name twice in one object, compared exactly and
// with case folded (Go's encoding/json, among others, matches names
// without regard to case, so that "Name" and "name" reach the same
// field). An upstream that takes the first of two duplicates while the
// policy saw the last would run what was not judged. Values are as
// encoding/json decodes them into an any, numbers as json.Number.
func parseJSON(b []byte) (any, error) {
	if !utf8.Valid(b) {
		return nil, &jsonError{"the body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := jsonValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &jsonError{fmt.Sprintf("the body is not valid JSON: more data after the value, at byte %d", dec.InputOffset())}
	}
	return v, nil
}

func jsonValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(dec, err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxJSONDepth {
		return nil, &jsonError{fmt.Sprintf("the body nests more than %d levels deep", maxJSONDepth)}
	}
	if d == '[' {
		list := []any{}
		for dec.More() {
			v, err := jsonValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntaxError(dec, err)
		}
		return list, nil
	}
	obj := map[string]any{}
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, syntaxError(dec, err)
		}
		name := k.(string) // the decoder allows only a string here
		folded := foldName(name)
		if seen[folded] {
			return nil, &jsonError{fmt.Sprintf("the body names member %q twice in one object (names are compared without regard to case): an upstream may read either", truncate(name, 64))}
		}
		seen[folded] = true
		v, err := jsonValue(dec, depth+1)
		if err != nil {
			return nil, err
		}
		obj[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntaxError(dec, err)
	}
	return obj, nil
}

func syntaxError(dec *json.Decoder, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &jsonError{"the body is not valid JSON: it ends before the value does"}
	}
	return &jsonError{fmt.Sprintf("the body is not valid JSON, at byte %d", dec.InputOffset())}
}

// foldName maps every rune of s to the smallest rune of its case-folding
// orbit, so that two names equal under Unicode simple case folding (as
// strings.EqualFold compares, "K" and the Kelvin sign included) fold to
// the same string.
func foldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}
