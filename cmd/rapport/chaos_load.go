package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	carestore "rapport.dev/services/care/store"
)

// The tenant's set-up: what the load and the checks agree on.
const (
	chaosProgram    = "club"
	chaosReward     = "tea-set"
	chaosRewardCost = 300
	// chaosSegment holds the customers who return more than one order in
	// four. The load refunds about one purchase in four, so customers
	// enter and leave it all the time, and each entry earns goodwill
	// points: segmentation's feed drives loyalty as profile's does.
	chaosSegment     = "returners"
	chaosSegmentRule = "features.purchases > 0 && features.refunds * 4 > features.purchases"
	chaosSegmentGift = 100 // points for entering the segment
	chaosSurveyPlan  = "survey"
	chaosThanksPlan  = "thanks"
	chaosFollowUp    = "follow-up"
	chaosCurrency    = "CNY"
	chaosImportBatch = 5
)

var chaosOwners = []string{"agent-1", "agent-2", "agent-3", "agent-4"}

var chaosZones = []string{"Asia/Shanghai", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"}

// Operation kinds, as the report names them.
const (
	opImportCustomers = "import: customers (batch)"
	opImportConsent   = "import: care consent"
	opImportEnrol     = "import: loyalty enrolment"
	opImportEvents    = "import: purchase history (batch)"
	opPurchase        = "purchase"
	opRefund          = "refund"
	opComplaint       = "complaint"
	opRead            = "read"
	opRedeem          = "redeem points"
	opRedeemReward    = "redeem reward"
	opComplete        = "complete task"
	opSetup           = "setup"
	opCheck           = "check (reads)"
)

var chaosOpOrder = []string{opImportCustomers, opImportConsent, opImportEnrol, opImportEvents, opPurchase, opRefund,
	opComplaint, opRead, opRedeem, opRedeemReward, opComplete}

// chaosModel is what the load has had acknowledged, and what it sent
// without an answer.
type chaosModel struct {
	mu        sync.Mutex
	customers []*chaosCustomer
	// created are the customers whose creation was acknowledged.
	created map[string]bool
	// next numbers new customers and client ids.
	next int
	// creating counts customers whose import is under way.
	creating int
	// completions are the acknowledged task completions, by task id.
	completions map[string]chaosCompletion
	// redeems are the acknowledged point redemptions, by key.
	redeems map[string]chaosRedeem
	// rewards are the acknowledged reward redemptions, by key.
	rewards map[string]chaosRedeem
	// inDoubt are writes whose outcome the load never learnt (ids).
	inDoubt map[string]bool
	// anomalies are what a read found that contradicts an acknowledgement.
	anomalies []string
}

// chaosCustomer is an imported customer: created, with consent and
// enrolment acknowledged.
type chaosCustomer struct {
	id, owner  string
	purchases  []*chaosPurchase
	complaints []*chaosComplaint
}

type chaosPurchase struct {
	customer *chaosCustomer
	eventID  string
	orderID  string
	amount   int64
	at       time.Time
	// refundClaimed is set while or once a refund is sent.
	refundClaimed bool
	refund        *chaosRefund
	// completeClaimed is set while or once the survey task's completion is sent.
	completeClaimed bool
}

type chaosRefund struct {
	eventID string
	amount  int64
}

type chaosComplaint struct {
	customer        *chaosCustomer
	eventID         string
	completeClaimed bool
}

type chaosCompletion struct {
	customer string
	outcome  string
	csat     int
}

type chaosRedeem struct {
	customer string
	points   int64
	coupon   string
}

func newChaosModel() *chaosModel {
	return &chaosModel{created: map[string]bool{}, completions: map[string]chaosCompletion{},
		redeems: map[string]chaosRedeem{}, rewards: map[string]chaosRedeem{}, inDoubt: map[string]bool{}}
}

func (m *chaosModel) id(prefix string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	return fmt.Sprintf("%s%06d", prefix, m.next)
}

func (m *chaosModel) doubt(id string) {
	m.mu.Lock()
	m.inDoubt[id] = true
	m.mu.Unlock()
}

func (m *chaosModel) anomaly(format string, args ...any) {
	m.mu.Lock()
	m.anomalies = append(m.anomalies, fmt.Sprintf(format, args...))
	m.mu.Unlock()
}

// chaosLoad drives the load.
type chaosLoad struct {
	c        *chaosClient
	m        *chaosModel
	maxCusts int
	hookURL  string
}

// surveyTask is the id of the survey task a purchase makes; care derives
// task ids from plan, customer and the triggering profile event.
func surveyTask(p *chaosPurchase) string {
	return profileTaskID(chaosSurveyPlan, p.customer.id, p.eventID)
}

func followUpTask(k *chaosComplaint) string {
	return profileTaskID(chaosFollowUp, k.customer.id, k.eventID)
}

// profileTaskID is the id of the task plan makes for a customer's profile
// event.
func profileTaskID(plan, customer, eventID string) string {
	return carestore.TaskID(plan, customer, "profile:event:"+eventID)
}

// setup creates the tenant's programme, reward, segment and care plans.
// Each create is idempotent: a retry with the same content returns it.
func (l *chaosLoad) setup(ctx context.Context, rewardStock int) error {
	allDay := map[string]any{"start": map[string]any{"hour": 0}, "end": map[string]any{"hour": 23, "minute": 59},
		"weekdays": []int{1, 2, 3, 4, 5, 6, 7}}
	steps := []struct {
		path string
		body any
	}{
		{"/v1/loyalty/programs", map[string]any{"programId": chaosProgram, "displayName": "Chaos Club", "pointsName": "points",
			"currency": chaosCurrency, "pointsPerUnit": 1, "firstPurchaseBonus": 50, "returnWindowDays": 0,
			"expiry": "EXPIRY_POLICY_AFTER_MONTHS", "expiryMonths": 24, "allowNegativeBalance": true,
			"pointValue":     map[string]any{"amountMinor": "1", "currency": chaosCurrency},
			"tiers":          []any{map[string]any{"tierId": "member"}, map[string]any{"tierId": "gold", "threshold": "3000", "multiplier": 1.5}},
			"segmentBonuses": []any{map[string]any{"segmentId": chaosSegment, "points": fmt.Sprint(chaosSegmentGift)}}}},
		{"/v1/loyalty/programs/" + chaosProgram + "/rewards", map[string]any{"rewardId": chaosReward, "displayName": "Tea set",
			"points": fmt.Sprint(chaosRewardCost), "stock": fmt.Sprint(rewardStock), "couponValidDays": 30}},
		{"/v1/segments", map[string]any{"segmentId": chaosSegment, "displayName": "Frequent returners", "kind": "SEGMENT_KIND_DYNAMIC",
			"rule": chaosSegmentRule}},
		// A purchase's survey is due the day after it at 10:00 local time;
		// the load's purchases are at least two days old, so every survey
		// is due at once.
		{"/v1/care/plans", map[string]any{"planId": chaosSurveyPlan, "displayName": "Survey", "enabled": true,
			"target": map[string]any{"allCustomers": true}, "survey": map[string]any{"daysAfterPurchase": 1},
			"at": map[string]any{"hour": 10}, "workingHours": allDay, "task": map[string]any{"title": "Ask {name} about the order"}}},
		{"/v1/care/plans", map[string]any{"planId": chaosThanksPlan, "displayName": "Thank you", "enabled": true,
			"target": map[string]any{"allCustomers": true}, "survey": map[string]any{"daysAfterPurchase": 1},
			"at": map[string]any{"hour": 10}, "message": map[string]any{"webhookUrl": l.hookURL, "channel": "sms", "template": "Thank you, {name}"}}},
		{"/v1/care/plans", map[string]any{"planId": chaosFollowUp, "displayName": "Complaint follow-up", "enabled": true,
			"target": map[string]any{"allCustomers": true}, "complaintFollowUp": map[string]any{"slaHours": 240},
			"workingHours": allDay, "task": map[string]any{"title": "Call {name} back"}}},
	}
	for _, s := range steps {
		code, raw, err := l.c.call(ctx, opSetup, http.MethodPost, s.path, s.body, nil)
		if err != nil {
			return fmt.Errorf("chaos: setup %s: %w", s.path, err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("chaos: setup %s: %d %s", s.path, code, raw)
		}
	}
	return nil
}

// worker runs operations until load ends, each when pace lets it (nil:
// at once); the one under way when load ends gets until drain ends to be
// answered.
func (l *chaosLoad) worker(load, drain context.Context, rng *rand.Rand, pace <-chan time.Time) {
	for load.Err() == nil {
		if pace != nil {
			select {
			case <-load.Done():
				return
			case <-pace:
			}
		}
		l.step(drain, rng)
	}
}

// The mix of operations, by weight; imports run while there are fewer
// customers than wanted.
var chaosMix = []struct {
	kind   string
	weight int
}{
	{opPurchase, 30}, {opRead, 30}, {opComplete, 10}, {opRefund, 9}, {opRedeem, 5}, {opRedeemReward, 4}, {opComplaint, 4},
}

func (l *chaosLoad) step(ctx context.Context, rng *rand.Rand) {
	l.m.mu.Lock()
	n, creating := len(l.m.customers), l.m.creating
	l.m.mu.Unlock()
	if n+creating < l.maxCusts && (n < 10 || rng.IntN(100) < 6) {
		l.importBatch(ctx, rng)
		return
	}
	if n == 0 {
		time.Sleep(50 * time.Millisecond) // the first import is under way in another worker
		return
	}
	total := 0
	for _, m := range chaosMix {
		total += m.weight
	}
	pick := rng.IntN(total)
	kind := ""
	for _, m := range chaosMix {
		if pick < m.weight {
			kind = m.kind
			break
		}
		pick -= m.weight
	}
	switch kind {
	case opPurchase:
		l.purchase(ctx, rng)
	case opRead:
		l.read(ctx, rng)
	case opComplete:
		l.complete(ctx, rng)
	case opRefund:
		l.refund(ctx, rng)
	case opRedeem:
		l.redeem(ctx, rng)
	case opRedeemReward:
		l.redeemReward(ctx, rng)
	case opComplaint:
		l.complain(ctx, rng)
	}
}

func (l *chaosLoad) randomCustomer(rng *rand.Rand) *chaosCustomer {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	return l.m.customers[rng.IntN(len(l.m.customers))]
}

func money(minor int64) map[string]any {
	return map[string]any{"amountMinor": fmt.Sprint(minor), "currency": chaosCurrency}
}

// newPurchase makes a purchase between two and sixty days old: the load
// is a point-of-sale system catching up, so every purchase's survey is
// already due when it arrives.
func (l *chaosLoad) newPurchase(rng *rand.Rand, c *chaosCustomer) (*chaosPurchase, map[string]any) {
	p := &chaosPurchase{customer: c, eventID: l.m.id("pos-"), amount: 1000 + rng.Int64N(60000),
		at: time.Now().UTC().Add(-48*time.Hour - time.Duration(rng.Int64N(int64(58*24*time.Hour)))).Truncate(time.Second)}
	p.orderID = "SO-" + p.eventID
	ev := map[string]any{"eventId": p.eventID, "customerId": c.id, "occurTime": p.at.Format(time.RFC3339),
		"purchase": map[string]any{"orderId": p.orderID, "amount": money(p.amount), "channel": "SALES_CHANNEL_STORE",
			"items": []any{map[string]any{"sku": "SKU-1", "name": "Oolong", "category": "tea", "quantity": "1", "unitPrice": money(p.amount)}}}}
	return p, ev
}

// batchResults is the answer of a batch create or record.
type batchResults struct {
	Results []struct {
		Created bool `json:"created"`
		Status  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	} `json:"results"`
}

// importBatch imports a few customers as an onboarding system would:
// create them, record their contact preferences (a generous weekly cap:
// the load buys far more often than a person) and their loyalty
// enrolment, then their purchase history; then they join the load.
func (l *chaosLoad) importBatch(ctx context.Context, rng *rand.Rand) {
	l.m.mu.Lock()
	l.m.creating += chaosImportBatch
	l.m.mu.Unlock()
	defer func() {
		l.m.mu.Lock()
		l.m.creating -= chaosImportBatch
		l.m.mu.Unlock()
	}()
	var custs []*chaosCustomer
	var bodies []any
	for range chaosImportBatch {
		c := &chaosCustomer{id: l.m.id("c-"), owner: chaosOwners[rng.IntN(len(chaosOwners))]}
		custs = append(custs, c)
		bodies = append(bodies, map[string]any{"customerId": c.id, "kind": "CUSTOMER_KIND_PERSON", "displayName": "Customer " + c.id,
			"timeZone": chaosZones[rng.IntN(len(chaosZones))], "owner": c.owner,
			"region": map[string]any{"country": "CN", "province": "浙江", "city": "杭州"}})
	}
	var created batchResults
	code, raw, err := l.c.call(ctx, opImportCustomers, http.MethodPost, "/v1/customers:batchCreate", map[string]any{"customers": bodies}, &created)
	if err != nil {
		for _, c := range custs {
			l.m.doubt(c.id)
		}
		return
	}
	if code != http.StatusOK || len(created.Results) != len(custs) {
		l.m.anomaly("import of %d customers refused: %d %s", len(custs), code, errorMessage(raw))
		return
	}
	var ok []*chaosCustomer
	for i, r := range created.Results {
		if r.Status != nil && r.Status.Code != 0 {
			l.m.anomaly("import of customer %s refused: %s", custs[i].id, r.Status.Message)
			continue
		}
		ok = append(ok, custs[i])
		l.m.mu.Lock()
		l.m.created[custs[i].id] = true
		l.m.mu.Unlock()
	}
	// Consent and enrolment before the first purchase, so that every
	// purchase is a member's and every survey within the cap.
	var ready []*chaosCustomer
	for _, c := range ok {
		code, raw, err := l.c.call(ctx, opImportConsent, http.MethodPut, "/v1/care/customers/"+c.id+"/consent",
			map[string]any{"maxTouchesPerWeek": 100000}, nil)
		if err != nil {
			return
		}
		if code != http.StatusOK {
			l.m.anomaly("consent of %s refused: %d %s", c.id, code, errorMessage(raw))
			continue
		}
		code, raw, err = l.c.call(ctx, opImportEnrol, http.MethodPost, "/v1/loyalty/programs/"+chaosProgram+"/members",
			map[string]any{"customerId": c.id}, nil)
		if err != nil {
			return
		}
		if code != http.StatusOK {
			l.m.anomaly("enrolment of %s refused: %d %s", c.id, code, errorMessage(raw))
			continue
		}
		ready = append(ready, c)
	}
	var purchases []*chaosPurchase
	var events []any
	for _, c := range ready {
		for range 1 + rng.IntN(3) {
			p, ev := l.newPurchase(rng, c)
			purchases = append(purchases, p)
			events = append(events, ev)
		}
	}
	var recorded batchResults
	if len(events) > 0 {
		code, raw, err = l.c.call(ctx, opImportEvents, http.MethodPost, "/v1/events:batchRecord", map[string]any{"events": events}, &recorded)
		if err != nil {
			for _, p := range purchases {
				l.m.doubt(p.eventID)
			}
			return
		}
		if code != http.StatusOK || len(recorded.Results) != len(events) {
			l.m.anomaly("import of %d events refused: %d %s", len(events), code, errorMessage(raw))
			return
		}
	}
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	for i, r := range recorded.Results {
		if r.Status != nil && r.Status.Code != 0 {
			l.m.anomalies = append(l.m.anomalies, fmt.Sprintf("import of event %s refused: %s", purchases[i].eventID, r.Status.Message))
			continue
		}
		p := purchases[i]
		p.customer.purchases = append(p.customer.purchases, p)
	}
	for _, c := range ready {
		l.m.customers = append(l.m.customers, c)
	}
}

// record records one event on a customer's timeline, and reports whether
// it was acknowledged.
func (l *chaosLoad) record(ctx context.Context, kind, customer, eventID string, ev map[string]any) bool {
	code, raw, err := l.c.call(ctx, kind, http.MethodPost, "/v1/customers/"+customer+"/events", ev, nil)
	switch {
	case err != nil:
		l.m.doubt(eventID)
		return false
	case code != http.StatusOK:
		l.m.anomaly("%s %s refused: %d %s", kind, eventID, code, errorMessage(raw))
		return false
	}
	return true
}

func (l *chaosLoad) purchase(ctx context.Context, rng *rand.Rand) {
	c := l.randomCustomer(rng)
	p, ev := l.newPurchase(rng, c)
	if !l.record(ctx, opPurchase, c.id, p.eventID, ev) {
		return
	}
	l.m.mu.Lock()
	c.purchases = append(c.purchases, p)
	l.m.mu.Unlock()
}

// claimPurchase picks an acknowledged purchase for which ok holds, and
// marks it with claim.
func (l *chaosLoad) claimPurchase(rng *rand.Rand, ok func(*chaosPurchase) bool, claim func(*chaosPurchase)) *chaosPurchase {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	for range 8 {
		c := l.m.customers[rng.IntN(len(l.m.customers))]
		if len(c.purchases) == 0 {
			continue
		}
		p := c.purchases[rng.IntN(len(c.purchases))]
		if ok(p) {
			claim(p)
			return p
		}
	}
	return nil
}

// refund refunds an earlier purchase, in full or in part, once.
func (l *chaosLoad) refund(ctx context.Context, rng *rand.Rand) {
	p := l.claimPurchase(rng, func(p *chaosPurchase) bool { return !p.refundClaimed }, func(p *chaosPurchase) { p.refundClaimed = true })
	if p == nil {
		return
	}
	r := &chaosRefund{eventID: l.m.id("rf-"), amount: p.amount}
	if rng.IntN(3) > 0 {
		r.amount = 1 + rng.Int64N(p.amount)
	}
	ev := map[string]any{"eventId": r.eventID, "occurTime": p.at.Add(time.Hour).Format(time.RFC3339),
		"refund": map[string]any{"orderId": p.orderID, "amount": money(r.amount), "reason": "chaos"}}
	if !l.record(ctx, opRefund, p.customer.id, r.eventID, ev) {
		return
	}
	l.m.mu.Lock()
	p.refund = r
	l.m.mu.Unlock()
}

func (l *chaosLoad) complain(ctx context.Context, rng *rand.Rand) {
	c := l.randomCustomer(rng)
	k := &chaosComplaint{customer: c, eventID: l.m.id("cx-")}
	ev := map[string]any{"eventId": k.eventID, "occurTime": time.Now().UTC().Truncate(time.Second).Format(time.RFC3339),
		"complaint": map[string]any{"complaintId": "K-" + k.eventID, "severity": "COMPLAINT_SEVERITY_MEDIUM",
			"status": "COMPLAINT_STATUS_OPEN", "category": "delivery"}}
	if !l.record(ctx, opComplaint, c.id, k.eventID, ev) {
		return
	}
	l.m.mu.Lock()
	c.complaints = append(c.complaints, k)
	l.m.mu.Unlock()
}

// read reads what an app shows of a customer. The profile and the member
// exist once their writes were acknowledged; scores exist once
// segmentation has caught up.
func (l *chaosLoad) read(ctx context.Context, rng *rand.Rand) {
	c := l.randomCustomer(rng)
	var path string
	mustExist := true
	switch rng.IntN(4) {
	case 0:
		path = "/v1/customers/" + c.id
	case 1:
		path = "/v1/customers/" + c.id + "/events?page_size=20"
	case 2:
		path = "/v1/loyalty/programs/" + chaosProgram + "/members/" + c.id
	case 3:
		path, mustExist = "/v1/customers/"+c.id+"/scores", false
	}
	code, raw, err := l.c.read(ctx, opRead, path, nil)
	if err == nil && code != http.StatusOK && mustExist {
		l.m.anomaly("GET %s after its write was acknowledged: %d %s", path, code, errorMessage(raw))
	}
}

// redeem redeems some of a member's points, as a shop till would after
// reading the balance. Too few points (a refund took them meanwhile) is a
// refusal.
func (l *chaosLoad) redeem(ctx context.Context, rng *rand.Rand) {
	c := l.randomCustomer(rng)
	var got struct {
		Member struct {
			Balance jsonInt `json:"balance"`
		} `json:"member"`
	}
	code, _, err := l.c.read(ctx, opRead, "/v1/loyalty/programs/"+chaosProgram+"/members/"+c.id, &got)
	if err != nil || code != http.StatusOK || got.Member.Balance < 1 {
		return
	}
	pts := 1 + rng.Int64N(min(int64(got.Member.Balance), 500))
	key := l.m.id("redeem-")
	code, _, err = l.c.call(ctx, opRedeem, http.MethodPost, "/v1/loyalty/programs/"+chaosProgram+"/members/"+c.id+":redeem",
		map[string]any{"idempotencyKey": key, "points": fmt.Sprint(pts), "reason": "chaos"}, nil)
	switch {
	case err != nil:
		l.m.doubt(key)
	case code == http.StatusOK:
		l.m.mu.Lock()
		l.m.redeems[key] = chaosRedeem{customer: c.id, points: pts}
		l.m.mu.Unlock()
	}
}

func (l *chaosLoad) redeemReward(ctx context.Context, rng *rand.Rand) {
	c := l.randomCustomer(rng)
	key := l.m.id("reward-")
	var got struct {
		Coupon struct {
			Code string `json:"code"`
		} `json:"coupon"`
	}
	code, _, err := l.c.call(ctx, opRedeemReward, http.MethodPost, "/v1/loyalty/programs/"+chaosProgram+"/rewards/"+chaosReward+":redeem",
		map[string]any{"customerId": c.id, "idempotencyKey": key}, &got)
	switch {
	case err != nil:
		l.m.doubt(key)
	case code == http.StatusOK:
		l.m.mu.Lock()
		l.m.rewards[key] = chaosRedeem{customer: c.id, points: chaosRewardCost, coupon: got.Coupon.Code}
		l.m.mu.Unlock()
	}
}

// complete completes the survey task of a purchase, or the follow-up of a
// complaint, as the owner would after the call. A task care has not made
// yet (it is catching up) is left for later.
func (l *chaosLoad) complete(ctx context.Context, rng *rand.Rand) {
	var taskID, customer string
	var unclaim func()
	body := map[string]any{"outcome": "OUTCOME_REACHED", "note": "called back"}
	if rng.IntN(4) == 0 {
		l.m.mu.Lock()
		c := l.m.customers[rng.IntN(len(l.m.customers))]
		for _, k := range c.complaints {
			if !k.completeClaimed {
				k.completeClaimed = true
				taskID, customer = followUpTask(k), c.id
				unclaim = func() { k.completeClaimed = false }
				break
			}
		}
		l.m.mu.Unlock()
	} else {
		p := l.claimPurchase(rng, func(p *chaosPurchase) bool { return !p.completeClaimed }, func(p *chaosPurchase) { p.completeClaimed = true })
		if p != nil {
			taskID, customer = surveyTask(p), p.customer.id
			unclaim = func() { p.completeClaimed = false }
			body = map[string]any{"outcome": "OUTCOME_SATISFIED", "note": "happy with the order", "csat": 1 + rng.IntN(5)}
		}
	}
	if taskID == "" {
		return
	}
	code, raw, err := l.c.call(ctx, opComplete, http.MethodPost, "/v1/care/tasks/"+url.PathEscape(taskID)+":complete", body, nil)
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	switch {
	case err != nil:
		l.m.inDoubt[taskID] = true
	case code == http.StatusOK:
		csat, _ := body["csat"].(int)
		l.m.completions[taskID] = chaosCompletion{customer: customer, outcome: body["outcome"].(string), csat: csat}
	case code == http.StatusNotFound:
		unclaim()
	default:
		l.m.anomalies = append(l.m.anomalies, fmt.Sprintf("completion of task %s refused: %d %s", taskID, code, errorMessage(raw)))
	}
}
