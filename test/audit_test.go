package test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCallRecords follows one forwarded call through the log: its decision
// record is written before the upstream sees it, an outcome record linked
// by ref follows with status, bytes and duration, both carry the query
// without the caller's credential parameter, the upstream receives the
// call's trace in traceparent, and no credential reaches the log.
func TestCallRecords(t *testing.T) {
	s, rc, _ := startBrokered(t)
	bob := s.token("--sub", "bob")

	rep := do(t, "GET", "http://"+s.proxyAddr+"/rmq/api/overview?access_token=caller-secret&columns=name", bob, "",
		"Cookie", "session=caller-cookie")
	require.Equal(t, http.StatusOK, rep.status, string(rep.body))
	decisionID := rep.header.Get("Elevate-Decision-Id")

	var decision, outcome map[string]any
	require.Eventually(t, func() bool {
		decision, outcome = nil, nil
		for _, r := range s.auditRecords() {
			if r["path"] != "/api/overview" || r["kind"] != "call" {
				continue
			}
			switch r["event"] {
			case "allowed":
				decision = r
			case "outcome":
				outcome = r
			}
		}
		return decision != nil && outcome != nil
	}, 10*time.Second, 20*time.Millisecond, "the outcome record follows the response")

	require.Equal(t, decisionID, decision["id"], "the answer names its decision")
	require.Equal(t, decision["id"], outcome["ref"], "the outcome names its decision")
	require.Less(t, decision["seq"].(float64), outcome["seq"].(float64))
	require.Equal(t, float64(http.StatusOK), outcome["status"])
	require.Equal(t, float64(len(`{"ok":true}`)), outcome["bytes"])
	require.Positive(t, outcome["duration_ms"])
	require.Equal(t, "bob", outcome["subject"])
	require.Equal(t, decision["task"], outcome["task"])
	require.Equal(t, decision["trace_id"], outcome["trace_id"])
	require.Equal(t, "columns=name", decision["query"], "the query as forwarded")
	require.Equal(t, "columns=name", outcome["query"])

	tp := rc.got().Header.Get("Traceparent")
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`, tp, "the upstream receives the trace")
	require.Equal(t, decision["trace_id"], strings.Split(tp, "-")[1], "the same trace as the audit record")
	require.NotEqual(t, decision["span_id"], strings.Split(tp, "-")[2], "its parent is the upstream-call span")

	// Nothing secret in the log: not the caller's token, cookie or query
	// credential, nor the credential elevate injected.
	log := readAuditLog(t, s.dataDir)
	for _, secret := range []string{bob, "caller-secret", "caller-cookie", "s3cret",
		base64.StdEncoding.EncodeToString([]byte("elevate-svc:s3cret"))} {
		require.NotContains(t, log, secret)
	}
	s.ok("", "audit", "verify", "--data-dir", s.dataDir)

	// Both records are found by the call's trace id, and paging one record
	// at a time walks the same records as one page.
	auditor := s.token("--sub", "eve", "--groups", "auditors")
	var byTrace struct {
		Records []map[string]any `json:"records"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.ok(auditor, "-o", "json", "audit", "query", "--trace", decision["trace_id"].(string))), &byTrace))
	var events []any
	for _, r := range byTrace.Records {
		events = append(events, r["event"])
	}
	require.Equal(t, []any{"outcome", "allowed"}, events, "newest first")

	var one, paged struct {
		Records []map[string]any `json:"records"`
		Next    string           `json:"next"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.ok(auditor, "-o", "json", "audit", "query", "--subject", "bob")), &one))
	require.NoError(t, json.Unmarshal([]byte(s.ok(auditor, "-o", "json", "audit", "query", "--subject", "bob", "--limit", "1", "--all")), &paged))
	require.GreaterOrEqual(t, len(one.Records), 2)
	require.Equal(t, one.Records, paged.Records)
	require.Empty(t, paged.Next)
	r := s.cli(auditor, "audit", "query", "--subject", "bob", "--limit", "1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "more records: --cursor ")

	// By upstream; the table shows the query.
	var byUpstream, none struct {
		Records []map[string]any `json:"records"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.ok(auditor, "-o", "json", "audit", "query", "--upstream", "rabbitmq")), &byUpstream))
	require.Len(t, byUpstream.Records, 2)
	require.NoError(t, json.Unmarshal([]byte(s.ok(auditor, "-o", "json", "audit", "query", "--upstream", "exchange")), &none))
	require.Empty(t, none.Records)
	require.Contains(t, s.ok(auditor, "audit", "query", "--upstream", "rabbitmq"), "GET /api/overview?columns=name")
}

// TestUpstreamDownOutcome: a call the upstream never answered still gets
// its outcome record, with 502.
func TestUpstreamDownOutcome(t *testing.T) {
	s, _, up := startBrokered(t)
	up.Close()
	bob := s.token("--sub", "bob")
	rep := do(t, "GET", "http://"+s.proxyAddr+"/rmq/api/overview", bob, "")
	require.Equal(t, http.StatusBadGateway, rep.status, string(rep.body))
	id := rep.json(t)["decision_id"]
	require.NotEmpty(t, id)
	require.Eventually(t, func() bool {
		for _, r := range s.auditRecords() {
			if r["event"] == "outcome" && r["ref"] == id {
				return r["status"] == float64(http.StatusBadGateway) && r["reason"] != nil
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
}

func readAuditLog(t *testing.T, dataDir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "audit.log*"))
	require.NoError(t, err)
	var b strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, ".lock") {
			continue
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		b.Write(data)
	}
	return b.String()
}
