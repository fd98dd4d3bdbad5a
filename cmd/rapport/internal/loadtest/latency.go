package loadtest

import (
	"math"
	"slices"
	"time"
)

// Latencies is the sorted set of the durations of a run's operations.
type Latencies struct {
	sorted []time.Duration
}

// NewLatencies sorts ds in place and takes ownership of it.
func NewLatencies(ds []time.Duration) Latencies {
	slices.Sort(ds)
	return Latencies{sorted: ds}
}

// Len is the number of recorded durations.
func (l Latencies) Len() int { return len(l.sorted) }

// Percentile returns the nearest-rank p-th percentile (0 ≤ p ≤ 100): the
// smallest recorded duration that at least p% of the durations do not
// exceed. p ≤ 0 gives the minimum, p ≥ 100 the maximum, and an empty set 0.
func (l Latencies) Percentile(p float64) time.Duration {
	n := len(l.sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return l.sorted[min(max(rank, 1), n)-1]
}

// Mean is the arithmetic mean, 0 for an empty set.
func (l Latencies) Mean() time.Duration {
	if len(l.sorted) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range l.sorted {
		sum += d
	}
	return sum / time.Duration(len(l.sorted))
}
