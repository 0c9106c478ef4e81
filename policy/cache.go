package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// DefaultCacheSize is the number of decisions an Engine remembers when
// Config.CacheSize is zero.
const DefaultCacheSize = 4096

// The decision cache.
//
// A decision is a function of the input document, the bundle, the state
// document and the clock. The cache keys a decision on the whole input; a
// new bundle starts a new cache and a new state a new generation, so only
// the clock is left. A bundle is cacheable when it reads the clock only to
// compare it with a grant's window (g.not_before_ns or g.expires_at_ns of a
// g taken from input.grants, in the same rule body) and calls no other
// nondeterministic built-in (http.send, rand.intn, io.jwt.decode_verify,
// ...). Then a decision taken at now stays the decision at every instant
// strictly between the two window ends of the input's grants that enclose
// now, and the cache serves it only there.

// clockUse is what cacheability found out about a bundle.
type clockUse struct {
	cacheable bool
	why       string // why not, for the log
}

// analyse decides whether decisions of modules may be cached.
func analyse(modules map[string]*ast.Module) clockUse {
	names := make([]string, 0, len(modules))
	for n := range modules {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		if why := analyseModule(modules[name]); why != "" {
			return clockUse{why: name + ": " + why}
		}
	}
	return clockUse{cacheable: true}

}

func analyseModule(m *ast.Module) string {
	var why string
	allowed := 0 // clock reads inside a comparison with a grant window
	ast.WalkBodies(m, func(b ast.Body) bool {
		grants := grantVars(b)
		for _, e := range b {
			allowed += windowComparison(e, grants)
		}
		return false
	})
	reads := 0
	note := func(name string) {
		if name == "time.now_ns" {
			reads++
			return
		}
		if bi, ok := ast.BuiltinMap[name]; ok && bi.Nondeterministic && why == "" {
			why = "calls " + name
		}
	}
	ast.WalkExprs(m, func(e *ast.Expr) bool {
		if e.IsCall() {
			note(e.Operator().String())
		}
		return false
	})
	ast.WalkTerms(m, func(t *ast.Term) bool {
		if c, ok := t.Value.(ast.Call); ok && len(c) > 0 {
			note(c[0].String())
		}
		return false
	})
	if why == "" && reads != allowed {
		why = "reads time.now_ns() other than to compare it with a grant's not_before_ns or expires_at_ns"
	}
	return why
}

// grantVars are the variables a body takes from input.grants with
// `some g in input.grants` or `some _, g in input.grants`.
func grantVars(b ast.Body) map[ast.Var]bool {
	vars := map[ast.Var]bool{}
	inputGrants := ast.MustParseRef("input.grants")
	for _, e := range b {
		sd, ok := e.Terms.(*ast.SomeDecl)
		if !ok {
			continue
		}
		for _, sym := range sd.Symbols {
			c, ok := sym.Value.(ast.Call)
			if !ok || len(c) < 3 {
				continue
			}
			op := c[0].String()
			coll, ok := c[len(c)-1].Value.(ast.Ref)
			if !ok || !coll.Equal(inputGrants) || (op != "internal.member_2" && op != "internal.member_3") {
				continue
			}
			if v, ok := c[len(c)-2].Value.(ast.Var); ok {
				vars[v] = true
			}
		}
	}
	return vars
}

// windowComparison is 1 when e compares time.now_ns() with a window end of
// a grant variable, else 0.
func windowComparison(e *ast.Expr, grants map[ast.Var]bool) int {
	if !e.IsCall() || e.Negated || len(e.With) > 0 {
		return 0
	}
	switch e.Operator().String() {
	case "lt", "lte", "gt", "gte":
	default:
		return 0
	}
	ops := e.Operands()
	if len(ops) != 2 {
		return 0
	}
	isNow := func(t *ast.Term) bool {
		c, ok := t.Value.(ast.Call)
		return ok && len(c) == 1 && c[0].String() == "time.now_ns"
	}
	isWindow := func(t *ast.Term) bool {
		r, ok := t.Value.(ast.Ref)
		if !ok || len(r) != 2 {
			return false
		}
		v, ok := r[0].Value.(ast.Var)
		field, ok2 := r[1].Value.(ast.String)
		return ok && ok2 && grants[v] && (field == "not_before_ns" || field == "expires_at_ns")
	}
	if (isNow(ops[0]) && isWindow(ops[1])) || (isWindow(ops[0]) && isNow(ops[1])) {
		return 1
	}
	return 0
}

// decisionCache remembers decisions by input. It holds at most about twice
// its size: when the newer map fills, it becomes the older one and a fresh
// map starts, so entries used since the last turn survive.
type decisionCache struct {
	mu       sync.Mutex
	cur, old map[string]cached
	size     int
}

type cached struct {
	d      Decision
	gen    uint64
	lo, hi int64 // valid strictly between, in Unix nanoseconds
}

func newDecisionCache(size int) *decisionCache {
	return &decisionCache{cur: make(map[string]cached, size), size: size}
}

