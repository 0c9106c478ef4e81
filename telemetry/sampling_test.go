package telemetry_test

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/elevate-pam/elevate/telemetry"
)

// noOTLP makes sure the environment asks for no OTLP export.
func noOTLP(t testing.TB) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(k, "")
	}
}

// setupMemory sets telemetry up with spans going to an in-memory exporter.
func setupMemory(t testing.TB, ratio float64) (*telemetry.Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	noOTLP(t)
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{
		SampleRatio: new(ratio),
		Logger:      slog.New(slog.DiscardHandler),
	}, telemetry.WithSpanExporter(exp))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, exp
}

// exported flushes and returns the names of the exported spans, sorted.
func exported(t *testing.T, tel *telemetry.Telemetry, exp *tracetest.InMemoryExporter) []string {
	t.Helper()
	require.NoError(t, tel.ForceFlush(context.Background()))
	var names []string
	for _, s := range exp.GetSpans() {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// call makes the spans of one proxied call: a root with children, some
// ended before the root and one after it. attrs go on the root.
func call(ctx context.Context, status codes.Code, attrs ...attribute.KeyValue) {
	tr := otel.Tracer("test")
	ctx, root := tr.Start(ctx, "call")
	_, identity := tr.Start(ctx, "identity")
	identity.End()
	pctx, policy := tr.Start(ctx, "policy")
	_, rego := tr.Start(pctx, "rego")
	rego.End()
	policy.End()
	_, audit := tr.Start(ctx, "audit")
	root.SetAttributes(attrs...)
	root.SetStatus(status, "")
	root.End()
	audit.End() // ends after the root
}

var callSpans = []string{"audit", "call", "identity", "policy", "rego"}

// remote returns a context whose span is a remote parent.
func remote(sampled bool) context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: map[bool]trace.TraceFlags{true: trace.FlagsSampled, false: 0}[sampled],
		Remote:     true,
	})
	return trace.ContextWithRemoteSpanContext(context.Background(), sc)
}

func TestTailSampling(t *testing.T) {
	bg := context.Background()
	for _, tc := range []struct {
		name  string
		ratio float64
		run   func()
		want  []string
	}{
		{
			name: "ratio 0 drops an ordinary trace with its children",
			run:  func() { call(bg, codes.Unset, telemetry.DecisionKey.String("allowed")) },
		},
		{
			name: "ratio 0 keeps a gated call, children before and after the root included",
			run:  func() { call(bg, codes.Unset, telemetry.GatedKey.Bool(true), telemetry.DecisionKey.String("allowed")) },
			want: callSpans,
		},
		{
			name: "gated false is ordinary",
			run:  func() { call(bg, codes.Unset, telemetry.GatedKey.Bool(false)) },
		},
		{
			name: "a refusal is kept",
			run:  func() { call(bg, codes.Unset, telemetry.DecisionKey.String("denied")) },
			want: callSpans,
		},
		{
			name: "a lifecycle event is kept",
			run:  func() { call(bg, codes.Unset, telemetry.EventKey.String("request.approved")) },
			want: callSpans,
		},
		{
			name: "an error status is kept",
			run:  func() { call(bg, codes.Error) },
			want: callSpans,
		},
		{
			name: "a remote sampled parent is kept",
			run:  func() { call(remote(true), codes.Unset) },
			want: callSpans,
		},
		{
			name: "a remote parent not sampled leaves the decision to the ratio",
			run:  func() { call(remote(false), codes.Unset) },
		},
		{
			name: "a child that must be kept keeps its trace",
			run: func() {
				tr := otel.Tracer("test")
				ctx, root := tr.Start(bg, "call")
				_, child := tr.Start(ctx, "policy")
				child.SetStatus(codes.Error, "policy evaluation failed")
				child.End()
				root.End()
			},
			want: []string{"call", "policy"},
		},
		{
			name:  "ratio 1 keeps every trace",
			ratio: 1,
			run: func() {
				call(bg, codes.Unset)
				call(remote(false), codes.Unset)
			},
			want: append(slices.Clone(callSpans), callSpans...),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel, exp := setupMemory(t, tc.ratio)
			tc.run()
			got := exported(t, tel, exp)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			require.Equal(t, want, got)
		})
	}
}

// TestRatio checks that a ratio between 0 and 1 keeps about that share of
// ordinary traces, and the same traces as sdktrace.TraceIDRatioBased.
func TestRatio(t *testing.T) {
	tel, exp := setupMemory(t, 0.25)
	sampler := sdktrace.TraceIDRatioBased(0.25)
	tr := otel.Tracer("test")
	want := map[trace.TraceID]bool{}
	const n = 2000
	for range n {
		_, s := tr.Start(context.Background(), "call")
		id := s.SpanContext().TraceID()
		s.End()
		if sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: id}).Decision == sdktrace.RecordAndSample {
			want[id] = true
		}
	}
	require.NoError(t, tel.ForceFlush(context.Background()))
	got := map[trace.TraceID]bool{}
	for _, s := range exp.GetSpans() {
		got[s.SpanContext.TraceID()] = true
	}
	require.Equal(t, want, got)
	require.InDelta(t, n/4, len(got), n/10)
}

// TestEverySpanHasATraceID checks that spans are sampled from the start,
// whatever the ratio, so that each decision can name its trace.
func TestEverySpanHasATraceID(t *testing.T) {
	setupMemory(t, 0)
	_, s := otel.Tracer("test").Start(remote(false), "call")
	defer s.End()
	require.True(t, s.SpanContext().IsValid())
	require.True(t, s.SpanContext().IsSampled())
	require.True(t, s.IsRecording())
}

func TestNoExporter(t *testing.T) {
	noOTLP(t)
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{})
	require.NoError(t, err)
	_, s := otel.Tracer("test").Start(context.Background(), "call")
	require.True(t, s.SpanContext().IsValid())
	s.End()
	require.NoError(t, tel.Shutdown(context.Background()))
	require.NoError(t, tel.Shutdown(context.Background()), "a second Shutdown returns the first result")
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ratio *float64
		err   string
	}{
		{name: "default", ratio: nil},
		{name: "zero", ratio: new(0.0)},
		{name: "one", ratio: new(1.0)},
		{name: "half", ratio: new(0.5)},
		{name: "negative", ratio: new(-0.1), err: "telemetry.sample_ratio"},
		{name: "above one", ratio: new(1.5), err: "telemetry.sample_ratio"},
		{name: "NaN", ratio: new(math.NaN()), err: "telemetry.sample_ratio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := telemetry.Config{SampleRatio: tc.ratio}
			err := cfg.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			_, err = telemetry.Setup(context.Background(), cfg)
			require.ErrorContains(t, err, tc.err)
		})
	}
}
