package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Route tables: the catalog of one upstream as data.
//
// A route table is a YAML file (JSON is YAML too) of a bundle whose base
// name is not data.*:
//
//	upstream: rabbitmq
//	body: json                      # none (default) | json | form | jsonrpc | graphql
//	tasks:
//	  RabbitMQ\Get-Queue: {read: true, description: List queues or read one queue}
//	  RabbitMQ\Remove-Queue: {description: Delete a queue}
//	roles:
//	  RabbitMQ\Topology Administration: [RabbitMQ\Remove-Queue]
//	role_groups:
//	  RabbitMQ\Administrators: {roles: [RabbitMQ\Topology Administration], tasks: []}
//	allow_uncatalogued: false
//	routes:
//	  - GET,HEAD /api/queues/{vhost}/{name} -> RabbitMQ\Get-Queue
//	  - DELETE /api/queues/{vhost}/{name}?if-empty=true -> RabbitMQ\Remove-Queue
//	  - route: POST /jsonrpc
//	    rpc: aria2.shutdown
//	    task: Aria2\Shutdown
//
// parseTable reads one; generate.go turns it into Rego, routes.go indexes
// its routes. Every error names the file and line.

// table is a route table, as parsed.
type table struct {
	file              string
	line              int // of the upstream key
	upstream          string
	body              string // the body kind of the upstream's calls
	tasks             []taskDecl
	roles             []roleDecl
	roleGroups        []groupDecl
	allowUncatalogued int // the line of allow_uncatalogued: true; 0 when false
	routes            []*route
}

type taskDecl struct {
	name        string
	line        int
	read        bool
	description string
}

type nameAt struct {
	name string
	line int
}

type roleDecl struct {
	name  string
	line  int
	tasks []nameAt
}

type groupDecl struct {
	name         string
	line         int
	roles, tasks []nameAt
}

// maxTableErrors bounds the errors one table reports.
const maxTableErrors = 20

// tableParser collects the errors of one table.
type tableParser struct {
	file string
	errs []string
}

func (p *tableParser) errorf(line int, format string, args ...any) {
	if len(p.errs) < maxTableErrors {
		p.errs = append(p.errs, fmt.Sprintf("%s:%d: ", p.file, line)+fmt.Sprintf(format, args...))
	}
}

// parseTable parses the route table src read from file. The error lists
// every problem found (at most maxTableErrors), each with file:line.
func parseTable(file string, src []byte) (*table, error) {
	p := &tableParser{file: file}
	t := p.parse(src)
	if len(p.errs) > 0 {
		return nil, errors.New(strings.Join(p.errs, "; "))
	}
	return t, nil
}

