package domain

import (
	"fmt"
	"slices"
)

// TierStat is one tier of the pyramid report.
type TierStat struct {
	Tier         Tier
	Customers    int64
	Contribution int64
	// Share is Contribution over the total contribution; 0 when the total
	// is not positive.
	Share float64
}

// PyramidReport is the value pyramid and the 20/80 report.
type PyramidReport struct {
	// Tiers are platinum, gold, iron and lead, in that order.
	Tiers []TierStat
	// Top20Share is the share of the total contribution brought by the top
	// tceil(N·0.2) ranked customers by contribution (0 when the total is not
	// positive).
	Top20Share float64
	// Customers is N, the number of ranked customers.
	Customers int64
	// TotalContribution is the summed contribution of the ranked customers.
	TotalContribution int64
}

// QuadrantStat is one quadrant of the quadrant report.
type QuadrantStat struct {
	Quadrant     Quadrant
	Customers    int64
	Contribution int64
}

// QuadrantReport is the value × loyalty matrix.
type QuadrantReport struct {
	// Quadrants are strategic partner, retain, develop and build
	// relationship, in that order.
	Quadrants        []QuadrantStat
	ValueThreshold   int64
	LoyaltyThreshold float64
}

// RfmCell is one cell of the recency × frequency grid.
type RfmCell struct {
	Recency, Frequency int32
	Customers          int64
	// Monetary is the cell's summed Features.Monetary.
	Monetary int64
}

// RfmGroupStat is the size of one RFM group.
type RfmGroupStat struct {
	Group     RfmGroup
	Customers int64
}

// RfmGrid is the RFM report.
type RfmGrid struct {
	// Cells are the 25 cells, recency 1 to 5 and, within each, frequency 1
	// to 5: cell (r, f) is Cells[(r-1)*5+(f-1)].
	Cells []RfmCell
	// Groups are the eleven named groups in enum order (champions … lost).
	Groups []RfmGroupStat
}

func share(part, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(part) / float64(total)
}

// NewPyramidReport builds the pyramid report from a population's scores.
// Unranked (zero) scores are left out.
func NewPyramidReport(scores []Score) PyramidReport {
	r := PyramidReport{Tiers: make([]TierStat, 0, 4)}
	var by [TierLead + 1]TierStat
	contributions := make([]int64, 0, len(scores))
	for _, s := range scores {
		if !s.Ranked() || s.Tier > TierLead {
			continue
		}
		by[s.Tier].Customers++
		by[s.Tier].Contribution += s.Contribution
		r.TotalContribution += s.Contribution
		contributions = append(contributions, s.Contribution)
	}
	r.Customers = int64(len(contributions))
	for t := TierPlatinum; t <= TierLead; t++ {
		st := by[t]
		st.Tier = t
		st.Share = share(st.Contribution, r.TotalContribution)
		r.Tiers = append(r.Tiers, st)
	}
	// The top of the contribution order is the largest contributions,
	// whatever the tie-break.
	slices.Sort(contributions)
	var top int64
	for _, c := range contributions[len(contributions)-position(len(contributions), ParetoShare, 0):] {
		top += c
	}
	r.Top20Share = share(top, r.TotalContribution)
	return r
}

// NewQuadrantReport builds the quadrant report from a population's scores
// and thresholds (Population.ValueThreshold and LoyaltyThreshold).
func NewQuadrantReport(scores []Score, valueThreshold int64, loyaltyThreshold float64) QuadrantReport {
	r := QuadrantReport{ValueThreshold: valueThreshold, LoyaltyThreshold: loyaltyThreshold}
	var by [QuadrantBuildRelationship + 1]QuadrantStat
	for _, s := range scores {
		if s.Quadrant < QuadrantStrategicPartner || s.Quadrant > QuadrantBuildRelationship {
			continue
		}
		by[s.Quadrant].Customers++
		by[s.Quadrant].Contribution += s.Contribution
	}
	r.Quadrants = make([]QuadrantStat, 0, 4)
	for q := QuadrantStrategicPartner; q <= QuadrantBuildRelationship; q++ {
		st := by[q]
		st.Quadrant = q
		r.Quadrants = append(r.Quadrants, st)
	}
	return r
}

// NewRfmGrid builds the RFM report from rows and their scores, which must be
// aligned (scores[i] is the score of rows[i]).
func NewRfmGrid(rows []Row, scores []Score) RfmGrid {
	if len(rows) != len(scores) {
		panic(fmt.Sprintf("domain.NewRfmGrid: %d rows but %d scores", len(rows), len(scores)))
	}
	g := RfmGrid{Cells: make([]RfmCell, 25), Groups: make([]RfmGroupStat, 0, 11)}
	for r := int32(1); r <= 5; r++ {
		for f := int32(1); f <= 5; f++ {
			g.Cells[(r-1)*5+(f-1)] = RfmCell{Recency: r, Frequency: f}
		}
	}
	var groups [RfmLost + 1]int64
	for i, s := range scores {
		if s.R >= 1 && s.R <= 5 && s.F >= 1 && s.F <= 5 {
			c := &g.Cells[(s.R-1)*5+(s.F-1)]
			c.Customers++
			c.Monetary += rows[i].Features.Monetary
		}
		if s.Group >= RfmChampions && s.Group <= RfmLost {
			groups[s.Group]++
		}
	}
	for grp := RfmChampions; grp <= RfmLost; grp++ {
		g.Groups = append(g.Groups, RfmGroupStat{Group: grp, Customers: groups[grp]})
	}
	return g
}
