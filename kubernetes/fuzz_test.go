package kubernetes

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParse never panics, refuses only with an *Error, and reads every
// accepted call into attributes that re-encode to the same segments and
// read back the same.
func FuzzParse(f *testing.F) {
	for _, c := range []struct{ method, path, query string }{
		{"GET", "/api/v1/namespaces/prod/pods", "watch=true"},
		{"DELETE", "/api/v1/namespaces/prod/pods/x/../y", ""},
		{"GET", "/api/v1/namespaces/prod", ""},
		{"PUT", "/api/v1/namespaces/prod/status", ""},
		{"GET", "/apis/apps/v1/watch/namespaces/prod/deployments/web", ""},
		{"POST", "/api/v1/namespaces/prod/pods/web/exec", "command=sh"},
		{"GET", "/api/v1/nodes/n1/proxy/metrics", ""},
		{"GET", "/api/v1/pods", "fieldSelector=metadata.name%3Dweb"},
		{"DELETE", "/apis/example.com/v1/widgets", "dryRun=All"},
		{"HEAD", "/openapi/v3", ""},
		{"GET", "/", ""},
	} {
		f.Add(c.method, c.path, c.query)
	}
	f.Fuzz(func(t *testing.T, method, path, query string) {
		segs := split("/" + strings.TrimPrefix(path, "/"))
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		a, err := Parse(method, segs, q)
		if err != nil {
			var e *Error
			require.True(t, errors.As(err, &e), "refused without an *Error: %v", err)
			return
		}
		require.Equal(t, segs, a.Segments())
		again, err := Parse(method, a.Segments(), q)
		require.NoError(t, err)
		require.Equal(t, a, again)
		require.NotEmpty(t, a.Verb)
		require.True(t, strings.HasPrefix(TaskName(a), `Kubernetes\`))
		if Read(a) {
			require.NotEqual(t, "secrets", a.Resource)
		}
	})
}