func (p *tableParser) parse(src []byte) *table {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(1, "empty route table: want at least upstream and routes")
		} else {
			p.errorf(yamlErrorLine(err), "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		p.errorf(max(more.Line, 1), "a route table is one YAML document")
		return nil
	}
	root := deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = deref(root.Content[0])
	}
	t := &table{file: p.file, line: root.Line}
	keys := p.mapping(root, "a route table", "upstream", "body", "tasks", "roles", "role_groups", "allow_uncatalogued", "routes")
	if keys == nil {
		return t
	}
	if n, ok := keys["upstream"]; ok {
		t.line = n.Line
		if s, ok := p.name(n, "upstream"); ok {
			if strings.ContainsFunc(s, unicode.IsSpace) {
				p.errorf(n.Line, "upstream %q: an upstream name has no spaces", s)
			}
			t.upstream = s
		}
	} else {
		p.errorf(root.Line, "upstream: required (the name of the configured upstream)")
	}
	if n, ok := keys["body"]; ok {
		t.body, _ = p.bodyKind(n)
	}
	if n, ok := keys["tasks"]; ok {
		p.each(n, "tasks", func(k, v *yaml.Node) {
			name, ok := p.name(k, "task name")
			if !ok {
				return
			}
			d := taskDecl{name: name, line: k.Line}
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
				t.tasks = append(t.tasks, d)
				return
			}
			fields := p.mapping(v, "task "+strconv.Quote(name), "read", "description")
			if r, ok := fields["read"]; ok {
				d.read, _ = p.boolean(r, "read")
			}
			if r, ok := fields["description"]; ok {
				d.description, _ = p.str(r, "description")
			}
			t.tasks = append(t.tasks, d)
		})
	}
	if n, ok := keys["roles"]; ok {
		p.each(n, "roles", func(k, v *yaml.Node) {
			if name, ok := p.name(k, "role name"); ok {
				t.roles = append(t.roles, roleDecl{name: name, line: k.Line, tasks: p.names(v, "role "+strconv.Quote(name))})
			}
		})
	}
	if n, ok := keys["role_groups"]; ok {
		p.each(n, "role_groups", func(k, v *yaml.Node) {
			name, ok := p.name(k, "role group name")
			if !ok {
				return
			}
			what := "role group " + strconv.Quote(name)
			g := groupDecl{name: name, line: k.Line}
			fields := p.mapping(v, what, "roles", "tasks")
			if r, ok := fields["roles"]; ok {
				g.roles = p.names(r, what+" roles")
			}
			if r, ok := fields["tasks"]; ok {
				g.tasks = p.names(r, what+" tasks")
			}
			t.roleGroups = append(t.roleGroups, g)
		})
	}
	if n, ok := keys["allow_uncatalogued"]; ok {
		if b, _ := p.boolean(n, "allow_uncatalogued"); b {
			t.allowUncatalogued = n.Line
		}
	}
	if n, ok := keys["routes"]; ok {
		n = deref(n)
		switch {
		case n.Kind == yaml.SequenceNode:
			for _, item := range n.Content {
				if r := p.route(t, deref(item)); r != nil {
					t.routes = append(t.routes, r)
				}
			}
		case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		default:
			p.errorf(n.Line, "routes: want a list of routes")
		}
	}
	return t
}

// yamlErrorLine is the line a yaml.v3 syntax error names ("yaml: line 3:
// ..."), else 1.
func yamlErrorLine(err error) int {
	var line int
	if _, e := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); e == nil && line > 0 {
		return line
	}
	return 1
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// mapping returns the values of the mapping n by key, refusing keys other
// than known and keys given twice.
func (p *tableParser) mapping(n *yaml.Node, what string, known ...string) map[string]*yaml.Node {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: want a mapping of %s", what, strings.Join(known, ", "))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.errorf(k.Line, "%s: a key must be a plain word", what)
		case !slices.Contains(known, k.Value):
			p.errorf(k.Line, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(known, ", "))
		case out[k.Value] != nil:
			p.errorf(k.Line, "%s: key %q given twice", what, k.Value)
		default:
			out[k.Value] = v
		}
	}
	return out
}

// each calls f for every key and value of the mapping n, refusing keys
// given twice. A null n is an empty mapping.
func (p *tableParser) each(n *yaml.Node, what string, f func(k, v *yaml.Node)) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: want a mapping", what)
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && seen[k.Value] {
			p.errorf(k.Line, "%s: %q given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		f(k, v)
	}
}

func (p *tableParser) str(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.errorf(n.Line, "%s: want a string", what)
		return "", false
	}
	return n.Value, true
}

// name is a string that names something: not empty, without surrounding
// spaces or control characters.
func (p *tableParser) name(n *yaml.Node, what string) (string, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return "", false
	}
	switch {
	case s == "":
		p.errorf(n.Line, "%s: empty", what)
	case strings.TrimSpace(s) != s:
		p.errorf(n.Line, "%s %q: surrounding spaces", what, s)
	case strings.ContainsFunc(s, unicode.IsControl):
		p.errorf(n.Line, "%s %q: control characters", what, s)
	default:
		return s, true
	}
	return "", false
}

// names is a list of names; null is an empty list.
func (p *tableParser) names(n *yaml.Node, what string) []nameAt {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "%s: want a list", what)
		return nil
	}
	var out []nameAt
	for _, item := range n.Content {
		s, ok := p.name(item, what)
		if !ok {
			continue
		}
		if slices.ContainsFunc(out, func(x nameAt) bool { return x.name == s }) {
			p.errorf(item.Line, "%s: %q listed twice", what, s)
			continue
		}
		out = append(out, nameAt{s, deref(item).Line})
	}
	return out
}

func (p *tableParser) boolean(n *yaml.Node, what string) (bool, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.errorf(n.Line, "%s: want true or false", what)
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		p.errorf(n.Line, "%s: want true or false", what)
		return false, false
	}
	return b, true
}

