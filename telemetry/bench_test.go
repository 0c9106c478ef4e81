package telemetry_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/elevate-pam/elevate/telemetry"
)

// proxiedCall makes the six spans of one proxied call.
func proxiedCall(tr trace.Tracer, attrs []attribute.KeyValue) {
	ctx, root := tr.Start(context.Background(), "proxy call")
	for _, name := range [...]string{"identity", "elevate.grants", "elevate.policy", "audit", "upstream"} {
		_, s := tr.Start(ctx, name)
		s.End()
	}
	root.SetAttributes(attrs...)
	root.End()
}

// BenchmarkCall measures the tracing cost of one proxied call (six spans)
// through the tail sampler, with -benchmem for its allocations.
func BenchmarkCall(b *testing.B) {
	gated := []attribute.KeyValue{telemetry.GatedKey.Bool(true), telemetry.DecisionKey.String("allowed")}
	allowed := []attribute.KeyValue{telemetry.DecisionKey.String("allowed")}
	for _, bc := range []struct {
		name     string
		export   bool
		ratio    float64
		attrs    []attribute.KeyValue
		parallel bool
	}{
		{name: "no export", attrs: allowed},
		{name: "ratio 0 ordinary dropped", export: true, attrs: allowed},
		{name: "ratio 0 ordinary dropped parallel", export: true, attrs: allowed, parallel: true},
		{name: "ratio 0 gated kept", export: true, attrs: gated},
		{name: "ratio 1 kept", export: true, ratio: 1, attrs: allowed},
	} {
		b.Run(bc.name, func(b *testing.B) {
			noOTLP(b)
			var opts []telemetry.Option
			if bc.export {
				opts = append(opts, telemetry.WithSpanExporter(tracetest.NewNoopExporter()))
			}
			tel, err := telemetry.Setup(context.Background(), telemetry.Config{
				SampleRatio: new(bc.ratio), Logger: slog.New(slog.DiscardHandler),
			}, opts...)
			require.NoError(b, err)
			defer func() { _ = tel.Shutdown(context.Background()) }()
			tr := otel.Tracer("bench")
			b.ReportAllocs()
			if bc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						proxiedCall(tr, bc.attrs)
					}
				})
				return
			}
			for b.Loop() {
				proxiedCall(tr, bc.attrs)
			}
		})
	}
}
