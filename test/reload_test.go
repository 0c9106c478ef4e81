package test

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/rego"
)

// TestPolicyReload: SIGHUP loads policy.dir again; a bundle that does not
// compile leaves the running one in place.
func TestPolicyReload(t *testing.T) {
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	require.NoError(t, fs.WalkDir(rego.Bundle, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(bundle, p), 0o755)
		}
		b, err := fs.ReadFile(rego.Bundle, p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(bundle, p), b, 0o644)
	}))
	cfg := filepath.Join(dir, "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("policy:\n  dir: "+bundle+"\n"), 0o600))
	s := startDev(t, "--config", cfg)
	bob := s.token("--sub", "bob")
	list := "http://" + s.proxyAddr + "/exchange/mailboxes"
	require.Equal(t, http.StatusOK, do(t, "GET", list, bob, "").status)

	condition := filepath.Join(bundle, "no_reads_for_bob.rego")
	require.NoError(t, os.WriteFile(condition, []byte("package elevate\n\ndeny contains \"bob reads nothing today\" if input.subject.id == \"bob\"\n"), 0o644))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return do(t, "GET", list, bob, "").status == http.StatusForbidden }, 5*time.Second, 50*time.Millisecond)

	// A broken bundle is refused; the running one stays.
	require.NoError(t, os.WriteFile(condition, []byte("package elevate\n\ndeny contains if {\n"), 0o644))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Count(s.stderr.String(), "policy reload refused") == 1
	}, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, http.StatusForbidden, do(t, "GET", list, bob, "").status)

	// So is one that compiles but cannot evaluate: two catalogs define a
	// helper of the same name in their shared package, and the two
	// definitions disagree. The log names both files.
	require.NoError(t, os.Remove(condition))
	catalog := func(upstream, segment string) string {
		return "package elevate.catalog\n\n" +
			"tasks[\"" + upstream + "\\\\Get-Item\"] := {\"upstream\": \"" + upstream + "\", \"read\": true}\n\n" +
			"match contains \"" + upstream + "\\\\Get-Item\" if {\n" +
			"\tinput.upstream == \"" + upstream + "\"\n\tinput.method == \"GET\"\n\tinput.path = [\"items\", _, _]\n\titem != \"\"\n}\n\n" +
			"item := input.path[" + segment + "]\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(bundle, "catalog", "alpha.rego"), []byte(catalog("alpha", "1")), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(bundle, "catalog", "beta.rego"), []byte(catalog("beta", "2")), 0o644))
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGHUP))
	var refusal string
	require.Eventually(t, func() bool {
		for line := range strings.Lines(s.stderr.String()) {
			if strings.Contains(line, "policy reload refused") {
				refusal = line
			}
		}
		return strings.Count(s.stderr.String(), "policy reload refused") == 2
	}, 5*time.Second, 50*time.Millisecond)
	require.Contains(t, refusal, "catalog/alpha.rego:12")
	require.Contains(t, refusal, "catalog/beta.rego:12")
	require.Equal(t, http.StatusForbidden, do(t, "GET", list, bob, "").status, "the running bundle stays")
}
