package domain

import (
	"cmp"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
)

// selectInputs are arrays shaped to stress a quickselect: random, heavy
// ties, all equal, sorted, reversed, organ pipe, extremes.
func selectInputs(rng *rand.Rand, n int) map[string][]int64 {
	in := map[string][]int64{}
	gen := func(name string, f func(i int) int64) {
		a := make([]int64, n)
		for i := range a {
			a[i] = f(i)
		}
		in[name] = a
	}
	gen("random", func(int) int64 { return rng.Int63() - rng.Int63() })
	gen("few distinct", func(int) int64 { return int64(rng.Intn(3)) })
	gen("ten distinct", func(int) int64 { return int64(rng.Intn(10)) * 1000 })
	gen("all equal", func(int) int64 { return 7 })
	gen("ascending", func(i int) int64 { return int64(i) })
	gen("descending", func(i int) int64 { return int64(-i) })
	gen("organ pipe", func(i int) int64 { return int64(min(i, n-i)) })
	gen("extremes", func(int) int64 {
		return []int64{math.MinInt64, math.MaxInt64, 0, -1, 1}[rng.Intn(5)]
	})
	gen("sawtooth", func(i int) int64 { return int64(i % 17) })
	return in
}

// randomKs is a few ascending positions in [0, n), repeats included.
func randomKs(rng *rand.Rand, n int) []int {
	ks := make([]int, rng.Intn(6)+1)
	for q := range ks {
		switch rng.Intn(4) {
		case 0:
			ks[q] = 0
		case 1:
			ks[q] = n - 1
		default:
			ks[q] = rng.Intn(n)
		}
	}
	slices.Sort(ks)
	return ks
}

func TestSelectInt64(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{1, 2, 3, 5, 16, 17, 31, 100, 127, 128, 129, 1000, 5000} {
		for name, orig := range selectInputs(rng, n) {
			sorted := slices.Clone(orig)
			slices.Sort(sorted)
			for range 20 {
				ks := randomKs(rng, n)
				a := slices.Clone(orig)
				selectInt64(a, ks)
				for _, k := range ks {
					if a[k] != sorted[k] {
						t.Fatalf("%s n=%d ks=%v: a[%d] = %d, want %d", name, n, ks, k, a[k], sorted[k])
					}
				}
				// Partitioned around ks, and still the same values.
				for _, k := range ks {
					for i := range a {
						if (i < k && a[i] > a[k]) || (i > k && a[i] < a[k]) {
							t.Fatalf("%s n=%d ks=%v: a[%d]=%d on the wrong side of a[%d]=%d", name, n, ks, i, a[i], k, a[k])
						}
					}
				}
				slices.Sort(a)
				if !slices.Equal(a, sorted) {
					t.Fatalf("%s n=%d: not a permutation", name, n)
				}
			}
		}
	}
	selectInt64(nil, nil) // nothing to do
}

// TestSelectInt64Budget runs out of partitions at once and at every depth:
// the sort it falls back on gives the same values.
func TestSelectInt64Budget(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for name, orig := range selectInputs(rng, 3000) {
		sorted := slices.Clone(orig)
		slices.Sort(sorted)
		for budget := range 6 {
			ks := randomKs(rng, len(orig))
			a := slices.Clone(orig)
			introselectInt64(a, 0, len(a), ks, budget, 0, false)
			for _, k := range ks {
				if a[k] != sorted[k] {
					t.Fatalf("%s budget %d: a[%d] = %d, want %d", name, budget, k, a[k], sorted[k])
				}
			}
		}
	}
}

func TestMedian3(t *testing.T) {
	for _, p := range [][3]int64{{1, 2, 3}, {1, 3, 2}, {2, 1, 3}, {2, 3, 1}, {3, 1, 2}, {3, 2, 1},
		{1, 1, 2}, {1, 2, 1}, {2, 1, 1}, {2, 2, 1}, {5, 5, 5}} {
		s := slices.Clone(p[:])
		slices.Sort(s)
		if got := median3(p[0], p[1], p[2]); got != s[1] {
			t.Errorf("median3%v = %d, want %d", p, got, s[1])
		}
	}
}

func TestSelectFunc(t *testing.T) {
	type key struct {
		id string
		i  int32
	}
	compare := func(a, b key) int {
		if c := cmp.Compare(a.id, b.id); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	}
	byID := func(a, b key) int { return cmp.Compare(a.id, b.id) } // ties
	rng := rand.New(rand.NewSource(3))
	for _, n := range []int{1, 2, 3, 16, 17, 50, 500, 3000} {
		for _, distinct := range []int{1, 3, n} {
			orig := make([]key, n)
			for i := range orig {
				orig[i] = key{fmt.Sprintf("c%d", rng.Intn(distinct)), int32(i)}
			}
			for _, c := range []func(a, b key) int{compare, byID} {
				sorted := slices.Clone(orig)
				slices.SortFunc(sorted, c)
				for budget := range 3 {
					ks := randomKs(rng, n)
					a := slices.Clone(orig)
					if budget == 2 {
						selectFunc(a, ks, c)
					} else {
						introselectFunc(a, 0, n, ks, budget, c)
					}
					for _, k := range ks {
						if c(a[k], sorted[k]) != 0 {
							t.Fatalf("n=%d distinct=%d ks=%v: a[%d] = %v, want %v", n, distinct, ks, k, a[k], sorted[k])
						}
					}
					slices.SortFunc(a, compare)
					if s := slices.SortedFunc(slices.Values(orig), compare); !slices.Equal(a, s) {
						t.Fatalf("n=%d: not a permutation", n)
					}
				}
			}
		}
	}
}

func BenchmarkSelectInt64(b *testing.B) {
	rng := rand.New(rand.NewSource(4))
	const n = 900_000
	for name, orig := range map[string][]int64{
		"random":   selectInputs(rng, n)["random"],
		"tenTies":  selectInputs(rng, n)["ten distinct"],
		"quintile": nil,
	} {
		if orig == nil {
			orig = make([]int64, n)
			for i := range orig {
				orig[i] = int64(rng.Intn(1500)) * 86400
			}
		}
		ks := quintileBounds(n)
		a := make([]int64, n)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				copy(a, orig)
				selectInt64(a, ks[:])
			}
		})
	}
}

func TestOrderStats(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	a := selectInputs(rng, 1000)["ten distinct"]
	b := selectInputs(rng, 700)["random"]
	sa, sb := slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	var oa1, oa2 [3]int64
	var ob [2]int64
	orderStats([]statJob{
		{a, []int{0, 500, 999}, oa1[:]},
		{b, []int{3, 699}, ob[:]},
		{a, []int{0, 100, 101}, oa2[:]}, // the same column: one selection
		{b, nil, nil},
	}, nil)
	if oa1 != [3]int64{sa[0], sa[500], sa[999]} || oa2 != [3]int64{sa[0], sa[100], sa[101]} || ob != [2]int64{sb[3], sb[699]} {
		t.Fatalf("%v %v %v", oa1, oa2, ob)
	}
	if !slices.Equal(a, selectInputs(rand.New(rand.NewSource(5)), 1000)["ten distinct"]) {
		t.Fatal("the column was changed")
	}
}
