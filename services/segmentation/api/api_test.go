package api_test

import (
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
)

// badRules are rules the type-checker refuses, each with where it says the
// problem is and a word of why.
var badRules = []struct {
	name, rule, at, why string
}{
	{"syntax error", `features.purchases >`, "line 1, column 21", "Syntax error"},
	{"unknown field", `features.nosuch > 1`, "line 1, column 9", "undefined field 'nosuch'"},
	{"wrong type", `customer.display_name > 1`, "line 1, column 23", "no matching overload"},
	{"not a condition", `features.purchases + 1`, "line 1, column", "must be a condition (bool)"},
	{"runaway cost", `customer.tags.all(a, customer.tags.all(b, customer.tags.all(c, customer.tags.all(d, a+b+c+d != ""))))`,
		"line 1, column 18", "too expensive"},
	{"unknown function", `lower(customer.display_name) == "x"`, "line 1, column", "undeclared reference"},
}

func wantRuleError(t *testing.T, err error, field, at, why string) {
	t.Helper()
	wantCode(t, err, codes.InvalidArgument, field)
	d := violations(err)[0].description
	if !strings.Contains(d, at) || !position.MatchString(d) || !strings.Contains(d, why) {
		t.Fatalf("%s: %q does not say %q at %q", field, d, why, at)
	}
}

func TestBadRulesAreRefusedWithTheirPosition(t *testing.T) {
	h := start(t)
	h.apply(t, "acme", created("c1"))
	h.create(t, acme, dynamicSegment("ok", `features.purchases > 0`))
	for _, tc := range badRules {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client.CreateSegment(acme, &segmentationv1.CreateSegmentRequest{Segment: dynamicSegment("bad", tc.rule)})
			wantRuleError(t, err, "segment.rule", tc.at, tc.why)

			_, err = h.client.UpdateSegment(acme, &segmentationv1.UpdateSegmentRequest{
				Segment: &segmentationv1.Segment{SegmentId: "ok", Rule: tc.rule}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rule"}}})
			wantRuleError(t, err, "segment.rule", tc.at, tc.why)

			_, err = h.client.PreviewSegment(acme, &segmentationv1.PreviewSegmentRequest{Rule: tc.rule})
			wantRuleError(t, err, "rule", tc.at, tc.why)
		})
	}
	// Nothing was saved or changed.
	l, err := h.client.ListSegments(acme, &segmentationv1.ListSegmentsRequest{})
	if err != nil || len(l.Segments) != 1 || l.Segments[0].Rule != `features.purchases > 0` || l.Segments[0].Etag != "r1" {
		t.Fatalf("segments after refused rules: %v, %v", l, err)
	}
	// An empty rule is required, not a syntax error.
	_, err = h.client.PreviewSegment(acme, &segmentationv1.PreviewSegmentRequest{})
	wantCode(t, err, codes.InvalidArgument, "rule")
}

func TestCreateSegmentValidation(t *testing.T) {
	h := start(t)
	for _, tc := range []struct {
		name   string
		seg    *segmentationv1.Segment
		fields []string
	}{
		{"no segment", nil, []string{"segment"}},
		{"no id, no name, no kind", &segmentationv1.Segment{}, []string{"segment.display_name", "segment.kind", "segment.segment_id"}},
		{"bad id", &segmentationv1.Segment{SegmentId: "a b", DisplayName: "x", Kind: segmentationv1.SegmentKind_SEGMENT_KIND_STATIC}, []string{"segment.segment_id"}},
		{"static with a rule", &segmentationv1.Segment{SegmentId: "s", DisplayName: "x", Kind: segmentationv1.SegmentKind_SEGMENT_KIND_STATIC, Rule: "true"}, []string{"segment.rule"}},
		{"dynamic without a rule", dynamicSegment("d", ""), []string{"segment.rule"}},
		{"unknown kind", &segmentationv1.Segment{SegmentId: "s", DisplayName: "x", Kind: 9}, []string{"segment.kind"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client.CreateSegment(acme, &segmentationv1.CreateSegmentRequest{Segment: tc.seg})
			wantCode(t, err, codes.InvalidArgument, tc.fields...)
		})
	}
	// A retry is not a create; other content under the same id is refused.
	h.create(t, acme, dynamicSegment("d", "true"))
	r, err := h.client.CreateSegment(acme, &segmentationv1.CreateSegmentRequest{Segment: dynamicSegment("d", "true")})
	if err != nil || r.Created {
		t.Fatalf("retry: %v, %v", r, err)
	}
	_, err = h.client.CreateSegment(acme, &segmentationv1.CreateSegmentRequest{Segment: dynamicSegment("d", "false")})
	wantCode(t, err, codes.AlreadyExists)
	_, err = h.client.GetSegment(acme, &segmentationv1.GetSegmentRequest{SegmentId: "nosuch"})
	wantCode(t, err, codes.NotFound)
}

