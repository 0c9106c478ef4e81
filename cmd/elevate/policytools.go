package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/proxy"
)

// The tools for the people who write policy: they read a bundle here, as
// serve would, and need no server.

// bundleFlags choose the bundle a tool reads: the embedded one with the
// directories given layered over it (as policy.dirs does), else the bundle
// of --config (policy.dir, or policy.dirs over the embedded one), else the
// embedded one alone.
type bundleFlags struct {
	config string
	dev    bool
}

func (b *bundleFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&b.config, "config", "", "read the bundle (policy.dir or policy.dirs) and the upstreams of this configuration file, when no DIR is given")
	c.Flags().BoolVar(&b.dev, "dev", false, "with --config: count the demo upstream of serve --dev as configured")
	_ = c.MarkFlagFilename("config", "yaml", "yml")
}

// bundle is the bundle the tool reads, what to call it, and the names of
// the configured upstreams (nil without --config).
func (b *bundleFlags) bundle(ctx context.Context, dirs []string) (fs.FS, string, []string, error) {
	if len(dirs) > 0 {
		if b.config != "" {
			return nil, "", nil, usageError("give DIR arguments or --config, not both")
		}
		if err := dirsExist("DIR", dirs); err != nil {
			return nil, "", nil, err
		}
		return layeredBundle(dirs), "the embedded bundle with " + strings.Join(dirs, ", ") + " over it", nil, nil
	}
	if b.config == "" {
		if b.dev {
			return nil, "", nil, usageError("--dev: only with --config")
		}
		return layeredBundle(nil), "the embedded bundle", nil, nil
	}
	c, err := loadConfig(b.config)
	if err != nil {
		return nil, "", nil, usageError("--config: %v", err)
	}
	if err := c.Policy.validate(); err != nil {
		return nil, "", nil, usageError("--config: %v", err)
	}
	upstreams, err := bundleUpstreams(ctx, c, b.dev)
	if err != nil {
		return nil, "", nil, err
	}
	what := "the embedded bundle"
	if dirs := c.Policy.dirs(); c.Policy.Dir != "" {
		what = dirs
	} else if dirs != "" {
		what += " with " + dirs + " over it"
	}
	return c.Policy.bundle(), what, upstreams, nil
}

