package rego

import (
	"context"
	"io/fs"
	"os"
	"path"
	"sort"
	"testing"

	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/require"
)

// TestRegoTests runs every *_test.rego file of the bundle, as `opa test rego/`
// does, and fails on any failed or errored Rego test.
func TestRegoTests(t *testing.T) {
	modules, store, err := tester.Load([]string{"."}, nil)
	require.NoError(t, err)

	ch, err := tester.NewRunner().
		SetStore(store).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		RunTests(context.Background(), nil)
	require.NoError(t, err)

	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	require.NotEmpty(t, results, "no Rego test ran")
	sort.Slice(results, func(i, j int) bool {
		return results[i].Package+"."+results[i].Name < results[j].Package+"."+results[j].Name
	})

	for _, r := range results {
		t.Run(r.Package+"."+r.Name, func(t *testing.T) {
			require.NoError(t, r.Error, "%s", r.Location)
			require.False(t, r.Skip, "%s: skipped", r.Location)
			require.False(t, r.Fail, "%s: failed at %v\n%s", r.Location, r.FailedAt, r.SubResults)
		})
	}
}

// TestBundleEmbedsEveryPolicyFile guards the go:embed line: a policy or data
// file added to this directory but left out of Bundle would pass `opa test`
// and still be missing from the binary.
func TestBundleEmbedsEveryPolicyFile(t *testing.T) {
	onDisk := policyFiles(t, os.DirFS("."))
	embedded := policyFiles(t, Bundle)
	require.Contains(t, embedded, "elevate.rego")
	require.Contains(t, embedded, "catalog/exchange.rego")
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
