// Package openapi drafts a route table (the YAML format of a policy bundle's
// catalogs as data) from an OpenAPI 3 or Swagger 2 document: one task per
// operation, GETs and HEADs marked read, path templates as {name} segments,
// paths relative to the upstream's base URL. What a person should look at
// before using the draft comes back as a review list.
//
// Documents are read whole (at most MaxSize bytes), parsed by kin-openapi
// and never fetch anything: external $refs are refused.
package openapi

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"
)

// MaxSize is the largest document Draft reads, in bytes.
const MaxSize = 8 << 20

// ErrInput marks an input that is not an OpenAPI document Draft can use;
// the error's text says which part and why.
var ErrInput = errors.New("not a usable OpenAPI document")

// Options name the draft's upstream and task scope.
type Options struct {
	Upstream string // the configured upstream name; default: from the document's title
	Scope    string // the task scope, as in Scope\Name; default: from the upstream name
}

// Draft is a drafted route table and what to review in it.
type Draft struct {
	YAML     []byte   // the route table, with a comment at the top
	Review   []string // one line per thing to look at, in path order
	Upstream string
	Scope    string
	Tasks    []Task // in the order of the routes
}

// Task is one drafted task and its route.
type Task struct {
	Name        string // Scope\Name
	Read        bool
	Description string
	Method      string // GET, POST, ...; GET,HEAD for a GET with a HEAD beside it
	Path        string // the route's path pattern, with ?query if any
}

// inputErr is an ErrInput naming the document's problem in one line.
func inputErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, a...))
}

// Import drafts a route table from doc, an OpenAPI 3 or Swagger 2 document in
// JSON or YAML.
func Import(doc []byte, opt Options) (*Draft, error) {
	if len(doc) > MaxSize {
		return nil, inputErr("larger than %d MiB", MaxSize>>20)
	}
	kind, version, err := sniff(doc)
	if err != nil {
		return nil, err
	}
	var (
		d3       *openapi3.T
		basePath string
		baseFrom string
	)
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	switch kind {
	case "swagger":
		if version != "2.0" {
			return nil, inputErr("swagger %q: only Swagger 2.0 is supported", version)
		}
		var d2 openapi2.T
		if err := unmarshal2(doc, &d2); err != nil {
			return nil, inputErr("Swagger 2.0: %v", err)
		}
		if d3, err = openapi2conv.ToV3WithLoader(&d2, loader, nil); err != nil {
			return nil, inputErr("Swagger 2.0: %v", err)
		}
		basePath, baseFrom = strings.TrimSuffix(d2.BasePath, "/"), "basePath "+d2.BasePath
	default:
		if !strings.HasPrefix(version, "3.") {
			return nil, inputErr("openapi %q: only OpenAPI 3.x (and Swagger 2.0) is supported", version)
		}
		if d3, err = loader.LoadFromData(doc); err != nil {
			return nil, inputErr("OpenAPI %s: %v", version, err)
		}
		if len(d3.Servers) > 0 && d3.Servers[0] != nil {
			p, err := d3.Servers[0].BasePath()
			if err != nil {
				return nil, inputErr("servers[0] %q: %v", d3.Servers[0].URL, err)
			}
			basePath, baseFrom = strings.TrimSuffix(p, "/"), "servers[0] "+d3.Servers[0].URL
		}
	}
	if d3.Paths == nil || d3.Paths.Len() == 0 {
		return nil, inputErr("it has no paths")
	}
	return build(d3, kind, version, basePath, baseFrom, opt)
}

// sniff tells an OpenAPI document from anything else by its top-level
// openapi or swagger key.
func sniff(doc []byte) (kind, version string, err error) {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) == 0 {
		return "", "", inputErr("the document is empty")
	}
	if trimmed[0] == '<' {
		return "", "", inputErr("it looks like HTML or XML, not JSON or YAML")
	}
	var top map[string]any
	if err := yaml.Unmarshal(doc, &top); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return "", "", inputErr("the top level is not a mapping")
		}
		return "", "", inputErr("not valid JSON or YAML: %s", oneLine(err.Error()))
	}
	if top == nil {
		return "", "", inputErr("the top level is not a mapping")
	}
	for _, k := range []string{"openapi", "swagger"} {
		if v, ok := top[k]; ok {
			s, ok := v.(string)
			if !ok {
				return "", "", inputErr("%s: the version must be a string such as \"3.0.3\" or \"2.0\", not %v", k, v)
			}
			return k, s, nil
		}
	}
	return "", "", inputErr("no openapi or swagger key at the top level")
}

// unmarshal2 reads a Swagger 2.0 document, given as JSON or YAML.
func unmarshal2(doc []byte, d2 *openapi2.T) error {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return d2.UnmarshalJSON(doc)
	}
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return err
	}
	js, err := jsonOf(v)
	if err != nil {
		return err
	}
	return d2.UnmarshalJSON(js)
}

var methodOrder = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY"}

type op struct {
	method, path, pattern string
	o                     *openapi3.Operation
	task                  *Task
}

