package carebench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/services/care/domain"
	"rapport.dev/services/care/store"
)

const (
	tenant = "bench"
	planID = "complaint-follow-up"
	// gap separates the steady window from the catch-up window, so the
	// steady loop, stopped once its last timer fired, leaves the catch-up
	// window untouched.
	gap = 30 * time.Second
)

// bench is a loaded care.db and its time line.
type bench struct {
	cfg Config
	db  *boltdb.DB
	st  *store.Store
	clk *benchClock
	// s is the first steady due, c0 the first catch-up due.
	s, c0 time.Time
}

func (b *bench) steadyDue(i int) time.Time {
	return b.s.Add(time.Duration(float64(i) / float64(b.cfg.Rate) * float64(time.Second)))
}

func (b *bench) catchupDue(j int) time.Time {
	return b.c0.Add(time.Duration(float64(j) / float64(b.cfg.Rate) * float64(time.Second)))
}

func (b *bench) restartAt() time.Time { return b.c0.Add(b.cfg.Downtime) }

// dueOf is the due of schedule slot k: the steady window, the catch-up
// window, then the rest spread over the horizon an hour later.
func (b *bench) dueOf(k int) time.Time {
	ns, nc := b.cfg.steadyN(), b.cfg.catchupN()
	switch {
	case k < ns:
		return b.steadyDue(k)
	case k < ns+nc:
		return b.catchupDue(k - ns)
	}
	far := b.cfg.Timers - ns - nc
	start := b.c0.Add(b.cfg.Downtime + b.cfg.Tail + time.Hour)
	return start.Add(time.Duration(float64(k-ns-nc) / float64(far) * float64(b.cfg.Horizon)))
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// load builds care.db: a complaint follow-up plan for all customers, then
// per customer customer.created and a complaint recorded at the customer's
// due, applied as the profile follower applies them, Batch customers per
// transaction. Customers take schedule slots in a scattered order, so the
// timer index grows by random inserts as it would in service.
func load(ctx context.Context, cfg Config, path string, progress io.Writer, res *LoadResult) (*bench, error) {
	resetPeakRSS()
	start := time.Now()
	opts := store.Options()
	opts.Logger = slog.New(slog.DiscardHandler)
	db, err := boltdb.Open(path, opts)
	if err != nil {
		return nil, err
	}
	clk := &benchClock{}
	logger := slog.New(slog.DiscardHandler)
	st := store.New(db, feed.NewLog(db, clk), clk, logger, store.Messages{})
	b := &bench{cfg: cfg, db: db, st: st, clk: clk, s: start.Round(0).UTC().Truncate(time.Second)}
	b.c0 = b.s.Add(cfg.Steady + gap)
	days := []int{1, 2, 3, 4, 5, 6, 7}
	plan := &domain.Plan{ID: planID, DisplayName: "Call back after a complaint", Enabled: true,
		Target: domain.Target{AllCustomers: true}, Complaint: &domain.Complaint{SLAHours: 48},
		Task: &domain.TaskAction{Title: "Call {name} back"},
		// All day, every day: a task is due when its timer fires.
		WorkingHours: &domain.PlanHours{Start: domain.Clock{}, End: domain.Clock{Hour: 23, Minute: 59}, Weekdays: days}}
	if _, _, err := st.CreatePlan(ctx, tenant, plan); err != nil {
		db.Close()
		return nil, err
	}
	n := cfg.Timers
	mult := 7919 + n/3
	for gcd(mult, n) != 1 {
		mult++
	}
	event := func(seq uint64, typ, key string, payload proto.Message) (*feedv1.Event, error) {
		a, err := anypb.New(payload)
		if err != nil {
			return nil, err
		}
		return &feedv1.Event{Sequence: seq, Tenant: tenant, Type: typ, Key: key, Time: timestamppb.Now(), Payload: a}, nil
	}
	seq := uint64(0)
	for lo := 0; lo < n; lo += cfg.Batch {
		hi := min(lo+cfg.Batch, n)
		err := db.Update(ctx, func(btx *bolt.Tx) error {
			for i := lo; i < hi; i++ {
				id := "c" + strconv.Itoa(i)
				due := b.dueOf(int(uint64(i) * uint64(mult) % uint64(n)))
				seq++
				created, err := event(seq, "customer.created", id, &profilev1.Customer{CustomerId: id,
					DisplayName: "Customer " + strconv.Itoa(i), Owner: "agent-" + strconv.Itoa(i%200)})
				if err != nil {
					return err
				}
				if err := st.ApplyProfileEvent(ctx, btx, created); err != nil {
					return err
				}
				seq++
				complaint, err := event(seq, "event.recorded", id, &profilev1.Event{EventId: "complaint-" + id, CustomerId: id,
					OccurTime: timestamppb.New(due), RecordTime: timestamppb.New(due),
					Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: "k" + strconv.Itoa(i)}}})
				if err != nil {
					return err
				}
				if err := st.ApplyProfileEvent(ctx, btx, complaint); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, err
		}
		if hi%100_000 == 0 || hi == n {
			fmt.Fprintf(progress, "load: %d/%d customers in %s\n", hi, n, time.Since(start).Round(time.Second))
		}
	}
	took := time.Since(start)
	res.Customers, res.Seconds, res.PerSecond = n, took.Seconds(), float64(n)/took.Seconds()
	if fi, err := os.Stat(path); err == nil {
		res.DBBytes = fi.Size()
	}
	res.PendingPlanTimers, _ = b.pending()
	res.PeakRSSBytes = peakRSS()
	return b, nil
}

// pending counts the plan and task timers.
func (b *bench) pending() (plans, tasks int) {
	_ = b.db.View(func(btx *bolt.Tx) error {
		if bk := btx.Bucket([]byte("plan_timers")); bk != nil {
			plans = bk.Stats().KeyN
		}
		if bk := btx.Bucket([]byte("task_timers")); bk != nil {
			tasks = bk.Stats().KeyN
		}
		return nil
	})
	return plans, tasks
}

// call is one FireDue call: the clock it was given, the clock when it
// returned (after its last commit) and how many timers it fired.
type call struct {
	now, end time.Time
	n        int
}

type callLog struct {
	mu    sync.Mutex
	calls []call
}

func (l *callLog) add(c call) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
}

