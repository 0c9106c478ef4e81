package proxy

// Judged bodies: a call whose route declares a body kind (policy's route
// tables, Engine.Body) has its body read whole, bounded, checked against
// its Content-Type and parsed before it is judged; the policy sees it as
// input.body and exactly the bytes judged are forwarded. Anything that
// cannot be judged with certainty is refused: a compressed body, a type
// that is not the kind's, invalid or truncated JSON, a member name twice
// in one object, an empty or oversized JSON-RPC batch, a GraphQL document
// that is not one operation.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/elevate-pam/elevate/policy"
)

// BodyRules says which calls have their body judged, and how: the policy
// engine's route tables (policy.Engine.Body).
type BodyRules interface {
	Body(upstream, method string, path []string) policy.BodySpec
}

// DefaultMaxJudgedBody bounds a judged body when neither the upstream nor
// the proxy section sets max_judged_body.
const DefaultMaxJudgedBody = 1 << 20

// MaxBatch is the most calls a JSON-RPC batch may hold; each is judged on
// its own.
const MaxBatch = 100

// maxFieldBytes bounds a body field recorded in clear: a longer value (as
// JSON) is left out of the record.
const maxFieldBytes = 1024

// judgedBody is a body read and parsed to be judged.
type judgedBody struct {
	// raw is what was judged, and the audit digest's input: the body as
	// sent, a form's credential parameters removed.
	raw []byte
	// forward is what is sent on: raw, with the upstream's JSON-RPC token
	// inserted where the route has one.
	forward []byte
	ops     []Operation
}

// bodyRefusal is a judged body refused: the problem for the caller, the
// reason for the record, and whether the bytes read may be digested into
// the record (not when they carry a credential).
type bodyRefusal struct {
	prob   *Problem
	reason string
	digest []byte
}

func badBody(status int, detail string) *bodyRefusal {
	return &bodyRefusal{prob: NewProblem(status, "bad-body", detail), reason: detail}
}

// readJudgedBody reads and parses the body of a call to rt that spec says
// to judge. A call without a body (none sent, or zero bytes) is judged
// without input.body, except a JSON-RPC or GraphQL POST, which must carry
// its request.
func readJudgedBody(r *http.Request, rt *route, spec policy.BodySpec) (*judgedBody, *bodyRefusal) {
	limit := rt.maxJudged
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	var b []byte
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		var err error
		b, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
		switch {
		case err != nil:
			return nil, badBody(http.StatusBadRequest, "the request body could not be read in full")
		case int64(len(b)) > limit:
			return nil, tooLarge(limit)
		}
	}
	if len(b) == 0 {
		if r.Method == http.MethodPost && (spec.Kind == policy.BodyJSONRPC || spec.Kind == policy.BodyGraphQL) {
			return nil, badBody(http.StatusBadRequest, "a "+kindName(spec.Kind)+" request carries its call in the body, and this one has none")
		}
		return &judgedBody{raw: []byte{}, forward: []byte{}}, nil
	}
	if ce := r.Header.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return nil, badBody(http.StatusUnsupportedMediaType,
			"a body elevate judges must not be compressed (Content-Encoding): send it as it is")
	}
	if ref := checkType(r.Header.Values("Content-Type"), spec.Kind); ref != nil {
		return nil, ref
	}
	switch spec.Kind {
	case policy.BodyForm:
		return formJudged(b, rt, spec)
	case policy.BodyJSON:
		v, err := parseJSON(b)
		if err != nil {
			return nil, jsonRefusal(err, b)
		}
		return &judgedBody{raw: b, forward: b, ops: []Operation{{Body: v, Fields: recordFields(v, spec.Record, rt)}}}, nil
	case policy.BodyJSONRPC:
		return rpcJudged(b, rt, spec)
	case policy.BodyGraphQL:
		return graphqlJudged(b, rt, spec)
	}
	// A kind this proxy does not know cannot be judged.
	return nil, &bodyRefusal{prob: NewProblem(http.StatusInternalServerError, "policy-error", "the policy could not be evaluated; the call was refused"),
		reason: "unknown body kind " + strconv.Quote(spec.Kind)}
}

func tooLarge(limit int64) *bodyRefusal {
	detail := fmt.Sprintf("the body of a call to this upstream may hold at most %d bytes: elevate reads it whole to judge it", limit)
	return &bodyRefusal{prob: NewProblem(http.StatusRequestEntityTooLarge, "body-too-large", detail), reason: detail}
}

func kindName(kind string) string {
	switch kind {
	case policy.BodyJSONRPC:
		return "JSON-RPC"
	case policy.BodyGraphQL:
		return "GraphQL"
	case policy.BodyForm:
		return "form"
	}
	return "JSON"
}

