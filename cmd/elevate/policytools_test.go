package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// writeFiles writes files (slash-separated names) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte(src), 0o600))
	}
}

// acmeTable is a route table a user adds for an upstream of their own.
const acmeTable = `upstream: acme
tasks:
  Acme\Get-Widget: {read: true}
  Acme\Remove-Widget: {description: Delete a widget}
routes:
  - GET /widgets/{id} -> Acme\Get-Widget
  - DELETE /widgets/{id} -> Acme\Remove-Widget
`

// TestPolicyTest: policy test runs the Rego tests of the embedded bundle,
// or of the bundle with directories layered over it, names each failure
// with why, and exits 1 when one fails.
func TestPolicyTest(t *testing.T) {
	r := runCLI(t, "policy", "test")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Regexp(t, `^\d+ tests of the embedded bundle: \d+ passed, 0 failed, 0 errors, 0 skipped\n$`, r.stdout)

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"catalog/acme.yaml": acmeTable,
		"catalog/acme_test.rego": `package acme_test

test_get_widget if {
	data.elevate.catalog.match == {"Acme\\Get-Widget"} with input as {"upstream": "acme", "method": "GET", "path": ["widgets", "w1"]}
}

test_remove_widget_is_a_read if {
	data.elevate.catalog.tasks["Acme\\Remove-Widget"].read
}
`,
	})
	r = runCLI(t, "policy", "test", dir)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, oneLineOf(t, r.stderr), "1 of ")
	require.Contains(t, r.stdout, "FAIL  data.acme_test.test_remove_widget_is_a_read (catalog/acme_test.rego:7): false at catalog/acme_test.rego:8: ")
	require.NotContains(t, r.stdout, "test_get_widget", "passing tests are listed with -v only")
	require.Contains(t, r.stdout, " tests of the embedded bundle with "+dir+" over it: ")

	r = runCLI(t, "-o", "json", "policy", "test", "-v", dir)
	require.Equal(t, 1, r.code)
	var report policy.TestReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &report))
	require.True(t, report.Failed())
	require.Contains(t, report.Unreached, policy.Route{File: "catalog/acme.yaml", Line: 7, Task: `Acme\Remove-Widget`})
	require.NotContains(t, report.Unreached, policy.Route{File: "catalog/acme.yaml", Line: 6, Task: `Acme\Get-Widget`})

	// The same directory through a configuration's policy.dirs.
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("policy: {dirs: ["+dir+"]}\n"), 0o600))
	r = runCLI(t, "policy", "test", "--config", cfg)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stdout, "test_remove_widget_is_a_read")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "test", filepath.Join(dir, "missing")}, "is not a directory"},
		{[]string{"policy", "test", dir, "--config", cfg}, "DIR arguments or --config, not both"},
		{[]string{"policy", "lint", "--dev"}, "--dev: only with --config"},
		{[]string{"policy", "lint", "--config", filepath.Join(dir, "missing.yaml")}, "--config"},
	} {
		r := runCLI(t, tc.args...)
		require.Equal(t, 2, r.code, "elevate %v: %s", tc.args, r.stderr)
		require.Contains(t, oneLineOf(t, r.stderr), tc.want)
	}
}

// TestPolicyLint: policy lint says what serve would refuse (naming file
// and line) and warn about, against the upstreams of --config, and which
// routes no test reaches.
func TestPolicyLint(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"catalog/acme.yaml": acmeTable})

	r := runCLI(t, "policy", "lint", dir)
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "untested: catalog/acme.yaml:6: no test makes a call match this route to Acme\\Get-Widget\n")
	require.Contains(t, r.stdout, "untested: catalog/acme.yaml:7: ")
	require.NotContains(t, r.stdout, "error:")
	require.Equal(t, 1, runCLI(t, "policy", "lint", "--strict", dir).code, "--strict fails on untested routes")
	// The embedded bundle itself: every built-in route has a test.
	r = runCLI(t, "policy", "lint", "--strict")
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "0 untested routes")

	// Against a configuration: its upstreams are the configured ones.
	cfgDir := t.TempDir()
	config := func(upstreams ...string) string {
		var b strings.Builder
		b.WriteString("policy: {dirs: [" + dir + "]}\nupstreams:\n")
		for _, u := range upstreams {
			b.WriteString("  - {name: " + u + ", url: \"http://127.0.0.1:9/\", prefix: /" + u + "/}\n")
		}
		f := filepath.Join(cfgDir, strings.Join(upstreams, "-")+".yaml")
		require.NoError(t, os.WriteFile(f, []byte(b.String()), 0o600))
		return f
	}
	// The built-in catalogs need not have their upstreams configured.
	r = runCLI(t, "policy", "lint", "--config", config("acme", "search"))
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, `warning: upstream "search" is configured, but no route table or catalog routes calls to it`)
	require.NotContains(t, r.stdout, "error:")
	r = runCLI(t, "-o", "json", "policy", "lint", "--config", config("rabbitmq"), "--dev")
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	var report LintReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &report))
	require.Len(t, report.Errors, 1)
	require.Contains(t, report.Errors[0], `catalog/acme.yaml:1: upstream "acme" is not configured`)
	require.Contains(t, oneLineOf(t, r.stderr), "serve would refuse")

	// A layer that replaces a built-in catalog with a broken one.
	broken := t.TempDir()
	writeFiles(t, broken, map[string]string{"catalog/exchange.yaml": "upstream: exchange\nroutes:\n  - GET /mailboxes -> Exchange\\Get-Mailboxes\n"})
	r = runCLI(t, "policy", "lint", broken)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Regexp(t, `(?m)^error: catalog/exchange\.yaml:3: .*Get-Mailboxes`, r.stdout)
}

// TestServeChecksRoutesAgainstUpstreams: serve refuses a layer's route
// table for an upstream that is not configured, naming the file, while the
// built-in catalogs' upstreams need no configuration; a configured upstream
// no table routes to is logged as a warning.
func TestServeChecksRoutesAgainstUpstreams(t *testing.T) {
	layer := t.TempDir()
	writeFiles(t, layer, map[string]string{"catalog/acme.yaml": acmeTable})
	dataDir := t.TempDir()
	addrs, err := freeAddrs(2)
	require.NoError(t, err)
	cfg := filepath.Join(t.TempDir(), "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("policy:\n  dirs: ["+layer+"]\nupstreams:\n  - {name: other, url: http://127.0.0.1:1, prefix: /other/}\n"), 0o600))
	r := runCLI(t, "serve", "--dev", "--data-dir", dataDir, "--proxy-addr", addrs[0], "--control-addr", addrs[1], "--config", cfg)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stderr, `catalog/acme.yaml:1: upstream "acme" is not configured`)

	// Configured: it starts, and warns about the upstream nothing routes to.
	require.NoError(t, os.WriteFile(cfg, []byte("policy:\n  dirs: ["+layer+"]\nupstreams:\n  - {name: acme, url: http://127.0.0.1:1, prefix: /acme/}\n  - {name: other, url: http://127.0.0.1:1, prefix: /other/}\n"), 0o600))
	dataDir = t.TempDir()
	s, err := startServeWith(dataDir, []string{"--data-dir", dataDir, "--config", cfg})
	require.NoError(t, err)
	t.Cleanup(s.stop)
	require.Eventually(t, func() bool {
		return strings.Contains(s.stderr.String(), `upstream \"other\" is configured, but no route table or catalog routes calls to it`)
	}, 30*time.Second, 20*time.Millisecond, "the warning is logged")
}