func build(d3 *openapi3.T, kind, version, basePath, baseFrom string, opt Options) (*Draft, error) {
	title := ""
	if d3.Info != nil {
		title = d3.Info.Title
	}
	upstream := opt.Upstream
	if upstream == "" {
		upstream = strings.ToLower(strings.Join(words(title), "-"))
		if upstream == "" {
			upstream = "api"
		}
	}
	scope := opt.Scope
	if scope == "" {
		for _, w := range words(upstream) {
			scope += capital(w)
		}
	}
	d := &Draft{Upstream: upstream, Scope: scope}

	// Operations in path order, then method order.
	var ops []*op
	paths := d3.Paths.Keys()
	sort.Strings(paths)
	for _, p := range paths {
		item := d3.Paths.Value(p)
		if item == nil {
			continue
		}
		pattern, note, err := convertPath(p)
		if err != nil {
			return nil, err
		}
		all := item.Operations()
		var methods []string
		for m := range all {
			methods = append(methods, strings.ToUpper(m))
		}
		sort.Slice(methods, func(i, j int) bool { return methodRank(methods[i]) < methodRank(methods[j]) })
		for _, m := range methods {
			o := all[m]
			if o == nil {
				o = item.GetOperation(m)
			}
			if o == nil {
				continue
			}
			if m == "HEAD" && item.Get != nil {
				d.Review = append(d.Review, fmt.Sprintf("HEAD %s: matched as GET, so it is the GET route's task", p))
				continue
			}
			if note != "" {
				d.Review = append(d.Review, fmt.Sprintf("%s %s: %s", m, p, note))
			}
			ops = append(ops, &op{method: m, path: p, pattern: pattern, o: o})
		}
	}

	// Names: from operationId, else method and path; unique.
	prefix := apiPrefix(ops)
	taken := map[string]string{} // lower-case name -> "METHOD path"
	for _, x := range ops {
		base := ""
		if x.o.OperationID != "" {
			base = strings.Join(capitals(words(x.o.OperationID)), "-")
		}
		if base == "" {
			base = nameFromPath(x.method, strings.TrimPrefix(x.pattern, prefix))
			d.Review = append(d.Review, fmt.Sprintf("%s %s: no operationId; named %s\\%s from its method and path", x.method, x.path, scope, base))
		}
		name := base
		for n := 2; taken[strings.ToLower(name)] != ""; n++ {
			name = fmt.Sprintf("%s-%d", base, n)
		}
		if name != base {
			d.Review = append(d.Review, fmt.Sprintf("%s %s: %s\\%s is already %s's task; named %s\\%s", x.method, x.path, scope, base, taken[strings.ToLower(base)], scope, name))
		}
		taken[strings.ToLower(name)] = x.method + " " + x.path
		method := x.method
		if x.method == "GET" && d3.Paths.Value(x.path).Head != nil {
			method = "GET,HEAD"
		}
		x.task = &Task{
			Name:        scope + `\` + name,
			Read:        x.method == "GET" || x.method == "HEAD",
			Description: describe(x.o),
			Method:      method,
			Path:        x.pattern,
		}
		if x.method == "POST" {
			if w := readWord(x.o.OperationID, x.path); w != "" {
				d.Review = append(d.Review, fmt.Sprintf("POST %s (%s): named like a read (%q); drafted as a change: mark it read only if it changes nothing", x.path, x.task.Name, w))
			}
		}
		if x.task.Read {
			if fs := secretFields(x.o); len(fs) > 0 {
				more := ""
				if len(fs) > 3 {
					fs, more = fs[:3], fmt.Sprintf(" and %d more", len(fs)-3)
				}
				d.Review = append(d.Review, fmt.Sprintf("%s %s (%s): its response holds fields named like secrets (%s%s); drafted as a read: if seeing them should need a grant, unmark read and cover the task with an approval policy", x.method, x.path, x.task.Name, strings.Join(fs, ", "), more))
			}
		}
	}

	// Routes that OpenAPI tells apart by precedence (a literal segment
	// before a parameter) would be two tasks for one call: keep the general
	// route, leave the specific one as a comment.
	dropped := map[*op]string{}
	for i, a := range ops {
		for _, b := range ops[i+1:] {
			if _, gone := dropped[b]; gone || a.method != b.method {
				continue
			}
			if _, gone := dropped[a]; gone {
				continue
			}
			if overlap(a.pattern, b.pattern) {
				specific, general := b, a
				if specificity(a.pattern) > specificity(b.pattern) {
					specific, general = a, b
				}
				dropped[specific] = general.task.Name
				d.Review = append(d.Review, fmt.Sprintf("%s %s: overlaps %s %s, so one call would be two tasks; left out of the draft (a comment), the call is %s", specific.method, specific.path, general.method, general.path, general.task.Name))
			}
		}
	}

	var kept []*op
	for _, x := range ops {
		if _, gone := dropped[x]; !gone {
			kept = append(kept, x)
			d.Tasks = append(d.Tasks, *x.task)
		}
	}
	if len(kept) == 0 {
		return nil, inputErr("it has no operations")
	}
	y, err := render(d, kept, ops, dropped, title, kind, version, basePath, baseFrom)
	if err != nil {
		return nil, err
	}
	d.YAML = y
	return d, nil
}

// apiMarker is a path segment that says only "this is the API": api, rest,
// v1, v2.1.
var apiMarker = regexp.MustCompile(`(?i)^(api|rest|v[0-9][0-9.]*)$`)

// apiPrefix is the leading run of API markers that every path shares
// (/api in /api/pool, /api/host), left out of names made from paths.
func apiPrefix(ops []*op) string {
	if len(ops) == 0 {
		return ""
	}
	prefix := ""
	for i := 1; ; i++ {
		first := strings.Split(ops[0].pattern, "/")
		if i >= len(first)-1 || !apiMarker.MatchString(first[i]) {
			return prefix
		}
		for _, x := range ops {
			segs := strings.Split(x.pattern, "/")
			if i >= len(segs)-1 || segs[i] != first[i] {
				return prefix
			}
		}
		prefix += "/" + first[i]
	}
}

func methodRank(m string) int {
	for i, x := range methodOrder {
		if x == m {
			return i
		}
	}
	return len(methodOrder)
}

var (
	paramRe     = regexp.MustCompile(`^\{([^{}/]+)\}$`)
	identUnsafe = regexp.MustCompile(`[^A-Za-z0-9_]+`)
)

// convertPath turns an OpenAPI path template into a route pattern. A
// parameter must fill a whole segment; one that spans segments or sits
// beside literal text is an error, as the route table cannot say it. note
// says what was changed, for the review list.
func convertPath(p string) (pattern, note string, err error) {
	raw, query, _ := strings.Cut(p, "?")
	if !strings.HasPrefix(raw, "/") {
		return "", "", inputErr("path %q: does not start with /", p)
	}
	if strings.ContainsAny(p, " \t\r\n") || strings.Contains(p, "->") {
		return "", "", inputErr("path %q: spaces or -> cannot be written in a route", p)
	}
	segs := strings.Split(strings.TrimPrefix(raw, "/"), "/")
	if len(segs) > 1 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
		note = "its trailing / is dropped (route patterns have none); check that calls without it are the same operation"
	}
	used := map[string]bool{}
	for i, s := range segs {
		if s == "" && !(i == 0 && len(segs) == 1) {
			return "", "", inputErr("path %q: an empty segment", p)
		}
		if !strings.ContainsAny(s, "{}") {
			continue
		}
		m := paramRe.FindStringSubmatch(s)
		if m == nil {
			if strings.Count(s, "{") != strings.Count(s, "}") {
				return "", "", inputErr("path %q: a parameter spans segments or its braces do not match", p)
			}
			return "", "", inputErr("path %q: parameter in %q does not fill the whole segment, which a route cannot match; edit the document or write this route by hand", p, s)
		}
		name := strings.Trim(identUnsafe.ReplaceAllString(m[1], "_"), "_")
		if name == "" {
			name = "p"
		}
		for n := 2; used[name]; n++ {
			name = fmt.Sprintf("%s_%d", strings.TrimRight(name, "_0123456789"), n)
		}
		used[name] = true
		segs[i] = "{" + name + "}"
	}
	pattern = "/" + strings.Join(segs, "/")
	if query != "" {
		if _, err := url.ParseQuery(query); err != nil || strings.ContainsAny(query, "{}") {
			return "", "", inputErr("path %q: its query %q cannot be a route condition", p, query)
		}
		pattern += "?" + query
	}
	return pattern, note, nil
}

// overlap reports whether one call could match both patterns.
func overlap(a, b string) bool {
	pa, qa, _ := strings.Cut(a, "?")
	pb, qb, _ := strings.Cut(b, "?")
	if qa != qb && qa != "" && qb != "" {
		return false // conditions may exclude each other; the loader says
	}
	sa, sb := strings.Split(pa, "/"), strings.Split(pb, "/")
	if len(sa) != len(sb) {
		return false
	}
	for i := range sa {
		if sa[i] != sb[i] && !strings.HasPrefix(sa[i], "{") && !strings.HasPrefix(sb[i], "{") {
			return false
		}
	}
	return true
}

// specificity counts literal segments and query conditions.
func specificity(p string) int {
	n := strings.Count(p, "?") + strings.Count(p, "&")
	for _, s := range strings.Split(p, "/") {
		if !strings.HasPrefix(s, "{") {
			n++
		}
	}
	return n
}

func describe(o *openapi3.Operation) string {
	s := o.Summary
	if s == "" {
		s, _, _ = strings.Cut(strings.TrimSpace(o.Description), "\n")
	}
	s = oneLine(s)
	if r := []rune(s); len(r) > 120 {
		s = string(r[:117]) + "..."
	}
	return s
}

// oneLine folds s to one line of printable text.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
