// Package loadtest measures throughput and latency the way `rapport load`
// reports them: a closed-loop pool of workers, each starting its next
// operation as soon as the previous one returns, bounded by a duration and a
// maximum operation count, and a latency record kept as a sorted slice of
// every operation's duration (exact percentiles; a run is short enough that
// the memory does not matter).
//
// It knows nothing about Rapport: an operation is a function. The phases and
// their baselines are in cmd/rapport/load.go.
package loadtest
