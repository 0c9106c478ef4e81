package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The configuration shown in the README is read with the same strict
// decoder as a real file: every key in it exists.
func TestReadmeConfigParses(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(b), "## Running it for real")
	require.True(t, ok)
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	require.True(t, ok)
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	c, err := parseConfig([]byte(block))
	require.NoError(t, err)
	require.NotEmpty(t, c.Upstreams)
	require.NotEmpty(t, c.Notify.Webhooks)

	_, err = parseConfig([]byte("proxy:\n  upstream_timeot: 5s\n"))
	require.ErrorContains(t, err, "upstream_timeot")
}
