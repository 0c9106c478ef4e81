package test

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elevate-pam/elevate/internal/otlptest"
	"github.com/stretchr/testify/require"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// spansOf returns the spans rc received for a trace id (hex).
func spansOf(rc *otlptest.Receiver, id string) []*tracepb.Span {
	spans, _, _ := rc.Snapshot()
	var out []*tracepb.Span
	for _, s := range spans {
		if hex.EncodeToString(s.TraceId) == id {
			out = append(out, s)
		}
	}
	return out
}

// spansNamed returns the spans rc received whose name starts with prefix.
func spansNamed(rc *otlptest.Receiver, prefix string) []*tracepb.Span {
	spans, _, _ := rc.Snapshot()
	var out []*tracepb.Span
	for _, s := range spans {
		if strings.HasPrefix(s.Name, prefix) {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s *tracepb.Span) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes {
		v := kv.GetValue()
		switch {
		case v.GetArrayValue() != nil:
			var parts []string
			for _, e := range v.GetArrayValue().Values {
				parts = append(parts, e.GetStringValue())
			}
			out[kv.Key] = strings.Join(parts, ",")
		case v.GetIntValue() != 0:
			out[kv.Key] = fmt.Sprint(v.GetIntValue())
		case kv.Key == "elevate.gated":
			out[kv.Key] = fmt.Sprint(v.GetBoolValue())
		default:
			out[kv.Key] = v.GetStringValue()
		}
	}
	return out
}

// TestTracesAndMetrics runs the binary with a sampling ratio of 0 against a
// real OTLP/HTTP receiver: ordinary reads are not exported, while a gated
// call's trace arrives whole (identity, grants, policy, audit and the
// upstream call under one server span) with its elevate.* attributes, the
// lifecycle events are spans too, nothing secret is exported, and
// /metrics serves the decision, grant and audit metrics.
func TestTracesAndMetrics(t *testing.T) {
	rc := &otlptest.Receiver{}
	col := httptest.NewServer(rc)
	t.Cleanup(col.Close)
	up := httptest.NewServer(&recorder{})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	secret := filepath.Join(dir, "rabbitmq.secret")
	require.NoError(t, os.WriteFile(secret, []byte("tr4ce-s3cret\n"), 0o600))
	cfg := filepath.Join(dir, "elevate.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`telemetry:
  sample_ratio: 0
upstreams:
  - name: rabbitmq
    url: %s
    prefix: /rmq/
    credential: {type: basic, username: elevate-svc, value_file: %s}
`, up.URL, secret)), 0o600))
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	s := startDev(t, "--config", cfg)

	admin := s.token("--sub", "ada", "--groups", "admins,approvers")
	bob := s.token("--sub", "bob")
	s.ok(admin, "control", "enable", "--approvers", "approvers")
	s.ok(admin, "policy", "new", "--task", `RabbitMQ\New-User`, "--approval", "manual")

	// An ordinary read: allowed, not gated, not sampled at ratio 0.
	read := do(t, "GET", "http://"+s.proxyAddr+"/rmq/api/overview", bob, "")
	require.Equal(t, http.StatusOK, read.status, string(read.body))

	id := strings.TrimSpace(s.ok(bob, "request", "new", "-q", "--task", `RabbitMQ\New-User`, "--reason", "add carol"))
	s.ok(admin, "request", "approve", id, "--comment", "ok")
	var call reply
	require.Eventually(t, func() bool {
		call = do(t, "PUT", "http://"+s.proxyAddr+"/rmq/api/users/carol", bob, `{"password":"x","tags":""}`)
		return call.status == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "the grant reaches the proxy")
	decisionID := call.header.Get("Elevate-Decision-Id")
	require.NotEmpty(t, decisionID)

	var traceID string
	for _, r := range s.auditRecords() {
		if r["id"] == decisionID {
			traceID, _ = r["trace_id"].(string)
		}
	}
	require.NotEmpty(t, traceID, "the decision record carries its trace id")

	var spans []*tracepb.Span
	require.Eventually(t, func() bool {
		spans = spansOf(rc, traceID)
		return len(spans) >= 6
	}, 15*time.Second, 50*time.Millisecond, "the gated call's trace is exported")
	byName := map[string]*tracepb.Span{}
	for _, sp := range spans {
		byName[strings.Fields(sp.Name)[0]] = sp
	}
	root := byName["elevate.proxy"]
	require.NotNil(t, root, "the server span")
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, root.Kind)
	a := attrs(root)
	require.Equal(t, "bob", a["elevate.subject"])
	require.Equal(t, `RabbitMQ\New-User`, a["elevate.task"])
	require.Equal(t, "allowed", a["elevate.decision"])
	require.Equal(t, decisionID, a["elevate.decision_id"])
	require.Equal(t, id, a["elevate.request_id"])
	require.NotEmpty(t, a["elevate.grant_id"])
	require.Equal(t, "ada", a["elevate.approvers"])
	require.Equal(t, "true", a["elevate.gated"])
	require.Equal(t, "PUT", a["http.request.method"])
	require.Equal(t, "200", a["http.response.status_code"])
	for _, child := range []string{"elevate.identity", "elevate.grants", "elevate.policy", "elevate.audit", "elevate.upstream"} {
		sp := byName[child]
		require.NotNil(t, sp, "child span %s", child)
		require.Equal(t, root.SpanId, sp.ParentSpanId, "%s is a child of the server span", child)
	}
	require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, byName["elevate.upstream"].Kind)

	// Lifecycle events are spans too, always kept.
	require.Eventually(t, func() bool {
		for _, sp := range spansNamed(rc, "elevate.lifecycle request.approved") {
			if attrs(sp)["elevate.request_id"] == id {
				return true
			}
		}
		return false
	}, 15*time.Second, 50*time.Millisecond, "the approval's span is exported")

	// The read's trace was dropped: only gated, refused and lifecycle
	// traces are exported at ratio 0.
	for _, sp := range spansNamed(rc, "elevate.proxy GET") {
		require.NotEqual(t, "/api/overview", attrs(sp)["url.path"], "an ordinary read was exported at ratio 0")
	}

	// Nothing secret was exported.
	for _, secret := range []string{bob, admin, "tr4ce-s3cret"} {
		require.False(t, rc.Contains([]byte(secret)), "a secret reached the trace exporter")
	}

	// Metrics, in Prometheus text.
	m := do(t, "GET", "http://"+s.controlAddr+"/metrics", "", "")
	require.Equal(t, http.StatusOK, m.status)
	text := string(m.body)
	for _, want := range []string{
		`elevate_decision_duration_seconds_bucket{`,
		`elevate_upstream_duration_seconds_count{`,
		`elevate_audit_fsync_duration_seconds_count`,
		"elevate_grants_live",
		"elevate_requests_pending",
		"elevate_audit_queue",
	} {
		require.Contains(t, text, want)
	}
	require.Regexp(t, `(?m)^elevate_decisions_total\{[^}]*outcome="allowed"[^}]*\} [1-9]`, text)
	require.Regexp(t, `(?m)^elevate_grants_live\{[^}]*\} 1$`, text, "one live grant")
}
