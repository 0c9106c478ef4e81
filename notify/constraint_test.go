package notify

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConstraintShown: a narrowed request says where it applies in the
// headline, the mail body and the chat text.
func TestConstraintShown(t *testing.T) {
	e := Event{Kind: KindSubmitted, RequestID: "req-1", Requester: "alice", Scope: "task",
		Target: `Kubernetes\delete pods`, Constraint: "namespace=prod", Reason: "web is stuck", Status: "pending"}
	require.Contains(t, headline(e), `Kubernetes\delete pods (namespace=prod)`)
	require.Contains(t, mailBody(e), "Only where: namespace=prod")
	require.Contains(t, slackText(e), "namespace=prod")

	// A constraint cannot add a line to the mail (a header, above all).
	e.Constraint = "namespace=prod\r\nBcc: x@evil.test"
	require.NotContains(t, headline(e), "\n")
	for _, line := range strings.Split(mailBody(e), "\n") {
		require.False(t, strings.HasPrefix(line, "Bcc:"), line)
	}
}
