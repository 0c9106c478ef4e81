package test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDevBannerRunsFromAnyDirectory: the commands `serve --dev` prints
// work when pasted into a shell in another directory, with nothing of
// elevate's in the environment: the banner sets PATH, ELEVATE_SERVER and
// ELEVATE_DATA_DIR itself.
func TestDevBannerRunsFromAnyDirectory(t *testing.T) {
	s := startDev(t)
	var lines []string
	require.Eventually(t, func() bool {
		out := s.stdout.String()
		i := strings.Index(out, "Try it")
		j := strings.Index(out, "The README")
		if i < 0 || j < i {
			return false
		}
		lines = strings.Split(strings.TrimSpace(out[strings.Index(out[i:], "\n")+i:j]), "\n")
		return true
	}, 10*time.Second, 20*time.Millisecond, "the banner is printed")
	require.Contains(t, lines[0], "export ")
	require.Contains(t, lines[0], "ELEVATE_DATA_DIR=")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", strings.Join(lines, "\n"))
	cmd.Dir = t.TempDir() // neither the data dir nor where elevate runs
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ELEVATE_") && !strings.HasPrefix(kv, "PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH=/usr/local/bin:/usr/bin:/bin")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the banner's commands:\n%s\n\noutput:\n%s", strings.Join(lines, "\n"), out)
	require.Contains(t, string(out), "grant-required", "the refused call")
	require.Regexp(t, `status:\s+approved`, string(out))
}
