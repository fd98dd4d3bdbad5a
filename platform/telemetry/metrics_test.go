package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"rapport.dev/platform/telemetry"
)

// scrape returns what the Prometheus handler serves.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

func TestMetricsServesPrometheus(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(telemetry.MetricsOptions{ServiceName: "rapport", ServiceVersion: "1.2.3", Readers: []sdkmetric.Reader{reader}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())

	// Two components share the provider and the instrument, told apart by
	// the component attribute.
	for _, c := range []string{"profile", "loyalty"} {
		h, err := m.MeterProvider.Meter("test").Float64Histogram("rapport.test.duration", metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
		if err != nil {
			t.Fatal(err)
		}
		h.Record(context.Background(), 0.003, metric.WithAttributes(telemetry.ComponentKey.String(c)))
	}
	body := scrape(t, m.Handler)
	for _, want := range []string{
		`rapport_test_duration_seconds_count{otel_scope_name="test",otel_scope_schema_url="",otel_scope_version="",rapport_component="profile"} 1`,
		`rapport_test_duration_seconds_count{otel_scope_name="test",otel_scope_schema_url="",otel_scope_version="",rapport_component="loyalty"} 1`,
		`rapport_test_duration_seconds_bucket{otel_scope_name="test",otel_scope_schema_url="",otel_scope_version="",rapport_component="profile",le="0.005"} 1`,
		`service_name="rapport"`,
		`service_version="1.2.3"`,
		"go_goroutines ",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	// The same measurements reach the extra reader.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) != 1 || len(rm.ScopeMetrics[0].Metrics) != 1 {
		t.Fatalf("reader collected %+v", rm.ScopeMetrics)
	}
	hist := rm.ScopeMetrics[0].Metrics[0].Data.(metricdata.Histogram[float64])
	if len(hist.DataPoints) != 2 {
		t.Fatalf("%d data points, want one per component", len(hist.DataPoints))
	}
	for _, dp := range hist.DataPoints {
		if c, _ := dp.Attributes.Value(telemetry.ComponentKey); c.AsString() == "" || dp.Count != 1 {
			t.Errorf("data point %v: count %d", dp.Attributes.ToSlice(), dp.Count)
		}
	}
}

func TestNewMetricsNeedsServiceName(t *testing.T) {
	if _, err := telemetry.NewMetrics(telemetry.MetricsOptions{}); err == nil {
		t.Error("NewMetrics without a service name succeeded")
	}
	var none *telemetry.Metrics
	if err := none.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of nil: %v", err)
	}
}
