package test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLeafPackages keeps the architecture honest: policy, grants, audit, telemetry and certs
// are leaves that import no other package of this module and never the
// proxy engine; goproxy types stay inside proxy/.
func TestLeafPackages(t *testing.T) {
	const module = "github.com/elevate-pam/elevate"
	for _, leaf := range []string{"policy", "grants", "audit", "telemetry", "certs"} {
		t.Run(leaf, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+leaf).CombinedOutput()
			require.NoError(t, err, string(out))
			for _, dep := range strings.Fields(string(out)) {
				if dep == module+"/"+leaf {
					continue
				}
				require.False(t, strings.HasPrefix(dep, module+"/"), "%s imports %s", leaf, dep)
				require.False(t, strings.HasPrefix(dep, "github.com/elazarl/goproxy"), "%s imports %s", leaf, dep)
			}
		})
	}
	t.Run("goproxy stays in proxy", func(t *testing.T) {
		out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").CombinedOutput()
		require.NoError(t, err, string(out))
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			for _, imp := range f[1:] {
				if strings.HasPrefix(imp, "github.com/elazarl/goproxy") {
					require.Equal(t, module+"/proxy", f[0], "%s imports goproxy", f[0])
				}
			}
		}
	})
}
