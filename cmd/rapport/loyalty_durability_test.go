package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	"rapport.dev/platform/grpcclient"
)

func dialLoyalty(t *testing.T, addr string) loyaltyv1.LoyaltyServiceClient {
	t.Helper()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return loyaltyv1.NewLoyaltyServiceClient(cc)
}

// TestLoyaltyDurabilitySIGKILL kills the loyalty process with SIGKILL in the
// middle of a stream of earn and redeem calls, restarts it on the same data,
// and checks that reconciliation is clean, that every acknowledged call is in
// the ledger exactly once, that no key is in it twice, and that retrying an
// acknowledged call returns its entry and changes nothing.
func TestLoyaltyDurabilitySIGKILL(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--target=profile,loyalty", "--data-dir", dir, "--profile-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0",
		"--segmentation-addr", ""}
	p := start(t, args...)
	client := dialLoyalty(t, p.grpcAddr("loyalty"))
	ctx := p.ctx("acme")
	if _, err := client.CreateProgram(ctx, &loyaltyv1.CreateProgramRequest{Program: &loyaltyv1.Program{
		ProgramId: "club", DisplayName: "Club", Currency: "CNY", PointsPerUnit: 1,
		Enrollment: loyaltyv1.Enrollment_ENROLLMENT_EXPLICIT, Expiry: loyaltyv1.ExpiryPolicy_EXPIRY_POLICY_AFTER_MONTHS, ExpiryMonths: 12,
	}}); err != nil {
		t.Fatal(err)
	}
	const members = 20
	for i := range members {
		if _, err := client.EnrollMember(ctx, &loyaltyv1.EnrollMemberRequest{ProgramId: "club", CustomerId: fmt.Sprintf("m%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	type call struct {
		member string
		redeem bool
		points int64
	}
	const writers, killAfter = 50, 1500
	var (
		mu    sync.Mutex
		acked = map[string]call{}
		seqOf = map[string]uint64{}
		n     atomic.Int64
		wg    sync.WaitGroup
	)
	do := func(key string, c call) (*loyaltyv1.Entry, error) {
		if c.redeem {
			r, err := client.Redeem(ctx, &loyaltyv1.RedeemRequest{ProgramId: "club", CustomerId: c.member, IdempotencyKey: key, Points: c.points})
			return r.GetEntry(), err
		}
		r, err := client.Earn(ctx, &loyaltyv1.EarnRequest{ProgramId: "club", CustomerId: c.member, IdempotencyKey: key, Points: c.points})
		return r.GetEntry(), err
	}
	enough := make(chan struct{})
	var once sync.Once
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%02d-%05d", w, i)
				c := call{member: fmt.Sprintf("m%02d", (w+i)%members), redeem: i%3 == 2, points: int64(10 + i%7)}
				e, err := do(key, c)
				if status.Code(err) == codes.FailedPrecondition {
					continue // not enough points: refused, nothing recorded
				}
				if err != nil {
					return // the process is gone: this call was not acknowledged
				}
				mu.Lock()
				acked[key], seqOf[key] = c, e.Sequence
				mu.Unlock()
				if n.Add(1) >= killAfter {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d calls acknowledged", n.Load())
	}
	p.kill()
	wg.Wait()
	t.Logf("%d calls acknowledged before SIGKILL", len(acked))

	p2 := start(t, args...)
	client = dialLoyalty(t, p2.grpcAddr("loyalty"))
	rec, err := client.Reconcile(ctx, &loyaltyv1.ReconcileRequest{ProgramId: "club"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Differences) != 0 || rec.Members != members {
		t.Fatalf("reconciliation after SIGKILL: %d members, differences %v", rec.Members, rec.Differences)
	}
	inLedger := map[string]int{}
	balance := map[string]int64{}
	for i := range members {
		m := fmt.Sprintf("m%02d", i)
		token := ""
		for {
			page, err := client.ListEntries(ctx, &loyaltyv1.ListEntriesRequest{ProgramId: "club", CustomerId: m, PageSize: 500, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Entries {
				inLedger[e.IdempotencyKey]++
				balance[m] += e.Points
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		got, err := client.GetMember(ctx, &loyaltyv1.GetMemberRequest{ProgramId: "club", CustomerId: m})
		if err != nil {
			t.Fatal(err)
		}
		if got.Member.Balance != balance[m] {
			t.Errorf("%s: balance %d, the ledger sums to %d", m, got.Member.Balance, balance[m])
		}
	}
	for key := range acked {
		if inLedger[key] != 1 {
			t.Errorf("acknowledged call %s is in the ledger %d times", key, inLedger[key])
		}
	}
	for key, k := range inLedger {
		if k != 1 {
			t.Errorf("key %s is in the ledger %d times", key, k)
		}
	}
	// Retrying acknowledged calls returns their entries and changes nothing.
	retried := 0
	for key, c := range acked {
		if retried == 100 {
			break
		}
		retried++
		e, err := do(key, c)
		if err != nil || e.Sequence != seqOf[key] {
			t.Fatalf("retry of %s after restart: entry %v, %v; want sequence %d", key, e, err, seqOf[key])
		}
	}
	if rec2, err := client.Reconcile(ctx, &loyaltyv1.ReconcileRequest{ProgramId: "club"}); err != nil || rec2.Entries != rec.Entries {
		t.Errorf("retries changed the ledger: %d entries before, %v after (%v)", rec.Entries, rec2.GetEntries(), err)
	}
}
