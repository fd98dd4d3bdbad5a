package domain

import (
	"math/bits"
	"runtime"
	"slices"
	"sync"
)

// Selection: order statistics without sorting. Scoring needs a handful of
// order statistics of each measure (the quintile boundaries, the tier cuts,
// the thresholds), which selection finds in expected linear time.

// selectSmall is the length at or below which a range is simply
// insertion-sorted.
const selectSmall = 16

// selectInt64 rearranges a so that a[k], for every k in ks, is the value an
// ascending sort would put at k (the k-th order statistic, counted from 0).
// ks must be ascending and within [0, len(a)); repeats are fine. The rest of
// a is left partitioned around those positions, in no particular order.
//
// It is an introselect: quickselect around a median-of-3 or ninther pivot,
// with branch-free two-way partitions, which falls back to sorting a range
// once the partitions stop shrinking — expected O(len(a)·(1+log len(ks))),
// O(len(a)·log len(a)) at worst. Runs of equal values are dealt with as in
// pdqsort: when the pivot equals a known lower bound of the range it is the
// range's least value, and one partition sets its whole run aside. The
// outcome does not depend on the pivots: the values at ks are determined by
// a alone.
func selectInt64(a []int64, ks []int) {
	if len(ks) == 0 {
		return
	}
	introselectInt64(a, 0, len(a), ks, 2*bits.Len(uint(len(a))), 0, false)
}

// introselectInt64 selects ks (absolute positions, within [lo, hi)) in
// a[lo:hi]; budget is the number of partitions left before a range is
// sorted instead. With hasLB, every value in the range is at least lb.
func introselectInt64(a []int64, lo, hi int, ks []int, budget int, lb int64, hasLB bool) {
	for len(ks) > 0 {
		if hi-lo <= selectSmall {
			insertionSortInt64(a[lo:hi])
			return
		}
		if budget == 0 {
			slices.Sort(a[lo:hi])
			return
		}
		budget--
		p := pivotInt64(a, lo, hi)
		if hasLB && p == lb {
			// p is the least value of the range: set its run aside, and
			// every k within it is found.
			eq := lo + partitionLessEqInt64(a[lo:hi], p)
			j, _ := slices.BinarySearch(ks, eq)
			ks, lo = ks[j:], eq
			continue
		}
		lt := lo + partitionLessInt64(a[lo:hi], p)
		i, _ := slices.BinarySearch(ks, lt)
		if i > 0 {
			introselectInt64(a, lo, lt, ks[:i], budget, lb, hasLB)
		}
		ks, lo, lb, hasLB = ks[i:], lt, p, true
	}
}

// partitionLessInt64 moves the values below p to the front of a and returns
// their number: a Lomuto partition without branches on the values.
func partitionLessInt64(a []int64, p int64) int {
	j := 0
	for i, v := range a {
		a[i] = a[j]
		a[j] = v
		j += b2i(v < p)
	}
	return j
}

// partitionLessEqInt64 is partitionLessInt64 for the values at most p.
func partitionLessEqInt64(a []int64, p int64) int {
	j := 0
	for i, v := range a {
		a[i] = a[j]
		a[j] = v
		j += b2i(v <= p)
	}
	return j
}

// b2i is 1 for true, 0 for false; the compiler makes it a SETcc, not a
// branch.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pivotInt64 is the median of three elements of a[lo:hi], or Tukey's
// ninther (the median of three such medians) for longer ranges.
func pivotInt64(a []int64, lo, hi int) int64 {
	n := hi - lo
	m := lo + n/2
	if n < 128 {
		return median3(a[lo], a[m], a[hi-1])
	}
	s := n / 8
	return median3(
		median3(a[lo], a[lo+s], a[lo+2*s]),
		median3(a[m-s], a[m], a[m+s]),
		median3(a[hi-1-2*s], a[hi-1-s], a[hi-1]))
}

func median3(x, y, z int64) int64 {
	if x > y {
		x, y = y, x
	}
	// x <= y: the median is y unless z is below it.
	if z < y {
		return max(x, z)
	}
	return y
}

func insertionSortInt64(a []int64) {
	for i := 1; i < len(a); i++ {
		v := a[i]
		j := i
		for ; j > 0 && a[j-1] > v; j-- {
			a[j] = a[j-1]
		}
		a[j] = v
	}
}

// statJob asks for the order statistics ks (ascending positions, from 0)
// of col, to be put in out (aligned with ks).
type statJob struct {
	col []int64
	ks  []int
	out []int64
}

