package main

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
)

// TestDurabilitySIGKILL kills the profile process with SIGKILL in the middle
// of a stream of acknowledged writes, restarts it on the same data, and
// checks that every acknowledged event is there exactly once and that the
// change feed has no gap and no duplicate.
func TestDurabilitySIGKILL(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--target=profile", "--data-dir", dir, "--profile-addr", "127.0.0.1:0")
	client := dial(t, p.grpcAddr("profile"))
	ctx := p.ctx("acme")

	const customers = 20
	var cs []*profilev1.Customer
	for i := range customers {
		cs = append(cs, &profilev1.Customer{CustomerId: fmt.Sprintf("c%02d", i), Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: "c"})
	}
	if _, err := client.BatchCreateCustomers(ctx, &profilev1.BatchCreateCustomersRequest{Customers: cs}); err != nil {
		t.Fatal(err)
	}

	const writers, killAfter = 50, 1500
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		n     atomic.Int64
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%02d-%05d", w, i)
				cust := fmt.Sprintf("c%02d", (w+i)%customers)
				_, err := client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase(id, cust, id, int64(100+i), base.Add(time.Duration(i)*time.Minute))})
				if err != nil {
					return // the process is gone: this write was not acknowledged
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
				if n.Add(1) >= killAfter {
					once.Do(func() { close(enough) })
				}
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d writes acknowledged", n.Load())
	}
	p.kill()
	wg.Wait()
	t.Logf("%d writes acknowledged before SIGKILL", len(acked))

	p2 := start(t, "--target=profile", "--data-dir", dir, "--profile-addr", "127.0.0.1:0")
	client = dial(t, p2.grpcAddr("profile"))

	// Every acknowledged write is there, once.
	stored := map[string]int{}
	for i := range customers {
		token := ""
		for {
			page, err := client.ListEvents(ctx, &profilev1.ListEventsRequest{CustomerId: fmt.Sprintf("c%02d", i), PageSize: 1000, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Events {
				stored[e.EventId]++
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
	}
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times", id, stored[id])
		}
	}
	for id, k := range stored {
		if k != 1 {
			t.Errorf("event %s stored %d times", id, k)
		}
	}

	// The feed: sequences 1..N without gaps, one event.recorded per stored event.
	stream, err := client.FollowChanges(ctx, &profilev1.FollowChangesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	inFeed := map[string]int{}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seq++
		if m.Event.Sequence != seq {
			t.Fatalf("feed sequence %d after %d: gap or repeat", m.Event.Sequence, seq-1)
		}
		if m.Event.Type == "event.recorded" {
			ev := &profilev1.Event{}
			if err := m.Event.Payload.UnmarshalTo(ev); err != nil {
				t.Fatal(err)
			}
			inFeed[ev.EventId]++
		}
	}
	if len(inFeed) != len(stored) {
		t.Errorf("feed has %d recorded events, store has %d", len(inFeed), len(stored))
	}
	for id, k := range inFeed {
		if k != 1 || stored[id] != 1 {
			t.Errorf("event %s: %d times in the feed, %d in the store", id, k, stored[id])
		}
	}

	// Retrying acknowledged writes after the restart records nothing new.
	retried := 0
	for id := range acked {
		if retried == 100 {
			break
		}
		retried++
		var w, i int
		fmt.Sscanf(id, "w%02d-%05d", &w, &i)
		cust := fmt.Sprintf("c%02d", (w+i)%customers)
		r, err := client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase(id, cust, id, int64(100+i), base.Add(time.Duration(i)*time.Minute))})
		if err != nil {
			t.Fatalf("retry of %s: %v", id, err)
		}
		if r.Created {
			t.Fatalf("retry of acknowledged %s created it again", id)
		}
	}
	last, err := client.FollowChanges(ctx, &profilev1.FollowChangesRequest{AfterSequence: seq})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := last.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("retries added to the feed: %v %v", m, err)
	}
}
