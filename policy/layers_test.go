package policy_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

func TestLayersIsAnFSOfEveryLayersFiles(t *testing.T) {
	lower := fstest.MapFS{
		"elevate.rego":          {Data: []byte("lower")},
		"catalog/exchange.rego": {Data: []byte("lower exchange")},
		"catalog/caddy.rego":    {Data: []byte("lower caddy")},
		"shadowed/file":         {Data: []byte("lower dir, upper file")},
	}
	middle := fstest.MapFS{
		"catalog/exchange.rego": {Data: []byte("middle exchange")},
		"catalog/acme.yaml":     {Data: []byte("middle acme")},
	}
	upper := fstest.MapFS{
		"catalog/exchange.rego": {Data: []byte("upper exchange")},
		"shadowed":              {Data: []byte("a file")},
		"extra/data.yaml":       {Data: []byte("upper data")},
	}
	b := policy.Layers(lower, middle, upper)
	require.NoError(t, fstest.TestFS(b, "elevate.rego", "catalog/exchange.rego", "catalog/caddy.rego",
		"catalog/acme.yaml", "shadowed", "extra/data.yaml"))

	for name, want := range map[string]string{
		"elevate.rego":          "lower",
		"catalog/exchange.rego": "upper exchange", // the last layer wins
		"catalog/caddy.rego":    "lower caddy",
		"catalog/acme.yaml":     "middle acme",
		"shadowed":              "a file",
	} {
		got, err := fs.ReadFile(b, name)
		require.NoError(t, err, name)
		require.Equal(t, want, string(got), name)
	}
	_, err := fs.ReadFile(b, "shadowed/file")
	require.ErrorIs(t, err, fs.ErrNotExist, "a file in an upper layer hides a directory below it")
	_, err = b.Open("../elevate.rego")
	require.ErrorIs(t, err, fs.ErrInvalid)
}

// acmeCatalog is a catalog a user adds for an upstream of their own.
const acmeCatalog = `package elevate.catalog

tasks["Acme\\Remove-Widget"] := {"upstream": "acme", "read": false, "description": "Delete a widget"}

match contains "Acme\\Remove-Widget" if {
	input.upstream == "acme"
	input.method == "DELETE"
	input.path = ["widgets", id]
	id != ""
}
`

// dirWith writes files into a new directory and returns it.
func dirWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
	}
	return dir
}

// A directory that only adds a catalog keeps every built-in one, so the
// next elevate's built-in catalogs reach a user who only added their own.
func TestLayersAddACatalogAndKeepTheBuiltInOnes(t *testing.T) {
	dir := dirWith(t, map[string]string{"catalog/acme.rego": acmeCatalog})
	e := newEngine(t, policy.Layers(defaultBundle(), os.DirFS(dir)))
	cat := e.Catalog()
	require.Contains(t, cat.Tasks, `Acme\Remove-Widget`)
	for _, builtIn := range []string{getMailbox, newMoveRequest, `RabbitMQ\Remove-Queue`, `Caddy\Set-Config`} {
		require.Contains(t, cat.Tasks, builtIn)
	}
	require.NoError(t, e.SetState(context.Background(), policy.State{}))
	in := call("DELETE", "widgets", "w1")
	in.Upstream = "acme"
	require.Equal(t, `Acme\Remove-Widget`, eval(t, e, in).Task)
	require.Equal(t, newMoveRequest, eval(t, e, call("POST", "mailboxes", "m1", "move-requests")).Task)
}

// exchangeReplacement is the demo catalog cut down to one read and one new
// task, in the form (route table or Rego) the embedded one has.
func exchangeReplacement(t *testing.T) (name, src string) {
	t.Helper()
	if _, err := fs.Stat(defaultBundle(), "catalog/exchange.yaml"); err == nil {
		return "catalog/exchange.yaml", `upstream: exchange
tasks:
  Exchange\Get-Mailbox: {read: true, description: List mailboxes}
  Exchange\Get-MailboxStatistics: {read: true, description: Read a mailbox's statistics}
routes:
  - GET /mailboxes -> Exchange\Get-Mailbox
  - GET /mailboxes/{id}/statistics -> Exchange\Get-MailboxStatistics
`
	}
	_, err := fs.Stat(defaultBundle(), "catalog/exchange.rego")
	require.NoError(t, err, "the demo catalog is catalog/exchange.yaml or catalog/exchange.rego")
	return "catalog/exchange.rego", `package elevate.catalog

tasks["Exchange\\Get-Mailbox"] := {"upstream": "exchange", "read": true, "description": "List mailboxes"}

tasks["Exchange\\Get-MailboxStatistics"] := {"upstream": "exchange", "read": true, "description": "Read a mailbox's statistics"}

match contains "Exchange\\Get-Mailbox" if {
	input.upstream == "exchange"
	input.method == "GET"
	input.path == ["mailboxes"]
}

match contains "Exchange\\Get-MailboxStatistics" if {
	input.upstream == "exchange"
	input.method == "GET"
	input.path = ["mailboxes", id, "statistics"]
	id != ""
}
`
}

func TestLayersReplaceAFileByItsPath(t *testing.T) {
	name, src := exchangeReplacement(t)
	first := dirWith(t, map[string]string{name: "this layer is overridden by the next"})
	second := dirWith(t, map[string]string{name: src})
	e := newEngine(t, policy.Layers(defaultBundle(), os.DirFS(first), os.DirFS(second)))
	cat := e.Catalog()
	require.Contains(t, cat.Tasks, `Exchange\Get-MailboxStatistics`)
	require.NotContains(t, cat.Tasks, newMoveRequest, "the embedded file is replaced, not merged")
	require.NotContains(t, cat.Roles, importExport)
	require.Contains(t, cat.Tasks, `RabbitMQ\Remove-Queue`, "the other built-in catalogs stay")

	require.NoError(t, e.SetState(context.Background(), policy.State{}))
	require.Equal(t, `Exchange\Get-MailboxStatistics`, eval(t, e, call("GET", "mailboxes", "m1", "statistics")).Task)
	require.Empty(t, eval(t, e, call("POST", "mailboxes", "m1", "move-requests")).Task)
}

// Reloading a layered bundle reads its directories again.
func TestLayersReloadReadsTheDirectoriesAgain(t *testing.T) {
	dir := t.TempDir()
	b := policy.Layers(defaultBundle(), os.DirFS(dir))
	e := newEngine(t, b)
	require.NotContains(t, e.Catalog().Tasks, `Acme\Remove-Widget`)

	require.NoError(t, os.MkdirAll(filepath.Join(dir, "catalog"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "catalog", "acme.rego"), []byte(acmeCatalog), 0o644))
	require.NoError(t, e.Reload(context.Background(), b))
	require.Contains(t, e.Catalog().Tasks, `Acme\Remove-Widget`)
	require.Contains(t, e.Catalog().Tasks, getMailbox)
}
