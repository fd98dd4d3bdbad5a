package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTargetMet(t *testing.T) {
	m := func(perSecond float64, errors int64) Measurement {
		return Measurement{PerSecond: perSecond, Ops: 10, Errors: errors}
	}
	base := m(1000, 0)
	tests := []struct {
		name     string
		target   Target
		measured Measurement
		baseline Measurement
		want     bool
	}{
		{"rate reached", Target{MinPerSecond: 500}, m(500, 0), base, true},
		{"rate missed", Target{MinPerSecond: 500}, m(499, 0), base, false},
		{"ratio reached", Target{MinRatio: 0.5}, m(500, 0), base, true},
		{"ratio missed", Target{MinRatio: 0.5}, m(499, 0), base, false},
		{"errors fail the phase", Target{MinRatio: 0.5}, m(900, 1), base, false},
		{"a failing baseline proves nothing", Target{MinRatio: 0.5}, m(900, 0), m(1000, 1), false},
		{"an empty baseline proves nothing", Target{MinRatio: 0.5}, m(900, 0), Measurement{}, false},
		{"nothing measured", Target{MinPerSecond: 1}, Measurement{}, base, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.target.Met(tt.measured, tt.baseline); got != tt.want {
				t.Errorf("Met = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMeasureScalesByItemsPerOp(t *testing.T) {
	r := Result{Ops: 10, Elapsed: time.Second, Latency: NewLatencies([]time.Duration{time.Millisecond, 3 * time.Millisecond})}
	m := Measure("batch", "events", 1000, r)
	if m.PerSecond != 10_000 {
		t.Errorf("PerSecond = %v, want 10 calls/s × 1000 events", m.PerSecond)
	}
	if m.P50 != time.Millisecond || m.P99 != 3*time.Millisecond {
		t.Errorf("P50, P99 = %v, %v; want the per-call latencies 1ms, 3ms", m.P50, m.P99)
	}
}

func TestReportOutput(t *testing.T) {
	ph := NewPhase("write",
		Measurement{What: "service", Unit: "events", PerSecond: 12345.4, Ops: 5, P50: 1500 * time.Microsecond, CPUPerOp: 42500 * time.Nanosecond},
		Measurement{What: "raw", Unit: "puts", PerSecond: 1500, Ops: 5},
		Target{MinPerSecond: 10_000})
	if !ph.Pass || ph.Verdict() != "PASS" {
		t.Errorf("phase = %+v, want a pass", ph)
	}
	rep := Report{Machine: Machine{GoVersion: "go1.x", OS: "linux", Arch: "amd64", CPUs: 2},
		Settings: []Setting{{"duration", "10s"}}, Phases: []Phase{ph}}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 CPUs, duration 10s", "12,345 events", "1.500ms", "1,500", "8.23x", "≥10,000/s", "PASS", "baseline: raw", "42.5µs"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not read back: %v\n%s", err, js.String())
	}
	if len(back.Phases) != 1 || back.Phases[0].Measured.P50 != 1500*time.Microsecond || !back.Phases[0].Pass {
		t.Errorf("JSON read back as %+v", back)
	}
}

func TestCount(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.6: "1,234,568", -1500: "-1,500"} {
		if got := count(in); got != want {
			t.Errorf("count(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestMeasureCPUPerOp(t *testing.T) {
	m := Measure("x", "calls", 1, Result{Ops: 3, Errors: 1, CPU: 400 * time.Microsecond, Elapsed: time.Second})
	if m.CPUPerOp != 100*time.Microsecond {
		t.Errorf("CPUPerOp = %v, want 400µs over 4 operations", m.CPUPerOp)
	}
	if m := Measure("x", "calls", 1, Result{Elapsed: time.Second}); m.CPUPerOp != 0 {
		t.Errorf("CPUPerOp without operations = %v, want 0", m.CPUPerOp)
	}
}
