package policy

import (
	"fmt"
	"slices"
	"strings"
)

// A route of a route table, as parsed (see table.go), and the index of the
// routes of a bundle by upstream, method and path: the Go side of the same
// patterns the generated Rego tests, for Engine.Body and for the load-time
// check that no call is two tasks.

// route is one route of a table: one or more methods, a path pattern,
// conditions on the query and the body, and the task of the calls it
// matches.
type route struct {
	seq      int // the order in which the bundle's routes were read
	file     string
	line     int
	text     string // the route as written ("GET /api/queues/{vhost}"), for messages
	upstream string
	methods  []string // sorted, HEAD read as GET
	segs     []segment
	query    map[string]queryCond
	body     map[string]string // top-level body field -> its required value as a JSON literal
	kind     string            // the body kind the route reads: its own, else its table's
	override bool              // whether the route declares its body kind itself
	record   []string
	task     string
}

// segment is one segment of a path pattern: a literal (compared decoded), a
// parameter (one non-empty segment) or, last only, the rest (one or more
// segments).
type segment struct {
	lit   string
	param string // the parameter's name, "" for a literal
	rest  bool
}

func (s segment) literal() bool { return s.param == "" }

// queryCond is a condition on a query parameter: exactly one value, equal
// to value, or (any) present at all.
type queryCond struct {
	value string
	any   bool
}

// exclusive reports whether no call can meet the conditions of both a and
// b: a query parameter or a body field that both require, with different
// values.
func exclusive(a, b *route) bool {
	for k, qa := range a.query {
		if qb, ok := b.query[k]; ok && !qa.any && !qb.any && qa.value != qb.value {
			return true
		}
	}
	for k, va := range a.body {
		if vb, ok := b.body[k]; ok && va != vb {
			return true
		}
	}
	return false
}

// routeIndex holds the routes of a bundle's tables by upstream and method,
// each method's patterns in a trie of segments.
type routeIndex struct {
	upstreams map[string]*upstreamRoutes
}

type upstreamRoutes struct {
	kind    string // the table's body kind
	methods map[string]*node
}

// node is a position in the patterns of one upstream and method: what
// follows a literal segment, a parameter, and the routes that end here or
// whose rest starts here.
type node struct {
	lits  map[string]*node
	param *node
	end   []*route // patterns that end here
	rest  []*route // patterns whose {rest...} starts here
}

// newRouteIndex indexes the routes of tables; nil when there are none.
func newRouteIndex(tables []*table) *routeIndex {
	if len(tables) == 0 {
		return nil
	}
	ix := &routeIndex{upstreams: map[string]*upstreamRoutes{}}
	for _, t := range tables {
		u := ix.upstreams[t.upstream]
		if u == nil {
			u = &upstreamRoutes{kind: t.body, methods: map[string]*node{}}
			ix.upstreams[t.upstream] = u
		}
		for _, r := range t.routes {
			for _, m := range r.methods {
				root := u.methods[m]
				if root == nil {
					root = &node{}
					u.methods[m] = root
				}
				root.insert(r)
			}
		}
	}
	return ix
}

func (n *node) insert(r *route) {
	for _, s := range r.segs {
		switch {
		case s.rest:
			n.rest = append(n.rest, r)
			return
		case s.literal():
			if n.lits == nil {
				n.lits = map[string]*node{}
			}
			next := n.lits[s.lit]
			if next == nil {
				next = &node{}
				n.lits[s.lit] = next
			}
			n = next
		default:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		}
	}
	n.end = append(n.end, r)
}

// match calls f for every route whose pattern matches path, possibly more
// than once.
func (n *node) match(path []string, f func(*route)) {
	if n == nil {
		return
	}
	if len(path) == 0 {
		for _, r := range n.end {
			f(r)
		}
		return
	}
	for _, r := range n.rest {
		f(r)
	}
	n.lits[path[0]].match(path[1:], f)
	if path[0] != "" {
		n.param.match(path[1:], f)
	}
}

