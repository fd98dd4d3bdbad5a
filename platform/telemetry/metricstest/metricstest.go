// Package metricstest reads what code under test measured: a real
// sdk/metric meter provider with a ManualReader, and accessors that sum the
// data points of one instrument whose attributes match.
package metricstest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Reader is a meter provider whose measurements a test collects.
type Reader struct {
	// Provider is what the code under test is given.
	Provider *sdkmetric.MeterProvider
	reader   *sdkmetric.ManualReader
}

// New returns a Reader, shut down when the test ends.
func New(t testing.TB) *Reader {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	return &Reader{Provider: mp, reader: r}
}

// Metric returns the named instrument's data as collected now, and whether
// it was found.
func (r *Reader) Metric(t testing.TB, name string) (metricdata.Metrics, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// matches reports whether set has every attribute of want.
func matches(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// Histogram returns the count and sum of the named histogram's data
// points that carry every attribute of want.
func (r *Reader) Histogram(t testing.TB, name string, want ...attribute.KeyValue) (count uint64, sum float64) {
	t.Helper()
	m, _ := r.Metric(t, name)
	switch d := m.Data.(type) {
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			if matches(dp.Attributes, want) {
				count, sum = count+dp.Count, sum+dp.Sum
			}
		}
	case metricdata.Histogram[int64]:
		for _, dp := range d.DataPoints {
			if matches(dp.Attributes, want) {
				count, sum = count+dp.Count, sum+float64(dp.Sum)
			}
		}
	case nil:
	default:
		t.Fatalf("%s is a %T, not a histogram", name, m.Data)
	}
	return count, sum
}

// HistogramMax returns the largest value recorded in the named histogram's
// data points that carry every attribute of want (0 if none).
func (r *Reader) HistogramMax(t testing.TB, name string, want ...attribute.KeyValue) float64 {
	t.Helper()
	m, _ := r.Metric(t, name)
	var out float64
	switch d := m.Data.(type) {
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			if v, ok := dp.Max.Value(); ok && matches(dp.Attributes, want) && v > out {
				out = v
			}
		}
	case metricdata.Histogram[int64]:
		for _, dp := range d.DataPoints {
			if v, ok := dp.Max.Value(); ok && matches(dp.Attributes, want) && float64(v) > out {
				out = float64(v)
			}
		}
	case nil:
	default:
		t.Fatalf("%s is a %T, not a histogram", name, m.Data)
	}
	return out
}

// Value returns the sum of the named gauge's or counter's data points that
// carry every attribute of want, and whether there was any.
func (r *Reader) Value(t testing.TB, name string, want ...attribute.KeyValue) (float64, bool) {
	t.Helper()
	m, _ := r.Metric(t, name)
	var out float64
	found := false
	add := func(attrs attribute.Set, v float64) {
		if matches(attrs, want) {
			out, found = out+v, true
		}
	}
	switch d := m.Data.(type) {
	case metricdata.Gauge[int64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes, float64(dp.Value))
		}
	case metricdata.Gauge[float64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes, dp.Value)
		}
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes, float64(dp.Value))
		}
	case metricdata.Sum[float64]:
		for _, dp := range d.DataPoints {
			add(dp.Attributes, dp.Value)
		}
	case nil:
	default:
		t.Fatalf("%s is a %T, not a gauge or a sum", name, m.Data)
	}
	return out, found
}