func TestUpdateSegmentMaskAndEtag(t *testing.T) {
	h := start(t)
	h.apply(t, "acme", created("c1"), created("c2"), bought("c1", "o1", 60_000, t0.Add(-day)), bought("c2", "o2", 100, t0.Add(-day)))
	seg := h.create(t, acme, dynamicSegment("big", `features.monetary >= 50000`))
	if seg.Etag != "r1" || seg.Size != 1 {
		t.Fatalf("created %v", seg)
	}

	// Only the masked field changes, whatever else the message carries.
	r, err := h.client.UpdateSegment(acme, &segmentationv1.UpdateSegmentRequest{
		Segment:    &segmentationv1.Segment{SegmentId: "big", DisplayName: "Big spenders", Rule: `features.monetary >= 1`, Etag: seg.Etag},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if u := r.Segment; u.DisplayName != "Big spenders" || u.Rule != seg.Rule || u.Size != 1 || u.Etag == seg.Etag || !u.CreateTime.AsTime().Equal(t0) {
		t.Fatalf("masked update: %v", u)
	}
	// The old etag is stale now.
	_, err = h.client.UpdateSegment(acme, &segmentationv1.UpdateSegmentRequest{
		Segment:    &segmentationv1.Segment{SegmentId: "big", Rule: `features.monetary >= 1`, Etag: seg.Etag},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rule"}},
	})
	wantCode(t, err, codes.Aborted)
	if got := h.memberIDs(t, acme, "big"); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("a refused update changed members: %v", got)
	}
	// Without a mask, the populated fields change; the changed rule is
	// applied to everyone.
	r, err = h.client.UpdateSegment(acme, &segmentationv1.UpdateSegmentRequest{
		Segment: &segmentationv1.Segment{SegmentId: "big", Rule: `features.monetary >= 1`, Etag: r.Segment.Etag}})
	if err != nil || r.Segment.Size != 2 || r.Segment.DisplayName != "Big spenders" {
		t.Fatalf("unmasked update: %v, %v", r, err)
	}
	if got := h.memberIDs(t, acme, "big"); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Fatalf("members after the rule changed: %v", got)
	}

	for _, tc := range []struct {
		name   string
		req    *segmentationv1.UpdateSegmentRequest
		code   codes.Code
		fields []string
	}{
		{"no segment", &segmentationv1.UpdateSegmentRequest{}, codes.InvalidArgument, []string{"segment"}},
		{"kind is fixed", &segmentationv1.UpdateSegmentRequest{Segment: &segmentationv1.Segment{SegmentId: "big", Kind: 1},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"kind"}}}, codes.InvalidArgument, []string{"update_mask"}},
		{"nothing to change", &segmentationv1.UpdateSegmentRequest{Segment: &segmentationv1.Segment{SegmentId: "big"}},
			codes.InvalidArgument, []string{"update_mask"}},
		{"empty name", &segmentationv1.UpdateSegmentRequest{Segment: &segmentationv1.Segment{SegmentId: "big"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}}, codes.InvalidArgument, []string{"segment.display_name"}},
		{"unknown segment", &segmentationv1.UpdateSegmentRequest{Segment: &segmentationv1.Segment{SegmentId: "nosuch", DisplayName: "x"}},
			codes.NotFound, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client.UpdateSegment(acme, tc.req)
			wantCode(t, err, tc.code, tc.fields...)
		})
	}
}

