package policy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/policy"
)

// TestTestRunsTheBundlesRegoTests: Test runs the default bundle's tests,
// which pass, on its route tables as the engine compiles them.
func TestTestRunsTheBundlesRegoTests(t *testing.T) {
	r, err := policy.Test(context.Background(), defaultBundle())
	require.NoError(t, err)
	require.NotEmpty(t, r.Results)
	require.False(t, r.Failed(), "%+v", r.Results)
	t.Logf("unreached: %v", r.Unreached)
}

// TestTestNamesFailuresAndUnreachedRoutes: a failed test says which
// expression was false, an errored one its error; a route no test made
// match is named by its table's file and line.
func TestTestNamesFailuresAndUnreachedRoutes(t *testing.T) {
	b := bundleOf(map[string]string{
		"catalog/acme.yaml": `upstream: acme
tasks:
  Acme\Get-Widget: {read: true}
  Acme\Remove-Widget: {description: Delete a widget}
routes:
  - GET /widgets/{id} -> Acme\Get-Widget
  - DELETE /widgets/{id} -> Acme\Remove-Widget
`,
		"catalog/acme_test.rego": `package elevate.catalog_test

test_get_widget if {
	data.elevate.catalog.match == {"Acme\\Get-Widget"} with input as {"upstream": "acme", "method": "GET", "path": ["widgets", "w1"]}
}

test_remove_widget_is_a_read if {
	data.elevate.catalog.tasks["Acme\\Remove-Widget"].read == true
}

test_errors if {
	to_number("many") > 0
}

todo_test_later if {
	false
}
`,
	})
	r, err := policy.Test(context.Background(), b)
	require.NoError(t, err)
	require.True(t, r.Failed())
	byName := map[string]policy.TestResult{}
	for _, res := range r.Results {
		byName[res.Name] = res
	}
	require.Len(t, byName, 4)
	require.Equal(t, "pass", byName["data.elevate.catalog_test.test_get_widget"].Outcome)
	require.Equal(t, "catalog/acme_test.rego:3", byName["data.elevate.catalog_test.test_get_widget"].Location)

	failed := byName["data.elevate.catalog_test.test_remove_widget_is_a_read"]
	require.Equal(t, "fail", failed.Outcome)
	require.Contains(t, failed.Failure, "false at catalog/acme_test.rego:8: ")

	errored := byName["data.elevate.catalog_test.test_errors"]
	require.Equal(t, "error", errored.Outcome)
	require.Contains(t, errored.Failure, "to_number")
	require.Equal(t, "skip", byName["data.elevate.catalog_test.todo_test_later"].Outcome)

	require.Equal(t, []policy.Route{{File: "catalog/acme.yaml", Line: 7, Task: `Acme\Remove-Widget`}}, r.Unreached)

	_, err = policy.Test(context.Background(), bundleOf(map[string]string{"x.rego": "package x\n\ny := z\n"}))
	require.ErrorIs(t, err, policy.ErrInvalidBundle)
	require.ErrorContains(t, err, "x.rego:3")
}
