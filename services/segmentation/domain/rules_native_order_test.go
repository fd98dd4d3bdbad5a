package domain

import (
	"slices"
	"testing"
)

// TestRuleNativeCheapestFirst: the operands of && and || run those reading
// features and scores first, then those reading customer fields, then
// iterations, whatever order the rule was written in.
func TestRuleNativeCheapestFirst(t *testing.T) {
	env, err := NewRuleEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		rule string
		ops  []ruleOp
	}{
		{`customer.region.country == "FR" && features.purchases_90d >= 1`,
			[]ruleOp{ruleOpCmpIntField, ruleOpCmpStringField}},
		{`features.purchases_90d >= 1 && customer.region.country == "FR"`,
			[]ruleOp{ruleOpCmpIntField, ruleOpCmpStringField}},
		{`customer.tags.exists(t, t.startsWith("b2b")) || "vip" in customer.tags || scores.tier == rapport.segmentation.v1.Tier.TIER_GOLD`,
			[]ruleOp{ruleOpCmpIntField, ruleOpInList, ruleOpExists}},
		{`customer.display_name == "x" && features.purchases >= 1 && days_since(features.last_purchase) < 9`,
			[]ruleOp{ruleOpCmpIntField, ruleOpCmpDaysField, ruleOpCmpStringField}},
	} {
		r, err := env.Compile(tt.rule)
		if err != nil {
			t.Fatal(err)
		}
		p := r.native
		if p == nil {
			t.Fatalf("%s: no native form", tt.rule)
		}
		var ops []ruleOp
		for _, k := range p.nodes[p.root].kids {
			ops = append(ops, p.nodes[k].op)
		}
		if !slices.Equal(ops, tt.ops) {
			t.Errorf("%s: operands in order %v, want %v", tt.rule, ops, tt.ops)
		}
	}
}
