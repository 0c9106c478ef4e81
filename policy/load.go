package policy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
)

// stateKey is the root document SetState writes: data.elevate_state.
const stateKey = "elevate_state"

var statePath = storage.Path{stateKey}

// snapshot is one loaded bundle: its store, its prepared decision query and
// its catalog. A snapshot is never changed after it is published, except for
// the state written to its store.
type snapshot struct {
	store    storage.Store
	decision rego.PreparedEvalQuery
	catalog  Catalog
	clock    clockUse
	cache    *decisionCache // nil when decisions are not cached
	routes   *routeIndex    // the routes of the bundle's route tables; nil when it has none
	warnings []string
}

// build loads, compiles and prepares bundle. state, if not nil, is written to
// the new store before the snapshot is returned.
func build(ctx context.Context, cfg Config, bundle fs.FS, state ast.Value) (*snapshot, error) {
	if bundle == nil {
		return nil, fmt.Errorf("%w: no bundle", ErrInvalidBundle)
	}
	b, err := readBundle(bundle, false)
	if err != nil {
		return nil, err
	}

	store := inmem.NewFromObjectWithOpts(b.data, inmem.OptReturnASTValuesOnRead(true))
	if err := writeState(ctx, store, state); err != nil {
		return nil, err
	}

	compiler, err := compile(ctx, store, b.modules)
	if err != nil {
		return nil, err
	}
	if err := b.tables.checkCatalog(ctx, compiler, store, cfg.Upstreams); err != nil {
		return nil, err
	}

	decisionRef, err := parseDataRef(cfg.Query)
	if err != nil {
		return nil, fmt.Errorf("policy.query: %w", err)
	}
	if len(compiler.GetRules(decisionRef)) == 0 {
		return nil, fmt.Errorf("%w: no rule defines %s", ErrInvalidBundle, decisionRef)
	}
	decision, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(decisionRef)))),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: prepare %s: %w", ErrInvalidBundle, decisionRef, err)
	}

	catalog, err := readCatalog(ctx, cfg, compiler, store)
	if err != nil {
		return nil, err
	}
	if err := prove(ctx, proofKey(b.digest, cfg), compiler, store, decisionRef, decision, catalog); err != nil {
		return nil, err
	}
	// The proof wrote states of its own: put back the one the snapshot
	// starts with.
	if err := writeState(ctx, store, state); err != nil {
		return nil, err
	}
	snap := &snapshot{store: store, decision: decision, catalog: catalog, clock: analyse(b.modules),
		routes: b.tables.index, warnings: b.tables.warnings(catalog, cfg.Upstreams)}
	if snap.clock.cacheable && cfg.CacheSize > 0 {
		snap.cache = newDecisionCache(cfg.CacheSize)
	}
	return snap, nil
}

// writeState makes doc data.elevate_state in store; a nil doc removes it.
func writeState(ctx context.Context, store storage.Store, doc ast.Value) error {
	if doc == nil {
		err := storage.WriteOne(ctx, store, storage.RemoveOp, statePath, nil)
		if err != nil && !storage.IsNotFound(err) {
			return fmt.Errorf("policy: write state: %w", err)
		}
		return nil
	}
	if err := storage.WriteOne(ctx, store, storage.AddOp, statePath, doc); err != nil {
		return fmt.Errorf("policy: write state: %w", err)
	}
	return nil
}

// fileKind is what the engine makes of a file of a bundle.
type fileKind int

const (
	moduleFile fileKind = iota + 1 // *.rego: a Rego module
	testFile                       // *_test.rego: a test, run by the tester, never loaded
	dataFile                       // data.json, data.yaml, data.yml: merged at the path of its directory
	tableFile                      // any other *.yaml, *.yml or *.json: a route table
)

// bundleFile is a file of a bundle that the engine or its tester reads.
type bundleFile struct {
	name string // slash-separated, relative to the bundle root
	kind fileKind
}

// bundleFiles lists the files of bundle that mean something to the engine,
// in lexical order: the one place that decides which files of a bundle are
// read, and as what. Names starting with "." are skipped, directories with
// them; so are files of any other kind.
func bundleFiles(bundle fs.FS) ([]bundleFile, error) {
	var files []bundleFile
	err := fs.WalkDir(bundle, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidBundle, err)
		}
		base := d.Name()
		if name != "." && strings.HasPrefix(base, ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		switch ext := path.Ext(base); {
		case strings.HasSuffix(base, "_test.rego"):
			files = append(files, bundleFile{name, testFile})
		case ext == ".rego":
			files = append(files, bundleFile{name, moduleFile})
		case base == "data.json" || base == "data.yaml" || base == "data.yml":
			files = append(files, bundleFile{name, dataFile})
		case ext == ".json" || ext == ".yaml" || ext == ".yml":
			files = append(files, bundleFile{name, tableFile})
		}
		return nil
	})
	return files, err
}