func (l *callLog) snapshot() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// loop is care's fireTimers: FireDue at the clock's now, then wait on the
// clock until the next timer or a commit's wake-up.
func (b *bench) loop(ctx context.Context, log *callLog) error {
	for {
		now := b.clk.Now().UTC()
		n, next, err := b.st.FireDue(ctx, now)
		end := b.clk.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		log.add(call{now: now, end: end, n: n})
		if !clock.WaitUntil(ctx, b.clk, next, b.st.TimerWake()) {
			return nil
		}
	}
}

// run runs the loop until done says the calls so far suffice, or timeout.
func (b *bench) run(ctx context.Context, timeout time.Duration, done func([]call) bool) ([]call, bool, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := &callLog{}
	errc := make(chan error, 1)
	go func() { errc <- b.loop(lctx, log) }()
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	ok := false
wait:
	for {
		select {
		case err := <-errc:
			return log.snapshot(), false, err
		case <-ctx.Done():
			cancel()
			<-errc
			return log.snapshot(), false, ctx.Err()
		case <-deadline:
			break wait
		case <-tick.C:
			if done(log.snapshot()) {
				ok = true
				break wait
			}
		}
	}
	cancel()
	err := <-errc
	return log.snapshot(), ok, err
}

// latenesses returns, for each due (ascending), the end of the first call
// given a clock at or after it minus the due; NaN-free: unfired dues are
// left out, and their number returned.
func latenesses(dues []time.Time, calls []call) (out []time.Duration, unfired int) {
	c := 0
	for _, d := range dues {
		for c < len(calls) && calls[c].now.Before(d) {
			c++
		}
		if c == len(calls) {
			unfired++
			continue
		}
		out = append(out, calls[c].end.Sub(d))
	}
	return out, unfired
}

func summarize(ls []time.Duration) Lateness {
	if len(ls) == 0 {
		return Lateness{}
	}
	s := slices.Clone(ls)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))].Seconds() }
	return Lateness{Count: len(s), P50: q(0.50), P99: q(0.99), Max: s[len(s)-1].Seconds()}
}

func fired(calls []call) int {
	n := 0
	for _, c := range calls {
		n += c.n
	}
	return n
}

