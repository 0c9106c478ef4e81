package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
	"github.com/elevate-pam/elevate/rego"
)

const exchangeOpenAPI = "../../test/testdata/openapi/exchange.yaml"

// TestCatalogImport: the draft goes to standard output or -o FILE (the
// command's own -o, not the global table|json), the review list to
// standard error; a document from standard input reads the same.
func TestCatalogImport(t *testing.T) {
	r := runCLI(t, "catalog", "import", exchangeOpenAPI, "--upstream", "exchange", "--scope", "Exchange")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "upstream: exchange\n")
	require.Contains(t, r.stdout, `  - DELETE /journal-rules/{id} -> Exchange\Remove-Journal-Rule`)
	require.Contains(t, r.stderr, "drafted 6 tasks for upstream exchange; review 1:\n")
	require.Contains(t, r.stderr, `POST /mailboxes/{id}/search (Exchange\Search-Mailbox): named like a read`)

	out := filepath.Join(t.TempDir(), "exchange.yaml")
	r2 := runCLI(t, "catalog", "import", exchangeOpenAPI, "--upstream", "exchange", "--scope", "Exchange", "-o", out)
	require.Equal(t, 0, r2.code, r2.stderr)
	require.Empty(t, r2.stdout)
	written, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, r.stdout, string(written))

	doc, err := os.Open(exchangeOpenAPI)
	require.NoError(t, err)
	defer doc.Close()
	stdin := os.Stdin
	os.Stdin = doc
	defer func() { os.Stdin = stdin }()
	r3 := runCLI(t, "catalog", "import", "-", "--upstream", "exchange", "--scope", "Exchange")
	require.Equal(t, 0, r3.code, r3.stderr)
	require.Equal(t, r.stdout, r3.stdout)
}