// Bundle is a policy bundle as the engine reads it, for tools that run its
// tests or look into it (the Rego tests of the default bundle are run so).
type Bundle struct {
	// Modules are the Rego modules the engine compiles, by file name: the
	// bundle's *.rego files and, named after its file, the module each
	// route table generates.
	Modules map[string]*ast.Module
	// Tests are the *_test.rego modules, which the engine does not load.
	Tests map[string]*ast.Module
	// Data is the document its data files make.
	Data map[string]any
}

// ReadBundle reads bundle as New does without compiling it. It refuses,
// with ErrInvalidBundle naming file and line, a file that does not parse
// and route tables that are wrong on their own or together; the checks that
// need the compiled bundle, and the proof, are New's.
func ReadBundle(bundle fs.FS) (*Bundle, error) {
	c, err := readBundle(bundle, true)
	if err != nil {
		return nil, err
	}
	return &Bundle{Modules: c.modules, Tests: c.tests, Data: c.data}, nil
}

// contents is a bundle as read: its modules (with the modules its route
// tables generate), its tests when asked for, its data document and its
// route tables.
type contents struct {
	modules map[string]*ast.Module
	tests   map[string]*ast.Module
	data    map[string]any
	tables  *tableSet
	digest  [sha256.Size]byte // of the names and contents of the files read, in order
}

// readBundle reads the files bundleFiles lists: it parses the modules (and
// the tests, if tests), merges the data files, and parses, checks and
// compiles the route tables (see loadTables).
func readBundle(bundle fs.FS, tests bool) (*contents, error) {
	c := &contents{modules: map[string]*ast.Module{}, data: map[string]any{}}
	if tests {
		c.tests = map[string]*ast.Module{}
	}
	h := sha256.New()
	read := func(name string) ([]byte, error) {
		src, err := fs.ReadFile(bundle, name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidBundle, err)
		}
		for _, b := range [][]byte{[]byte(name), src} {
			_, _ = h.Write(binary.AppendUvarint(nil, uint64(len(b))))
			_, _ = h.Write(b)
		}
		return src, nil
	}
	files, err := bundleFiles(bundle)
	if err != nil {
		return nil, err
	}
	var tables []string
	tableSrc := map[string][]byte{}
	for _, f := range files {
		name := f.name
		if f.kind == testFile && !tests {
			continue
		}
		src, err := read(name)
		if err != nil {
			return nil, err
		}
		switch f.kind {
		case moduleFile, testFile:
			m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidBundle, err)
			}
			if f.kind == testFile {
				c.tests[name] = m
				continue
			}
			if m.Package.Path.HasPrefix(ast.DefaultRootRef.Append(ast.StringTerm(stateKey))) {
				return nil, fmt.Errorf("%w: %s:%d: package %s is reserved for the engine's state",
					ErrInvalidBundle, name, m.Package.Location.Row, m.Package.Path)
			}
			c.modules[name] = m
		case dataFile:
			var doc any
			if path.Base(name) == "data.json" {
				err = util.UnmarshalJSON(src, &doc)
			} else {
				err = util.Unmarshal(src, &doc)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrInvalidBundle, name, err)
			}
			obj, ok := doc.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%w: %s: data must be an object", ErrInvalidBundle, name)
			}
			if err := mergeAt(c.data, dirSegments(name), obj); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrInvalidBundle, name, err)
			}
			if _, ok := c.data[stateKey]; ok {
				return nil, fmt.Errorf("%w: %s: data.%s is reserved for the engine's state", ErrInvalidBundle, name, stateKey)
			}
		case tableFile:
			tables = append(tables, name)
			tableSrc[name] = src
		}
	}
	if c.tables, err = loadTables(tables, tableSrc); err != nil {
		return nil, err
	}
	for name, m := range c.tables.modules {
		c.modules[name] = m
	}
	if len(c.modules) == 0 {
		return nil, fmt.Errorf("%w: no .rego module", ErrInvalidBundle)
	}
	h.Sum(c.digest[:0])
	return c, nil
}

// dirSegments returns the directories of a slash-separated file name.
func dirSegments(name string) []string {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	return strings.Split(dir, "/")
}

// mergeAt merges obj into data at the path segs. Objects merge key by key;
// any other value may be given once only.
func mergeAt(data map[string]any, segs []string, obj map[string]any) error {
	for i, seg := range segs {
		next, ok := data[seg]
		if !ok {
			next = map[string]any{}
			data[seg] = next
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("data.%s is already set by another data file", strings.Join(segs[:i+1], "."))
		}
		data = m
	}
	return merge(data, obj, segs)
}