func (c *decisionCache) get(key []byte, gen uint64, now int64) (Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cur[string(key)]
	if !ok {
		if e, ok = c.old[string(key)]; ok {
			c.putLocked(string(key), e)
		}
	}
	if !ok || e.gen != gen || now <= e.lo || now >= e.hi {
		return Decision{}, false
	}
	return e.d.clone(), true
}

func (c *decisionCache) put(key []byte, e cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(string(key), e)
}

func (c *decisionCache) putLocked(key string, e cached) {
	if len(c.cur) >= c.size {
		c.old, c.cur = c.cur, make(map[string]cached, c.size)
	}
	c.cur[key] = e
}

// clone copies d so that a cached decision is never shared.
func (d Decision) clone() Decision {
	if d.Request != nil {
		t := *d.Request
		d.Request = &t
	}
	return d
}

// window is the open interval around now in which no window end of in's
// grants lies; ok is false when now is itself a window end.
func (in Input) window(now int64) (lo, hi int64, ok bool) {
	lo, hi = math.MinInt64, math.MaxInt64
	for _, g := range in.Grants {
		for _, b := range [2]int64{unixNano(g.NotBefore), unixNano(g.ExpiresAt)} {
			switch {
			case b == now:
				return 0, 0, false
			case b < now && b > lo:
				lo = b
			case b > now && b < hi:
				hi = b
			}
		}
	}
	return lo, hi, true
}

// key appends an encoding of in, with pv as its input.body and
// input.kubernetes (from parse), to buf that two inputs share only when they are equal: every
// string is length-prefixed and every list counted. Query keys are sorted;
// their values keep their order. The body is kept as a SHA-256 digest of
// such an encoding, so that a large body does not make a large key.
func (in Input) key(buf []byte, pv parsed) []byte {
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	strs := func(ss []string) {
		buf = binary.AppendUvarint(buf, uint64(len(ss)))
		for _, s := range ss {
			str(s)
		}
	}
	str(in.Method)
	str(in.Upstream)
	str(in.Host)
	strs(in.Path)
	buf = binary.AppendUvarint(buf, uint64(len(in.Query)))
	for _, k := range sortedKeys(in.Query) {
		str(k)
		strs(in.Query[k])
	}
	str(in.Subject.ID)
	strs(in.Subject.Groups)
	if in.Subject.MFA {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	str(in.Subject.Email)
	buf = binary.AppendUvarint(buf, uint64(len(in.Grants)))
	for _, g := range in.Grants {
		str(g.ID)
		str(g.RequestID)
		str(g.Scope)
		str(g.Target)
		buf = binary.AppendUvarint(buf, uint64(len(g.Constraint)))
		for _, k := range sortedKeys(g.Constraint) {
			str(k)
			str(g.Constraint[k])
		}
		buf = binary.AppendVarint(buf, unixNano(g.NotBefore))
		buf = binary.AppendVarint(buf, unixNano(g.ExpiresAt))
	}
	// input.kubernetes is read from the method, path and query, which
	// are in the key already; it is added anyway, so that the key never
	// depends on how it was read.
	for _, v := range [2]ast.Value{pv.kube, pv.body} {
		if v == nil {
			buf = append(buf, 0)
			continue
		}
		h := sha256.New()
		var scratch []byte
		writeValue(h, &scratch, v)
		buf = append(buf, 1)
		buf = h.Sum(buf)
	}
	return buf
}

// writeValue writes an encoding of v to h that two values share only when
// they are equal as Rego compares them, or nearly: a number is written as
// its text, so 1 and 1.0 differ (and are evaluated apart). Object keys and
// set members are sorted.
func writeValue(h hash.Hash, scratch *[]byte, v ast.Value) {
	write := func(tag byte, s string) {
		*scratch = append(binary.AppendUvarint(append((*scratch)[:0], tag), uint64(len(s))), s...)
		_, _ = h.Write(*scratch)
	}
	switch v := v.(type) {
	case ast.Null:
		write('n', "")
	case ast.Boolean:
		if v {
			write('t', "")
		} else {
			write('f', "")
		}
	case ast.Number:
		write('#', string(v))
	case ast.String:
		write('s', string(v))
	case *ast.Array:
		write('[', strconv.Itoa(v.Len()))
		for i := range v.Len() {
			writeValue(h, scratch, v.Elem(i).Value)
		}
	case ast.Object:
		keys := v.Keys()
		slices.SortFunc(keys, func(a, b *ast.Term) int { return a.Value.Compare(b.Value) })
		write('{', strconv.Itoa(len(keys)))
		for _, k := range keys {
			writeValue(h, scratch, k.Value)
			writeValue(h, scratch, v.Get(k).Value)
		}
	case ast.Set:
		elems := v.Sorted()
		write('<', strconv.Itoa(elems.Len()))
		for i := range elems.Len() {
			writeValue(h, scratch, elems.Elem(i).Value)
		}
	default:
		// No parsed body holds other values; written as their text.
		write('?', v.String())
	}
}

// keyBuffers recycles key buffers between calls.
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// cacheTime is now as the cache and Rego compare it.
func cacheTime(now time.Time) int64 { return unixNano(now) }
