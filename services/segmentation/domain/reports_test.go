package domain

import (
	"math"
	"sort"
	"testing"
)

// checkReports compares the reports with sums over the reference scores.
func checkReports(t *testing.T, rows []Row, pop Population, want []refScore) {
	t.Helper()
	var (
		tiers     = map[Tier][2]int64{}
		quads     = map[Quadrant][2]int64{}
		cells     = map[[2]int32][2]int64{}
		groups    = map[RfmGroup]int64{}
		total     int64
		contribs  []int64
		customers int64
	)
	for i, w := range want {
		if rows[i].Features.Purchases == 0 {
			continue
		}
		customers++
		total += w.contrib
		contribs = append(contribs, w.contrib)
		add := func(m map[Tier][2]int64, k Tier) { v := m[k]; v[0]++; v[1] += w.contrib; m[k] = v }
		add(tiers, w.tier)
		q := quads[refQuadrant(w)]
		q[0]++
		q[1] += w.contrib
		quads[refQuadrant(w)] = q
		c := cells[[2]int32{w.r, w.f}]
		c[0]++
		c[1] += rows[i].Features.Monetary
		cells[[2]int32{w.r, w.f}] = c
		groups[refGroup(w.r, w.f, w.m)]++
	}
	ratio := func(a, b int64) float64 {
		if b <= 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	closeTo := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

	pr := NewPyramidReport(pop.Scores)
	if pr.Customers != customers || pr.TotalContribution != total || len(pr.Tiers) != 4 {
		t.Fatalf("pyramid %+v; reference customers %d total %d", pr, customers, total)
	}
	for i, ts := range pr.Tiers {
		w := tiers[Tier(i+1)]
		if ts.Tier != Tier(i+1) || ts.Customers != w[0] || ts.Contribution != w[1] || !closeTo(ts.Share, ratio(w[1], total)) {
			t.Errorf("tier %+v; reference %v of %d", ts, w, total)
		}
	}
	sort.Slice(contribs, func(a, b int) bool { return contribs[a] > contribs[b] })
	var top int64
	for _, c := range contribs[:int(math.Ceil(float64(len(contribs))*0.2-1e-9))] {
		top += c
	}
	if !closeTo(pr.Top20Share, ratio(top, total)) {
		t.Errorf("top-20 share %v; reference %v", pr.Top20Share, ratio(top, total))
	}

	qr := NewQuadrantReport(pop.Scores, pop.ValueThreshold, pop.LoyaltyThreshold)
	if len(qr.Quadrants) != 4 || qr.ValueThreshold != pop.ValueThreshold || qr.LoyaltyThreshold != pop.LoyaltyThreshold {
		t.Fatalf("quadrants %+v", qr)
	}
	for i, qs := range qr.Quadrants {
		w := quads[Quadrant(i+1)]
		if qs.Quadrant != Quadrant(i+1) || qs.Customers != w[0] || qs.Contribution != w[1] {
			t.Errorf("quadrant %+v; reference %v", qs, w)
		}
	}

	g := NewRfmGrid(rows, pop.Scores)
	if len(g.Cells) != 25 || len(g.Groups) != 11 {
		t.Fatalf("grid of %d cells, %d groups", len(g.Cells), len(g.Groups))
	}
	for _, c := range g.Cells {
		w := cells[[2]int32{c.Recency, c.Frequency}]
		if c.Customers != w[0] || c.Monetary != w[1] || g.Cells[(c.Recency-1)*5+c.Frequency-1] != c {
			t.Errorf("cell %+v; reference %v", c, w)
		}
	}
	for i, gs := range g.Groups {
		if gs.Group != RfmGroup(i+1) || gs.Customers != groups[gs.Group] {
			t.Errorf("group %+v; reference %d", gs, groups[gs.Group])
		}
	}
}

func TestPyramidReportByHand(t *testing.T) {
	// Ten customers contributing 100, 90, …, 10 (550 in all) and one unranked.
	rows := []Row{{CustomerID: "none"}}
	for i := range 10 {
		rows = append(rows, Row{CustomerID: string(rune('a' + i)), Features: Features{Purchases: 1, Monetary: int64(100 - 10*i)}})
	}
	pop := ScorePopulation(rows, Settings{PlatinumShare: 0.1, GoldShare: 0.2, IronShare: 0.3})
	got := NewPyramidReport(pop.Scores)
	want := PyramidReport{
		Tiers: []TierStat{
			{TierPlatinum, 1, 100, 100.0 / 550},
			{TierGold, 2, 170, 170.0 / 550},
			{TierIron, 3, 180, 180.0 / 550},
			{TierLead, 4, 100, 100.0 / 550},
		},
		Top20Share:        190.0 / 550,
		Customers:         10,
		TotalContribution: 550,
	}
	if !reflectEqualPyramid(got, want) {
		t.Fatalf("pyramid\n got %+v\nwant %+v", got, want)
	}

	// Nothing contributed: shares are 0, not NaN.
	for i := range rows {
		rows[i].Features.Monetary = 0
	}
	zero := NewPyramidReport(ScorePopulation(rows, Settings{}).Scores)
	if zero.Top20Share != 0 || zero.TotalContribution != 0 || zero.Customers != 10 {
		t.Fatalf("%+v", zero)
	}
	for _, ts := range zero.Tiers {
		if ts.Share != 0 {
			t.Fatalf("%+v", zero)
		}
	}
}

func reflectEqualPyramid(a, b PyramidReport) bool {
	if len(a.Tiers) != len(b.Tiers) || a.Customers != b.Customers || a.TotalContribution != b.TotalContribution ||
		math.Abs(a.Top20Share-b.Top20Share) > 1e-12 {
		return false
	}
	for i := range a.Tiers {
		x, y := a.Tiers[i], b.Tiers[i]
		if x.Tier != y.Tier || x.Customers != y.Customers || x.Contribution != y.Contribution || math.Abs(x.Share-y.Share) > 1e-12 {
			return false
		}
	}
	return true
}

func TestQuadrantAndRfmReportsByHand(t *testing.T) {
	scores := []Score{
		{},
		{R: 5, F: 5, M: 5, Group: RfmChampions, Tier: TierPlatinum, Quadrant: QuadrantStrategicPartner, Contribution: 500},
		{R: 5, F: 5, M: 4, Group: RfmChampions, Tier: TierGold, Quadrant: QuadrantRetain, Contribution: 300},
		{R: 1, F: 2, M: 1, Group: RfmLost, Tier: TierLead, Quadrant: QuadrantBuildRelationship, Contribution: 7},
		{R: 1, F: 2, M: 3, Group: RfmAtRisk, Tier: TierLead, Quadrant: QuadrantBuildRelationship, Contribution: 9},
	}
	rows := []Row{{}, {Features: Features{Monetary: 1000}}, {Features: Features{Monetary: 600}},
		{Features: Features{Monetary: 7}}, {Features: Features{Monetary: 9}}}
	q := NewQuadrantReport(scores, 300, 2.5)
	want := []QuadrantStat{{QuadrantStrategicPartner, 1, 500}, {QuadrantRetain, 1, 300}, {QuadrantDevelop, 0, 0}, {QuadrantBuildRelationship, 2, 16}}
	if q.ValueThreshold != 300 || q.LoyaltyThreshold != 2.5 || len(q.Quadrants) != 4 {
		t.Fatalf("%+v", q)
	}
	for i := range want {
		if q.Quadrants[i] != want[i] {
			t.Errorf("quadrant %d = %+v, want %+v", i, q.Quadrants[i], want[i])
		}
	}
	g := NewRfmGrid(rows, scores)
	if c := g.Cells[(5-1)*5+(5-1)]; c != (RfmCell{5, 5, 2, 1600}) {
		t.Errorf("cell 5/5 = %+v", c)
	}
	if c := g.Cells[(1-1)*5+(2-1)]; c != (RfmCell{1, 2, 2, 16}) {
		t.Errorf("cell 1/2 = %+v", c)
	}
	var cells int64
	for _, c := range g.Cells {
		cells += c.Customers
	}
	if cells != 4 {
		t.Errorf("%d customers in the grid", cells)
	}
	groups := map[RfmGroup]int64{}
	for _, gs := range g.Groups {
		groups[gs.Group] = gs.Customers
	}
	if len(g.Groups) != 11 || g.Groups[0].Group != RfmChampions || g.Groups[10].Group != RfmLost ||
		groups[RfmChampions] != 2 || groups[RfmLost] != 1 || groups[RfmAtRisk] != 1 || groups[RfmNew] != 0 {
		t.Errorf("groups %+v", g.Groups)
	}
}
