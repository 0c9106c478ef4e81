package telemetry_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"go.opentelemetry.io/otel"

	"github.com/elevate-pam/elevate/telemetry"
)

func Example() {
	ctx := context.Background()
	// Export one ordinary trace in ten; gated and refused calls always.
	tel, err := telemetry.Setup(ctx, telemetry.Config{SampleRatio: new(0.1), ServiceVersion: "1.0.0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = tel.Shutdown(ctx) }()

	// A call: its root span says it was gated, so its trace is kept.
	_, span := otel.Tracer("github.com/elevate-pam/elevate/proxy").Start(ctx, "proxy call")
	span.SetAttributes(telemetry.GatedKey.Bool(true), telemetry.DecisionKey.String("allowed"))
	span.End()

	// A gauge, served at /metrics.
	if err := tel.Gauge("elevate.grants.live", "{grant}", "Grants in force.", func() int64 { return 2 }); err != nil {
		fmt.Println(err)
		return
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "elevate_grants_live") {
			fmt.Print(line)
		}
	}
	// Output:
	// elevate_grants_live{otel_scope_name="github.com/elevate-pam/elevate",otel_scope_schema_url="",otel_scope_version=""} 2
}