// checkType requires one Content-Type that is the kind's media type:
// application/x-www-form-urlencoded for a form, application/json or a
// +json type for the others; a charset, if named, must be UTF-8.
func checkType(values []string, kind string) *bodyRefusal {
	want := "application/json"
	if kind == policy.BodyForm {
		want = "application/x-www-form-urlencoded"
	}
	refuse := badBody(http.StatusUnsupportedMediaType, "the body of this call is judged as "+kindName(kind)+": send it with Content-Type "+want)
	if len(values) != 1 {
		return refuse
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil {
		return refuse
	}
	ok := mt == want || kind != policy.BodyForm && strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
	if cs, named := params["charset"]; !ok || named && !strings.EqualFold(cs, "utf-8") {
		return refuse
	}
	return nil
}

// formJudged parses a form body: the route's credential parameters
// removed (or the call refused), method override parameters refused, the
// rest parsed strictly (no ";" separators, no invalid escapes) into name
// -> values.
func formJudged(b []byte, rt *route, spec policy.BodySpec) (*judgedBody, *bodyRefusal) {
	kept, name := stripParams(string(b), rt.params)
	if name != "" {
		if rt.refuseParams {
			return nil, &bodyRefusal{prob: credentialInRequest(name, "form body"), reason: "the form body carries the upstream credential parameter " + name}
		}
		b = []byte(kept)
	}
	vals, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", "the form body is malformed"), reason: "a malformed form body", digest: b}
	}
	body := make(map[string]any, len(vals))
	for k, vs := range vals {
		if methodOverrideParams[strings.ToLower(lenientUnescape(k))] {
			return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "method-override",
				"method override parameters are refused: send the method itself"), reason: "a method override parameter in the form body", digest: b}
		}
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		body[k] = list
	}
	return &judgedBody{raw: b, forward: b, ops: []Operation{{Body: body, Fields: recordFields(body, spec.Record, rt)}}}, nil
}

// jsonRefusal is the refusal of a body that does not parse as strict JSON.
func jsonRefusal(err error, b []byte) *bodyRefusal {
	ref := badBody(http.StatusBadRequest, err.Error())
	ref.digest = b
	return ref
}

// rpcJudged reads a JSON-RPC 2.0 request: one call object, or a batch of
// 1 to MaxBatch of them, each with a method and, if any, structured
// params. Each call is an Operation named by its method. Where the
// upstream takes a token in the body, a caller may not send one, and
// elevate's is inserted as the first param of every call.
func rpcJudged(b []byte, rt *route, spec policy.BodySpec) (*judgedBody, *bodyRefusal) {
	v, err := parseJSON(b)
	if err != nil {
		return nil, jsonRefusal(err, b)
	}
	var calls []any
	switch t := v.(type) {
	case map[string]any:
		calls = []any{t}
	case []any:
		switch {
		case len(t) == 0:
			return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", "an empty JSON-RPC batch calls nothing"), reason: "an empty JSON-RPC batch", digest: b}
		case len(t) > MaxBatch:
			detail := fmt.Sprintf("a JSON-RPC batch may hold at most %d calls, this one holds %d", MaxBatch, len(t))
			return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", detail), reason: detail, digest: b}
		}
		calls = t
	default:
		return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", "a JSON-RPC request is a call object or a batch of them"), reason: "a JSON-RPC body that is neither a call nor a batch", digest: b}
	}
	jb := &judgedBody{raw: b, forward: b, ops: make([]Operation, 0, len(calls))}
	for i, c := range calls {
		call, ok := c.(map[string]any)
		method, _ := call["method"].(string)
		where := ""
		if len(calls) > 1 {
			where = fmt.Sprintf(" (call %d of the batch)", i+1)
		}
		if !ok || method == "" {
			return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", "a JSON-RPC call is an object with a method"+where),
				reason: "a JSON-RPC call without a method" + where, digest: b}
		}
		if k := misspelledMember(call); k != "" {
			detail := fmt.Sprintf("a JSON-RPC call's members are spelled jsonrpc, method, params and id, not %q%s", truncate(k, 64), where)
			return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", detail), reason: detail, digest: b}
		}
		if ver, has := call["jsonrpc"]; has && ver != "2.0" {
			return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", `only JSON-RPC "2.0" is judged`+where),
				reason: "a JSON-RPC call of another version" + where, digest: b}
		}
		params, has := call["params"]
		switch params.(type) {
		case []any:
		case map[string]any:
			if rt.rpcToken != "" {
				return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body",
					"this upstream takes its params by position: elevate inserts its token as the first"+where),
					reason: "JSON-RPC params by name to an upstream whose token elevate inserts" + where, digest: b}
			}
		default:
			if has {
				return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", "JSON-RPC params are an array or an object"+where),
					reason: "JSON-RPC params that are neither an array nor an object" + where, digest: b}
			}
		}
		if rt.rpcToken != "" {
			if list, _ := params.([]any); sendsToken(list, rt.rpcPrefix) {
				return nil, &bodyRefusal{prob: credentialInRequest("token", "JSON-RPC params"),
					reason: "the JSON-RPC params carry a token" + where}
			}
		}
		jb.ops = append(jb.ops, Operation{Name: method, Body: call, Fields: recordFields(call, spec.Record, rt)})
	}
	if rt.rpcToken != "" {
		out, err := insertRPCToken(b, rt.rpcToken)
		if err != nil {
			return nil, &bodyRefusal{prob: NewProblem(http.StatusBadRequest, "bad-body", "the JSON-RPC request could not be read"), reason: err.Error(), digest: b}
		}
		jb.forward = out
	}
	return jb, nil
}

