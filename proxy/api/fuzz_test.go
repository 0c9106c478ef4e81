// Threat proven mitigated here (docs/threat-model.md): a side-API body that
// crashes the control listener or slips past validation. FuzzDecode runs
// the decoder and the validation every handler uses on arbitrary bytes and
// content types: it never panics, refuses with a 4xx problem, or yields a
// value that passes the rules checked again here, independently.
package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/rego"
)

var (
	catalogOnce sync.Once
	catalog     policy.Catalog
	catalogErr  error
)

// defaultCatalog is the catalog of the default Rego bundle.
func defaultCatalog(t testing.TB) policy.Catalog {
	catalogOnce.Do(func() {
		var e *policy.Engine
		if e, catalogErr = policy.New(context.Background(), policy.Config{Bundle: rego.Bundle}); catalogErr == nil {
			catalog = e.Catalog()
		}
	})
	require.NoError(t, catalogErr)
	return catalog
}

// bodies are the side API's body types, by the fuzzer's selector.
var bodies = []func() body{
	func() body { return &NewRequestBody{} },
	func() body { return &CheckRequest{} },
	func() body { return &DecisionBody{} },
	func() body { return &PolicyBody{} },
	func() body { return &ControlBody{} },
}

const fuzzLimit = 4096

func FuzzDecode(f *testing.F) {
	for i, seed := range []string{
		`{"scope":"task","target":"Exchange\\New-MoveRequest","reason":"move alice","duration":"2h"}`,
		`{"method":"POST","url":"http://127.0.0.1:8080/exchange/journal-rules"}`,
		`{"comment":"ok, change 4711"}`,
		`{"scope":"role","target":"Exchange\\Mailbox Import Export","approval":"manual","approvals":2,"max_duration":"1h"}`,
		`{"enabled":true,"default_approvers":"approvers","system_accounts":["svc-backup"]}`,
	} {
		f.Add(uint8(i), "application/json", []byte(seed))
	}
	f.Add(uint8(0), "", []byte(`{"scope":"task","scope":"role"}`))
	f.Add(uint8(0), "application/json; charset=utf-8", []byte(`{"SCOPE":"task"}`))
	f.Add(uint8(2), "application/json", []byte(`{"comment":"x"} {}`))
	f.Add(uint8(2), "text/plain", []byte(`{"comment":"x"}`))
	f.Add(uint8(3), "application/json", []byte(`{"scope":"task","target":"Exchange\\New-MoveRequest","approval":"auto","approvals":-1}`))
	f.Add(uint8(4), "application/json", []byte(`{"system_accounts":[" svc"]}`))
	f.Add(uint8(1), "application/json", []byte(`{"method":"GET /x","url":"u"}`))
	f.Add(uint8(0), "application/json", []byte("{\"scope\":\"task\",\"target\":\"Exchange\\\\New-MoveRequest\",\"reason\":\"\xff\"}"))
	f.Add(uint8(0), "application/json", []byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`))
	cat := defaultCatalog(f)

	f.Fuzz(func(t *testing.T, kind uint8, contentType string, b []byte) {
		v := bodies[int(kind)%len(bodies)]()
		req := httptest.NewRequest("POST", "/v1/x", strings.NewReader(string(b)))
		req.Header.Del("Content-Type")
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		p := decodeBody(httptest.NewRecorder(), req, fuzzLimit, v, false)
		if p == nil {
			p = v.validate(cat)
		}
		if p != nil {
			switch p.Status {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("refused with %d: %s", p.Status, p.Detail)
			}
			if p.Type == "" || p.Detail == "" || !utf8.ValidString(p.Detail) {
				t.Fatalf("problem without a readable type and detail: %+v", p)
			}
			return
		}
		if len(b) > fuzzLimit {
			t.Fatalf("a body of %d bytes was taken, the limit is %d", len(b), fuzzLimit)
		}
		checkRules(t, cat, v)
		// What was taken means one thing: written back and read again
		// strictly, it is the same value.
		again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encoding %T: %v", v, err)
		}
		if p := unmarshalStrict(out, again); p != nil {
			t.Fatalf("re-reading %s: %s", out, p.Detail)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip changed the value: %#v became %#v", v, again)
		}
	})
}

// checkRules states, apart from validate, what every accepted body holds.
func checkRules(t *testing.T, cat policy.Catalog, v body) {
	t.Helper()
	positive := func(field, s string) {
		if s == "" {
			return
		}
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			t.Fatalf("%s %q taken", field, s)
		}
	}
	switch b := v.(type) {
	case *NewRequestBody:
		if !validScope(b.Scope) || !cat.Has(b.Scope, b.Target) {
			t.Fatalf("scope %q target %q taken", b.Scope, b.Target)
		}
		positive("duration", b.Duration)
		if r := strings.TrimSpace(b.Reason); r == "" || utf8.RuneCountInString(r) > maxReasonLen {
			t.Fatalf("reason of %d characters taken", utf8.RuneCountInString(r))
		}
	case *CheckRequest:
		if b.URL == "" || b.Method == "" {
			t.Fatalf("check %q %q taken", b.Method, b.URL)
		}
	case *DecisionBody:
		if utf8.RuneCountInString(b.Comment) > maxCommentLen {
			t.Fatalf("comment of %d characters taken", utf8.RuneCountInString(b.Comment))
		}
	case *PolicyBody:
		if !validScope(b.Scope) || !cat.Has(b.Scope, b.Target) {
			t.Fatalf("scope %q target %q taken", b.Scope, b.Target)
		}
		if b.Approval != "manual" && b.Approval != "auto" {
			t.Fatalf("approval %q taken", b.Approval)
		}
		if (b.Approvals != nil && *b.Approvals < 1) || b.MinReasonLength < 0 || b.MaxUses < 0 {
			t.Fatalf("negative count taken: %+v", b)
		}
		positive("max_duration", b.MaxDuration)
	case *ControlBody:
		if b.Enabled == nil && b.DefaultApprovers == nil && b.SystemAccounts == nil {
			t.Fatal("an empty change taken")
		}
		if b.DefaultApprovers != nil && strings.TrimSpace(*b.DefaultApprovers) != *b.DefaultApprovers {
			t.Fatalf("default_approvers %q taken", *b.DefaultApprovers)
		}
		if b.SystemAccounts != nil {
			for _, a := range *b.SystemAccounts {
				if a == "" || strings.TrimSpace(a) != a {
					t.Fatalf("system account %q taken", a)
				}
			}
		}
	default:
		t.Fatalf("unknown body %T", v)
	}
}
