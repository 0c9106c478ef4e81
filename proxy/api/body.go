package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
)

// Limits on free text in side-API bodies, in characters.
const (
	maxCommentLen = 2000
	maxReasonLen  = 2000
)

// body is a side-API request body. validate checks what can be checked
// without the store; a body that passes is what the handler acts on.
type body interface {
	validate(cat policy.Catalog) *proxy.Problem
}

// readBody decodes r's body strictly into v and validates it. An optional
// body may be absent (Content-Length 0 or an empty chunked body).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, v body, optional bool) *proxy.Problem {
	if p := decodeBody(w, r, s.cfg.MaxBodyBytes, v, optional); p != nil {
		return p
	}
	return v.validate(s.cfg.Catalog.Catalog())
}

// decodeBody reads exactly one JSON object of at most limit bytes into v.
// The content type must be application/json (UTF-8) or absent. Refused,
// with 400: anything but one object, keys that are not v's field names
// exactly (unknown, differently cased, or repeated: a key read twice could
// be judged one way here and another way by anything in front), values of
// the wrong type, trailing data. Over limit: 413. Other media types: 415.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, optional bool) *proxy.Problem {
	if optional && r.ContentLength == 0 {
		return nil
	}
	if p := checkContentType(r.Header.Values("Content-Type")); p != nil {
		return p
	}
	if r.ContentLength > limit {
		// Refused unread: the connection cannot be reused.
		if w != nil {
			w.Header().Set("Connection", "close")
		}
		return tooLarge(limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(limit)
		}
		return malformed("the body could not be read")
	}
	if optional && len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return unmarshalStrict(b, v)
}

func tooLarge(limit int64) *proxy.Problem {
	return proxy.NewProblem(http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body is larger than %d bytes", limit))
}

func malformed(detail string) *proxy.Problem {
	return proxy.NewProblem(http.StatusBadRequest, "malformed-json", "the body is not valid JSON for this endpoint: "+detail)
}

// checkContentType accepts no Content-Type or one application/json whose
// charset, if given, is UTF-8.
func checkContentType(values []string) *proxy.Problem {
	if len(values) == 0 {
		return nil
	}
	unsupported := proxy.NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "send one Content-Type: application/json")
	if len(values) > 1 {
		return unsupported
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil || mt != "application/json" {
		return unsupported
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupported
	}
	return nil
}

// unmarshalStrict decodes b, which must be exactly one JSON object whose
// keys are v's JSON field names, each at most once.
func unmarshalStrict(b []byte, v any) *proxy.Problem {
	fields := jsonFields(v)
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return malformed("empty body")
		}
		return malformed("syntax error")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return malformed("the body must be a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed("syntax error")
		}
		key, ok := tok.(string)
		if !ok {
			return malformed("syntax error")
		}
		if !fields[key] {
			return malformed("unknown field " + quoteShort(key))
		}
		// encoding/json matches names without regard to case: refuse a
		// second spelling of the same field too.
		fold := strings.ToLower(key)
		if seen[fold] {
			return malformed("field " + quoteShort(key) + " appears more than once")
		}
		seen[fold] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return malformed("syntax error")
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return malformed("syntax error")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return malformed("the body must hold exactly one JSON object")
	}
	strict := json.NewDecoder(bytes.NewReader(b))
	strict.DisallowUnknownFields()
	if err := strict.Decode(v); err != nil {
		return malformed(jsonErrText(err))
	}
	return nil
}

// jsonFields lists the JSON names of the fields of the struct v points to.
func jsonFields(v any) map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out[name] = true
	}
	return out
}

// quoteShort quotes caller text for a problem detail, cut to 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "..."
	}
	return strconv.Quote(s)
}

func jsonErrText(err error) string {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		return fmt.Sprintf("field %s has the wrong type", quoteShort(ute.Field))
	case errors.As(err, &se):
		return "syntax error"
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return "malformed"
}

func invalid(detail string) *proxy.Problem {
	return proxy.NewProblem(http.StatusBadRequest, "invalid", detail)
}

// validate leaves the method and the URL to the proxy's own parser
// (proxy.Resolve), so that a check is refused exactly where the proxied
// call would be, with the same problem.
func (b *CheckRequest) validate(policy.Catalog) *proxy.Problem {
	if b.Method == "" || b.URL == "" {
		return invalid("method and url are required")
	}
	return nil
}

func (b *NewRequestBody) validate(cat policy.Catalog) *proxy.Problem {
	if p := checkTarget(cat, b.Scope, b.Target); p != nil {
		return p
	}
	if _, p := positiveDuration("duration", b.Duration, "30m or 4h"); p != nil {
		return p
	}
	reason := strings.TrimSpace(b.Reason)
	switch {
	case reason == "":
		return invalid("reason: must not be empty")
	case utf8.RuneCountInString(reason) > maxReasonLen:
		return invalid(fmt.Sprintf("reason: at most %d characters", maxReasonLen))
	}
	return nil
}

func (b *DecisionBody) validate(policy.Catalog) *proxy.Problem {
	if utf8.RuneCountInString(b.Comment) > maxCommentLen {
		return invalid(fmt.Sprintf("comment: at most %d characters", maxCommentLen))
	}
	return nil
}

func (b *PolicyBody) validate(cat policy.Catalog) *proxy.Problem {
	if p := checkTarget(cat, b.Scope, b.Target); p != nil {
		return p
	}
	switch {
	case b.Approval != "manual" && b.Approval != "auto":
		return invalid(`approval: must be "manual" or "auto"`)
	case b.Approvals != nil && *b.Approvals < 1:
		// Zero is refused rather than taken for the default: whoever
		// wrote it meant something else than one approver.
		return invalid(fmt.Sprintf("approvals: must be at least 1, got %d (leave it out for the default, 1)", *b.Approvals))
	case b.MinReasonLength < 0:
		return invalid("min_reason_length: must not be negative")
	case b.MaxUses < 0:
		return invalid("max_uses: must not be negative")
	}
	_, p := positiveDuration("max_duration", b.MaxDuration, "8h")
	return p
}

func (b *ControlBody) validate(policy.Catalog) *proxy.Problem {
	if b.Enabled == nil && b.DefaultApprovers == nil && b.SystemAccounts == nil {
		return invalid("nothing to change: set enabled, default_approvers or system_accounts")
	}
	if b.DefaultApprovers != nil && strings.TrimSpace(*b.DefaultApprovers) != *b.DefaultApprovers {
		return invalid("default_approvers: no leading or trailing spaces")
	}
	if b.SystemAccounts != nil {
		for _, a := range *b.SystemAccounts {
			if strings.TrimSpace(a) == "" || strings.TrimSpace(a) != a {
				return invalid("system_accounts: names must be non-empty without surrounding spaces")
			}
		}
	}
	return nil
}