// rpcMembers are the members of a JSON-RPC call, by their folded names.
var rpcMembers = map[string]string{foldName("jsonrpc"): "jsonrpc", foldName("method"): "method", foldName("params"): "params", foldName("id"): "id"}

// misspelledMember is a member of call that an upstream reading names
// without regard to case would take for one of the call's members, but
// that is not spelled as it ("Params"); "" when there is none.
func misspelledMember(call map[string]any) string {
	for k := range call {
		if name, ok := rpcMembers[foldName(k)]; ok && k != name {
			return k
		}
	}
	return ""
}

// sendsToken reports whether a caller's params hold a string that starts
// with the upstream's token prefix.
func sendsToken(params []any, prefix string) bool {
	for _, p := range params {
		if s, ok := p.(string); ok && strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// insertRPCToken inserts token (a JSON string) as the first param of every
// call of b, a JSON-RPC request already parsed and checked (rpcJudged):
// every other byte stays as sent.
func insertRPCToken(b []byte, token string) ([]byte, error) {
	var lit bytes.Buffer
	enc := json.NewEncoder(&lit)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(token); err != nil {
		return nil, err
	}
	tok := bytes.TrimSuffix(lit.Bytes(), []byte("\n"))
	type insertion struct {
		at   int64
		text []byte
	}
	var ins []insertion
	dec := json.NewDecoder(bytes.NewReader(b))
	// call reads one call object, noting where its token goes.
	call := func() error {
		if _, err := dec.Token(); err != nil { // {
			return err
		}
		open := dec.InputOffset()
		found := false
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			if k != "params" {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return err
				}
				continue
			}
			if _, err := dec.Token(); err != nil { // [ (rpcJudged refused any other params)
				return err
			}
			at, text := dec.InputOffset(), append(bytes.Clone(tok), ',')
			if !dec.More() {
				text = tok
			}
			ins = append(ins, insertion{at, text})
			found = true
			for dec.More() {
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ]
				return err
			}
		}
		if !found {
			ins = append(ins, insertion{open, append(append([]byte(`"params":[`), tok...), "],"...)})
		}
		_, err := dec.Token() // }
		return err
	}
	start := bytes.TrimLeft(b, " \t\r\n")
	if len(start) > 0 && start[0] == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		for dec.More() {
			if err := call(); err != nil {
				return nil, err
			}
		}
	} else if err := call(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(ins)*(len(tok)+12))
	prev := int64(0)
	for _, in := range ins {
		out = append(append(out, b[prev:in.at]...), in.text...)
		prev = in.at
	}
	return append(out, b[prev:]...), nil
}

// recordFields picks the fields names asks for out of a judged body (or
// call): a name is a top-level member, or a path of members and array
// indexes joined by "." (params.0). Values are kept as JSON up to
// maxFieldBytes; names that may be a credential (the route's credential
// parameters, or a name holding password, secret, token, credential,
// authorization or api key) are never recorded.
func recordFields(body any, names []string, rt *route) map[string]json.RawMessage {
	if len(names) == 0 {
		return nil
	}
	var out map[string]json.RawMessage
	for _, name := range names {
		if mayBeCredential(name, rt) {
			continue
		}
		v, ok := field(body, name)
		if !ok {
			continue
		}
		if s, isString := v.(string); isString && rt.rpcPrefix != "" && strings.HasPrefix(s, rt.rpcPrefix) {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil || len(b) > maxFieldBytes {
			continue
		}
		if out == nil {
			out = map[string]json.RawMessage{}
		}
		out[name] = b
	}
	return out
}

// field finds name in v: a member of that name, else a "."-separated path.
func field(v any, name string) (any, bool) {
	if obj, ok := v.(map[string]any); ok {
		if f, ok := obj[name]; ok {
			return f, true
		}
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	for _, step := range strings.Split(name, ".") {
		switch t := v.(type) {
		case map[string]any:
			f, ok := t[step]
			if !ok {
				return nil, false
			}
			v = f
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// credentialWords are parts of field names that are never recorded.
var credentialWords = []string{"password", "passwd", "secret", "token", "credential", "authorization", "apikey", "api_key", "api-key", "private"}

func mayBeCredential(name string, rt *route) bool {
	last := name[strings.LastIndex(name, ".")+1:]
	if _, ok := credentialName(last, rt.params); ok {
		return true
	}
	l := strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}