// body is Engine.Body for the snapshot whose routes ix holds.
func (ix *routeIndex) body(upstream, method string, path []string) BodySpec {
	if ix == nil {
		return BodySpec{}
	}
	u := ix.upstreams[upstream]
	if u == nil {
		return BodySpec{}
	}
	if method == "HEAD" {
		method = "GET"
	}
	spec := BodySpec{Kind: u.kind}
	u.methods[method].match(path, func(r *route) {
		if r.override {
			spec.Kind = r.kind
		}
		for _, f := range r.record {
			if !slices.Contains(spec.Record, f) {
				spec.Record = append(spec.Record, f)
			}
		}
	})
	slices.Sort(spec.Record)
	return spec
}

// unifying calls f once for every route of the same upstream as r, other
// than r, that shares a method with r and whose pattern matches a path r's
// pattern matches too; method is one they share.
func (ix *routeIndex) unifying(r *route, f func(other *route, method string)) {
	u := ix.upstreams[r.upstream]
	seen := map[*route]bool{r: true}
	for _, m := range r.methods {
		u.methods[m].unify(r.segs, func(o *route) {
			if !seen[o] {
				seen[o] = true
				f(o, m)
			}
		})
	}
}

// unify calls f for every route under n whose remaining pattern unifies
// with segs: some path matches both.
func (n *node) unify(segs []segment, f func(*route)) {
	if n == nil {
		return
	}
	if len(segs) == 0 {
		for _, r := range n.end {
			f(r)
		}
		return
	}
	// A rest here takes one or more segments, whatever they are: segs has
	// at least one.
	for _, r := range n.rest {
		f(r)
	}
	s := segs[0]
	switch {
	case s.rest:
		// One or more segments of anything: every pattern that goes on.
		for _, next := range n.lits {
			next.all(f)
		}
		n.param.all(f)
	case s.literal():
		n.lits[s.lit].unify(segs[1:], f)
		n.param.unify(segs[1:], f) // literals are never empty
	default:
		for _, next := range n.lits {
			next.unify(segs[1:], f)
		}
		n.param.unify(segs[1:], f)
	}
}

// all calls f for every route under n.
func (n *node) all(f func(*route)) {
	if n == nil {
		return
	}
	for _, r := range n.end {
		f(r)
	}
	for _, r := range n.rest {
		f(r)
	}
	for _, next := range n.lits {
		next.all(f)
	}
	n.param.all(f)
}

// sharedPath is a path that both a and b match (they unify), for messages:
// a literal where either has one, else a sample value.
func sharedPath(a, b []segment) string {
	var out []string
	for i := 0; i < len(a) || i < len(b); i++ {
		restA, restB := i < len(a) && a[i].rest, i < len(b) && b[i].rest
		if restA && restB {
			out = append(out, "x")
			break
		}
		if restA || restB {
			longer := a
			if restA {
				longer = b
			}
			for _, s := range longer[i:] {
				out = append(out, sampleSegment(s))
			}
			break
		}
		switch {
		case i >= len(a) || i >= len(b):
			// Patterns of different lengths do not unify without a rest.
		case a[i].literal():
			out = append(out, a[i].lit)
		default:
			out = append(out, sampleSegment(b[i]))
		}
	}
	return "/" + strings.Join(out, "/")
}

func sampleSegment(s segment) string {
	if s.literal() {
		return s.lit
	}
	return "x"
}

// overlaps are the errors of routes of tables that make one call two tasks
// or read its body two ways, each naming both routes.
func overlaps(ix *routeIndex, tables []*table) []string {
	var errs []string
	for _, t := range tables {
		for _, r := range t.routes {
			ix.unifying(r, func(o *route, method string) {
				// Report each pair once, from the route read first.
				if o.seq < r.seq {
					return
				}
				call := method + " " + sharedPath(r.segs, o.segs)
				switch {
				case r.task != o.task && !exclusive(r, o):
					errs = append(errs, fmt.Sprintf("%s:%d: route %q and %s:%d: route %q can match one call (%s) as two tasks, %q and %q; make them exclusive with a query or body condition",
						r.file, r.line, r.text, o.file, o.line, o.text, call, r.task, o.task))
				case r.kind != o.kind:
					errs = append(errs, fmt.Sprintf("%s:%d: route %q and %s:%d: route %q can match one call (%s) but read its body as %s and as %s",
						r.file, r.line, r.text, o.file, o.line, o.text, call, kindName(r.kind), kindName(o.kind)))
				}
			})
		}
	}
	return errs
}

func kindName(kind string) string {
	if kind == "" {
		return "nothing"
	}
	return kind
}
