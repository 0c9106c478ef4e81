package policy

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestResult is the outcome of one Rego test (a test_ rule of a *_test.rego
// file) of a bundle.
type TestResult struct {
	// Name is the test's package and rule, such as
	// data.elevate.catalog.test_get_queue.
	Name string `json:"name"`
	// Location is the test's file:line.
	Location string `json:"location"`
	// Outcome is "pass", "fail" (the test's body was false or undefined),
	// "error" (its evaluation failed) or "skip" (a todo_ test).
	Outcome string `json:"outcome"`
	// Failure says why a test failed or errored: the error, or the
	// expression that was false (file:line) and what the test printed.
	Failure  string        `json:"failure,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Route is a rule of the catalog's match document: a route of a route
// table (at the table's line) or a match rule of a Rego catalog.
type Route struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Task string `json:"task"`
}

func (r Route) String() string { return fmt.Sprintf("%s:%d: %s", r.File, r.Line, r.Task) }

// TestReport is what Test found.
type TestReport struct {
	// Results are the bundle's tests, by name.
	Results []TestResult `json:"results"`
	// Unreached are the routes that no test made match a call, by file
	// and line. A route of several methods is reached when one of them is.
	Unreached []Route `json:"unreached"`
}

// Failed reports whether a test failed or errored.
func (r TestReport) Failed() bool {
	return slices.ContainsFunc(r.Results, func(t TestResult) bool { return t.Outcome == "fail" || t.Outcome == "error" })
}

// catalogMatch is the document whose rules are routes.
var catalogMatch = ast.MustParseRef("data.elevate.catalog.match")

// Test runs the Rego tests of bundle (its *_test.rego files) with OPA's
// tester, on the bundle as the engine reads it: route tables compiled to
// the modules they generate, data files merged. It also reports the routes
// no test reached. The error is for a bundle whose tests cannot run: one
// ReadBundle refuses, or one that does not compile.
func Test(ctx context.Context, bundle fs.FS) (TestReport, error) {
	b, err := ReadBundle(bundle)
	if err != nil {
		return TestReport{}, err
	}
	modules := maps.Clone(b.Modules)
	maps.Copy(modules, b.Tests)

	// Tracing gives each result the events of its evaluation: the rules
	// that produced a value (routes reached) and the expressions that were
	// false (why a test failed).
	reached := map[Route]bool{}
	ch, err := tester.NewRunner().
		SetStore(inmem.NewFromObject(b.Data)).
		SetModules(modules).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		EnableTracing(true).
		RunTests(ctx, nil)
	if err != nil {
		return TestReport{}, fmt.Errorf("%w: %w", ErrInvalidBundle, err)
	}
	report := TestReport{Results: []TestResult{}, Unreached: []Route{}}
	for r := range ch {
		report.Results = append(report.Results, testResult(r))
		for _, ev := range r.Trace {
			if rule, ok := ev.Node.(*ast.Rule); ok && ev.Op == topdown.ExitOp {
				if route, ok := matchRoute(rule); ok {
					reached[route] = true
				}
			}
		}
	}
	slices.SortFunc(report.Results, func(a, b TestResult) int { return strings.Compare(a.Name, b.Name) })

	for _, route := range routes(b.Modules) {
		if !reached[route] {
			report.Unreached = append(report.Unreached, route)
		}
	}
	return report, nil
}

func testResult(r *tester.Result) TestResult {
	out := TestResult{Name: r.Package + "." + r.Name, Outcome: "pass", Duration: r.Duration}
	if r.Location != nil {
		out.Location = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
	}
	var why []string
	switch {
	case r.Error != nil:
		out.Outcome = "error"
		why = append(why, r.Error.Error())
	case r.Skip:
		out.Outcome = "skip"
	case r.Fail:
		out.Outcome = "fail"
		if e := failedAt(r); e != nil {
			why = append(why, fmt.Sprintf("false at %s:%d: %s", e.Location.File, e.Location.Row, e))
		} else {
			why = append(why, "the test is false or undefined")
		}
	}
	if out.Outcome != "pass" && len(r.Output) > 0 {
		why = append(why, "printed: "+strings.TrimSpace(string(r.Output)))
	}
	out.Failure = strings.Join(why, "; ")
	return out
}

// routes lists the rules of data.elevate.catalog.match in modules, one per
// file and line, by file and line.
func routes(modules map[string]*ast.Module) []Route {
	seen := map[Route]bool{}
	var out []Route
	for _, m := range modules {
		for _, rule := range m.Rules {
			r, ok := matchRoute(rule)
			if ok && !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b Route) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), strings.Compare(a.Task, b.Task))
	})
	return out
}

// matchRoute is the route rule is, if it is a rule of the match document.
func matchRoute(rule *ast.Rule) (Route, bool) {
	if rule.Module == nil || rule.Location == nil || !rule.Module.Package.Path.Extend(rule.Head.Ref().GroundPrefix()).Equal(catalogMatch) {
		return Route{}, false
	}
	r := Route{File: rule.Location.File, Line: rule.Location.Row}
	if rule.Head.Key != nil {
		if s, ok := rule.Head.Key.Value.(ast.String); ok {
			r.Task = string(s)
		} else {
			// A task computed from the call (the Kubernetes catalog's):
			// the compiler renames the head's terms, so the text of the
			// key differs between the parsed rule and the evaluated one.
			r.Task = "the task the call names"
		}
	}
	return r, true
}

// failedAt is the last expression of the test's own file that was false
// in its evaluation: the one that failed the test, or nil.
func failedAt(r *tester.Result) *ast.Expr {
	if r.Location == nil {
		return nil
	}
	for i := len(r.Trace) - 1; i >= 0; i-- {
		ev := r.Trace[i]
		if ev.Op != topdown.FailOp {
			continue
		}
		if e, ok := ev.Node.(*ast.Expr); ok && e.Location != nil && e.Location.File == r.Location.File {
			return e
		}
	}
	return nil
}
