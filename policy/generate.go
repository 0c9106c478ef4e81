package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The Rego a route table compiles to: one module in package elevate.catalog,
// named after the table's file, whose rules add to the documents every
// catalog shares (tasks, roles, role_groups, allow_uncatalogued, match), so
// that tables and Rego catalogs mix. Each route becomes one match rule per
// method that tests input.upstream, input.method and input.path by equality
// with literals, so that OPA's rule index picks the candidate rules of a call
// by its upstream, method and path segments without trying the others:
//
//	match contains "RabbitMQ\\Get-Queue" if {
//		input.upstream == "rabbitmq"
//		input.method == "GET"
//		input.path = ["api", "queues", _, _]
//		input.path[2] != ""
//		input.path[3] != ""
//	}
//
// A pattern that ends in {rest...} tests its segments one by one instead
// (input.path[0] == "config"; is_string(input.path[1]) for one or more
// segments after it). Query and body conditions follow:
// input.query["action"] == ["delete"], count(input.query["force"]) > 0,
// input.body["kind"] == "Native" (["Native"] for a form). Every string is
// written as a JSON literal, never pasted in. The parsed module's locations
// are moved to the lines of the table, so that compile and proof errors name
// the table's file and the line of the route, task or role.

// generatedPackage is the package of every generated module.
const generatedPackage = "elevate.catalog"

// generate returns the Rego source of t and, for each of its lines, the line
// of the table it comes from.
func generate(t *table) (string, []int) {
	g := &generator{}
	g.line(t.line, "# Generated from %s: edit that file, not this text.", quote(t.file))
	g.line(t.line, "package %s", generatedPackage)
	for _, d := range t.tasks {
		g.line(d.line, "tasks[%s] := {\"upstream\": %s, \"read\": %t, \"description\": %s}",
			quote(d.name), quote(t.upstream), d.read, quote(d.description))
	}
	for _, r := range t.roles {
		g.line(r.line, "roles[%s] := %s", quote(r.name), set(r.tasks))
	}
	for _, rg := range t.roleGroups {
		g.line(rg.line, "role_groups[%s] := {\"roles\": %s, \"tasks\": %s}", quote(rg.name), set(rg.roles), set(rg.tasks))
	}
	if t.allowUncatalogued > 0 {
		g.line(t.allowUncatalogued, "allow_uncatalogued contains %s", quote(t.upstream))
	}
	for _, r := range t.routes {
		for _, m := range r.methods {
			g.route(r, m)
		}
	}
	return g.src.String(), g.lines
}

type generator struct {
	src   strings.Builder
	lines []int // lines[i] is the table line of generated line i+1
}

func (g *generator) line(from int, format string, args ...any) {
	fmt.Fprintf(&g.src, format, args...)
	g.src.WriteByte('\n')
	g.lines = append(g.lines, from)
}

// route writes the match rule of r for method and, when r has
// parameters of one segment ({vhost}), the attributes rule that names
// their values for the same calls ({"vhost": input.path[2]}): what a
// grant's constraint is matched against.
func (g *generator) route(r *route, method string) {
	g.routeRule(r, method, "match contains "+quote(r.task))
	var attrs []string
	for i, s := range r.segs {
		if !s.literal() && !s.rest {
			attrs = append(attrs, fmt.Sprintf("%s: input.path[%d]", quote(s.param), i))
		}
	}
	if len(attrs) > 0 {
		g.routeRule(r, method, "attributes := {"+strings.Join(attrs, ", ")+"}")
	}
}

// routeRule writes a rule with head whose body holds for the calls of r
// with method.
func (g *generator) routeRule(r *route, method, head string) {
	l := r.line
	g.line(l, "%s if {", head)
	g.line(l, "\tinput.upstream == %s", quote(r.upstream))
	g.line(l, "\tinput.method == %s", quote(method))
	rest := len(r.segs) > 0 && r.segs[len(r.segs)-1].rest
	switch {
	case rest:
		for i, s := range r.segs {
			switch {
			case s.rest:
				g.line(l, "\tis_string(input.path[%d])", i)
			case s.literal():
				g.line(l, "\tinput.path[%d] == %s", i, quote(s.lit))
			default:
				g.line(l, "\tinput.path[%d] != \"\"", i)
			}
		}
	default:
		elems := make([]string, len(r.segs))
		params := false
		for i, s := range r.segs {
			if s.literal() {
				elems[i] = quote(s.lit)
			} else {
				elems[i], params = "_", true
			}
		}
		op := "=="
		if params {
			op = "="
		}
		g.line(l, "\tinput.path %s [%s]", op, strings.Join(elems, ", "))
		for i, s := range r.segs {
			if !s.literal() {
				g.line(l, "\tinput.path[%d] != \"\"", i)
			}
		}
	}
	for _, k := range sortedKeys(r.query) {
		if c := r.query[k]; c.any {
			g.line(l, "\tcount(input.query[%s]) > 0", quote(k))
		} else {
			g.line(l, "\tinput.query[%s] == [%s]", quote(k), quote(c.value))
		}
	}
	for _, k := range sortedKeys(r.body) {
		if r.kind == BodyForm {
			g.line(l, "\tinput.body[%s] == [%s]", quote(k), r.body[k])
		} else {
			g.line(l, "\tinput.body[%s] == %s", quote(k), r.body[k])
		}
	}
	g.line(l, "}")
}

func set(names []nameAt) string {
	if len(names) == 0 {
		return "set()"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n.name)
	}
	return "{" + strings.Join(q, ", ") + "}"
}

// compileTable generates the module of t and parses it, with its locations
// moved to the lines of the table.
func compileTable(t *table) (*ast.Module, error) {
	src, lines := generate(t)
	m, err := ast.ParseModuleWithOpts(t.file, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		// The generator writes only what parses; this is its bug.
		return nil, fmt.Errorf("%s: generated Rego does not parse: %w", t.file, err)
	}
	relocate(m, t.file, lines)
	return m, nil
}

// relocate gives every node of m that has a location a new one, in file at
// the line lines maps its row to.
func relocate(m *ast.Module, file string, lines []int) {
	moved := func(l *ast.Location) *ast.Location {
		row := l.Row
		if row >= 1 && row <= len(lines) {
			row = lines[row-1]
		}
		return &ast.Location{Text: l.Text, File: file, Row: row, Col: l.Col, Offset: l.Offset, Tabs: l.Tabs}
	}
	ast.NewGenericVisitor(func(x any) bool {
		if n, ok := x.(ast.Node); ok {
			if l := n.Loc(); l != nil {
				n.SetLoc(moved(l))
			}
		}
		return false
	}).Walk(m)
	for _, c := range m.Comments {
		c.Location = moved(c.Location)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
