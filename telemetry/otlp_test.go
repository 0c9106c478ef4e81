package telemetry_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/elevate-pam/elevate/internal/otlptest"
	"github.com/elevate-pam/elevate/telemetry"
)

func TestOTLPExport(t *testing.T) {
	rc := &otlptest.Receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	noOTLP(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")

	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{
		SampleRatio:    new(0.0),
		ServiceVersion: "1.2.3",
		Logger:         slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)

	tr := otel.Tracer("github.com/elevate-pam/elevate/proxy")
	cctx, call := tr.Start(ctx, "proxy call")
	_, child := tr.Start(cctx, "elevate.policy")
	child.End()
	call.SetAttributes(telemetry.GatedKey.Bool(true), telemetry.DecisionKey.String("allowed"), attribute.String("elevate.task", "restart"))
	call.End()
	_, ordinary := tr.Start(ctx, "ordinary")
	ordinary.End()

	decisions, err := otel.Meter("github.com/elevate-pam/elevate/proxy").Int64Counter("elevate.decisions")
	require.NoError(t, err)
	decisions.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "allowed")))

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, tel.Shutdown(sctx))

	spans, services, metrics := rc.Snapshot()
	names := map[string]*tracepb.Span{}
	for _, s := range spans {
		names[s.Name] = s
	}
	require.Len(t, spans, 2)
	require.Contains(t, names, "elevate.policy")
	require.Contains(t, names, "proxy call")
	require.NotContains(t, names, "ordinary")
	attrs := map[string]string{}
	for _, kv := range names["proxy call"].Attributes {
		attrs[kv.Key] = kv.GetValue().String()
	}
	require.Contains(t, attrs["elevate.gated"], "true")
	require.Contains(t, attrs["elevate.decision"], "allowed")
	require.Contains(t, attrs["elevate.task"], "restart")
	require.Equal(t, names["proxy call"].SpanId, names["elevate.policy"].ParentSpanId)
	require.Contains(t, services, "elevate")
	require.Contains(t, metrics, "elevate.decisions")
}

// TestCollectorDown checks that a collector that cannot be reached, or
// that never answers, holds up neither the spans of calls nor Shutdown
// beyond its context.
func TestCollectorDown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		endpoint func(t *testing.T) string
	}{
		{"connection refused", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := l.Addr().String()
			require.NoError(t, l.Close())
			return "http://" + addr
		}},
		{"never answers", func(t *testing.T) string {
			hang := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-hang:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(hang) }) // runs first
			return srv.URL
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noOTLP(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.endpoint(t))
			ctx := context.Background()
			tel, err := telemetry.Setup(ctx, telemetry.Config{SampleRatio: new(0.0), Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, err)
			tr := otel.Tracer("test")
			for range 10_000 {
				cctx, call := tr.Start(ctx, "call")
				_, child := tr.Start(cctx, "child")
				child.End()
				call.SetAttributes(telemetry.GatedKey.Bool(true)) // kept: sent to the dead collector
				call.End()
			}

			const limit = 2 * time.Second
			sctx, cancel := context.WithTimeout(ctx, limit)
			defer cancel()
			start := time.Now()
			_ = tel.Shutdown(sctx) // the context's error, or nil when export failed fast
			require.Less(t, time.Since(start), limit+5*time.Second)
		})
	}
}
