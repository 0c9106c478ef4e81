package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Defaults of Config.
const (
	// DefaultSampleRatio exports every trace.
	DefaultSampleRatio = 1.0
	// DefaultServiceName is the service.name of spans and metrics.
	DefaultServiceName = "elevate"
)

// MeterName is the instrumentation scope of the instruments made by
// Telemetry itself, such as those of Gauge.
const MeterName = "github.com/elevate-pam/elevate"

// Export settings.
const (
	// defaultMetricInterval is the OTLP metric export interval unless
	// OTEL_METRIC_EXPORT_INTERVAL says otherwise.
	defaultMetricInterval = 10 * time.Second
	// spanQueueSize bounds the spans waiting for export; more are dropped.
	spanQueueSize = 4096
	spanBatchSize = 512
	spanBatchWait = time.Second
	// spanExportTimeout bounds one export attempt, retries included.
	spanExportTimeout = 10 * time.Second
)

// durationBuckets are the histogram boundaries, in seconds, of every
// instrument whose name ends in ".duration": 50 µs to 10 s.
var durationBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Config configures Setup. The zero value is valid: every trace is
// exported (when an exporter is configured) under the service name
// "elevate".
type Config struct {
	// SampleRatio is the fraction of ordinary traces exported, from 0 to 1.
	// Traces of gated, refused or failed calls and of lifecycle events are
	// exported whatever the ratio (see the package doc). Nil means
	// DefaultSampleRatio (1, every trace); to export only those that must
	// be kept, set it to new(0.0).
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name resource attribute. Default
	// "elevate". OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set,
	// take precedence.
	ServiceName string `yaml:"service_name"`
	// ServiceVersion is the service.version resource attribute. Optional.
	ServiceVersion string `yaml:"service_version"`

	// Logger receives export errors. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Now is the clock of the trace buffer's timeout. Default time.Now.
	Now func() time.Time `yaml:"-"`
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	if r := c.SampleRatio; r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
		return fmt.Errorf("telemetry.sample_ratio: must be between 0 and 1, got %v", *r)
	}
	return nil
}

// ratio returns the sample ratio in force.
func (c Config) ratio() float64 {
	if c.SampleRatio == nil {
		return DefaultSampleRatio
	}
	return *c.SampleRatio
}

func (c Config) withDefaults() Config {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Option changes how Setup exports.
type Option func(*options)

type options struct {
	spanExporter sdktrace.SpanExporter
}

// WithSpanExporter exports kept spans to e instead of OTLP, whatever the
// environment says. Tests and benchmarks use it with an in-memory exporter.
func WithSpanExporter(e sdktrace.SpanExporter) Option {
	return func(o *options) { o.spanExporter = e }
}

// Telemetry is the process's tracing and metrics, installed by Setup.
type Telemetry struct {
	tp      *sdktrace.TracerProvider
	mp      *sdkmetric.MeterProvider
	tail    *tailSampler // nil when spans are not exported
	meter   metric.Meter
	handler http.Handler

	shutdownOnce sync.Once
	shutdownErr  error
}

// Setup installs the global tracer provider, meter provider and
// propagator (W3C trace context and baggage) and returns them as a
// Telemetry, which the caller shuts down on exit. Spans and metrics are
// exported over OTLP/HTTP when the standard environment variables ask for
// it (see the package doc); metrics are always served by MetricsHandler.
func Setup(ctx context.Context, cfg Config, opts ...Option) (*Telemetry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var o options
	for _, opt := range opts {
		opt(&o)
	}

	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}

	t := &Telemetry{}
	tpOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		// Every span is recorded and marked sampled; what is exported is
		// decided by the tail sampler when the trace's root ends.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	}
	exp := o.spanExporter
	if exp == nil && (envSet("OTEL_EXPORTER_OTLP_ENDPOINT") || envSet("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
		if exp, err = otlptracehttp.New(ctx); err != nil {
			return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
		}
	}
	if exp != nil {
		batch := sdktrace.NewBatchSpanProcessor(exp,
			sdktrace.WithMaxQueueSize(spanQueueSize),
			sdktrace.WithMaxExportBatchSize(spanBatchSize),
			sdktrace.WithBatchTimeout(spanBatchWait),
			sdktrace.WithExportTimeout(spanExportTimeout))
		t.tail = newTailSampler(batch, tailConfig{
			ratio:      cfg.ratio(),
			maxTraces:  MaxBufferedTraces,
			maxSpans:   MaxSpansPerTrace,
			maxDecided: rememberedDecisions,
			timeout:    TraceTimeout,
			now:        cfg.Now,
		})
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(t.tail))
	}
	t.tp = sdktrace.NewTracerProvider(tpOpts...)

	if err := t.setupMetrics(ctx, res); err != nil {
		return nil, errors.Join(err, t.tp.Shutdown(ctx))
	}

	otel.SetTracerProvider(t.tp)
	otel.SetMeterProvider(t.mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	logger := cfg.Logger
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("telemetry export failed", "err", err)
	}))
	return t, nil
}

