package segbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/profile"
	"rapport.dev/services/segmentation"
)

// FreshnessResult is the outcome of the freshness phase.
type FreshnessResult struct {
	Rule   string `json:"rule"`
	Probes int    `json:"probes"`
	// Rate is the background ingest asked for and Achieved what ran, in
	// RecordEvent calls per second.
	Rate     int     `json:"rate_per_second"`
	Achieved float64 `json:"achieved_per_second"`
	P50      Seconds `json:"p50_seconds"`
	P99      Seconds `json:"p99_seconds"`
	Max      Seconds `json:"max_seconds"`
	Timeouts int     `json:"timeouts"`
}

const (
	freshRule       = "features.purchases >= 2"
	freshBackground = 2000 // background customers
	freshWait       = 5 * time.Second
)

// runFreshness starts profile and segmentation in this process, as
// `rapport serve` does, creates a segment, ingests purchases at rate per
// second in the background and, for each probe customer (one purchase so
// far), records the purchase that qualifies it and waits for its
// segment.entered event on the segmentation feed. The latency is from the
// RecordEvent acknowledgement to the event's arrival.
func runFreshness(ctx context.Context, cfg Config, dir string, progress io.Writer) (_ *FreshnessResult, err error) {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	prof, err := profile.New(profile.Config{DataDir: dir, GRPCAddr: "127.0.0.1:0"}, profile.Deps{Logger: log, Clock: clock.Real{}})
	if err != nil {
		return nil, err
	}
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		prof.Close()
		return nil, err
	}
	seg, err := segmentation.New(segmentation.Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", ProfileTarget: plis.Addr().String()},
		segmentation.Deps{Logger: log, Clock: clock.Real{}})
	if err != nil {
		plis.Close()
		prof.Close()
		return nil, err
	}
	slis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		plis.Close()
		prof.Close()
		seg.Close()
		return nil, err
	}
	// Stop order as serve: segmentation (a follower of profile), then profile.
	sctx, stopSeg := context.WithCancel(context.WithoutCancel(ctx))
	pctx, stopProf := context.WithCancel(context.WithoutCancel(ctx))
	segDone, profDone := make(chan error, 1), make(chan error, 1)
	go func() { profDone <- prof.Serve(pctx, plis) }()
	go func() { segDone <- seg.Serve(sctx, slis) }()
	defer func() {
		cancel()
		wg.Wait()
		stopSeg()
		e1 := <-segDone
		stopProf()
		e2 := <-profDone
		for _, e := range []error{e1, e2} {
			if e != nil && !errors.Is(e, context.Canceled) {
				err = errors.Join(err, e)
			}
		}
	}()

	pconn, err := grpcclient.Dial(plis.Addr().String(), grpcclient.Options{})
	if err != nil {
		return nil, err
	}
	defer pconn.Close()
	sconn, err := grpcclient.Dial(slis.Addr().String(), grpcclient.Options{})
	if err != nil {
		return nil, err
	}
	defer sconn.Close()
	profiles := profilev1.NewProfileServiceClient(pconn)
	segs := segmentationv1.NewSegmentationServiceClient(sconn)
	tctx := tenancy.WithTenant(ctx, tenant)

	// Customers: background buyers and probes, each probe with one purchase.
	now := time.Now()
	var ids []string
	for i := range freshBackground + cfg.Probes {
		ids = append(ids, fmt.Sprintf("f%06d", i))
	}
	for lo := 0; lo < len(ids); lo += 500 {
		req := &profilev1.BatchCreateCustomersRequest{}
		for _, id := range ids[lo:min(lo+500, len(ids))] {
			req.Customers = append(req.Customers, &profilev1.Customer{CustomerId: id, Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON,
				DisplayName: "Customer " + id, Region: &profilev1.Region{Country: "FR"}})
		}
		if _, err := profiles.BatchCreateCustomers(tctx, req); err != nil {
			return nil, fmt.Errorf("create customers: %w", err)
		}
	}
	probes := ids[freshBackground:]
	var seq atomic.Int64
	purchase := func(id string) *profilev1.Event {
		n := seq.Add(1)
		order := fmt.Sprintf("o%d", n)
		return &profilev1.Event{EventId: order, CustomerId: id, OccurTime: timestamppb.New(now),
			Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: order,
				Amount: &typev1.Money{AmountMinor: 1000 + n%5000, Currency: currency}}}}
	}
	first := &profilev1.BatchRecordEventsRequest{}
	for _, id := range probes {
		first.Events = append(first.Events, purchase(id))
	}
	if _, err := profiles.BatchRecordEvents(tctx, first); err != nil {
		return nil, fmt.Errorf("first purchases: %w", err)
	}
	if _, err := segs.CreateSegment(tctx, &segmentationv1.CreateSegmentRequest{Segment: &segmentationv1.Segment{
		SegmentId: "repeat-buyers", DisplayName: "Repeat buyers", Kind: segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC, Rule: freshRule,
	}}); err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}

	// The signal: every segment.entered event, by customer.
	var mu sync.Mutex
	arrived := map[string]chan time.Time{}
	for _, id := range probes {
		arrived[id] = make(chan time.Time, 1)
	}
	stream, err := segs.FollowChanges(tctx, &segmentationv1.FollowChangesRequest{Wait: true})
	if err != nil {
		return nil, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			at := time.Now()
			if ev := m.GetEvent(); ev.GetType() == "segment.entered" {
				mu.Lock()
				if c, ok := arrived[ev.GetKey()]; ok {
					select {
					case c <- at:
					default:
					}
				}
				mu.Unlock()
			}
		}
	}()

	// Background ingest at a steady rate: a tick every 10 ms releases
	// rate/100 calls to 16 callers.
	jobs := make(chan string, cfg.Rate)
	var done atomic.Int64
	var failed atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				if _, err := profiles.RecordEvent(tctx, &profilev1.RecordEventRequest{Event: purchase(id)}); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				done.Add(1)
			}
		}()
	}
	bgStart := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		sent, k := 0, 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			due := int(time.Since(bgStart).Seconds() * float64(cfg.Rate))
			for ; sent < due; sent++ {
				k = (k + 7919) % freshBackground
				select {
				case jobs <- ids[k]:
				default: // callers saturated: the shortfall shows in the achieved rate
				}
			}
		}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Second): // warm-up under load
	}

	fmt.Fprintf(progress, "freshness: %d probes under %d events/s background ingest\n", len(probes), cfg.Rate)
	res := &FreshnessResult{Rule: freshRule, Probes: len(probes), Rate: cfg.Rate}
	var lat []time.Duration
	for i, id := range probes {
		if _, err := profiles.RecordEvent(tctx, &profilev1.RecordEventRequest{Event: purchase(id)}); err != nil {
			return nil, fmt.Errorf("probe purchase: %w", err)
		}
		ack := time.Now()
		select {
		case at := <-arrived[id]:
			lat = append(lat, max(0, at.Sub(ack)))
		case <-time.After(freshWait):
			res.Timeouts++
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// Probes are spread out so they sample the steady state, not a burst.
		time.Sleep(time.Duration(5+i%10) * time.Millisecond)
	}
	res.Achieved = float64(done.Load()) / time.Since(bgStart).Seconds()
	if n := failed.Load(); n > 0 {
		return nil, fmt.Errorf("%d background RecordEvent calls failed", n)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) Seconds { return secs(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
		res.P50, res.P99, res.Max = q(0.50), q(0.99), secs(lat[len(lat)-1])
	}
	return res, nil
}
