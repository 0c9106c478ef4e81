// Package telemetry sets up elevate's traces and metrics: Setup installs
// the global OpenTelemetry tracer provider, meter provider and propagator
// (W3C trace context and baggage), and the returned Telemetry serves
// metrics for Prometheus and shuts everything down.
//
// Other packages need nothing from this one beyond Setup having run: they
// call otel.Tracer and otel.Meter with their own import path as the name.
//
// # Export
//
// Spans and metrics are exported over OTLP/HTTP (protobuf) when the
// standard variables ask for it: OTEL_EXPORTER_OTLP_ENDPOINT for both,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
// for one. The other OTEL_EXPORTER_OTLP_* variables (headers, timeout,
// certificates, compression) apply as the OpenTelemetry SDK reads them;
// OTEL_EXPORTER_OTLP_PROTOCOL does not, gRPC is not used. Without an
// endpoint, spans are still made, so every decision has a trace id for its
// audit record, and dropped when they end; metrics are then only served by
// MetricsHandler, which is always available.
//
// Export never holds up a call. Kept spans wait in a queue of 4096 and
// are sent in batches of up to 512 at least every second; when the queue is
// full, further spans are dropped. Metrics are pushed every 10 seconds, or
// every OTEL_METRIC_EXPORT_INTERVAL milliseconds when that is set.
//
// # Which traces are exported
//
// Whether a call is gated is known only after its policy has been
// evaluated, long after its first span started, so the decision is taken
// at the end of the trace (tail sampling) rather than at its start. Every
// span is recorded and marked sampled; the spans of a trace are held in
// memory as they end until its local root ends (a span whose parent is
// absent or in another process). Then all of them are exported, or all
// dropped. A trace is exported when any of these holds:
//
//   - a span of the trace, ended by then, makes MustKeep true: it has
//     elevate.gated = true, an elevate.decision other than "allowed", any
//     elevate.event (a lifecycle event), or status Error;
//   - its local root has a remote parent that is sampled: the caller asked
//     for the trace;
//   - its trace id falls under Config.SampleRatio, by the rule of
//     sdktrace.TraceIDRatioBased, so that other services using the same
//     ratio keep the same traces. These spans are exported as they end,
//     without waiting.
//
// Spans that end after their trace was decided follow that decision, which
// is remembered for about the last 16384 traces decided; a span whose
// trace's decision is forgotten waits like the first span of a new trace.
// When several local roots share
// one trace id (a client that sends several calls under one trace), the
// trace is decided when the last of them ends.
//
// Memory is bounded. At most MaxBufferedTraces traces wait for their root,
// with at most MaxSpansPerTrace spans each (besides their roots); further
// spans are dropped. A trace whose root has not ended after TraceTimeout
// (checked as new traces arrive), or the oldest one when the cap is reached, is decided early by the rules
// above, its root being looked at as it is at that moment; its root and
// later spans follow that decision. Shutdown decides every waiting trace
// the same way. The buffer is split in shards, each with its own lock, so
// that the cost of a span's end is a lock and a map lookup.
//
// # Metrics
//
// Instruments are named with dots and served by MetricsHandler under the
// Prometheus names below: dots become underscores, the unit "s" adds
// _seconds, counters get _total, and units in braces (such as {grant}) add
// nothing. Each series carries the otel_scope_name label (the meter's name)
// and the resource is served as target_info. Histograms of instruments
// whose name ends in ".duration" have the buckets 50µs, 100µs, 250µs,
// 500µs, 1ms, 2.5ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms, 500ms, 1s, 2.5s,
// 5s and 10s.
//
//	Instrument                    Kind                  Prometheus
//	elevate.decisions             counter, outcome      elevate_decisions_total
//	elevate.decision.duration     histogram, s          elevate_decision_duration_seconds
//	elevate.upstream.duration     histogram, s          elevate_upstream_duration_seconds
//	elevate.audit.fsync.duration  histogram, s          elevate_audit_fsync_duration_seconds
//	elevate.grants.live           gauge                 elevate_grants_live
//	elevate.requests.pending      gauge                 elevate_requests_pending
//	elevate.audit.queue           gauge                 elevate_audit_queue
//	elevate.trace.spans.lost      counter, reason       elevate_trace_spans_lost_total
//	elevate.trace.buffered        gauge                 elevate_trace_buffered
//
// elevate.decisions counts judged calls by their outcome attribute (such
// as allowed or denied). The gauges are registered with
// Telemetry.Gauge. This package makes only the last two: spans lost by the
// trace buffer, with reason span_cap, trace_cap (an ordinary trace decided
// early at the cap) or unfinished (its root had not ended after
// TraceTimeout or at shutdown), and the traces waiting for their root; both
// exist only when spans are exported. MetricsHandler also serves the Go
// runtime (go_*) and process (process_*) metrics.
package telemetry