func TestListSegmentMembersPages(t *testing.T) {
	h := start(t)
	ids := h.customers(t, "acme", "c", 25)
	h.create(t, acme, dynamicSegment("buyers", `features.purchases > 0`))

	var got []string
	token := ""
	pages := 0
	for {
		r, err := h.client.ListSegmentMembers(acme, &segmentationv1.ListSegmentMembersRequest{SegmentId: "buyers", PageSize: 10, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(r.Members) > 10 {
			t.Fatalf("page of %d", len(r.Members))
		}
		for _, m := range r.Members {
			if !m.EnterTime.AsTime().Equal(t0) {
				t.Fatalf("member %v", m)
			}
			got = append(got, m.CustomerId)
		}
		if token = r.NextPageToken; token == "" {
			break
		}
	}
	if pages != 3 || !slices.Equal(got, ids) {
		t.Fatalf("%d pages listing %v, want 3 pages of %v", pages, got, ids)
	}
	// An exact multiple of the page size ends without an empty page.
	r, err := h.client.ListSegmentMembers(acme, &segmentationv1.ListSegmentMembersRequest{SegmentId: "buyers", PageSize: 25})
	if err != nil || len(r.Members) != 25 || r.NextPageToken != "" {
		t.Fatalf("one page of 25: %d members, token %q, %v", len(r.GetMembers()), r.GetNextPageToken(), err)
	}

	_, err = h.client.ListSegmentMembers(acme, &segmentationv1.ListSegmentMembersRequest{SegmentId: "buyers", PageToken: "%%%"})
	wantCode(t, err, codes.InvalidArgument, "page_token")
	_, err = h.client.ListSegmentMembers(acme, &segmentationv1.ListSegmentMembersRequest{SegmentId: "buyers", PageSize: -1})
	wantCode(t, err, codes.InvalidArgument, "page_size")
	_, err = h.client.ListSegmentMembers(acme, &segmentationv1.ListSegmentMembersRequest{SegmentId: "buyers", PageSize: 10001})
	wantCode(t, err, codes.InvalidArgument, "page_size")
	_, err = h.client.ListSegmentMembers(acme, &segmentationv1.ListSegmentMembersRequest{SegmentId: "nosuch"})
	wantCode(t, err, codes.NotFound)

	// Segments page the same way.
	for _, id := range []string{"s1", "s2", "s3"} {
		h.create(t, acme, staticSegment(id))
	}
	var segs []string
	token = ""
	for {
		r, err := h.client.ListSegments(acme, &segmentationv1.ListSegmentsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range r.Segments {
			segs = append(segs, s.SegmentId)
		}
		if token = r.NextPageToken; token == "" {
			break
		}
	}
	if !slices.Equal(segs, []string{"buyers", "s1", "s2", "s3"}) {
		t.Fatalf("segments %v", segs)
	}
	_, err = h.client.ListSegments(acme, &segmentationv1.ListSegmentsRequest{PageSize: 1001})
	wantCode(t, err, codes.InvalidArgument, "page_size")
}

func TestExportSegmentMembersStreamsEveryone(t *testing.T) {
	h := start(t)
	ids := h.customers(t, "acme", "c", 2500)
	h.create(t, acme, dynamicSegment("buyers", `features.purchases > 0`))
	h.create(t, acme, staticSegment("empty"))

	export := func(seg string) ([]string, []int, error) {
		s, err := h.client.ExportSegmentMembers(acme, &segmentationv1.ExportSegmentMembersRequest{SegmentId: seg})
		if err != nil {
			return nil, nil, err
		}
		var got []string
		var chunks []int
		for {
			r, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return got, chunks, nil
			}
			if err != nil {
				return got, chunks, err
			}
			chunks = append(chunks, len(r.Members))
			for _, m := range r.Members {
				got = append(got, m.CustomerId)
			}
		}
	}
	got, chunks, err := export("buyers")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids) || !slices.Equal(chunks, []int{1000, 1000, 500}) {
		t.Fatalf("exported %d members in chunks %v, want %d in 1000, 1000, 500", len(got), chunks, len(ids))
	}
	if got, chunks, err := export("empty"); err != nil || len(got) != 0 || len(chunks) != 0 {
		t.Fatalf("empty export: %v %v %v", got, chunks, err)
	}
	_, _, err = export("nosuch")
	wantCode(t, err, codes.NotFound)
	_, _, err = export("")
	wantCode(t, err, codes.InvalidArgument, "segment_id")
}

func TestStaticMembersOverGRPC(t *testing.T) {
	h := start(t)
	h.customers(t, "acme", "c", 3)
	h.create(t, acme, staticSegment("vip"))
	h.create(t, acme, dynamicSegment("buyers", `features.purchases > 0`))

	add, err := h.client.AddSegmentMembers(acme, &segmentationv1.AddSegmentMembersRequest{SegmentId: "vip", CustomerIds: []string{"c-0000", "c-0002", "c-0002"}})
	if err != nil || add.Added != 2 {
		t.Fatalf("add: %v, %v", add, err)
	}
	_, err = h.client.AddSegmentMembers(acme, &segmentationv1.AddSegmentMembersRequest{SegmentId: "vip", CustomerIds: []string{"c-0001", "nobody"}})
	wantCode(t, err, codes.InvalidArgument, "customer_ids[1]")
	_, err = h.client.AddSegmentMembers(acme, &segmentationv1.AddSegmentMembersRequest{SegmentId: "vip", CustomerIds: []string{"bad id"}})
	wantCode(t, err, codes.InvalidArgument, "customer_ids[0]")
	_, err = h.client.AddSegmentMembers(acme, &segmentationv1.AddSegmentMembersRequest{SegmentId: "vip"})
	wantCode(t, err, codes.InvalidArgument, "customer_ids")
	_, err = h.client.AddSegmentMembers(acme, &segmentationv1.AddSegmentMembersRequest{SegmentId: "buyers", CustomerIds: []string{"c-0001"}})
	wantCode(t, err, codes.InvalidArgument, "segment_id")
	rm, err := h.client.RemoveSegmentMembers(acme, &segmentationv1.RemoveSegmentMembersRequest{SegmentId: "vip", CustomerIds: []string{"c-0000", "c-0001"}})
	if err != nil || rm.Removed != 1 {
		t.Fatalf("remove: %v, %v", rm, err)
	}
	if got := h.memberIDs(t, acme, "vip"); !slices.Equal(got, []string{"c-0002"}) {
		t.Fatalf("vip members %v", got)
	}

	// The customer's scores list the segments, and the explanation the history.
	cs, err := h.client.GetCustomerScores(acme, &segmentationv1.GetCustomerScoresRequest{CustomerId: "c-0002"})
	if err != nil || len(cs.Segments) != 2 || cs.Features.GetPurchases() != 1 {
		t.Fatalf("scores: %v, %v", cs, err)
	}
	ex, err := h.client.ExplainMembership(acme, &segmentationv1.ExplainMembershipRequest{SegmentId: "vip", CustomerId: "c-0000"})
	if err != nil || ex.Member || len(ex.History) != 2 || ex.History[1].Reason != "removed by hand" || ex.NextEvaluateTime != nil {
		t.Fatalf("explain: %v, %v", ex, err)
	}
	ex, err = h.client.ExplainMembership(acme, &segmentationv1.ExplainMembershipRequest{SegmentId: "buyers", CustomerId: "c-0000"})
	if err != nil || !ex.Member || len(ex.Clauses) == 0 || !ex.Clauses[0].Held || ex.Clauses[0].Expression != "features.purchases > 0" {
		t.Fatalf("explain dynamic: %v, %v", ex, err)
	}
	_, err = h.client.GetCustomerScores(acme, &segmentationv1.GetCustomerScoresRequest{CustomerId: "nobody"})
	wantCode(t, err, codes.NotFound)
	re, err := h.client.ReevaluateSegment(acme, &segmentationv1.ReevaluateSegmentRequest{SegmentId: "buyers"})
	if err != nil || re.Size != 3 || re.Entered != 0 || re.Left != 0 {
		t.Fatalf("reevaluate: %v, %v", re, err)
	}
	sizes, err := h.client.GetSegmentSizes(acme, &segmentationv1.GetSegmentSizesRequest{SegmentId: "vip"})
	if err != nil || len(sizes.Sizes) != 1 || sizes.Sizes[0].Size != 1 || !sizes.Sizes[0].Day.AsTime().Equal(t0.Truncate(day)) {
		t.Fatalf("sizes: %v, %v", sizes, err)
	}
	pv, err := h.client.PreviewSegment(acme, &segmentationv1.PreviewSegmentRequest{Rule: `features.monetary > 100`, SampleSize: 1})
	if err != nil || pv.Count != 2 || pv.Evaluated != 3 || !slices.Equal(pv.Sample, []string{"c-0001"}) {
		t.Fatalf("preview: %v, %v", pv, err)
	}
	_, err = h.client.PreviewSegment(acme, &segmentationv1.PreviewSegmentRequest{Rule: "true", SampleSize: 101})
	wantCode(t, err, codes.InvalidArgument, "sample_size")

	del, err := h.client.DeleteSegment(acme, &segmentationv1.DeleteSegmentRequest{SegmentId: "vip"})
	if err != nil || del == nil {
		t.Fatal(err)
	}
	_, err = h.client.GetSegment(acme, &segmentationv1.GetSegmentRequest{SegmentId: "vip"})
	wantCode(t, err, codes.NotFound)
}

func TestUpdateSettingsValidation(t *testing.T) {
	h := start(t)
	_, err := h.client.UpdateSettings(acme, &segmentationv1.UpdateSettingsRequest{Settings: &segmentationv1.Settings{PlatinumShare: 2}})
	wantCode(t, err, codes.InvalidArgument, "settings.platinum_share")
	_, err = h.client.UpdateSettings(acme, &segmentationv1.UpdateSettingsRequest{Settings: &segmentationv1.Settings{Currency: "cny", ValueSplit: -0.5}})
	wantCode(t, err, codes.InvalidArgument, "settings.currency", "settings.value_split")
	_, err = h.client.UpdateSettings(acme, &segmentationv1.UpdateSettingsRequest{Settings: &segmentationv1.Settings{PlatinumShare: 0.5, GoldShare: 0.3, IronShare: 0.2}})
	wantCode(t, err, codes.InvalidArgument, "settings.gold_share", "settings.iron_share", "settings.platinum_share")
	_, err = h.client.UpdateSettings(acme, &segmentationv1.UpdateSettingsRequest{Settings: &segmentationv1.Settings{},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"nosuch"}}})
	wantCode(t, err, codes.InvalidArgument, "update_mask")
	_, err = h.client.UpdateSettings(acme, &segmentationv1.UpdateSettingsRequest{})
	wantCode(t, err, codes.InvalidArgument, "settings")

	r, err := h.client.UpdateSettings(acme, &segmentationv1.UpdateSettingsRequest{Settings: &segmentationv1.Settings{Currency: "EUR", PlatinumShare: 0.02}})
	if err != nil || r.Settings.Currency != "EUR" || r.Settings.PlatinumShare != 0.02 || r.Settings.GoldShare != 0.04 || r.Settings.ValueSplit != 0.5 {
		t.Fatalf("update: %v, %v", r, err)
	}
	// A mask sets a field back to its default.
	r, err = h.client.UpdateSettings(acme, &segmentationv1.UpdateSettingsRequest{Settings: &segmentationv1.Settings{},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"platinum_share"}}})
	if err != nil || r.Settings.PlatinumShare != 0.01 || r.Settings.Currency != "EUR" {
		t.Fatalf("masked reset: %v, %v", r, err)
	}
	g, err := h.client.GetSettings(acme, &segmentationv1.GetSettingsRequest{})
	if err != nil || g.Settings.Currency != "EUR" || g.Settings.PlatinumShare != 0.01 || g.Settings.ValueMeasure != segmentationv1.ValueMeasure_VALUE_MEASURE_MONETARY {
		t.Fatalf("get: %v, %v", g, err)
	}
}