// TestCatalogImportRefusals: a document that is no OpenAPI document, or
// cannot be read, fails as asked (1); a command-line mistake is usage (2).
// Each says why in one line.
func TestCatalogImportRefusals(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	big := file("big.json", `{"openapi": "3.0.3", "x": "`+strings.Repeat("a", 10<<20)+`"}`)
	for _, tc := range []struct {
		desc string
		args []string
		code int
		want string
	}{
		{"random JSON", []string{file("random.json", `{"a": 1}`)}, 1, "random.json: not a usable OpenAPI document: no openapi or swagger key at the top level"},
		{"HTML", []string{file("page.html", "<html><body>docs</body></html>")}, 1, "looks like HTML"},
		{"truncated JSON", []string{file("cut.json", `{"openapi": "3.0.3", "paths": {`)}, 1, "not valid JSON or YAML"},
		{"a parameter across segments", []string{file("span.yaml", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /f/{a/b}:\n    get: {responses: {'200': {description: ok}}}\n")}, 1, "a parameter spans segments"},
		{"a 10 MB document", []string{big}, 1, "big.json: larger than 8 MiB"},
		{"a missing file", []string{filepath.Join(dir, "nope.yaml")}, 1, "no such file"},
		{"-o into a missing directory", []string{exchangeOpenAPI, "-o", filepath.Join(dir, "no", "x.yaml")}, 1, "-o:"},
		{"no document", nil, 2, "accepts 1 arg(s), received 0"},
		{"a bad upstream name", []string{exchangeOpenAPI, "--upstream", "my api"}, 2, "--upstream:"},
		{"a scope with a backslash", []string{exchangeOpenAPI, "--scope", `A\B`}, 2, "--scope:"},
		{"the global -o json before the command", []string{exchangeOpenAPI, "-o", "json"}, 2, "-o: catalog import writes YAML to a file"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := runCLI(t, append([]string{"catalog", "import"}, tc.args...)...)
			require.Equal(t, tc.code, r.code, "%s%s", r.stdout, r.stderr)
			require.Contains(t, oneLineOf(t, r.stderr), tc.want)
			require.Empty(t, r.stdout)
		})
	}
}

// TestCatalogImportDraftLoads: each draft loads in the policy engine beside
// the embedded bundle, as a policy.dirs layer would add it, without a
// warning; its tasks are in the catalog with their reads, and calls are
// judged as the tasks the draft names. Real published documents (put in
// place by test/e2e/install.sh) are drafted and loaded too when present.
func TestCatalogImportDraftLoads(t *testing.T) {
	type judged struct{ method, path, task string }
	for _, tc := range []struct {
		desc, doc, upstream, scope string
		calls                      []judged
	}{
		{"the demo Exchange API (OpenAPI 3)", exchangeOpenAPI, "exchange-openapi", "ExchangeAPI", []judged{
			{"GET", "/mailboxes/m1", `ExchangeAPI\Get-Mailbox`},
			{"POST", "/mailboxes/m1/search", `ExchangeAPI\Search-Mailbox`},
			{"DELETE", "/journal-rules/r1", `ExchangeAPI\Remove-Journal-Rule`},
		}},
		{"a DNS API (Swagger 2.0)", "../../test/testdata/openapi/dns-swagger2.yaml", "dns", "DNS", []judged{
			{"HEAD", "/servers", `DNS\List-Servers`},
			{"DELETE", "/servers/s1/zones/example.org.", `DNS\Delete-Servers-Server-Id-Zones-Zone-Id`},
			{"GET", "/servers/localhost/statistics", `DNS\Get-Statistics`},
		}},
		{"the Docker Engine API (Swagger 2.0, Debian)", "/usr/share/gocode/src/github.com/docker/docker/api/swagger.yaml", "docker", "Docker", []judged{
			{"DELETE", "/containers/c1", `Docker\Container-Delete`},
			{"GET", "/containers/json", `Docker\Container-List`},
		}},
		{"the Ceph REST API (OpenAPI 3, Debian)", "/usr/share/ceph/mgr/dashboard/openapi.yaml", "ceph", "Ceph", []judged{
			{"DELETE", "/api/pool/rbd", `Ceph\Delete-Pool-Pool-Name`},
			{"GET", "/api/block/image/clone_format_version", `Ceph\Get-Block-Image-Image-Spec`},
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := os.Stat(tc.doc); errors.Is(err, os.ErrNotExist) {
				t.Skipf("%s is not here: test/e2e/install.sh puts it in place from its Debian package", tc.doc)
			}
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "catalog"), 0o755))
			out := filepath.Join(dir, "catalog", tc.upstream+".yaml")
			r := runCLI(t, "catalog", "import", tc.doc, "--upstream", tc.upstream, "--scope", tc.scope, "-o", out)
			require.Equal(t, 0, r.code, r.stderr)
			draft, err := os.ReadFile(out)
			require.NoError(t, err)

			// A hand-written table beside the draft tells an engine that
			// reads route tables from one that does not yet.
			require.NoError(t, os.WriteFile(filepath.Join(dir, "catalog", "probe.yaml"),
				[]byte("upstream: probe\ntasks:\n  Probe\\Get-Thing: {read: true}\nroutes:\n  - GET /thing -> Probe\\Get-Thing\n"), 0o644))

			ctx := context.Background()
			e, err := policy.New(ctx, policy.Config{Bundle: policy.Layers(rego.Bundle, os.DirFS(dir))})
			require.NoError(t, err, "%s", draft)
			if _, ok := e.Catalog().Tasks[`Probe\Get-Thing`]; !ok {
				t.Skip("the policy engine does not read route tables yet")
			}
			require.Empty(t, e.Warnings())
			drafted := 0
			for name, info := range e.Catalog().Tasks {
				if info.Upstream == tc.upstream {
					drafted++
					require.True(t, strings.HasPrefix(name, tc.scope+`\`), name)
					require.Contains(t, string(draft), "  "+name+": {", name)
				}
			}
			require.Equal(t, strings.Count(string(draft), "\n  - "), drafted, "one task per route")

			require.NoError(t, e.SetState(ctx, policy.State{}))
			for _, c := range tc.calls {
				d, err := e.Eval(ctx, policy.Input{Method: c.method, Upstream: tc.upstream, Path: strings.Split(strings.TrimPrefix(c.path, "/"), "/"),
					Subject: policy.Subject{ID: "alice"}}, time.Now())
				require.NoError(t, err)
				require.Equal(t, c.task, d.Task, "%s %s", c.method, c.path)
			}
		})
	}
}
