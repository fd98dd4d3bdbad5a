package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Measurement is one side of a phase: the system under test or its
// baseline.
type Measurement struct {
	// What says what was measured, e.g. "RecordEvent over gRPC, 1 event/call".
	What string `json:"what"`
	// Unit names what PerSecond counts ("events", "puts", "requests").
	Unit string `json:"unit"`
	// ItemsPerOp is how many units one operation carries (1000 for a batch).
	ItemsPerOp int `json:"items_per_op"`
	// PerSecond is units per second.
	PerSecond float64 `json:"per_second"`
	// Ops and Errors count operations, not units.
	Ops    int64 `json:"ops"`
	Errors int64 `json:"errors"`
	// P50 and P99 are per operation.
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Error is the first errors, when there were any.
	Error string `json:"error,omitempty"`
	// CPUPerOp is the process's CPU time (load generator included) per
	// operation, zero when not measured. Other processes on the machine
	// slow the rates down but hardly change it, so it compares runs on a
	// busy machine better than the rates do.
	CPUPerOp time.Duration `json:"cpu_per_op_ns,omitempty"`
	// AllocsPerOp is the process's heap allocations (load generator
	// included) per operation.
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// Measure summarizes r, whose operations carry itemsPerOp units each.
func Measure(what, unit string, itemsPerOp int, r Result) Measurement {
	m := Measurement{
		What: what, Unit: unit, ItemsPerOp: itemsPerOp,
		PerSecond: r.PerSecond() * float64(itemsPerOp),
		Ops:       r.Ops, Errors: r.Errors,
		P50: r.Latency.Percentile(50), P99: r.Latency.Percentile(99),
		Elapsed: r.Elapsed,
	}
	if err := r.Err(); err != nil {
		m.Error = err.Error()
	}
	if n := r.Ops + r.Errors; n > 0 {
		m.CPUPerOp = r.CPU / time.Duration(n)
		m.AllocsPerOp = float64(r.Allocs) / float64(n)
	}
	return m
}

// Target is a phase's pass mark: an absolute rate, or a fraction of the
// baseline's rate measured in the same run.
type Target struct {
	// MinPerSecond, when set, is the rate to reach.
	MinPerSecond float64 `json:"min_per_second,omitempty"`
	// MinRatio, when set, is the fraction of the baseline's rate to reach.
	MinRatio float64 `json:"min_ratio,omitempty"`
}

// Met reports whether m reaches the target against baseline.
func (t Target) Met(m, baseline Measurement) bool {
	if m.Errors > 0 || m.Ops == 0 {
		return false
	}
	if t.MinPerSecond > 0 && m.PerSecond < t.MinPerSecond {
		return false
	}
	if t.MinRatio > 0 && (baseline.Errors > 0 || ratio(m, baseline) < t.MinRatio) {
		return false
	}
	return true
}

func (t Target) String() string {
	var parts []string
	if t.MinPerSecond > 0 {
		parts = append(parts, "≥"+count(t.MinPerSecond)+"/s")
	}
	if t.MinRatio > 0 {
		parts = append(parts, "≥"+strconv.FormatFloat(t.MinRatio, 'f', -1, 64)+"x")
	}
	return strings.Join(parts, " and ")
}

// ratio is 0 when the baseline measured nothing: no comparison, no pass.
func ratio(m, baseline Measurement) float64 {
	if baseline.PerSecond == 0 {
		return 0
	}
	return m.PerSecond / baseline.PerSecond
}

// Phase is one benchmark: the system under test against its baseline,
// measured in the same run on the same machine and disk.
type Phase struct {
	Name     string      `json:"phase"`
	Measured Measurement `json:"measured"`
	Baseline Measurement `json:"baseline"`
	// Ratio is Measured.PerSecond / Baseline.PerSecond.
	Ratio  float64 `json:"ratio"`
	Target Target  `json:"target"`
	Pass   bool    `json:"pass"`
}

// NewPhase compares m with baseline against target.
func NewPhase(name string, m, baseline Measurement, target Target) Phase {
	return Phase{Name: name, Measured: m, Baseline: baseline, Ratio: ratio(m, baseline),
		Target: target, Pass: target.Met(m, baseline)}
}

// Verdict is PASS or MISS.
func (p Phase) Verdict() string {
	if p.Pass {
		return "PASS"
	}
	return "MISS"
}

// Machine describes where a report was measured.
type Machine struct {
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
}

// ThisMachine is the machine this process runs on.
func ThisMachine() Machine {
	return Machine{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
}

// Setting is one knob of the run, shown in the report's header.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Report is the outcome of a run of phases.
type Report struct {
	Machine  Machine   `json:"machine"`
	Settings []Setting `json:"settings"`
	Phases   []Phase   `json:"phases"`
}

// WriteTable prints the report as a header line and an aligned table, two
// rows a phase: the system under test, then its baseline. The first errors
// of any measurement follow the table.
func (r Report) WriteTable(w io.Writer) error {
	var head strings.Builder
	fmt.Fprintf(&head, "%s %s/%s, %d CPUs", r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch, r.Machine.CPUs)
	for _, s := range r.Settings {
		fmt.Fprintf(&head, ", %s %s", s.Name, s.Value)
	}
	if _, err := fmt.Fprintf(w, "%s\n\n", head.String()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tWHAT\tOPS/S\tP50\tP99\tCPU/OP\tALLOCS/OP\tERRORS\tBASELINE OPS/S\tRATIO\tTARGET\tRESULT")
	for _, p := range r.Phases {
		m, b := p.Measured, p.Baseline
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\t%.0f\t%d\t%s\t%.2fx\t%s\t%s\n",
			p.Name, m.What, count(m.PerSecond), m.Unit, ms(m.P50), ms(m.P99), cpu(m.CPUPerOp), m.AllocsPerOp, m.Errors,
			count(b.PerSecond), p.Ratio, p.Target, p.Verdict())
		fmt.Fprintf(tw, "\t  baseline: %s\t%s %s\t%s\t%s\t%s\t%.0f\t%d\t\t\t\t\n",
			b.What, count(b.PerSecond), b.Unit, ms(b.P50), ms(b.P99), cpu(b.CPUPerOp), b.AllocsPerOp, b.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range r.Phases {
		for _, m := range []Measurement{p.Measured, p.Baseline} {
			if m.Error != "" {
				if _, err := fmt.Fprintf(w, "%s: %s: %s\n", p.Name, m.What, m.Error); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// WriteJSON prints the report as one indented JSON document; durations are
// in nanoseconds.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// count formats a rate with thousands separators, no decimals.
func count(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ms formats a latency in milliseconds, to the microsecond.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}

// cpu formats a CPU time per operation in microseconds, "-" when not
// measured.
func cpu(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 1, 64) + "µs"
}
