package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of objects and arrays in a token's header
// and payload.
const maxJSONDepth = 32

// checkFront is the first look at a token, before any JWT parsing: it refuses
// anything that is not exactly three base64url parts (no padding, no white
// space, no other byte; only the signature may be empty) whose first two
// decode to one JSON object each, in valid UTF-8, with no key twice in any
// object. JSON parsers
// disagree on which of two equal keys wins, so a token holding one could mean
// one thing to its issuer and another here. The signature part is only
// checked to decode.
func checkFront(token string) error {
	if len(token) > maxTokenSize {
		return reasonTooLarge
	}
	var segs [3]string
	rest := token
	for i := range segs {
		if i < len(segs)-1 {
			seg, after, ok := strings.Cut(rest, ".")
			if !ok {
				return reasonMalformed
			}
			segs[i], rest = seg, after
		} else {
			segs[i] = rest
		}
		// An empty signature is left to the signature check, which names
		// the reason better ("alg": "none", a stripped signature).
		if !isBase64URL(segs[i]) && (i < 2 || segs[i] != "") {
			return reasonMalformed
		}
	}
	for _, seg := range segs[:2] {
		raw, err := base64.RawURLEncoding.Strict().DecodeString(seg)
		if err != nil || !utf8.Valid(raw) || checkJSONObject(raw) != nil {
			return reasonMalformed
		}
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(segs[2]); err != nil {
		return reasonMalformed
	}
	return nil
}

// isBase64URL reports whether s is non-empty and made only of the base64url
// alphabet, without padding.
func isBase64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

var errDuplicateKey = errors.New("duplicate key")

// checkJSONObject requires data to be exactly one JSON object, nested at most
// maxJSONDepth deep, in which no object has the same key twice. Keys are
// compared after unescaping, as the JWT parser sees them.
func checkJSONObject(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are not interpreted here, so none can overflow
	first, err := dec.Token()
	if err != nil {
		return err
	}
	if first != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	// One frame per open object or array; keys is nil for an array.
	type frame struct {
		keys      map[string]struct{}
		expectKey bool
	}
	stack := []frame{{keys: map[string]struct{}{}, expectKey: true}}
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		top := &stack[len(stack)-1]
		if top.keys != nil && top.expectKey {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return errors.New("object key is not a string")
			}
			if _, dup := top.keys[key]; dup {
				return errDuplicateKey
			}
			top.keys[key] = struct{}{}
			top.expectKey = false
			continue
		}
		if top.keys != nil {
			top.expectKey = true // the value read now ends the member
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxJSONDepth {
				return errors.New("JSON nested too deep")
			}
			if tok == json.Delim('{') {
				stack = append(stack, frame{keys: map[string]struct{}{}, expectKey: true})
			} else {
				stack = append(stack, frame{})
			}
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}