func TestReportShapes(t *testing.T) {
	h := start(t)
	check := func(t *testing.T, customers int64) {
		t.Helper()
		rfm, err := h.client.GetRfmReport(acme, &segmentationv1.GetRfmReportRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rfm.Cells) != 25 || len(rfm.Groups) != 11 {
			t.Fatalf("rfm: %d cells, %d groups", len(rfm.Cells), len(rfm.Groups))
		}
		var inCells, inGroups int64
		for i, c := range rfm.Cells {
			if c.Recency != int32(i/5+1) || c.Frequency != int32(i%5+1) {
				t.Fatalf("cell %d is (%d, %d)", i, c.Recency, c.Frequency)
			}
			inCells += c.Customers
		}
		for _, g := range rfm.Groups {
			inGroups += g.Customers
		}
		if inCells != customers || inGroups != customers || !rfm.ScoreTime.AsTime().Equal(t0) {
			t.Fatalf("rfm counts %d in cells, %d in groups, want %d", inCells, inGroups, customers)
		}

		p, err := h.client.GetPyramidReport(acme, &segmentationv1.GetPyramidReportRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := []segmentationv1.Tier{segmentationv1.Tier_TIER_PLATINUM, segmentationv1.Tier_TIER_GOLD, segmentationv1.Tier_TIER_IRON, segmentationv1.Tier_TIER_LEAD}
		if len(p.Tiers) != 4 || p.Customers != customers {
			t.Fatalf("pyramid: %v", p)
		}
		var share float64
		var n, contribution int64
		for i, tier := range p.Tiers {
			if tier.Tier != want[i] {
				t.Fatalf("tier %d is %v", i, tier.Tier)
			}
			share += tier.Share
			n += tier.Customers
			contribution += tier.Contribution
		}
		if n != customers || contribution != p.TotalContribution {
			t.Fatalf("pyramid tiers hold %d customers and %d, report says %d and %d", n, contribution, customers, p.TotalContribution)
		}
		if p.TotalContribution > 0 && math.Abs(share-1) > 1e-9 {
			t.Fatalf("tier shares sum to %v", share)
		}
		if p.TotalContribution == 0 && (share != 0 || p.Top20Share != 0) {
			t.Fatalf("shares without contribution: %v", p)
		}

		q, err := h.client.GetQuadrantReport(acme, &segmentationv1.GetQuadrantReportRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(q.Quadrants) != 4 {
			t.Fatalf("quadrants: %v", q)
		}
		n = 0
		for i, c := range q.Quadrants {
			if c.Quadrant != segmentationv1.Quadrant(i+1) {
				t.Fatalf("quadrant %d is %v", i, c.Quadrant)
			}
			n += c.Customers
		}
		if n != customers {
			t.Fatalf("quadrants hold %d, want %d", n, customers)
		}
	}
	t.Run("empty", func(t *testing.T) { check(t, 0) })
	h.customers(t, "acme", "c", 40)
	h.apply(t, "acme", created("never-bought"))
	t.Run("forty buyers", func(t *testing.T) {
		check(t, 40)
		p, err := h.client.GetPyramidReport(acme, &segmentationv1.GetPyramidReportRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// 40 buyers: platinum 1, gold 1, iron 6, lead 32; the top 8 of
		// 100·1 … 100·40 bring (33+…+40)/(1+…+40).
		counts := []int64{p.Tiers[0].Customers, p.Tiers[1].Customers, p.Tiers[2].Customers, p.Tiers[3].Customers}
		if !slices.Equal(counts, []int64{1, 1, 6, 32}) || p.TotalContribution != 82_000 || p.Currency != "CNY" {
			t.Fatalf("pyramid %v", p)
		}
		if want := 292.0 / 820.0; math.Abs(p.Top20Share-want) > 1e-9 {
			t.Fatalf("top 20%% share %v, want %v", p.Top20Share, want)
		}
	})
}
