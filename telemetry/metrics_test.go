package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// scrape returns the body of GET /metrics.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// TestMetricsCatalogue records each metric of the catalogue in the package
// doc and checks the Prometheus name it is served under.
func TestMetricsCatalogue(t *testing.T) {
	tel, _ := setupMemory(t, 0)
	ctx := context.Background()
	m := otel.Meter("github.com/elevate-pam/elevate/proxy")

	decisions, err := m.Int64Counter("elevate.decisions", metric.WithUnit("{decision}"))
	require.NoError(t, err)
	decisions.Add(ctx, 2, metric.WithAttributes(attribute.String("outcome", "allowed")))
	decisions.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "denied")))
	for _, name := range []string{"elevate.decision.duration", "elevate.upstream.duration", "elevate.audit.fsync.duration"} {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"))
		require.NoError(t, err)
		h.Record(ctx, 0.0003)
		h.Record(ctx, (1500 * time.Millisecond).Seconds())
	}
	for name, v := range map[string]int64{"elevate.grants.live": 3, "elevate.requests.pending": 2, "elevate.audit.queue": 0} {
		require.NoError(t, tel.Gauge(name, "{item}", "test gauge "+name, func() int64 { return v }))
	}

	body := scrape(t, tel.MetricsHandler())
	for _, want := range []string{
		`# TYPE elevate_decisions_total counter`,
		`elevate_decisions_total{otel_scope_name="github.com/elevate-pam/elevate/proxy",otel_scope_schema_url="",otel_scope_version="",outcome="allowed"} 2`,
		`elevate_decisions_total{otel_scope_name="github.com/elevate-pam/elevate/proxy",otel_scope_schema_url="",otel_scope_version="",outcome="denied"} 1`,
		`# TYPE elevate_decision_duration_seconds histogram`,
		`# TYPE elevate_upstream_duration_seconds histogram`,
		`# TYPE elevate_audit_fsync_duration_seconds histogram`,
		`elevate_decision_duration_seconds_bucket{otel_scope_name="github.com/elevate-pam/elevate/proxy",otel_scope_schema_url="",otel_scope_version="",le="0.0005"} 1`,
		`elevate_decision_duration_seconds_bucket{otel_scope_name="github.com/elevate-pam/elevate/proxy",otel_scope_schema_url="",otel_scope_version="",le="2.5"} 2`,
		`elevate_decision_duration_seconds_count{otel_scope_name="github.com/elevate-pam/elevate/proxy",otel_scope_schema_url="",otel_scope_version=""} 2`,
		`# TYPE elevate_grants_live gauge`,
		`elevate_grants_live{otel_scope_name="github.com/elevate-pam/elevate",otel_scope_schema_url="",otel_scope_version=""} 3`,
		`elevate_requests_pending{otel_scope_name="github.com/elevate-pam/elevate",otel_scope_schema_url="",otel_scope_version=""} 2`,
		`elevate_audit_queue{otel_scope_name="github.com/elevate-pam/elevate",otel_scope_schema_url="",otel_scope_version=""} 0`,
		`# TYPE elevate_trace_spans_lost_total counter`,
		`elevate_trace_spans_lost_total{otel_scope_name="github.com/elevate-pam/elevate",otel_scope_schema_url="",otel_scope_version="",reason="span_cap"} 0`,
		`# TYPE elevate_trace_buffered gauge`,
		`target_info{`,
		`service_name="elevate"`,
		`# TYPE go_goroutines gauge`,
		`# TYPE process_cpu_seconds_total counter`,
	} {
		require.Contains(t, body, want)
	}
}

func TestGaugeRejectsBadName(t *testing.T) {
	tel, _ := setupMemory(t, 1)
	err := tel.Gauge("bad name!", "", "", func() int64 { return 0 })
	require.ErrorContains(t, err, "bad name!")
}
