package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestArchitectureDocNamesRealPaths keeps docs/architecture.md, the
// newcomer's map, true to the tree: every file or directory it names in
// backquotes exists, and it names every package of the module.
func TestArchitectureDocNamesRealPaths(t *testing.T) {
	doc, err := os.ReadFile("../docs/architecture.md")
	require.NoError(t, err)
	text := string(doc)

	// A path is a backquoted word with a "/" or a file name ending that
	// starts at a top-level directory of the repository.
	quoted := regexp.MustCompile("`([A-Za-z0-9_./-]+)`")
	named := 0
	for _, m := range quoted.FindAllStringSubmatch(text, -1) {
		p := strings.TrimSuffix(strings.TrimSuffix(m[1], "/..."), "/")
		if p == "" || strings.HasPrefix(p, "/") || strings.HasPrefix(p, ".") {
			continue // a URL path or a relative name, not a repository path
		}
		top, _, _ := strings.Cut(p, "/")
		if top == p && !strings.Contains(p, ".") {
			// A bare word names a path only if it is a top-level directory.
			if fi, err := os.Stat(filepath.Join("..", p)); err != nil || !fi.IsDir() {
				continue
			}
		}
		if fi, err := os.Stat(filepath.Join("..", top)); err != nil || !fi.IsDir() {
			continue // not a path of the repository (a key, a URL path, a name)
		}
		_, err := os.Stat(filepath.Join("..", p))
		require.NoError(t, err, "docs/architecture.md names %s, which does not exist", m[1])
		named++
	}
	require.GreaterOrEqual(t, named, 30, "docs/architecture.md names too few paths: the pattern broke")

	// Every package directory of the module (outside testdata) is named.
	require.NoError(t, filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		base := d.Name()
		if rel != "." && (strings.HasPrefix(base, ".") || base == "testdata" || base == "node_modules" || base == "bin") {
			return filepath.SkipDir
		}
		gos, _ := filepath.Glob(filepath.Join(path, "*.go"))
		if rel == "." || len(gos) == 0 {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "bench/") || strings.HasPrefix(rel, "test/") || strings.HasPrefix(rel, "deploy/") {
			return nil // harnesses, named by their parent
		}
		require.Contains(t, text, "`"+rel+"`", "docs/architecture.md does not name package %s", rel)
		return nil
	}))
}
