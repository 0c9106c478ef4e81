package policy_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPackagesAreLeaves checks that policy and rego import no other package
// of this module, nor goproxy.
func TestPackagesAreLeaves(t *testing.T) {
	for _, dir := range []string{".", "../rego"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
			require.NoError(t, err)
			for _, imp := range f.Imports {
				path, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				require.False(t, strings.HasPrefix(path, "github.com/elevate-pam/elevate"), "%s imports %s", file, path)
				require.False(t, strings.HasPrefix(path, "github.com/elazarl/goproxy"), "%s imports %s", file, path)
			}
		}
	}
}
