package telemetry

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/elevate-pam/elevate/internal/clocktest"
)

// keptExporter records exported spans and keeps them after Shutdown.
type keptExporter struct{ *tracetest.InMemoryExporter }

func (keptExporter) Shutdown(context.Context) error { return nil }

type rig struct {
	tail  *tailSampler
	exp   keptExporter
	clock *clocktest.Clock
	tr    trace.Tracer
}

// newRig returns a tail sampler with ratio 0 and the given caps, exporting
// synchronously to memory.
func newRig(t *testing.T, maxTraces, maxSpans, maxDecided int) *rig {
	t.Helper()
	r := &rig{exp: keptExporter{tracetest.NewInMemoryExporter()}, clock: clocktest.New(time.Unix(1_700_000_000, 0))}
	r.tail = newTailSampler(sdktrace.NewSimpleSpanProcessor(r.exp), tailConfig{
		maxTraces: maxTraces, maxSpans: maxSpans, maxDecided: maxDecided,
		timeout: time.Minute, now: r.clock.Now,
	})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(r.tail))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	r.tr = tp.Tracer("test")
	return r
}

// names returns the names of the exported spans of trace id.
func (r *rig) names(id trace.TraceID) []string {
	var out []string
	for _, s := range r.exp.GetSpans() {
		if s.SpanContext.TraceID() == id {
			out = append(out, s.Name)
		}
	}
	return out
}

// under returns a context with a remote, unsampled parent in trace id, so
// that a test chooses the trace id (and so the shard) of its local roots.
func under(id trace.TraceID) context.Context {
	return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: id, SpanID: trace.SpanID{1}, Remote: true,
	}))
}

// traceID returns a trace id in shard 0, numbered n.
func traceID(n int) trace.TraceID {
	var id trace.TraceID
	id[0] = 0 // the shard
	id[1], id[2], id[3] = byte(n>>16), byte(n>>8), byte(n)
	id[4] = 1
	return id
}

func TestTraceCapSettlesOldest(t *testing.T) {
	// 2 pending traces per shard; 4 remembered decisions per shard.
	r := newRig(t, 2*numShards, 8, 4*numShards)
	gated := traceID(0)
	ctx, root := r.tr.Start(under(gated), "call", trace.WithAttributes(GatedKey.Bool(true)))
	_, child := r.tr.Start(ctx, "policy")
	child.End()

	// Unfinished ordinary traces in the same shard push the gated one out.
	for i := 1; i <= 100; i++ {
		ctx, root := r.tr.Start(under(traceID(i)), "call")
		_, child := r.tr.Start(ctx, "policy")
		child.End()
		_ = root // never ends
	}
	traces, spans := r.tail.buffered()
	require.Equal(t, 2, traces)
	require.Equal(t, 2, spans)
	require.Equal(t, int64(98), r.tail.lostTraceCap.Load(), "ordinary traces settled early lose their spans")
	require.LessOrEqual(t, r.tail.remembered(), 2+4)

	// The gated trace was kept when settled, from its live root; its root
	// follows when it ends.
	require.Equal(t, []string{"policy"}, r.names(gated))
	root.End()
	require.Equal(t, []string{"policy", "call"}, r.names(gated))
}

func TestSpanCap(t *testing.T) {
	r := newRig(t, 64, 10, 64)
	ctx, root := r.tr.Start(context.Background(), "call", trace.WithAttributes(DecisionKey.String("denied")))
	for range 100 {
		_, s := r.tr.Start(ctx, "child")
		s.End()
	}
	_, spans := r.tail.buffered()
	require.Equal(t, 10, spans)
	require.Equal(t, int64(90), r.tail.lostSpanCap.Load())
	root.End()
	names := r.names(root.SpanContext().TraceID())
	require.Len(t, names, 11, "the root is kept beyond the cap")
	require.Equal(t, "call", names[10])
}

func TestTimeout(t *testing.T) {
	r := newRig(t, 1000, 10, 1000)
	gated, plain := traceID(1), traceID(2)
	gctx, groot := r.tr.Start(under(gated), "call")
	groot.SetAttributes(GatedKey.Bool(true)) // set after start, as the gate does
	_, s := r.tr.Start(gctx, "policy")
	s.End()
	pctx, proot := r.tr.Start(under(plain), "call")
	_, s = r.tr.Start(pctx, "policy")
	s.End()

	r.clock.Add(time.Minute - time.Second)
	_, other := r.tr.Start(under(traceID(3)), "call")
	traces, _ := r.tail.buffered()
	require.Equal(t, 3, traces, "nothing settled before the timeout")

	r.clock.Add(time.Second)
	_, other2 := r.tr.Start(under(traceID(4)), "call")
	traces, _ = r.tail.buffered()
	require.Equal(t, 2, traces, "traces 1 and 2 settled, 3 and 4 wait")
	require.Equal(t, []string{"policy"}, r.names(gated))
	require.Empty(t, r.names(plain))
	require.Equal(t, int64(1), r.tail.lostUnfinished.Load())

	// Late spans follow the decision.
	groot.End()
	proot.End()
	require.Equal(t, []string{"policy", "call"}, r.names(gated))
	require.Empty(t, r.names(plain))
	other.End()
	other2.End()
}

func TestDecisionsAreBounded(t *testing.T) {
	r := newRig(t, 16, 8, 16)
	for range 5000 {
		ctx, root := r.tr.Start(context.Background(), "call")
		_, s := r.tr.Start(ctx, "policy")
		s.End()
		root.End()
	}
	traces, _ := r.tail.buffered()
	require.Zero(t, traces)
	require.LessOrEqual(t, r.tail.remembered(), 16)
	for i := range r.tail.shards {
		require.LessOrEqual(t, len(r.tail.shards[i].free), maxFree)
	}
	require.Empty(t, r.exp.GetSpans())
}

