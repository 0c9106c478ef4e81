package grants

import (
	"go/build"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLeafImports keeps the package a leaf: no other package of this module,
// and no proxy engine.
func TestLeafImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	require.NoError(t, err)
	imports := append(append(pkg.Imports, pkg.TestImports...), pkg.XTestImports...)
	require.NotEmpty(t, imports)
	for _, imp := range imports {
		if imp == "github.com/elevate-pam/elevate/grants" {
			continue // the example imports the package itself
		}
		require.False(t, strings.HasPrefix(imp, "github.com/elevate-pam/elevate/"), "grants imports %s", imp)
		require.False(t, strings.HasPrefix(imp, "github.com/elazarl/goproxy"), "grants imports %s", imp)
	}
}