// steady starts the loop --lead before the first steady due and runs it
// until the last one fired.
func (b *bench) steady(ctx context.Context, progress io.Writer) (*SteadyResult, error) {
	n := b.cfg.steadyN()
	dues := make([]time.Time, n)
	for i := range dues {
		dues[i] = b.steadyDue(i)
	}
	last := dues[n-1]
	fmt.Fprintf(progress, "steady: %d timers due at %d/s for %s, starting in %s\n", n, b.cfg.Rate, b.cfg.Steady, b.cfg.Lead)
	resetPeakRSS()
	b.clk.readAs(b.s.Add(-b.cfg.Lead))
	calls, ok, err := b.run(ctx, b.cfg.Lead+b.cfg.Steady+5*time.Minute, func(cs []call) bool {
		return len(cs) > 0 && !cs[len(cs)-1].now.Before(last)
	})
	if err != nil {
		return nil, err
	}
	ls, unfired := latenesses(dues, calls)
	res := &SteadyResult{Due: n, Lateness: summarize(ls), Fired: fired(calls), Calls: len(calls), PeakRSSBytes: peakRSS()}
	if len(ls) > 0 {
		res.Seconds = last.Add(ls[len(ls)-1]).Sub(dues[0]).Seconds()
		res.Achieved = float64(len(ls)) / res.Seconds
	}
	res.Pass = ok && unfired == 0 && time.Duration(res.Lateness.P99*1e9) < TargetP99
	fmt.Fprintf(progress, "steady: p50 %s, p99 %s, max %s, %d unfired\n", ms(res.Lateness.P50), ms(res.Lateness.P99), ms(res.Lateness.Max), unfired)
	return res, nil
}

// catchup restarts the loop on a clock reading --downtime after the first
// catch-up due: every timer of the downtime is overdue, and more fall due
// at --rate for --tail.
func (b *bench) catchup(ctx context.Context, progress io.Writer) (*CatchResult, error) {
	n, overdue := b.cfg.catchupN(), b.cfg.overdueN()
	dues := make([]time.Time, n)
	for j := range dues {
		dues[j] = b.catchupDue(j)
	}
	restart := b.restartAt()
	fmt.Fprintf(progress, "catchup: %d timers overdue after %s down, %d more due over %s\n", overdue, b.cfg.Downtime, n-overdue, b.cfg.Tail)
	// live finds the first call, after the one that fired the last overdue
	// timer, that took under the target; -1 if none yet.
	live := func(cs []call) (overdueEnd time.Time, liveAt time.Time, found bool) {
		lastOverdue := restart.Add(-time.Nanosecond)
		if overdue > 0 {
			lastOverdue = dues[overdue-1]
		}
		for i, c := range cs {
			if c.now.Before(lastOverdue) {
				continue
			}
			overdueEnd = c.end
			for _, d := range cs[i+1:] {
				if d.end.Sub(d.now) < TargetP99 {
					return overdueEnd, d.end, true
				}
			}
			return overdueEnd, time.Time{}, false
		}
		return time.Time{}, time.Time{}, false
	}
	resetPeakRSS()
	b.clk.readAs(restart)
	t0 := b.clk.Now()
	calls, ok, err := b.run(ctx, b.cfg.CatchupTimeout, func(cs []call) bool {
		if len(cs) == 0 || (n > 0 && cs[len(cs)-1].now.Before(dues[n-1])) {
			return false
		}
		_, _, found := live(cs)
		return found
	})
	if err != nil {
		return nil, err
	}
	res := &CatchResult{Overdue: overdue, Fired: fired(calls), Calls: len(calls), Complete: ok, PeakRSSBytes: peakRSS()}
	overdueEnd, liveAt, found := live(calls)
	if !overdueEnd.IsZero() {
		res.OverdueSeconds = overdueEnd.Sub(t0).Seconds()
		if res.OverdueSeconds > 0 {
			res.OverduePerSecond = float64(overdue) / res.OverdueSeconds
		}
	}
	if found {
		res.LiveSeconds = liveAt.Sub(t0).Seconds()
	}
	tail, _ := latenesses(dues[overdue:], calls)
	res.Tail = summarize(tail)
	var once []time.Duration
	for i, l := range tail {
		if found && !dues[overdue+i].Before(liveAt) {
			once = append(once, l)
		}
	}
	res.TailLive = summarize(once)
	fmt.Fprintf(progress, "catchup: %d overdue fired in %.1f s, live after %.1f s, complete %t\n", overdue, res.OverdueSeconds, res.LiveSeconds, ok)
	return res, nil
}
