package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

// BenchmarkRecordGroup measures what one group commit of the write path
// costs on disk: each op records a group of purchases in one transaction, on
// a file of 10,000 customers that already have a timeline of 20 events. It
// reports the pages the commits write per event (bbolt's page allocations)
// and the events per second, with the customers of a group either adjacent
// in key order (as rapport load sends them) or scattered (as real traffic
// does):
//
//	go test -run XXX -bench RecordGroup -benchtime 200x rapport.dev/services/profile/store
func BenchmarkRecordGroup(b *testing.B) {
	const customers, preload = 10_000, 20
	for _, group := range []int{50, 1000} {
		for _, spread := range []string{"adjacent", "scattered"} {
			b.Run(fmt.Sprintf("group=%d/customers=%s", group, spread), func(b *testing.B) {
				ctx := context.Background()
				db := boltdb.OpenTemp(b, store.Options())
				clk := clock.NewFake(t0)
				st := store.New(db, feed.NewLog(db, clk))
				ids := make([]string, customers)
				for i := range ids {
					ids[i] = fmt.Sprintf("c-%06d", i)
				}
				for i := 0; i < customers; i += 1000 {
					cs := make([]*domain.Customer, 1000)
					for j := range cs {
						cs[j] = &domain.Customer{ID: ids[i+j], Kind: domain.KindPerson, DisplayName: "x", CreateTime: t0, UpdateTime: t0, Revision: 1}
					}
					if _, err := st.CreateCustomers(ctx, "acme", cs); err != nil {
						b.Fatal(err)
					}
				}
				n := 0
				event := func(customer string) *domain.Event {
					n++
					id := fmt.Sprintf("e-%d", n)
					price := int64(500 + n%9500)
					e := &domain.Event{ID: id, CustomerID: customer, Source: "bench",
						OccurTime: t0.Add(-time.Duration(n%(90*24*3600)) * time.Second),
						Purchase: &domain.Purchase{OrderID: id, Amount: domain.Money{Minor: 2 * price, Currency: "EUR"}, StoreID: "web-eu",
							Items: []domain.LineItem{{SKU: fmt.Sprintf("SKU-%d", n%5000), Name: "Album", Category: "music", Quantity: 2,
								UnitPrice: domain.Money{Minor: price, Currency: "EUR"}}}}}
					if err := e.Validate(t0); err != nil {
						b.Fatal(err)
					}
					return e
				}
				record := func(evs []*domain.Event) {
					rs, err := st.RecordEvents(ctx, "acme", evs)
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range rs {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
				}
				for range preload {
					for i := 0; i < customers; i += 1000 {
						evs := make([]*domain.Event, 1000)
						for j := range evs {
							evs[j] = event(ids[i+j])
						}
						record(evs)
					}
				}
				rng := rand.New(rand.NewPCG(1, 2))
				next := 0
				before := db.Bolt().Stats().TxStats
				b.ResetTimer()
				for range b.N {
					evs := make([]*domain.Event, group)
					for j := range evs {
						c := next % customers
						next++
						if spread == "scattered" {
							c = rng.IntN(customers)
						}
						evs[j] = event(ids[c])
					}
					record(evs)
				}
				b.StopTimer()
				after := db.Bolt().Stats().TxStats
				events := float64(b.N * group)
				b.ReportMetric(float64(after.GetPageCount()-before.GetPageCount())/events, "pages/event")
				b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
