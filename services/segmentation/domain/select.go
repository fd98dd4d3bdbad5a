package domain

import (
	"math/bits"
	"slices"
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
// It is an introselect: quickselect with three-way partitioning (so runs of
// equal values end the search at once) around a median-of-3 or ninther
// pivot, which falls back to sorting a range once the partitions stop
// shrinking — expected O(len(a)·(1+log len(ks))), O(len(a)·log len(a)) at
// worst. The outcome does not depend on the pivots: the values at ks are
// determined by a alone.
func selectInt64(a []int64, ks []int) {
	if len(ks) == 0 {
		return
	}
	introselectInt64(a, 0, len(a), ks, 2*bits.Len(uint(len(a))))
}

// introselectInt64 selects ks (absolute positions, within [lo, hi)) in
// a[lo:hi]; budget is the number of partitions left before a range is
// sorted instead.
func introselectInt64(a []int64, lo, hi int, ks []int, budget int) {
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
		lt, gt := partition3Int64(a, lo, hi, pivotInt64(a, lo, hi))
		// ks[:i] lie below the pivot's run, ks[i:j] in it (done), ks[j:] above.
		i, _ := slices.BinarySearch(ks, lt)
		j, _ := slices.BinarySearch(ks[i:], gt)
		j += i
		if i > 0 {
			introselectInt64(a, lo, lt, ks[:i], budget)
		}
		ks, lo = ks[j:], gt
	}
}

// partition3Int64 rearranges a[lo:hi] into a[lo:lt] < p, a[lt:gt] == p and
// a[gt:hi] > p.
func partition3Int64(a []int64, lo, hi int, p int64) (lt, gt int) {
	lt, gt = lo, hi
	for i := lo; i < gt; {
		switch v := a[i]; {
		case v < p:
			a[i], a[lt] = a[lt], v
			lt++
			i++
		case v > p:
			gt--
			a[i], a[gt] = a[gt], v
		default:
			i++
		}
	}
	return lt, gt
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

// orderStats copies src into scratch (at least as long) and sets out[q] to
// the ks[q]-th smallest value of src (from 0); ks ascending.
func orderStats(src, scratch []int64, ks []int, out []int64) {
	a := scratch[:len(src)]
	copy(a, src)
	selectInt64(a, ks)
	for q, k := range ks {
		out[q] = a[k]
	}
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
