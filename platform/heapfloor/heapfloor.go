// Package heapfloor keeps the garbage collector from running on every few
// megabytes of allocation while a process's live heap is small.
//
// Go starts a collection when the heap has grown GOGC percent past what the
// previous one left live. A service whose records live in an mmap'd bbolt
// file keeps only a few megabytes live, so at GOGC=100 thousands of short
// requests a second make it collect fifty times a second, and a fifth of
// its CPU goes to marking the same small heap over and over. Start raises
// the GC percentage just enough that the heap goal stays at or above a
// floor, and hands the configured percentage back once the live heap is
// large enough to reach the floor by itself. This is the GOGC tuner large
// Go shops run in front of small-heap services.
//
// The floor is a goal, not a reservation: nothing is allocated for it. An
// explicit GOMEMLIMIT still wins, because the runtime collects early as the
// heap nears the limit whatever the percentage. With GOGC=off there is
// nothing to tune and Start does nothing.
package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// maxPercent bounds the percentage set for a nearly empty heap.
const maxPercent = 50_000

// Tuner holds the floor; it re-tunes after every collection until Stop.
type Tuner struct {
	floor   uint64
	base    int
	stopped atomic.Bool
	mu      sync.Mutex
	current int
	samples []metrics.Sample
	tuned   func(percent int) // tests: called after each tuning
}

// Start sets the floor, in bytes, under the heap goal of this process. Only
// one Tuner should run per process. floor 0 starts nothing.
func Start(floor uint64) *Tuner { return start(floor, nil) }

func start(floor uint64, tuned func(int)) *Tuner {
	t := &Tuner{floor: floor, tuned: tuned, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
	}}
	// The configured percentage: GOGC, or what the program set before.
	t.base = debug.SetGCPercent(100)
	debug.SetGCPercent(t.base)
	if floor == 0 || t.base < 0 {
		t.stopped.Store(true)
		return t
	}
	t.current = t.base
	t.tune()
	t.arm()
	return t
}

// Stop gives the process back its configured percentage.
func (t *Tuner) Stop() {
	if t.stopped.Swap(true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	debug.SetGCPercent(t.base)
	t.current = t.base
}

// arm runs tune after the next collection: the cleanup of an object nothing
// references runs once a cycle has found it unreachable, and re-arms. The
// object is 32 bytes so the runtime never batches it with others in a tiny
// allocation (under 16 bytes, pointer-free), whose cleanups may never run.
func (t *Tuner) arm() {
	runtime.AddCleanup(new([32]byte), func(t *Tuner) {
		if t.stopped.Load() {
			return
		}
		t.tune()
		t.arm()
	}, t)
}

// tune sets the percentage whose goal, over the heap the last cycle left
// live, reaches the floor; never below the configured one.
func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.samples)
	p := Percent(t.floor, t.samples[0].Value.Uint64(), t.samples[1].Value.Uint64()+t.samples[2].Value.Uint64(), t.base)
	// A change of under a tenth moves the goal too little to matter and
	// each call takes the heap lock.
	if d := p - t.current; d*10 > t.current || -d*10 > t.current {
		debug.SetGCPercent(p)
		t.current = p
	}
	if t.tuned != nil {
		t.tuned(t.current)
	}
}

// Percent is the GC percentage that puts the heap goal at floor bytes, but
// never below base. The runtime's goal is live + (live + roots) × percent /
// 100, where live is what the last cycle marked and roots the stacks and
// globals it scanned. Before the first collection live is 0; the runtime's
// own minimum heap, 4 MiB, stands in.
func Percent(floor, live, roots uint64, base int) int {
	if live == 0 {
		live = 4 << 20
	}
	if live >= floor {
		return base
	}
	p := (floor - live) * 100 / (live + roots)
	if p > maxPercent {
		p = maxPercent
	}
	return max(int(p), base)
}
