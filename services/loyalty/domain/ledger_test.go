package domain

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// apply applies e as the next entry of a and keeps it in log when it applies.
func apply(t *testing.T, a *Account, log *[]Entry, e Entry) error {
	t.Helper()
	e.Seq = a.Seq + 1
	if err := a.Apply(&e); err != nil {
		return err
	}
	*log = append(*log, e)
	return nil
}

func TestRedeemSoonestExpiringFirst(t *testing.T) {
	a := &Account{}
	var log []Entry
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(apply(t, a, &log, Entry{Kind: KindEarn, Time: t0, Requested: 100, Order: "o1", Amount: 10000, Expires: t0.AddDate(1, 0, 0)}))
	must(apply(t, a, &log, Entry{Kind: KindEarn, Time: t0, Requested: 50, Order: "o2", Amount: 5000, Expires: t0.AddDate(0, 6, 0)}))
	must(apply(t, a, &log, Entry{Kind: KindAdjust, Time: t0, Requested: 30, Reason: "goodwill", Actor: "li.na"})) // never expires
	must(apply(t, a, &log, Entry{Kind: KindEarn, Time: t0, Requested: 20, Order: "o3", Amount: 2000, AvailableAt: t0.AddDate(0, 0, 14)}))
	if got := a.Available(t0); got != 180 {
		t.Fatalf("available %d, want 180 (20 pending)", got)
	}
	if got := a.Pending(t0); got != 20 {
		t.Fatalf("pending %d, want 20", got)
	}
	e := Entry{Kind: KindRedeem, Time: t0.Add(time.Hour), Requested: 120}
	must(apply(t, a, &log, e))
	got := log[len(log)-1].Takes
	want := []Take{{Lot: 2, Points: 50}, {Lot: 1, Points: 70}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("takes %v, want the 6-month lot first: %v", got, want)
	}
	// More than is available (the pending lot does not count) fails and changes nothing.
	before := *a
	err := apply(t, a, &log, Entry{Kind: KindRedeem, Time: t0.Add(time.Hour), Requested: 61})
	if !errors.Is(err, ErrInsufficient) || !a.Equal(&before) {
		t.Fatalf("redeem beyond the balance: %v", err)
	}
}

func TestReverseProportionallyEvenAfterSpending(t *testing.T) {
	for _, neg := range []bool{false, true} {
		a := &Account{}
		var log []Entry
		if err := apply(t, a, &log, Entry{Kind: KindEarn, Time: t0, Requested: 100, Order: "o1", Amount: 10000}); err != nil {
			t.Fatal(err)
		}
		if err := apply(t, a, &log, Entry{Kind: KindRedeem, Time: t0, Requested: 90}); err != nil {
			t.Fatal(err)
		}
		// A third refunded: floor(100·3333/10000) = 33 points, 10 left to take.
		if err := apply(t, a, &log, Entry{Kind: KindReverse, Time: t0, Order: "o1", Refunded: 3333, AllowNegative: neg}); err != nil {
			t.Fatal(err)
		}
		e := log[len(log)-1]
		if neg && (e.Points != -33 || e.Debt != 23 || a.Available(t0) != -23) {
			t.Errorf("negative allowed: %+v, available %d", e, a.Available(t0))
		}
		if !neg && (e.Points != -10 || e.Shortfall != 23 || a.Available(t0) != 0) {
			t.Errorf("negative not allowed: %+v, available %d", e, a.Available(t0))
		}
		// The rest refunded: 67 more. A repeat of the same total reverses nothing.
		for range 2 {
			if err := apply(t, a, &log, Entry{Kind: KindReverse, Time: t0, Order: "o1", Refunded: 10000, AllowNegative: neg}); err != nil {
				t.Fatal(err)
			}
		}
		if er := a.Earned["o1"]; er.Reversed != 100 {
			t.Errorf("reversed %d of 100", er.Reversed)
		}
		if log[len(log)-1].Points != 0 {
			t.Errorf("a repeated refund total reversed %d more", -log[len(log)-1].Points)
		}
		// Points earned later pay the debt first.
		if err := apply(t, a, &log, Entry{Kind: KindEarn, Time: t0, Requested: 200, Order: "o2", Amount: 20000}); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int64{false: 200, true: 110}[neg]; a.Available(t0) != want {
			t.Errorf("neg=%v: available %d after earning 200, want %d", neg, a.Available(t0), want)
		}
		checkReplay(t, a, log)
	}
}

func TestReversalNeverOverflows(t *testing.T) {
	const big = int64(1) << 62
	if got := reversal(big, big-1, big); got != big-1 {
		t.Errorf("reversal(2^62, 2^62-1, 2^62) = %d", got)
	}
	if got := reversal(7, 1, 3); got != 2 {
		t.Errorf("reversal(7, 1, 3) = %d, want 2", got)
	}
}

