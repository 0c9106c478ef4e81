package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/elevate-pam/elevate"

// leaves are the packages whose non-test files import no other package of
// this module: each can be read, tested and reused on its own. Their tests
// may use the module's internal test-support packages.
var leaves = []string{"policy", "grants", "audit", "notify", "telemetry", "proxy/identity", "certs", "internal/openapi", "kubernetes"}

// goproxyUsers are the only packages that may import goproxy: its types
// stay inside the proxy.
var goproxyUsers = []string{"proxy"}

// listedPackage is what go list tells about one package of the module.
type listedPackage struct {
	ImportPath   string
	Deps         []string // of the non-test files, transitively
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// TestArchitecture keeps the architecture honest, for every package of the
// module at once: the leaves depend on no other package of the module, and
// goproxy is imported nowhere but in the proxy, by code or by tests.
func TestArchitecture(t *testing.T) {
	pkgs := listModule(t)

	for _, leaf := range leaves {
		t.Run("leaf "+leaf, func(t *testing.T) {
			p, ok := pkgs[module+"/"+leaf]
			require.True(t, ok, "leaf %s is not a package of the module", leaf)
			for _, dep := range p.Deps {
				require.False(t, strings.HasPrefix(dep, module+"/"), "%s depends on %s", leaf, dep)
			}
		})
	}

	t.Run("goproxy stays in proxy", func(t *testing.T) {
		allowed := map[string]bool{}
		for _, p := range goproxyUsers {
			allowed[module+"/"+p] = true
		}
		users := 0
		for path, p := range pkgs {
			for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
				if imp == "github.com/elazarl/goproxy" || strings.HasPrefix(imp, "github.com/elazarl/goproxy/") {
					require.True(t, allowed[path], "%s imports %s", path, imp)
					users++
				}
			}
		}
		require.NotZero(t, users, "goproxy is imported nowhere: is the module listed?")
	})
}

// listModule lists every package of the module with go list, by import
// path.
func listModule(t *testing.T) map[string]listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps,Imports,TestImports,XTestImports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		pkgs[p.ImportPath] = p
	}
	require.Contains(t, pkgs, module+"/proxy")
	return pkgs
}