func merge(dst, src map[string]any, at []string) error {
	for k, v := range src {
		here := append(slices.Clip(at), k)
		old, ok := dst[k]
		if !ok {
			dst[k] = v
			continue
		}
		oldObj, ok1 := old.(map[string]any)
		newObj, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("data.%s is already set by another data file", strings.Join(here, "."))
		}
		if err := merge(oldObj, newObj, here); err != nil {
			return err
		}
	}
	return nil
}

// compile compiles modules in strict mode (unused variables, arguments and
// imports, deprecated built-ins are errors) against the base documents in
// store, so that a rule and a data file cannot define the same path.
func compile(ctx context.Context, store storage.Store, modules map[string]*ast.Module) (*ast.Compiler, error) {
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: open store: %w", err)
	}
	defer store.Abort(ctx, txn)

	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithStrict(true).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
	compiler.Compile(modules)
	if compiler.Failed() {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBundle, compiler.Errors)
	}
	return compiler, nil
}

// evalRef evaluates the document at ref once, at load.
func evalRef(ctx context.Context, compiler *ast.Compiler, store storage.Store, ref ast.Ref) (rego.ResultSet, error) {
	rs, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
	).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: evaluate %s: %s", ErrInvalidBundle, ref, explain(compiler, err))
	}
	return rs, nil
}

// readCatalog evaluates the catalog index once. An undefined index is an
// empty catalog; an index of the wrong shape, or one that lists errors, makes
// the bundle invalid.
func readCatalog(ctx context.Context, cfg Config, compiler *ast.Compiler, store storage.Store) (Catalog, error) {
	cat := Catalog{Tasks: map[string]TaskInfo{}, Roles: map[string][]string{}, RoleGroups: map[string][]string{}}
	ref, err := parseDataRef(cfg.CatalogQuery)
	if err != nil {
		return cat, fmt.Errorf("policy.catalog_query: %w", err)
	}
	rs, err := evalRef(ctx, compiler, store, ref)
	if err != nil {
		return cat, err
	}
	if len(rs) == 0 {
		return cat, nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: "+format, append([]any{ErrInvalidBundle, ref}, args...)...)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return cat, bad("more than one result")
	}
	doc, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return cat, bad("not an object")
	}

	if errs, ok := doc["errors"]; ok {
		list, ok := errs.([]any)
		if !ok {
			return cat, bad("errors is not a set")
		}
		if len(list) > 0 {
			msgs := make([]string, 0, len(list))
			for _, e := range list {
				msgs = append(msgs, fmt.Sprint(e))
			}
			slices.Sort(msgs)
			return cat, bad("%s", strings.Join(msgs, "; "))
		}
	}

	if v, ok := doc["tasks"]; ok {
		tasks, ok := v.(map[string]any)
		if !ok {
			return cat, bad("tasks is not an object")
		}
		for name, v := range tasks {
			info, ok := v.(map[string]any)
			if !ok {
				return cat, bad("task %s is not an object", name)
			}
			var ti TaskInfo
			if ti.Upstream, ok = info["upstream"].(string); !ok || ti.Upstream == "" {
				return cat, bad("task %s names no upstream", name)
			}
			if r, ok := info["read"]; ok {
				if ti.Read, ok = r.(bool); !ok {
					return cat, bad("task %s: read is not a boolean", name)
				}
			}
			if d, ok := info["description"]; ok {
				if ti.Description, ok = d.(string); !ok {
					return cat, bad("task %s: description is not a string", name)
				}
			}
			cat.Tasks[name] = ti
		}
	}

	for key, into := range map[string]map[string][]string{"roles": cat.Roles, "role_groups": cat.RoleGroups} {
		v, ok := doc[key]
		if !ok {
			continue
		}
		sets, ok := v.(map[string]any)
		if !ok {
			return cat, bad("%s is not an object", key)
		}
		for name, v := range sets {
			list, ok := v.([]any)
			if !ok {
				return cat, bad("%s %s is not a set of task names", key, name)
			}
			tasks := make([]string, 0, len(list))
			for _, t := range list {
				task, ok := t.(string)
				if !ok {
					return cat, bad("%s %s is not a set of task names", key, name)
				}
				if _, known := cat.Tasks[task]; !known {
					return cat, bad("%s %s lists unknown task %s", key, name, task)
				}
				tasks = append(tasks, task)
			}
			slices.Sort(tasks)
			into[name] = slices.Compact(tasks)
		}
	}
	return cat, nil
}