func TestExpiry(t *testing.T) {
	a := &Account{}
	var log []Entry
	exp := t0.AddDate(0, 3, 0)
	if err := apply(t, a, &log, Entry{Kind: KindEarn, Time: t0, Requested: 40, Order: "o1", Amount: 4000, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if due := a.DueExpiries(exp.Add(-time.Nanosecond)); len(due) != 0 {
		t.Fatalf("expiries before the instant: %v", due)
	}
	if a.Available(exp.Add(-time.Nanosecond)) != 40 || a.Available(exp) != 0 {
		t.Fatalf("available just before / at expiry: %d / %d", a.Available(exp.Add(-time.Nanosecond)), a.Available(exp))
	}
	for _, e := range a.DueExpiries(exp.Add(time.Hour)) {
		if err := apply(t, a, &log, e); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.Lots) != 0 || a.TotalExpired != 40 || log[len(log)-1].Time != exp {
		t.Fatalf("after expiry: %+v, entry %+v", a, log[len(log)-1])
	}
	checkReplay(t, a, log)
}

func checkReplay(t *testing.T, a *Account, log []Entry) {
	t.Helper()
	r, err := Replay(log)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !r.Equal(a) {
		t.Fatalf("replay\n%+v\ndiffers from the account\n%+v", r, a)
	}
}

// TestLedgerProperties applies thousands of random sequences and checks,
// after each step, the invariants the ledger promises: the replay finds the
// account, no lot is negative, balance = lots − debt, no purchase is
// reversed beyond what it earned, and a failed operation changes nothing.
func TestLedgerProperties(t *testing.T) {
	for seed := range uint64(2000) {
		rng := rand.New(rand.NewPCG(seed, 99))
		a := &Account{}
		var log []Entry
		now := t0
		neg := rng.IntN(2) == 0
		var orders []string
		amounts := map[string]int64{}
		refunded := map[string]int64{}
		for step := range 60 {
			now = now.Add(time.Duration(rng.IntN(20*24)) * time.Hour)
			for _, e := range a.DueExpiries(now) {
				if err := apply(t, a, &log, e); err != nil {
					t.Fatalf("seed %d: expire: %v", seed, err)
				}
			}
			before := cloneAccount(a)
			var e Entry
			switch r := rng.IntN(10); {
			case r < 4:
				o := fmt.Sprintf("o%d", step)
				amt := int64(1 + rng.IntN(100000))
				e = Entry{Kind: KindEarn, Time: now, Requested: amt / 100, Order: o, Amount: amt}
				if rng.IntN(2) == 0 {
					e.Expires = now.AddDate(0, 1+rng.IntN(12), 0)
				}
				if rng.IntN(3) == 0 {
					e.AvailableAt = now.AddDate(0, 0, 14)
				}
				orders, amounts[o] = append(orders, o), amt
			case r < 6 && len(orders) > 0:
				o := orders[rng.IntN(len(orders))]
				refunded[o] = min(amounts[o], refunded[o]+int64(rng.IntN(int(amounts[o])+1)))
				e = Entry{Kind: KindReverse, Time: now, Order: o, Refunded: refunded[o], AllowNegative: neg}
			case r < 8:
				e = Entry{Kind: KindRedeem, Time: now, Requested: int64(1 + rng.IntN(800))}
			default:
				e = Entry{Kind: KindAdjust, Time: now, Requested: int64(rng.IntN(400) - 200), Reason: "test", Actor: "prop"}
			}
			if err := apply(t, a, &log, e); err != nil {
				if !errors.Is(err, ErrInsufficient) && !errors.Is(err, ErrInvalid) {
					t.Fatalf("seed %d: %v", seed, err)
				}
				if !a.Equal(before) {
					t.Fatalf("seed %d: a failed %s changed the account", seed, e.Kind)
				}
			}
			var lots int64
			for _, l := range a.Lots {
				if l.Points <= 0 || l.Points > l.Original {
					t.Fatalf("seed %d: lot %+v", seed, l)
				}
				lots += l.Points
			}
			if got := a.Available(now) + a.Pending(now); got != lots-a.Debt {
				t.Fatalf("seed %d: available + pending = %d, lots − debt = %d", seed, got, lots-a.Debt)
			}
			if a.Debt < 0 || (!neg && a.Debt != 0) {
				t.Fatalf("seed %d: debt %d (negative allowed: %v)", seed, a.Debt, neg)
			}
			for o, er := range a.Earned {
				if er.Reversed > er.Points || er.Reversed < 0 {
					t.Fatalf("seed %d: order %s reversed %d of %d", seed, o, er.Reversed, er.Points)
				}
			}
		}
		checkReplay(t, a, log)
	}
}

func cloneAccount(a *Account) *Account {
	c := *a
	c.Lots = append([]Lot(nil), a.Lots...)
	c.Earned = map[string]*Earned{}
	for k, v := range a.Earned {
		w := *v
		c.Earned[k] = &w
	}
	return &c
}
