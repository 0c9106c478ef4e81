package proxy_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/internal/shapes"
)

// TestShapesInProcess runs the request-shape corpus of the end-to-end
// suite (test/testdata/shapes, see test/shapes_test.go) against the proxy
// listener's handler in process: every case written on a raw connection,
// the upstreams and the audit log checked as there. Only POST /v1/check's
// comparison is left to the end-to-end suite.
func TestShapesInProcess(t *testing.T) {
	cases := shapes.Load(t, filepath.Join("..", "test", "testdata", "shapes"))
	require.GreaterOrEqual(t, len(cases), 150)
	e := newProxyEnv(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) { e.Run(t, c) })
	}
}
