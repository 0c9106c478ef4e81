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
		return strings.Contains(s.stderr.String(), "policy reload refused")
	}, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, http.StatusForbidden, do(t, "GET", list, bob, "").status)
}