// orderStats does the jobs: one selection on a copy of each distinct column
// (jobs on the same column share it), made in scratch, which it returns,
// grown as needed.
func orderStats(jobs []statJob, scratch []int64) []int64 {
	type group struct {
		col  []int64
		ks   []int
		jobs []*statJob
	}
	var groups []*group
	var offset []int
	size := 0
	for i := range jobs {
		j := &jobs[i]
		if len(j.ks) == 0 {
			continue
		}
		g := slices.IndexFunc(groups, func(g *group) bool { return &g.col[0] == &j.col[0] && len(g.col) == len(j.col) })
		if g < 0 {
			g = len(groups)
			groups = append(groups, &group{col: j.col})
			offset = append(offset, size)
			size += len(j.col)
		}
		groups[g].ks = append(groups[g].ks, j.ks...)
		groups[g].jobs = append(groups[g].jobs, j)
	}
	scratch = grow(scratch, size)
	// The columns are selected at once, each in its own part of scratch.
	eachPart(len(groups), size, func(gi int) {
		g := groups[gi]
		a := scratch[offset[gi] : offset[gi]+len(g.col)]
		copy(a, g.col)
		slices.Sort(g.ks)
		selectInt64(a, g.ks)
		for _, j := range g.jobs {
			for q, k := range j.ks {
				j.out[q] = a[k]
			}
		}
	})
	return scratch
}

// parallelMin is the work (elements) below which eachPart and eachRange
// stay on the calling goroutine.
const parallelMin = 1 << 16

// eachPart calls f(i) for every i in [0, n), concurrently when the parts
// hold work elements in all and that is worth it.
func eachPart(n, work int, f func(i int)) {
	if n < 2 || work < parallelMin || runtime.GOMAXPROCS(0) < 2 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

// eachRange calls f on consecutive ranges covering [0, n), one per
// processor, concurrently when n is worth it.
func eachRange(n int, f func(lo, hi int)) {
	parts := 1
	if n >= parallelMin {
		parts = runtime.GOMAXPROCS(0)
	}
	eachPart(parts, n, func(i int) { f(n*i/parts, n*(i+1)/parts) })
}

// selectFunc is selectInt64 for any element type under a comparison (a
// strict weak order, as for slices.SortFunc): afterwards a[k], for every k
// in ks, is the element a stable-or-not ascending sort would put there, up
// to elements comparing equal. Scoring uses it on the (customer id, row)
// keys of a tie run, which are all distinct.
func selectFunc[T any](a []T, ks []int, cmp func(x, y T) int) {
	if len(ks) == 0 {
		return
	}
	introselectFunc(a, 0, len(a), ks, 2*bits.Len(uint(len(a))), cmp)
}

func introselectFunc[T any](a []T, lo, hi int, ks []int, budget int, cmp func(x, y T) int) {
	for len(ks) > 0 {
		if hi-lo <= selectSmall || budget == 0 {
			slices.SortFunc(a[lo:hi], cmp)
			return
		}
		budget--
		// The median of three, moved to lo, is the pivot.
		m := lo + (hi-lo)/2
		if cmp(a[m], a[lo]) < 0 {
			a[m], a[lo] = a[lo], a[m]
		}
		if cmp(a[hi-1], a[m]) < 0 {
			a[hi-1], a[m] = a[m], a[hi-1]
			if cmp(a[m], a[lo]) < 0 {
				a[m], a[lo] = a[lo], a[m]
			}
		}
		a[lo], a[m] = a[m], a[lo]
		p := a[lo]
		// Three-way partition; a[lt:i] holds the pivot and its equals
		// (never empty), a[i:gt] is still to be seen.
		lt, gt := lo, hi
		for i := lo + 1; i < gt; {
			switch c := cmp(a[i], p); {
			case c < 0:
				a[i], a[lt] = a[lt], a[i]
				lt++
				i++
			case c > 0:
				gt--
				a[i], a[gt] = a[gt], a[i]
			default:
				i++
			}
		}
		// a[lo:lt] < p, a[lt:gt] == p, a[gt:hi] > p.
		i, _ := slices.BinarySearch(ks, lt)
		j, _ := slices.BinarySearch(ks[i:], gt)
		j += i
		if i > 0 {
			introselectFunc(a, lo, lt, ks[:i], budget, cmp)
		}
		ks, lo = ks[j:], gt
	}
}

// quintileBounds are the positions (from 0, ascending) of the quintile
// boundaries among n ranked values: p_k - 1 for k = 2..5, where
// p_k = ⌈(k-1)·n/5⌉ is the least number of values strictly below that
// scores k (see ScoreEach). n ≥ 1.
func quintileBounds(n int) [4]int {
	var ks [4]int
	for k := 2; k <= 5; k++ {
		ks[k-2] = ((k-1)*n+4)/5 - 1
	}
	return ks
}