var bodyKinds = []string{"none", BodyJSON, BodyForm, BodyJSONRPC, BodyGraphQL}

func (p *tableParser) bodyKind(n *yaml.Node) (string, bool) {
	s, ok := p.str(n, "body")
	if !ok {
		return "", false
	}
	if !slices.Contains(bodyKinds, s) {
		p.errorf(n.Line, "body: %q is not one of %s", s, strings.Join(bodyKinds, ", "))
		return "", false
	}
	if s == "none" {
		s = ""
	}
	return s, true
}

// route parses one route, in its string form or its map form.
func (p *tableParser) route(t *table, n *yaml.Node) *route {
	r := &route{file: p.file, line: n.Line, upstream: t.upstream, kind: t.body}
	switch n.Kind {
	case yaml.ScalarNode:
		s, ok := p.str(n, "route")
		if !ok {
			return nil
		}
		left, task, found := strings.Cut(s, "->")
		if !found {
			p.errorf(n.Line, "route %q: want METHODS PATH -> TASK", s)
			return nil
		}
		r.text = strings.TrimSpace(left)
		if !p.pattern(r, r.text) {
			return nil
		}
		if r.task = strings.TrimSpace(task); r.task == "" {
			p.errorf(n.Line, "route %q: no task after ->", s)
			return nil
		}
		if strings.ContainsFunc(r.task, unicode.IsControl) {
			p.errorf(n.Line, "route %q: control characters in the task name", s)
			return nil
		}
		r.text = s
		return r
	case yaml.MappingNode:
	default:
		p.errorf(n.Line, "route: want \"METHODS PATH -> TASK\" or a mapping with route and task")
		return nil
	}

	keys := p.mapping(n, "route", "route", "task", "rpc", "graphql", "match", "query", "body", "record")
	spec, ok := keys["route"]
	if !ok {
		p.errorf(n.Line, "route: the key route is required (METHODS PATH)")
		return nil
	}
	text, ok := p.str(spec, "route")
	if !ok {
		return nil
	}
	r.line, r.text = deref(spec).Line, strings.TrimSpace(text)
	if strings.Contains(text, "->") {
		p.errorf(r.line, "route %q: in the map form, the task is the key task", text)
		return nil
	}
	if !p.pattern(r, r.text) {
		return nil
	}
	good := true
	if v, ok := keys["task"]; ok {
		r.task, good = p.name(v, "task")
	} else {
		p.errorf(r.line, "route %q: the key task is required", text)
		good = false
	}
	if v, ok := keys["body"]; ok {
		kind, ok := p.bodyKind(v)
		r.kind, r.override, good = kind, true, good && ok
	}
	if v, ok := keys["query"]; ok {
		p.each(v, "query", func(k, v *yaml.Node) {
			name, ok := p.str(k, "query parameter")
			switch {
			case !ok:
				good = false
			case r.hasQuery(name):
				p.errorf(k.Line, "query parameter %q: given twice", name)
				good = false
			case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
				r.setQuery(name, queryCond{any: true})
			case v.Kind == yaml.ScalarNode && slices.Contains([]string{"!!str", "!!int", "!!float", "!!bool"}, v.ShortTag()):
				r.setQuery(name, queryCond{value: v.Value})
			default:
				p.errorf(v.Line, "query parameter %q: want a value, or nothing for present", name)
				good = false
			}
		})
	}
	cond := func(line int, field, literal string) {
		if _, dup := r.body[field]; dup {
			p.errorf(line, "route %q: a condition on the body field %q is given twice", text, field)
			good = false
			return
		}
		if r.body == nil {
			r.body = map[string]string{}
		}
		r.body[field] = literal
	}
	if v, ok := keys["rpc"]; ok {
		if method, ok := p.name(v, "rpc"); ok {
			cond(v.Line, "method", quote(method))
		} else {
			good = false
		}
		if r.kind != BodyJSONRPC {
			p.errorf(v.Line, "route %q: rpc needs body: jsonrpc (the body is read as %s)", text, kindName(r.kind))
			good = false
		}
	}
	if v, ok := keys["graphql"]; ok {
		if op, field, ok := p.graphql(v); ok {
			cond(v.Line, "operation", quote(op))
			if field != "" {
				cond(v.Line, "field", quote(field))
			}
		} else {
			good = false
		}
		if r.kind != BodyGraphQL {
			p.errorf(v.Line, "route %q: graphql needs body: graphql (the body is read as %s)", text, kindName(r.kind))
			good = false
		}
	}
	if v, ok := keys["match"]; ok {
		if r.kind == "" {
			p.errorf(v.Line, "route %q: match needs a body kind (body: json, form, jsonrpc or graphql)", text)
			good = false
		}
		p.each(v, "match", func(k, v *yaml.Node) {
			field, ok := p.name(k, "match field")
			if !ok {
				good = false
				return
			}
			literal, ok := p.scalar(v, "match "+strconv.Quote(field))
			if ok && r.kind == BodyForm && !strings.HasPrefix(literal, `"`) {
				p.errorf(v.Line, "match %q: a form field holds strings", field)
				ok = false
			}
			if !ok {
				good = false
				return
			}
			cond(k.Line, field, literal)
		})
	}
	if v, ok := keys["record"]; ok {
		for _, f := range p.names(v, "record") {
			if credentialLike(f.name) {
				p.errorf(f.line, "record: %q looks like a credential, which is never recorded", f.name)
				good = false
				continue
			}
			r.record = append(r.record, f.name)
		}
		if r.kind == "" {
			p.errorf(deref(v).Line, "route %q: record needs a body kind (body: json, form, jsonrpc or graphql)", text)
			good = false
		}
	}
	if !good {
		return nil
	}
	return r
}

