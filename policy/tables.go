package policy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
)

// The route tables of a bundle, together: parsed, checked against each other
// and against the Rego catalogs they mix with, compiled and indexed.

// tableSet is the route tables of one bundle.
type tableSet struct {
	tables  []*table
	index   *routeIndex
	modules map[string]*ast.Module // the generated module of each table, by file
}

// catalogPath is where route tables add their documents: data.elevate.catalog.
var catalogPath = ast.MustParseRef("data." + generatedPackage)

// loadTables parses the route tables srcs (file -> source) in the order of
// files, checks them against each other (one table per upstream, each task,
// role and role group declared once, no call two tasks) and compiles them.
// The error lists every problem, each with file and line.
func loadTables(files []string, srcs map[string][]byte) (*tableSet, error) {
	ts := &tableSet{modules: map[string]*ast.Module{}}
	var errs []string
	for _, file := range files {
		t, err := parseTable(file, srcs[file])
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ts.tables = append(ts.tables, t)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidBundle, strings.Join(errs, "; "))
	}

	byUpstream := map[string]*table{}
	declared := map[string]map[string]string{"task": {}, "role": {}, "role group": {}}
	declare := func(what, name, file string, line int) {
		at := file + ":" + strconv.Itoa(line)
		if first, dup := declared[what][name]; dup {
			errs = append(errs, fmt.Sprintf("%s: %s %q is declared both at %s and here", at, what, name, first))
			return
		}
		declared[what][name] = at
	}
	seq := 0
	for _, t := range ts.tables {
		// Several tables may serve one upstream (a layer adds routes to a
		// built-in table's upstream); they must read its bodies alike.
		if first := byUpstream[t.upstream]; first != nil && first.body != t.body {
			errs = append(errs, fmt.Sprintf("%s:%d: the route table of upstream %q reads bodies as %s, but %s:%d reads them as %s",
				t.file, t.line, t.upstream, kindName(t.body), first.file, first.line, kindName(first.body)))
			continue
		}
		if byUpstream[t.upstream] == nil {
			byUpstream[t.upstream] = t
		}
		for _, d := range t.tasks {
			declare("task", d.name, t.file, d.line)
		}
		for _, r := range t.roles {
			declare("role", r.name, t.file, r.line)
		}
		for _, g := range t.roleGroups {
			declare("role group", g.name, t.file, g.line)
		}
		for _, r := range t.routes {
			r.seq = seq
			seq++
		}
	}
	if len(errs) == 0 {
		ts.index = newRouteIndex(ts.tables)
		errs = overlaps(ts.index, ts.tables)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidBundle, strings.Join(errs, "; "))
	}
	for _, t := range ts.tables {
		m, err := compileTable(t)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidBundle, err)
		}
		ts.modules[t.file] = m
	}
	return ts, nil
}

