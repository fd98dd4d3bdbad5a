package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/api"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

// BenchmarkGetCustomer measures the profile service's GetCustomer handler
// without the transport: the store read and decode, the domain call and the
// conversion to the API message, on a real bbolt file holding customers
// shaped like the ones `rapport load` seeds:
//
//	go test -run XXX -bench GetCustomer -benchmem rapport.dev/services/profile/api
func BenchmarkGetCustomer(b *testing.B) {
	const customers = 1000
	db := boltdb.OpenTemp(b, store.Options())
	clk := clock.NewFake(t0)
	log := feed.NewLog(db, clk)
	svc := domain.NewService(store.New(db, log), clk)
	srv := api.New(svc, log, slog.New(slog.DiscardHandler))
	req := &profilev1.BatchCreateCustomersRequest{}
	for i := range customers {
		id := fmt.Sprintf("c-%06d", i)
		req.Customers = append(req.Customers, &profilev1.Customer{
			CustomerId: id, Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: "Customer " + id,
			Person: &profilev1.Person{GivenName: fmt.Sprint("Given", i), FamilyName: "Family",
				Gender: profilev1.Gender_GENDER_UNDISCLOSED},
			Email: id + "@example.com", Phone: fmt.Sprintf("+3361%07d", i),
			Region: &profilev1.Region{Country: "FR", City: "Lyon"}, Tags: []string{"bench", "seeded"},
			TimeZone: "Europe/Paris", Language: "fr",
		})
	}
	res, err := srv.BatchCreateCustomers(acme, req)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res.GetResults() {
		if !r.GetCreated() {
			b.Fatalf("seeding: %v", r.GetStatus())
		}
	}
	gets := make([]*profilev1.GetCustomerRequest, customers)
	for i := range gets {
		gets[i] = &profilev1.GetCustomerRequest{CustomerId: fmt.Sprintf("c-%06d", i)}
	}
	ctx := context.Context(acme)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := srv.GetCustomer(ctx, gets[i%customers]); err != nil {
			b.Fatal(err)
		}
	}
}