func (r *route) hasQuery(name string) bool {
	_, ok := r.query[name]
	return ok
}

func (r *route) setQuery(name string, c queryCond) {
	if r.query == nil {
		r.query = map[string]queryCond{}
	}
	r.query[name] = c
}

var (
	methodToken = regexp.MustCompile("^[A-Z0-9!#$%&'*+.^_`|~-]+$")
	paramName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	graphqlName = regexp.MustCompile(`^[_A-Za-z][_0-9A-Za-z]*$`)
)

// pattern parses "METHODS PATH[?QUERY]" into r.
func (p *tableParser) pattern(r *route, s string) bool {
	fields := strings.Fields(s)
	if len(fields) != 2 {
		p.errorf(r.line, "route %q: want METHODS PATH, such as GET,HEAD /api/queues/{vhost}", s)
		return false
	}
	ok := p.methods(r, fields[0])
	pathPart, query, hasQuery := strings.Cut(fields[1], "?")
	ok = p.path(r, pathPart) && ok
	if hasQuery {
		ok = p.queryString(r, query) && ok
	}
	return ok
}

func (p *tableParser) methods(r *route, s string) bool {
	var ms []string
	head := false
	for _, m := range strings.Split(s, ",") {
		switch {
		case !methodToken.MatchString(m) || !strings.ContainsFunc(m, unicode.IsUpper):
			p.errorf(r.line, "method %q: want an upper-case method such as GET", m)
			return false
		case slices.Contains(ms, m) || m == "HEAD" && head:
			p.errorf(r.line, "method %s: listed twice", m)
			return false
		case m == "HEAD":
			head = true
		default:
			ms = append(ms, m)
		}
	}
	if head && !slices.Contains(ms, "GET") {
		p.errorf(r.line, "method HEAD: a HEAD call is matched as GET; write GET")
		return false
	}
	slices.Sort(ms)
	r.methods = ms
	return true
}

