package rego

import (
	"context"
	"io/fs"
	"maps"
	"os"
	"path"
	"sort"
	"testing"

	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// TestRegoTests runs every *_test.rego file of the bundle with OPA's tester,
// on the bundle as the engine reads it, and fails on any failed or errored
// Rego test, with what the test printed.
func TestRegoTests(t *testing.T) {
	results := runRegoTests(t, ".", "")
	require.NotEmpty(t, results, "no Rego test ran")
	for _, r := range results {
		t.Run(r.Package+"."+r.Name, func(t *testing.T) {
			require.NoError(t, r.Error, "%s", r.Location)
			require.False(t, r.Skip, "%s: skipped", r.Location)
			require.False(t, r.Fail, "%s: failed at %v\n%s%s", r.Location, r.FailedAt, r.SubResults, r.Output)
		})
	}
}

// TestCatalogIndexErrorsAreNamed: when a catalog has a mistake, the test of
// the catalog index fails saying which, not only FAIL.
func TestCatalogIndexErrorsAreNamed(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, Bundle))
	require.NoError(t, os.WriteFile(path.Join(dir, "catalog", "mistake.rego"),
		[]byte("package elevate.catalog\n\nroles[\"Exchange\\\\Helpdesk\"] := {\"Exchange\\\\Get-Mailboxes\"}\n"), 0o644))

	results := runRegoTests(t, dir, "test_catalog_index_has_no_errors")
	require.Len(t, results, 1)
	require.True(t, results[0].Fail)
	require.Contains(t, string(results[0].Output), `catalog index error: role Exchange\Helpdesk lists unknown task Exchange\Get-Mailboxes`)
}

// runRegoTests runs the Rego tests under dir whose name matches filter (all
// when empty), as `opa test` does, in name order, on the bundle as the
// engine reads it: route tables compiled to the modules they generate.
func runRegoTests(t *testing.T, dir, filter string) []*tester.Result {
	t.Helper()
	bundle, err := policy.ReadBundle(os.DirFS(dir))
	require.NoError(t, err)
	modules := maps.Clone(bundle.Modules)
	maps.Copy(modules, bundle.Tests)
	store := inmem.NewFromObject(bundle.Data)

	ch, err := tester.NewRunner().
		SetStore(store).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		Filter(filter).
		RunTests(context.Background(), nil)
	require.NoError(t, err)

	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool {
		return results[i].Package+"."+results[i].Name < results[j].Package+"."+results[j].Name
	})
	return results
}

// TestBundleEmbedsEveryPolicyFile guards the go:embed line: a policy or data
// file added to this directory but left out of Bundle would pass its tests
// and still be missing from the binary.
func TestBundleEmbedsEveryPolicyFile(t *testing.T) {
	onDisk := policyFiles(t, os.DirFS("."))
	embedded := policyFiles(t, Bundle)
	require.Contains(t, embedded, "elevate.rego")
	require.Contains(t, embedded, "catalog/exchange.yaml")
	require.Equal(t, onDisk, embedded)
}

func policyFiles(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch path.Ext(p) {
		case ".rego", ".json", ".yaml", ".yml":
			if !d.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	require.NoError(t, err)
	sort.Strings(files)
	return files
}
