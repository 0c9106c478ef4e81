package console_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elevate-pam/elevate/audit"
)

// TestAuditShowsQuery: a call's record shows its query string after its
// path, escaped as text.
func TestAuditShowsQuery(t *testing.T) {
	e := newEnv(t, envOpts{})
	_, err := e.parts.Audit.Write(context.Background(), audit.Record{Kind: audit.KindCall, Event: audit.EventAllowed, Subject: "bob",
		Upstream: "dns", Method: "DELETE", Path: "/api/zones/example.org.", Query: "rrsets=true&note=<b>"})
	require.NoError(t, err)
	p := e.login("bob").get("/audit?subject=bob")
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, "<code>DELETE /api/zones/example.org.?rrsets=true&amp;note=&lt;b&gt;</code>")
}