func (p *tableParser) path(r *route, s string) bool {
	if !strings.HasPrefix(s, "/") {
		p.errorf(r.line, "path %q: want an absolute path, such as /api/overview", s)
		return false
	}
	if s == "/" {
		return true
	}
	parts := strings.Split(s[1:], "/")
	seen := map[string]bool{}
	for i, part := range parts {
		switch {
		case part == "" && i == len(parts)-1:
			p.errorf(r.line, "path %q: a trailing / is not a pattern; drop it, or end with {rest...}", s)
			return false
		case part == "":
			p.errorf(r.line, "path %q: an empty segment", s)
			return false
		case strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}"):
			name := part[1 : len(part)-1]
			rest := strings.HasSuffix(name, "...")
			name = strings.TrimSuffix(name, "...")
			switch {
			case !paramName.MatchString(name):
				p.errorf(r.line, "path %q: parameter %q: want a name of letters, digits, _ and -", s, part)
				return false
			case seen[name]:
				p.errorf(r.line, "path %q: parameter {%s} named twice", s, name)
				return false
			case rest && i != len(parts)-1:
				p.errorf(r.line, "path %q: %s takes the rest of the path and comes last", s, part)
				return false
			}
			seen[name] = true
			r.segs = append(r.segs, segment{param: name, rest: rest})
		case strings.ContainsAny(part, "{}"):
			p.errorf(r.line, "path %q: segment %q: a parameter is a whole segment, {name} or {name...}", s, part)
			return false
		default:
			lit, err := url.PathUnescape(part)
			switch {
			case err != nil:
				p.errorf(r.line, "path %q: segment %q: invalid escape", s, part)
				return false
			case !utf8.ValidString(lit):
				p.errorf(r.line, "path %q: segment %q: not UTF-8 once decoded", s, part)
				return false
			case lit == "." || lit == "..":
				p.errorf(r.line, "path %q: dot segments never reach the policy", s)
				return false
			}
			r.segs = append(r.segs, segment{lit: lit})
		}
	}
	return true
}

func (p *tableParser) queryString(r *route, s string) bool {
	if s == "" {
		p.errorf(r.line, "query %q: empty; drop the ?", "?"+s)
		return false
	}
	for _, kv := range strings.Split(s, "&") {
		k, v, hasValue := strings.Cut(kv, "=")
		name, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		switch {
		case err1 != nil || err2 != nil:
			p.errorf(r.line, "query %q: invalid escape", kv)
			return false
		case name == "":
			p.errorf(r.line, "query %q: a parameter without a name", kv)
			return false
		case r.hasQuery(name):
			p.errorf(r.line, "query parameter %q: given twice", name)
			return false
		case !utf8.ValidString(name) || !utf8.ValidString(value):
			p.errorf(r.line, "query %q: not UTF-8 once decoded", kv)
			return false
		case hasValue:
			r.setQuery(name, queryCond{value: value})
		default:
			r.setQuery(name, queryCond{any: true})
		}
	}
	return true
}

// graphql parses "TYPE [FIELD]": an operation type, and optionally the
// top-level field.
func (p *tableParser) graphql(n *yaml.Node) (op, field string, ok bool) {
	s, ok := p.str(n, "graphql")
	if !ok {
		return "", "", false
	}
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 || !slices.Contains([]string{"query", "mutation", "subscription"}, fields[0]) {
		p.errorf(n.Line, "graphql %q: want query, mutation or subscription, then optionally a top-level field", s)
		return "", "", false
	}
	if len(fields) == 2 {
		if !graphqlName.MatchString(fields[1]) {
			p.errorf(n.Line, "graphql %q: %q is not a GraphQL name", s, fields[1])
			return "", "", false
		}
		field = fields[1]
	}
	return fields[0], field, true
}

// scalar is the value of a string, number, boolean or null node as a JSON
// literal, which is also a Rego literal.
func (p *tableParser) scalar(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		p.errorf(n.Line, "%s: want a string, number, true, false or null", what)
		return "", false
	}
	var v any
	switch n.ShortTag() {
	case "!!str":
		return quote(n.Value), true
	case "!!null":
		return "null", true
	case "!!bool", "!!int", "!!float":
		if err := n.Decode(&v); err != nil {
			p.errorf(n.Line, "%s: %v", what, err)
			return "", false
		}
	default:
		p.errorf(n.Line, "%s: want a string, number, true, false or null", what)
		return "", false
	}
	if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
		p.errorf(n.Line, "%s: not a JSON number", what)
		return "", false
	}
	b, err := json.Marshal(v)
	if err != nil {
		p.errorf(n.Line, "%s: %v", what, err)
		return "", false
	}
	return string(b), true
}

// quote is s as a JSON string literal, which Rego reads as the same string.
func quote(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}

// credentialLike reports whether a body field name looks like it holds a
// credential.
func credentialLike(field string) bool {
	f := strings.ToLower(field)
	for _, w := range []string{"password", "passwd", "secret", "token", "credential", "apikey", "api_key", "api-key", "private_key", "privatekey"} {
		if strings.Contains(f, w) {
			return true
		}
	}
	return false
}