func TestLateSpanForgottenDecisionWaits(t *testing.T) {
	// With one remembered decision per shard, a late span of a forgotten
	// trace waits like an early one, and is settled by the timeout.
	r := newRig(t, 1000, 8, numShards)
	id := traceID(1)
	ctx, root := r.tr.Start(under(id), "call")
	_, late := r.tr.Start(ctx, "audit")
	root.End()
	for i := 2; i < 5; i++ {
		_, s := r.tr.Start(under(traceID(i)), "call")
		s.End()
	}
	late.End()
	traces, spans := r.tail.buffered()
	require.Equal(t, 1, traces)
	require.Equal(t, 1, spans)
	r.clock.Add(time.Minute)
	_, s := r.tr.Start(under(traceID(9)), "call")
	s.End()
	traces, _ = r.tail.buffered()
	require.Zero(t, traces)
	require.Empty(t, r.exp.GetSpans())
}

func TestSeveralLocalRoots(t *testing.T) {
	// Two calls in one trace (a client propagating one trace id): the trace
	// is settled when both have ended, and kept if either must be.
	for _, gatedFirst := range []bool{true, false} {
		r := newRig(t, 1000, 16, 1000)
		id := traceID(7)
		ctx1, root1 := r.tr.Start(under(id), "call1")
		ctx2, root2 := r.tr.Start(under(id), "call2")
		_, c1 := r.tr.Start(ctx1, "child1")
		_, c2 := r.tr.Start(ctx2, "child2")
		c1.End()
		c2.End()
		gated := root2
		if gatedFirst {
			gated = root1
		}
		gated.SetAttributes(GatedKey.Bool(true))
		root1.End()
		require.Empty(t, r.names(id), "waits for the other root")
		root2.End()
		require.ElementsMatch(t, []string{"call1", "call2", "child1", "child2"}, r.names(id), "gated first: %v", gatedFirst)
	}
}

func TestNewRootReopensSettledTrace(t *testing.T) {
	r := newRig(t, 1000, 16, 1000)
	id := traceID(5)
	_, first := r.tr.Start(under(id), "call1")
	first.End() // ordinary: dropped
	ctx, second := r.tr.Start(under(id), "call2")
	_, c := r.tr.Start(ctx, "child2")
	c.End()
	second.SetAttributes(DecisionKey.String("grant_required"))
	second.End()
	require.ElementsMatch(t, []string{"call2", "child2"}, r.names(id))
}

func TestShutdownSettlesPending(t *testing.T) {
	r := newRig(t, 1000, 16, 1000)
	ctx, gated := r.tr.Start(context.Background(), "gated", trace.WithAttributes(attribute.Bool(string(GatedKey), true)))
	_, c := r.tr.Start(ctx, "child")
	c.End()
	ctx, plain := r.tr.Start(context.Background(), "plain")
	_, c = r.tr.Start(ctx, "child")
	c.End()
	require.NoError(t, r.tail.Shutdown(context.Background()))
	require.Equal(t, []string{"child"}, r.names(gated.SpanContext().TraceID()))
	require.Empty(t, r.names(plain.SpanContext().TraceID()))
	require.Equal(t, int64(1), r.tail.lostUnfinished.Load())
	gated.End() // ignored after shutdown
	plain.End()
	require.Len(t, r.exp.GetSpans(), 1)
}

func TestConcurrentCalls(t *testing.T) {
	// Decisions are remembered long enough for every late span here: with
	// a small memory, a goroutine paused between its root and its late
	// span could find its decision forgotten.
	r := newRig(t, 256, 16, 8*500)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				ctx, root := r.tr.Start(context.Background(), "call")
				_, a := r.tr.Start(ctx, "a")
				_, b := r.tr.Start(ctx, "b")
				a.End()
				if (g+i)%10 == 0 {
					root.SetAttributes(GatedKey.Bool(true))
				}
				root.End()
				b.End()
			}
		})
	}
	wg.Wait()
	traces, _ := r.tail.buffered()
	require.Zero(t, traces)
	require.Len(t, r.exp.GetSpans(), 8*50*3)
}

func TestMustKeep(t *testing.T) {
	for _, tc := range []struct {
		name  string
		attrs []attribute.KeyValue
		want  bool
	}{
		{"nothing", nil, false},
		{"gated", []attribute.KeyValue{GatedKey.Bool(true)}, true},
		{"not gated", []attribute.KeyValue{GatedKey.Bool(false)}, false},
		{"gated as a string is not gated", []attribute.KeyValue{GatedKey.String("true")}, false},
		{"allowed", []attribute.KeyValue{DecisionKey.String("allowed")}, false},
		{"denied", []attribute.KeyValue{DecisionKey.String("denied")}, true},
		{"unauthenticated", []attribute.KeyValue{DecisionKey.String("unauthenticated")}, true},
		{"decision of another type", []attribute.KeyValue{DecisionKey.Bool(true)}, true},
		{"event", []attribute.KeyValue{EventKey.String("grant.expired")}, true},
		{"other attributes", []attribute.KeyValue{attribute.String("elevate.task", "x")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tracetest.SpanStub{Attributes: tc.attrs}.Snapshot()
			require.Equal(t, tc.want, MustKeep(s))
		})
	}
}