// setupMetrics makes the meter provider with its Prometheus reader and,
// when asked for, its OTLP reader.
func (t *Telemetry) setupMetrics(ctx context.Context, res *resource.Resource) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return fmt.Errorf("telemetry: register Go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return fmt.Errorf("telemetry: register process collector: %w", err)
	}
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("telemetry: Prometheus exporter: %w", err)
	}
	mpOpts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(prom),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Name: "*.duration", Kind: sdkmetric.InstrumentKindHistogram},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: durationBuckets}},
		)),
	}
	if envSet("OTEL_EXPORTER_OTLP_ENDPOINT") || envSet("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return fmt.Errorf("telemetry: OTLP metric exporter: %w", err)
		}
		var readerOpts []sdkmetric.PeriodicReaderOption
		if !envSet("OTEL_METRIC_EXPORT_INTERVAL") {
			readerOpts = append(readerOpts, sdkmetric.WithInterval(defaultMetricInterval))
		}
		mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, readerOpts...)))
	}
	t.mp = sdkmetric.NewMeterProvider(mpOpts...)
	t.meter = t.mp.Meter(MeterName)
	t.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})

	if t.tail != nil {
		if err := t.registerTailMetrics(); err != nil {
			return errors.Join(err, t.mp.Shutdown(ctx))
		}
	}
	return nil
}

// registerTailMetrics reports the trace buffer: traces waiting for their
// root and spans lost for want of room or of a root.
func (t *Telemetry) registerTailMetrics() error {
	lost, err := t.meter.Int64ObservableCounter("elevate.trace.spans.lost",
		metric.WithUnit("{span}"),
		metric.WithDescription("Spans dropped by the trace buffer: over the per-trace cap, settled early at the trace cap, or whose root never ended."))
	if err != nil {
		return fmt.Errorf("telemetry: register elevate.trace.spans.lost: %w", err)
	}
	buffered, err := t.meter.Int64ObservableGauge("elevate.trace.buffered",
		metric.WithUnit("{trace}"),
		metric.WithDescription("Traces whose local root has not ended yet."))
	if err != nil {
		return fmt.Errorf("telemetry: register elevate.trace.buffered: %w", err)
	}
	reasons := [...]struct {
		set metric.MeasurementOption
		n   func() int64
	}{
		{metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", lostSpanCap))), t.tail.lostSpanCap.Load},
		{metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", lostTraceCap))), t.tail.lostTraceCap.Load},
		{metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", lostUnfinished))), t.tail.lostUnfinished.Load},
	}
	_, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, r := range reasons {
			o.ObserveInt64(lost, r.n(), r.set)
		}
		traces, _ := t.tail.buffered()
		o.ObserveInt64(buffered, int64(traces))
		return nil
	}, lost, buffered)
	if err != nil {
		return fmt.Errorf("telemetry: register trace buffer callback: %w", err)
	}
	return nil
}

// newResource describes this process: service name and version from cfg,
// overridden by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attrs...),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

func envSet(key string) bool { return os.Getenv(key) != "" }

// MetricsHandler serves every metric in the Prometheus text format, for
// GET /metrics: those of the meter provider and the Go runtime and process
// collectors. It uses a registry of its own, not Prometheus' default one.
func (t *Telemetry) MetricsHandler() http.Handler { return t.handler }

// Gauge registers an int64 observable gauge on the meter MeterName whose
// value is f(), read at each collection. f must be cheap and safe to call
// from any goroutine.
func (t *Telemetry) Gauge(name, unit, desc string, f func() int64) error {
	_, err := t.meter.Int64ObservableGauge(name,
		metric.WithUnit(unit),
		metric.WithDescription(desc),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(f())
			return nil
		}))
	if err != nil {
		return fmt.Errorf("telemetry: register gauge %s: %w", name, err)
	}
	return nil
}

// ForceFlush exports the kept spans and the metrics that are waiting for
// their next export, within ctx. Traces whose root has not ended stay
// buffered.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	return errors.Join(t.tp.ForceFlush(ctx), t.mp.ForceFlush(ctx))
}

// Shutdown settles the buffered traces, flushes spans and metrics and stops
// exporting, within ctx: when ctx ends first, what is left is dropped and
// the context's error is returned. Later calls return the first result.
// The global providers stay installed; spans and metrics made after
// Shutdown are dropped.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		var errs []error
		if err := t.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: shut down tracing: %w", err))
		}
		if err := t.mp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: shut down metrics: %w", err))
		}
		t.shutdownErr = errors.Join(errs...)
	})
	return t.shutdownErr
}
