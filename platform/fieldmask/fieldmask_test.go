package fieldmask_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/fieldmask"
)

var fixed = []string{"customer_id", "organization.contacts"}

func TestPathsChecksEveryPath(t *testing.T) {
	c := &profilev1.Customer{}
	for _, bad := range [][]string{{"nosuch"}, {"region.nosuch"}, {"tags.x"}, {"customer_id"}, {"organization"}, {"organization.contacts"}} {
		_, err := fieldmask.Paths(c, bad, fixed)
		var inv *fault.Invalid
		if !errors.As(err, &inv) || inv.Violations[0].Field != "update_mask" {
			t.Errorf("%v: err = %v, want a violation on update_mask", bad, err)
		}
	}
	if _, err := fieldmask.Paths(c, []string{"owner", "region.city", "organization.legal_name"}, fixed); err != nil {
		t.Errorf("valid paths refused: %v", err)
	}
}

func TestEmptyMaskMeansPopulatedFieldsAroundFixedOnes(t *testing.T) {
	c := &profilev1.Customer{CustomerId: "c1", Owner: "li", Organization: &profilev1.Organization{LegalName: "ACME",
		Contacts: []*profilev1.Contact{{ContactId: "x"}}}}
	paths, err := fieldmask.Paths(c, nil, fixed)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"owner": true, "organization.legal_name": true}
	if len(paths) != len(want) {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	for _, p := range paths {
		if !want[p] {
			t.Fatalf("paths %v, want %v", paths, want)
		}
	}
	if _, err := fieldmask.Paths(&profilev1.Customer{CustomerId: "c1"}, nil, fixed); err == nil {
		t.Fatal("an empty mask on a request that sets nothing updatable was accepted")
	}
}

func TestApplyCopiesNamedFieldsAndClearsUnsetOnes(t *testing.T) {
	dst := &profilev1.Customer{Owner: "old", Phone: "123456", Region: &profilev1.Region{Country: "CN", City: "杭州"}, Tags: []string{"a"}}
	src := &profilev1.Customer{Owner: "new", Region: &profilev1.Region{City: "上海"}}
	fieldmask.Apply(dst, src, []string{"owner", "region.city", "tags", "email"})
	want := &profilev1.Customer{Owner: "new", Phone: "123456", Region: &profilev1.Region{Country: "CN", City: "上海"}}
	if !proto.Equal(dst, want) {
		t.Fatalf("got %v, want %v", dst, want)
	}
	// A nested path under a parent the request leaves unset clears the leaf.
	fieldmask.Apply(dst, &profilev1.Customer{}, []string{"region.city"})
	if dst.Region.City != "" || dst.Region.Country != "CN" {
		t.Fatalf("region after clearing city: %v", dst.Region)
	}
}