// checkCatalog checks the tables against the whole compiled bundle: a
// task, role or role group declared both in a table and in a Rego catalog;
// a route to a task that nothing declares, or that is declared for another
// upstream; a role or role group that names a task or role nothing declares;
// and, when upstreams is not nil, a table for an upstream not among them.
func (ts *tableSet) checkCatalog(ctx context.Context, compiler *ast.Compiler, store storage.Store, upstreams []string) error {
	if ts == nil || len(ts.tables) == 0 {
		return nil
	}
	var errs []string

	// Declared in Rego too.
	inTables := map[string]map[string]string{"tasks": {}, "roles": {}, "role_groups": {}}
	for _, t := range ts.tables {
		for _, d := range t.tasks {
			inTables["tasks"][d.name] = t.file + ":" + strconv.Itoa(d.line)
		}
		for _, r := range t.roles {
			inTables["roles"][r.name] = t.file + ":" + strconv.Itoa(r.line)
		}
		for _, g := range t.roleGroups {
			inTables["role_groups"][g.name] = t.file + ":" + strconv.Itoa(g.line)
		}
	}
	what := map[string]string{"tasks": "task", "roles": "role", "role_groups": "role group"}
	for _, name := range sortedKeys(compiler.Modules) {
		m := compiler.Modules[name]
		if ts.modules[name] != nil || !m.Package.Path.Equal(catalogPath) {
			continue
		}
		for _, r := range m.Rules {
			ref := r.Head.Ref()
			if len(ref) != 2 {
				continue
			}
			doc, ok1 := ref[0].Value.(ast.Var)
			key, ok2 := ref[1].Value.(ast.String)
			if !ok1 || !ok2 {
				continue
			}
			if at, dup := inTables[string(doc)][string(key)]; dup {
				errs = append(errs, fmt.Sprintf("%s %q is declared both at %s and at %s", what[string(doc)], string(key), at, where(r.Location)))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidBundle, strings.Join(errs, "; "))
	}

	// What the whole bundle declares.
	tasks, err := evalDocument(ctx, compiler, store, catalogPath.Append(ast.StringTerm("tasks")))
	if err != nil {
		return err
	}
	roles, err := evalDocument(ctx, compiler, store, catalogPath.Append(ast.StringTerm("roles")))
	if err != nil {
		return err
	}
	upstreamOf := func(task string) (string, bool) {
		info, ok := tasks[task].(map[string]any)
		if !ok {
			_, ok = tasks[task]
			return "", ok
		}
		u, _ := info["upstream"].(string)
		return u, true
	}
	for _, t := range ts.tables {
		if upstreams != nil && !slices.Contains(upstreams, t.upstream) {
			errs = append(errs, fmt.Sprintf("%s:%d: upstream %q is not configured (configured: %s)",
				t.file, t.line, t.upstream, strings.Join(upstreams, ", ")))
		}
		for _, r := range t.routes {
			switch u, ok := upstreamOf(r.task); {
			case !ok:
				errs = append(errs, fmt.Sprintf("%s:%d: route %q: no route table or Rego catalog declares task %q", r.file, r.line, r.text, r.task))
			case u != t.upstream:
				errs = append(errs, fmt.Sprintf("%s:%d: route %q: task %q is a task of upstream %q, not %q", r.file, r.line, r.text, r.task, u, t.upstream))
			}
		}
		unknown := func(kind string, names []nameAt, known map[string]any, owner string) {
			for _, n := range names {
				if _, ok := known[n.name]; !ok {
					errs = append(errs, fmt.Sprintf("%s:%d: %s names %s %q, which no route table or Rego catalog declares", t.file, n.line, owner, kind, n.name))
				}
			}
		}
		for _, r := range t.roles {
			unknown("task", r.tasks, tasks, "role "+strconv.Quote(r.name))
		}
		for _, g := range t.roleGroups {
			unknown("role", g.roles, roles, "role group "+strconv.Quote(g.name))
			unknown("task", g.tasks, tasks, "role group "+strconv.Quote(g.name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidBundle, strings.Join(errs, "; "))
	}
	return nil
}

// evalDocument evaluates the document at ref, an object; undefined is empty.
func evalDocument(ctx context.Context, compiler *ast.Compiler, store storage.Store, ref ast.Ref) (map[string]any, error) {
	rs, err := evalRef(ctx, compiler, store, ref)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return map[string]any{}, nil
	}
	doc, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not an object", ErrInvalidBundle, ref)
	}
	return doc, nil
}

// warnings are what a bundle's tables and catalog call for without being
// refused: a table without routes, and, when upstreams is not nil, a
// configured upstream that no table routes calls to and no catalog task
// belongs to.
func (ts *tableSet) warnings(cat Catalog, upstreams []string) []string {
	var out []string
	routed := map[string]bool{}
	if ts != nil {
		for _, t := range ts.tables {
			if len(t.routes) == 0 {
				out = append(out, fmt.Sprintf("%s:%d: the route table of upstream %q has no routes", t.file, t.line, t.upstream))
				continue
			}
			routed[t.upstream] = true
		}
	}
	for _, info := range cat.Tasks {
		routed[info.Upstream] = true
	}
	for _, u := range upstreams {
		if !routed[u] {
			out = append(out, fmt.Sprintf("upstream %q is configured, but no route table or catalog routes calls to it", u))
		}
	}
	return out
}