// bundleUpstreams are the upstreams the route tables of c's bundle may
// route to: the configured ones (with the demo upstream in --dev), and the
// upstreams of the built-in catalogs, which come with every layered bundle
// whether their upstreams are configured or not: only the routes of the
// layers must reach a configured upstream. A bundle of policy.dir replaces
// the embedded one whole, often as a copy of it: it is not checked against
// the configured upstreams (nil).
func bundleUpstreams(ctx context.Context, c Config, dev bool) ([]string, error) {
	var demo *proxy.Upstream
	if dev {
		d := demoRoute("http://127.0.0.1/")
		demo = &d
	}
	if c.Policy.Dir != "" {
		return nil, nil
	}
	upstreams := []string{}
	for _, u := range c.proxyConfig(demo).Upstreams {
		if u.Type == proxy.TypeKubernetes {
			continue // the Kubernetes catalog serves every kubernetes upstream
		}
		upstreams = append(upstreams, u.Name)
	}
	builtIn, err := builtInUpstreams(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range builtIn {
		if !slices.Contains(upstreams, u) {
			upstreams = append(upstreams, u)
		}
	}
	return upstreams, nil
}

// builtInUpstreams are the upstreams of the embedded bundle's catalogs.
func builtInUpstreams(ctx context.Context) ([]string, error) {
	e, err := policy.New(ctx, policy.Config{Bundle: layeredBundle(nil)})
	if err != nil {
		return nil, fmt.Errorf("the embedded bundle: %w", err)
	}
	var out []string
	for _, t := range e.Catalog().Tasks {
		if !slices.Contains(out, t.Upstream) {
			out = append(out, t.Upstream)
		}
	}
	slices.Sort(out)
	return out, nil
}

func policyTestCmd(g *globals) *cobra.Command {
	var bf bundleFlags
	var verbose bool
	c := &cobra.Command{
		Use:   "test [DIR...] [--config FILE]",
		Short: "Run the Rego tests of the policy bundle (no server, no opa needed)",
		Long: `Run the Rego tests (test_ rules of *_test.rego files) of the policy bundle
with OPA's tester, on the bundle as serve loads it: route tables compiled to
the Rego they generate. The bundle is the embedded one with each DIR layered
over it (as policy.dirs does), else the bundle of --config, else the
embedded one. Each failed test is named with why it failed; the exit status
is 1 when any test failed or the bundle cannot be read.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, dirs []string) error {
			b, what, _, err := bf.bundle(cmd.Context(), dirs)
			if err != nil {
				return err
			}
			r, err := policy.Test(cmd.Context(), b)
			if err != nil {
				return exitError{code: exitFailed, msg: err.Error()}
			}
			if err := show(cmd, g, r, func(w io.Writer, r policy.TestReport) error { return testTable(w, r, what, verbose) }); err != nil {
				return err
			}
			if r.Failed() {
				return exitError{code: exitFailed, msg: fmt.Sprintf("%d of %d tests failed", countFailed(r), len(r.Results))}
			}
			return nil
		},
	}
	bf.add(c)
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "list the tests that passed too")
	c.ValidArgsFunction = dirsOnly
	return c
}

func countFailed(r policy.TestReport) int {
	n := 0
	for _, t := range r.Results {
		if t.Outcome == "fail" || t.Outcome == "error" {
			n++
		}
	}
	return n
}

// testTable shows the tests that did not pass (all with verbose), then a
// count of each outcome.
func testTable(w io.Writer, r policy.TestReport, what string, verbose bool) error {
	counts := map[string]int{}
	for _, t := range r.Results {
		counts[t.Outcome]++
		if t.Outcome == "pass" && !verbose {
			continue
		}
		line := fmt.Sprintf("%-5s %s (%s)", strings.ToUpper(t.Outcome), t.Name, t.Location)
		if t.Failure != "" {
			line += ": " + oneLine(t.Failure)
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d tests of %s: %d passed, %d failed, %d errors, %d skipped\n",
		len(r.Results), what, counts["pass"], counts["fail"], counts["error"], counts["skip"])
	return err
}

// LintReport is what policy lint found.
type LintReport struct {
	// Errors are why serve would refuse the bundle.
	Errors []string `json:"errors"`
	// Warnings are what serve would log about it.
	Warnings []string `json:"warnings"`
	// Untested are the routes no Rego test made match a call.
	Untested []policy.Route `json:"untested"`
}

func policyLintCmd(g *globals) *cobra.Command {
	var bf bundleFlags
	var strict bool
	c := &cobra.Command{
		Use:   "lint [DIR...] [--config FILE [--dev]] [--strict]",
		Short: "Check the policy bundle as serve would load it, and list the routes no test reaches",
		Long: `Check the policy bundle as serve would load it (the same checks and proof):
the errors it would be refused for, naming file and line, and the warnings it
would log; with --config, against the upstreams configured there. Then run its
Rego tests and list the routes (route table lines, Rego match rules) that no
test makes match a call. The bundle is chosen as for policy test. The exit
status is 1 when serve would refuse the bundle, and with --strict also when
there is a warning or an untested route.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, dirs []string) error {
			b, what, upstreams, err := bf.bundle(cmd.Context(), dirs)
			if err != nil {
				return err
			}
			r := lint(cmd.Context(), b, upstreams)
			if err := show(cmd, g, r, func(w io.Writer, r LintReport) error { return lintTable(w, r, what) }); err != nil {
				return err
			}
			switch {
			case len(r.Errors) > 0:
				return exitError{code: exitFailed, msg: fmt.Sprintf("serve would refuse %s", what)}
			case strict && len(r.Warnings)+len(r.Untested) > 0:
				return exitError{code: exitFailed, msg: fmt.Sprintf("%d warnings, %d untested routes (--strict)", len(r.Warnings), len(r.Untested))}
			}
			return nil
		},
	}
	bf.add(c)
	c.Flags().BoolVar(&strict, "strict", false, "exit 1 on warnings and untested routes too")
	c.ValidArgsFunction = dirsOnly
	return c
}

// lint loads b as serve would, with upstreams configured, and runs its
// tests for the routes they do not reach.
func lint(ctx context.Context, b fs.FS, upstreams []string) LintReport {
	r := LintReport{Errors: []string{}, Warnings: []string{}, Untested: []policy.Route{}}
	e, err := policy.New(ctx, policy.Config{Bundle: b, Upstreams: upstreams})
	if err != nil {
		r.Errors = append(r.Errors, strings.TrimPrefix(err.Error(), policy.ErrInvalidBundle.Error()+": "))
	} else {
		r.Warnings = append(r.Warnings, e.Warnings()...)
	}
	tr, err := policy.Test(ctx, b)
	switch {
	case err == nil:
		r.Untested = tr.Unreached
	case len(r.Errors) == 0 || !errors.Is(err, policy.ErrInvalidBundle):
		r.Errors = append(r.Errors, "tests: "+err.Error())
	}
	return r
}

// lintTable shows one finding a line, then a count of each kind.
func lintTable(w io.Writer, r LintReport, what string) error {
	var lines []string
	for _, e := range r.Errors {
		lines = append(lines, "error: "+oneLine(e))
	}
	for _, e := range r.Warnings {
		lines = append(lines, "warning: "+oneLine(e))
	}
	for _, u := range r.Untested {
		lines = append(lines, fmt.Sprintf("untested: %s:%d: no test makes a call match this route to %s", u.File, u.Line, u.Task))
	}
	lines = append(lines, fmt.Sprintf("%s: %d errors, %d warnings, %d untested routes", what, len(r.Errors), len(r.Warnings), len(r.Untested)))
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}

// dirsOnly completes DIR arguments with directories.
func dirsOnly(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}
