package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name               string
		floor, live, roots uint64
		base, wantPercent  int
	}{
		{"small live heap", 64 * mib, 4 * mib, 0, 100, 1500},
		{"stacks and globals count", 64 * mib, 4 * mib, 2 * mib, 100, 1000},
		{"goal exactly the floor", 64 * mib, 16 * mib, 0, 100, 300},
		{"live heap reaches the floor", 64 * mib, 64 * mib, 0, 100, 100},
		{"live heap past the floor", 64 * mib, 500 * mib, mib, 100, 100},
		{"GOGC alone reaches the floor", 64 * mib, 40 * mib, 0, 200, 200},
		{"before the first collection", 64 * mib, 0, 0, 100, 1500},
		{"nearly empty heap is capped", 1 << 40, 1024, 0, 100, maxPercent},
	} {
		if got := Percent(c.floor, c.live, c.roots, c.base); got != c.wantPercent {
			t.Errorf("%s: Percent(%d, %d, %d, %d) = %d, want %d", c.name, c.floor, c.live, c.roots, c.base, got, c.wantPercent)
		}
	}
}

var sink []byte

// churn allocates n bytes of short-lived garbage and returns how many
// collections ran meanwhile.
func churn(n int) uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	for i := 0; i < n/1024; i++ {
		sink = make([]byte, 1024)
	}
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

func TestFloorCutsCollections(t *testing.T) {
	runtime.GC()
	without := churn(512 << 20)
	tu := Start(256 << 20)
	defer tu.Stop()
	runtime.GC()
	with := churn(512 << 20)
	t.Logf("collections while allocating 512 MiB: %d without a floor, %d with a 256 MiB floor", without, with)
	if with*4 > without {
		t.Fatalf("a 256 MiB floor left %d collections of %d", with, without)
	}
}

// collectUntil runs collections until the tuner has set a percentage that
// satisfies ok, and returns it.
func collectUntil(t *testing.T, tuned <-chan int, ok func(int) bool) int {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		runtime.GC()
		select {
		case p := <-tuned:
			if ok(p) {
				return p
			}
		case <-deadline:
			t.Fatal("the tuner did not settle after collections")
		}
	}
}

func TestPercentFollowsTheLiveHeap(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	tuned := make(chan int, 1)
	tu := start(64<<20, func(p int) {
		select {
		case tuned <- p:
		default:
		}
	})
	defer tu.Stop()

	small := collectUntil(t, tuned, func(p int) bool { return p > 100 })
	t.Logf("small live heap: GC percent %d", small)

	live := make([][]byte, 128)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	collectUntil(t, tuned, func(p int) bool { return p == 100 })
	runtime.KeepAlive(live)
	live = nil

	collectUntil(t, tuned, func(p int) bool { return p > 100 })

	tu.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("after Stop the GC percent is %d, want the configured 100", got)
	}
}

func TestOffOrZeroFloorDoesNothing(t *testing.T) {
	prev := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(prev)
	Start(64 << 20).Stop()
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Fatalf("with GOGC=off a tuner set the percent to %d", got)
	}
	debug.SetGCPercent(100)
	Start(0)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("a zero floor set the percent to %d", got)
	}
}
