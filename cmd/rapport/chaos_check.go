package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
)

// chaosCheck is one invariant and what checking it found.
type chaosCheck struct {
	Name string
	// Checked says what was checked, e.g. "6210 events".
	Checked string
	// Failures counts the violations; Details are the first few.
	Failures int
	Details  []string
	// Notes are facts worth reporting that violate nothing.
	Notes []string
}

const chaosMaxDetails = 12

func (c *chaosCheck) fail(format string, args ...any) {
	c.Failures++
	if len(c.Details) < chaosMaxDetails {
		c.Details = append(c.Details, fmt.Sprintf(format, args...))
	}
}

func (c *chaosCheck) note(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}

// Names of the checks, in report order.
const (
	checkProcesses    = "processes: none exited by itself"
	checkReads        = "load: no read or write contradicted an acknowledgement"
	checkCustomers    = "profile: every acknowledged customer exists"
	checkEvents       = "profile: every acknowledged event is on its timeline once, nothing unsent is"
	checkFeatures     = "segmentation: features equal what each timeline implies"
	checkSegment      = "segmentation: the dynamic segment holds exactly the customers its rule selects"
	checkReconcile    = "loyalty: reconciliation is clean"
	checkLedger       = "loyalty: each purchase earned once, each refund reversed once, each segment entry's bonus once"
	checkRedemptions  = "loyalty: each acknowledged redemption applied once, no unexplained entry"
	checkReward       = "loyalty: reward stock matches its redemptions, each with its coupon"
	checkTasks        = "care: one survey task per purchase and one follow-up per complaint, each due once (unless done before)"
	checkCompletions  = "care: each acknowledged completion is done, with its contact log on the timeline"
	checkMessages     = "care: one message per purchase, delivered under one delivery id"
	checkFollowers    = "feeds: every follower caught up, nothing set aside"
	checkFeedsLive    = "feeds: every follower's cursor reached its leader's head (live, /metrics)"
	chaosTaskStates   = "states=TASK_STATE_SCHEDULED&states=TASK_STATE_DUE&states=TASK_STATE_DONE&states=TASK_STATE_SKIPPED&states=TASK_STATE_OVERDUE&states=TASK_STATE_ESCALATED"
	chaosVerifyPeriod = 3 * time.Second
)

// chaosVerifier reads the suite's state through the gateway and checks it
// against the model and against itself.
type chaosVerifier struct {
	c           *chaosClient
	feeds       *chaosClient // the same, with a longer timeout for whole feeds
	m           *chaosModel
	hook        *chaosHook
	rewardStock int
	// metrics are the processes' /metrics URLs by name; without them the
	// followers' cursors are checked only from the files after the stop.
	metrics map[string]string
}

// Shapes of the gateway's JSON the checks read.
type (
	jsonMoney struct {
		AmountMinor jsonInt `json:"amountMinor"`
	}
	jsonEvent struct {
		EventID  string `json:"eventId"`
		Purchase *struct {
			OrderID string    `json:"orderId"`
			Amount  jsonMoney `json:"amount"`
		} `json:"purchase"`
		Refund *struct {
			OrderID string    `json:"orderId"`
			Amount  jsonMoney `json:"amount"`
		} `json:"refund"`
		Complaint *struct {
			ComplaintID string `json:"complaintId"`
		} `json:"complaint"`
		Survey *struct {
			Csat *int `json:"csat"`
		} `json:"survey"`
		ContactLog *struct {
			TaskID string `json:"taskId"`
		} `json:"contactLog"`
	}
	jsonEntry struct {
		IdempotencyKey string  `json:"idempotencyKey"`
		Kind           string  `json:"kind"`
		Points         jsonInt `json:"points"`
		OrderID        string  `json:"orderId"`
		Reason         string  `json:"reason"`
	}
	jsonTask struct {
		TaskID     string    `json:"taskId"`
		PlanID     string    `json:"planId"`
		CustomerID string    `json:"customerId"`
		State      string    `json:"state"`
		Outcome    string    `json:"outcome"`
		DueTime    time.Time `json:"dueTime"`
		// CompleteTime is zero until the task is done or skipped.
		CompleteTime time.Time `json:"completeTime"`
	}
	jsonFeedEvent struct {
		Sequence jsonInt         `json:"sequence"`
		Type     string          `json:"type"`
		Key      string          `json:"key"`
		Payload  json.RawMessage `json:"payload"`
	}
)

// chaosCustomerState is what the suite holds of one customer.
type chaosCustomerState struct {
	id       string
	events   []jsonEvent
	features struct {
		Purchases  jsonInt `json:"purchases"`
		Refunds    jsonInt `json:"refunds"`
		Monetary   jsonInt `json:"monetary"`
		Complaints jsonInt `json:"complaints"`
		Csat       float64 `json:"csat"`
	}
	scored  bool
	entries []jsonEntry
	member  bool
}

// paged reads every page of a list, calling add with each page's body.
func (v *chaosVerifier) paged(ctx context.Context, path string, add func([]byte) (next string, err error)) error {
	token := ""
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for {
		p := path
		if token != "" {
			p += sep + "page_token=" + url.QueryEscape(token)
		}
		code, raw, err := v.c.read(ctx, opCheck, p, nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return &chaosHTTPError{path: p, code: code, body: errorMessage(raw)}
		}
		next, err := add(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if token = next; token == "" {
			return nil
		}
	}
}

type chaosHTTPError struct {
	path string
	code int
	body string
}

func (e *chaosHTTPError) Error() string { return fmt.Sprintf("GET %s: %d %s", e.path, e.code, e.body) }

// feed reads a whole feed of the tenant (REST streams one JSON object per
// line).
func (v *chaosVerifier) feed(ctx context.Context, path string) ([]jsonFeedEvent, error) {
	code, raw, err := v.feeds.read(ctx, opCheck, path+"?wait=false", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, &chaosHTTPError{path: path, code: code, body: errorMessage(raw)}
	}
	var out []jsonFeedEvent
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var msg struct {
			Result struct {
				Event jsonFeedEvent `json:"event"`
			} `json:"result"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(msg.Error) > 0 {
			return nil, fmt.Errorf("%s: stream error %s", path, msg.Error)
		}
		out = append(out, msg.Result.Event)
	}
	return out, sc.Err()
}

// customerState reads one customer's timeline, features and ledger.
func (v *chaosVerifier) customerState(ctx context.Context, id string) (*chaosCustomerState, error) {
	s := &chaosCustomerState{id: id}
	err := v.paged(ctx, "/v1/customers/"+id+"/events?page_size=1000", func(raw []byte) (string, error) {
		var page struct {
			Events        []jsonEvent `json:"events"`
			NextPageToken string      `json:"nextPageToken"`
		}
		err := json.Unmarshal(raw, &page)
		s.events = append(s.events, page.Events...)
		return page.NextPageToken, err
	})
	if err != nil {
		return nil, err
	}
	var scores struct {
		Features json.RawMessage `json:"features"`
	}
	code, raw, err := v.c.read(ctx, opCheck, "/v1/customers/"+id+"/scores", &scores)
	switch {
	case err != nil:
		return nil, err
	case code == http.StatusOK:
		s.scored = true
		if len(scores.Features) > 0 {
			if err := json.Unmarshal(scores.Features, &s.features); err != nil {
				return nil, err
			}
		}
	case code != http.StatusNotFound:
		return nil, &chaosHTTPError{path: "scores of " + id, code: code, body: errorMessage(raw)}
	}
	err = v.paged(ctx, "/v1/loyalty/programs/"+chaosProgram+"/members/"+id+"/entries?page_size=500", func(raw []byte) (string, error) {
		var page struct {
			Entries       []jsonEntry `json:"entries"`
			NextPageToken string      `json:"nextPageToken"`
		}
		err := json.Unmarshal(raw, &page)
		s.entries = append(s.entries, page.Entries...)
		return page.NextPageToken, err
	})
	s.member = true
	if he, ok := err.(*chaosHTTPError); ok && he.code == http.StatusNotFound {
		s.member, err = false, nil
	}
	return s, err
}

// verify reads everything and runs every online check.
func (v *chaosVerifier) verify(ctx context.Context) ([]*chaosCheck, error) {
	checks := map[string]*chaosCheck{}
	names := []string{checkReads, checkCustomers, checkEvents, checkFeatures, checkSegment,
		checkReconcile, checkLedger, checkRedemptions, checkReward, checkTasks, checkCompletions, checkMessages}
	if v.metrics != nil {
		names = append(names, checkFeedsLive)
	}
	for _, name := range names {
		checks[name] = &chaosCheck{Name: name}
	}
	ordered := func() []*chaosCheck {
		var out []*chaosCheck
		for _, name := range names {
			out = append(out, checks[name])
		}
		return out
	}

	// What the load had acknowledged.
	m := v.m
	m.mu.Lock()
	model := map[string]*chaosCustomer{}
	for _, c := range m.customers {
		model[c.id] = c
	}
	acked := map[string]string{} // event id -> customer
	refundOf := map[string]*chaosRefund{}
	for _, c := range m.customers {
		for _, p := range c.purchases {
			acked[p.eventID] = c.id
			if p.refund != nil {
				acked[p.refund.eventID] = c.id
				refundOf[p.refund.eventID] = p.refund
			}
		}
		for _, k := range c.complaints {
			acked[k.eventID] = c.id
		}
	}
	created := slices.Collect(maps.Keys(m.created))
	completions := maps.Clone(m.completions)
	redeems := maps.Clone(m.redeems)
	rewards := maps.Clone(m.rewards)
	inDoubt := maps.Clone(m.inDoubt)
	anomalies := append([]string(nil), m.anomalies...)
	m.mu.Unlock()

	rc := checks[checkReads]
	rc.Checked = "every call of the load"
	for _, a := range anomalies {
		rc.fail("%s", a)
	}

	// Profile: the customers.
	inProfile := map[string]bool{}
	err := v.paged(ctx, "/v1/customers?page_size=1000", func(raw []byte) (string, error) {
		var page struct {
			Customers []struct {
				CustomerID string `json:"customerId"`
			} `json:"customers"`
			NextPageToken string `json:"nextPageToken"`
		}
		err := json.Unmarshal(raw, &page)
		for _, c := range page.Customers {
			inProfile[c.CustomerID] = true
		}
		return page.NextPageToken, err
	})
	if err != nil {
		return nil, err
	}
	cc := checks[checkCustomers]
	cc.Checked = fmt.Sprintf("%d acknowledged, %d in the profile", len(created), len(inProfile))
	sort.Strings(created)
	for _, id := range created {
		if !inProfile[id] {
			cc.fail("customer %s was acknowledged and is not in the profile", id)
		}
	}
	for id := range inProfile {
		if !slices.Contains(created, id) && !inDoubt[id] {
			cc.fail("customer %s is in the profile but was never acknowledged", id)
		}
	}

	// Every customer's timeline, features and ledger, a few at a time.
	ids := slices.Sorted(maps.Keys(inProfile))
	states := make([]*chaosCustomerState, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				states[i], errs[i] = v.customerState(ctx, ids[i])
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}

	// The rest of the suite's state.
	var members []string
	err = v.paged(ctx, "/v1/segments/"+chaosSegment+"/members?page_size=10000", func(raw []byte) (string, error) {
		var page struct {
			Members []struct {
				CustomerID string `json:"customerId"`
			} `json:"members"`
			NextPageToken string `json:"nextPageToken"`
		}
		err := json.Unmarshal(raw, &page)
		for _, mb := range page.Members {
			members = append(members, mb.CustomerID)
		}
		return page.NextPageToken, err
	})
	if err != nil {
		return nil, err
	}
	segFeed, err := v.feed(ctx, "/v1/segmentation/changes")
	if err != nil {
		return nil, err
	}
	careFeed, err := v.feed(ctx, "/v1/care/changes")
	if err != nil {
		return nil, err
	}
	tasks := map[string][]jsonTask{}
	err = v.paged(ctx, "/v1/care/tasks?page_size=500&"+chaosTaskStates, func(raw []byte) (string, error) {
		var page struct {
			Tasks         []jsonTask `json:"tasks"`
			NextPageToken string     `json:"nextPageToken"`
		}
		err := json.Unmarshal(raw, &page)
		for _, t := range page.Tasks {
			tasks[t.TaskID] = append(tasks[t.TaskID], t)
		}
		return page.NextPageToken, err
	})
	if err != nil {
		return nil, err
	}
	var rec struct {
		Members     jsonInt `json:"members"`
		Entries     jsonInt `json:"entries"`
		Differences []struct {
			CustomerID string `json:"customerId"`
			Detail     string `json:"detail"`
		} `json:"differences"`
	}
	code, raw, err := v.c.call(ctx, opCheck, http.MethodPost, "/v1/loyalty/programs/"+chaosProgram+":reconcile", map[string]any{}, &rec)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, &chaosHTTPError{path: "reconcile", code: code, body: errorMessage(raw)}
	}
	var rewardList struct {
		Rewards []struct {
			RewardID string  `json:"rewardId"`
			Stock    jsonInt `json:"stock"`
		} `json:"rewards"`
	}
	if code, raw, err := v.c.read(ctx, opCheck, "/v1/loyalty/programs/"+chaosProgram+"/rewards", &rewardList); err != nil {
		return nil, err
	} else if code != http.StatusOK {
		return nil, &chaosHTTPError{path: "rewards", code: code, body: errorMessage(raw)}
	}
	var deadLetters struct {
		Deliveries []struct {
			DeliveryID string `json:"deliveryId"`
			LastError  string `json:"lastError"`
		} `json:"deliveries"`
	}
	if code, raw, err := v.c.read(ctx, opCheck, "/v1/care/dead-letters", &deadLetters); err != nil {
		return nil, err
	} else if code != http.StatusOK {
		return nil, &chaosHTTPError{path: "dead letters", code: code, body: errorMessage(raw)}
	}
	deliveries, badDeliveries, failedOnPurpose := v.hook.snapshot()

	// Segment entries of the dynamic segment, by customer: each must give
	// its bonus once, under the key "segmentation:<sequence>".
	entered := map[string][]int64{}
	nEntered := 0
	for _, ev := range segFeed {
		if ev.Type != "segment.entered" {
			continue
		}
		var mc struct {
			SegmentID  string `json:"segmentId"`
			CustomerID string `json:"customerId"`
		}
		if json.Unmarshal(ev.Payload, &mc) == nil && mc.SegmentID == chaosSegment {
			entered[mc.CustomerID] = append(entered[mc.CustomerID], int64(ev.Sequence))
			nEntered++
		}
	}
	// Care's feed, counted by task and type, and by delivery.
	taskEvents := map[string]map[string]int{}
	messagesSent := map[string]int{}
	for _, ev := range careFeed {
		switch {
		case strings.HasPrefix(ev.Type, "task."):
			var t jsonTask
			if json.Unmarshal(ev.Payload, &t) == nil {
				if taskEvents[t.TaskID] == nil {
					taskEvents[t.TaskID] = map[string]int{}
				}
				taskEvents[t.TaskID][ev.Type]++
			}
		case ev.Type == "message.sent":
			var d struct {
				DeliveryID string `json:"deliveryId"`
			}
			if json.Unmarshal(ev.Payload, &d) == nil {
				messagesSent[d.DeliveryID]++
			}
		}
	}
	// Deliveries by plan, customer and occurrence.
	deliveryIDs := map[string][]string{}
	for id, d := range deliveries {
		k := d.Plan + "/" + d.Customer + "/" + d.Occurrence
		deliveryIDs[k] = append(deliveryIDs[k], id)
	}

	ec, fc, sg, lc, rd, tc, cp, mc := checks[checkEvents], checks[checkFeatures], checks[checkSegment], checks[checkLedger],
		checks[checkRedemptions], checks[checkTasks], checks[checkCompletions], checks[checkMessages]
	now := time.Now()
	var nEvents, nPurchases, nRefunds, nComplaints, nEntries, nBonuses, nTasks, nDue, nEarly, nMessages, redeliveries int
	expectedTasks := map[string]bool{}
	expectedDeliveries := map[string]bool{}
	returners := map[string]bool{}
	rewardEntries := 0
	seenAcked := map[string]bool{}
	for _, s := range states {
		// The timeline, and what it implies.
		type order struct{ amount, refunded int64 }
		orders := map[string]*order{}
		ids := map[string]int{}
		var purchases, refunds []jsonEvent
		complaints := map[string]bool{}
		var complaintEvents []jsonEvent
		var csatSum, csatN int
		contacts := map[string]bool{}
		for _, e := range s.events {
			ids[e.EventID]++
			nEvents++
			switch {
			case e.Purchase != nil:
				purchases = append(purchases, e)
				orders[e.Purchase.OrderID] = &order{amount: int64(e.Purchase.Amount.AmountMinor)}
			case e.Refund != nil:
				refunds = append(refunds, e)
			case e.Complaint != nil:
				complaints[e.Complaint.ComplaintID] = true
				complaintEvents = append(complaintEvents, e)
			case e.Survey != nil && e.Survey.Csat != nil:
				csatSum += *e.Survey.Csat
				csatN++
			}
			if e.ContactLog != nil || (e.Survey != nil && strings.HasPrefix(e.EventID, "care.survey.")) {
				contacts[e.EventID] = true
			}
		}
		for _, e := range refunds {
			if o := orders[e.Refund.OrderID]; o != nil {
				o.refunded += int64(e.Refund.Amount.AmountMinor)
			}
		}
		nPurchases += len(purchases)
		nRefunds += len(refunds)
		nComplaints += len(complaintEvents)
		for id, n := range ids {
			if n > 1 {
				ec.fail("%s: event %s is on the timeline %d times", s.id, id, n)
			}
			switch cust, ok := acked[id]; {
			case ok && cust == s.id:
				seenAcked[id] = true
			case ok:
				ec.fail("event %s of %s is on %s's timeline", id, cust, s.id)
			case strings.HasPrefix(id, "care."):
				// A completed task's contact log or survey answer: checked below.
			case !inDoubt[id]:
				ec.fail("%s: event %s is on the timeline but was never acknowledged", s.id, id)
			}
		}
		var net int64
		for _, o := range orders {
			net += o.amount - min(o.refunded, o.amount)
		}
		if len(purchases) > 0 && len(refunds)*4 > len(purchases) { // chaosSegmentRule
			returners[s.id] = true
		}

		// Segmentation's features.
		f := s.features
		switch {
		case !s.scored && len(purchases)+len(refunds)+len(complaints) > 0:
			fc.fail("%s: no scores, with %d purchases on the timeline", s.id, len(purchases))
		case int(f.Purchases) != len(purchases) || int(f.Refunds) != len(refunds) || int64(f.Monetary) != net ||
			int(f.Complaints) != len(complaints):
			fc.fail("%s: features purchases=%d refunds=%d monetary=%d complaints=%d; the timeline has %d, %d, %d, %d",
				s.id, f.Purchases, f.Refunds, f.Monetary, f.Complaints, len(purchases), len(refunds), net, len(complaints))
		case csatN > 0 && math.Abs(f.Csat-float64(csatSum)/float64(csatN)) > 1e-9:
			fc.fail("%s: features csat=%v; the timeline's %d answers average %v", s.id, f.Csat, csatN, float64(csatSum)/float64(csatN))
		}

		// The ledger.
		keys := map[string][]jsonEntry{}
		for _, e := range s.entries {
			keys[e.IdempotencyKey] = append(keys[e.IdempotencyKey], e)
			nEntries++
			if e.Kind == "ENTRY_KIND_REDEEM" && e.Reason == "reward "+chaosReward {
				rewardEntries++
			}
		}
		if !s.member && (len(purchases) > 0 || len(s.entries) > 0) {
			lc.fail("%s: not a member, with %d purchases", s.id, len(purchases))
		}
		explained := map[string]bool{}
		expect := func(key, kind, order string) {
			explained[key] = true
			es := keys[key]
			switch {
			case len(es) != 1:
				lc.fail("%s: %s is in the ledger %d times", s.id, key, len(es))
			case es[0].Kind != kind || es[0].OrderID != order:
				lc.fail("%s: %s is a %s of order %q, want a %s of %q", s.id, key, es[0].Kind, es[0].OrderID, kind, order)
			}
		}
		for _, e := range purchases {
			expect("profile:"+e.EventID, "ENTRY_KIND_EARN", e.Purchase.OrderID)
		}
		for _, e := range refunds {
			expect("profile:"+e.EventID, "ENTRY_KIND_REVERSE", e.Refund.OrderID)
		}
		for _, seq := range entered[s.id] {
			nBonuses++
			key := "segmentation:" + strconv.FormatInt(seq, 10)
			expect(key, "ENTRY_KIND_EARN", "")
		}
		for key, r := range redeems {
			if r.customer != s.id {
				continue
			}
			explained[key] = true
			if es := keys[key]; len(es) != 1 || es[0].Kind != "ENTRY_KIND_REDEEM" || int64(es[0].Points) != -r.points {
				rd.fail("%s: redemption %s of %d points acknowledged; the ledger has %v", s.id, key, r.points, es)
			}
		}
		for key, r := range rewards {
			if r.customer != s.id {
				continue
			}
			explained[key] = true
			if es := keys[key]; len(es) != 1 || es[0].Kind != "ENTRY_KIND_REDEEM" || int64(es[0].Points) != -chaosRewardCost {
				rd.fail("%s: reward redemption %s acknowledged; the ledger has %v", s.id, key, es)
			}
		}
		for key, es := range keys {
			switch {
			case explained[key]:
			case strings.HasPrefix(key, "expire/"):
			case inDoubt[key]:
				rd.note("%s: %s was applied; its call had no answer when the run ended", s.id, key)
			default:
				rd.fail("%s: ledger entry %s (%s, %d points) explained by nothing the load sent", s.id, key, es[0].Kind, es[0].Points)
			}
		}

		// Care: one survey task and one message per purchase, one
		// follow-up per complaint, due once.
		for _, e := range purchases {
			expectedTasks[profileTaskID(chaosSurveyPlan, s.id, e.EventID)] = true
			k := chaosThanksPlan + "/" + s.id + "/profile:event:" + e.EventID
			expectedDeliveries[k] = true
			nMessages++
			switch ids := deliveryIDs[k]; {
			case len(ids) != 1:
				mc.fail("%s: the thank-you for %s was delivered under %d ids %v", s.id, e.EventID, len(ids), ids)
			case deliveries[ids[0]].Accepted == 0:
				mc.fail("%s: the thank-you %s for %s was never accepted (%d attempts)", s.id, ids[0], e.EventID, deliveries[ids[0]].Attempts)
			default:
				if n := messagesSent[ids[0]]; n != 1 {
					mc.fail("%s: message %s is on care's feed %d times", s.id, ids[0], n)
				}
				redeliveries += deliveries[ids[0]].Accepted - 1
			}
		}
		for _, e := range complaintEvents {
			expectedTasks[profileTaskID(chaosFollowUp, s.id, e.EventID)] = true
		}
		for id := range contacts {
			task := strings.TrimPrefix(strings.TrimPrefix(id, "care.contact."), "care.survey.")
			if _, ok := completions[task]; !ok && !inDoubt[task] {
				cp.fail("%s: %s is on the timeline, for a completion never acknowledged", s.id, id)
			}
		}
	}
	for id, cust := range acked {
		if !seenAcked[id] {
			ec.fail("event %s of %s was acknowledged and is not on the timeline", id, cust)
		}
	}
	ec.Checked = fmt.Sprintf("%d acknowledged events; %d on %d timelines (%d purchases, %d refunds, %d complaints)",
		len(acked), nEvents, len(states), nPurchases, nRefunds, nComplaints)
	fc.Checked = fmt.Sprintf("%d customers", len(states))

	// The dynamic segment.
	sg.Checked = fmt.Sprintf("%d members; %d customers' timelines satisfy %s; %d entries on segmentation's feed",
		len(members), len(returners), chaosSegmentRule, nEntered)
	for _, id := range members {
		if !returners[id] {
			sg.fail("%s is a member; its timeline does not satisfy the rule", id)
		}
	}
	for id := range returners {
		if !slices.Contains(members, id) {
			sg.fail("%s is not a member; its timeline satisfies the rule", id)
		}
	}

	// Loyalty.
	lc.Checked = fmt.Sprintf("%d entries; %d purchases, %d refunds, %d segment entries", nEntries, nPurchases, nRefunds, nBonuses)
	rd.Checked = fmt.Sprintf("%d point and %d reward redemptions acknowledged", len(redeems), len(rewards))
	recCheck := checks[checkReconcile]
	recCheck.Checked = fmt.Sprintf("%d members, %d entries", rec.Members, rec.Entries)
	for _, d := range rec.Differences {
		recCheck.fail("%s: %s", d.CustomerID, d.Detail)
	}
	if int(rec.Members) < len(model) {
		recCheck.fail("%d members, fewer than the %d enrolments acknowledged", rec.Members, len(model))
	}
	if int(rec.Entries) != nEntries {
		recCheck.fail("reconciliation counts %d entries, the members' ledgers list %d", rec.Entries, nEntries)
	}
	rw := checks[checkReward]
	stock := int64(-1)
	for _, r := range rewardList.Rewards {
		if r.RewardID == chaosReward {
			stock = int64(r.Stock)
		}
	}
	rw.Checked = fmt.Sprintf("stock %d of %d, %d redemptions in the ledgers, %d acknowledged", stock, v.rewardStock, rewardEntries, len(rewards))
	if stock+int64(rewardEntries) != int64(v.rewardStock) {
		rw.fail("stock %d + %d redemptions in the ledgers ≠ the %d stocked", stock, rewardEntries, v.rewardStock)
	}
	for key, r := range rewards {
		var got struct {
			Coupon struct {
				CustomerID string `json:"customerId"`
				CampaignID string `json:"campaignId"`
			} `json:"coupon"`
		}
		code, raw, err := v.c.read(ctx, opCheck, "/v1/loyalty/programs/"+chaosProgram+"/coupons/"+url.PathEscape(r.coupon), &got)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK || got.Coupon.CustomerID != r.customer {
			rw.fail("redemption %s: coupon %q: %d %s", key, r.coupon, code, errorMessage(raw))
		}
	}

	// Care's tasks.
	for id, ts := range tasks {
		nTasks++
		if len(ts) > 1 {
			tc.fail("task %s is listed %d times", id, len(ts))
		}
		t := ts[0]
		if !expectedTasks[id] {
			tc.fail("task %s (%s, %s) was made for nothing on a timeline", id, t.PlanID, t.CustomerID)
			continue
		}
		ev := taskEvents[id]
		wantDue := 0
		switch {
		case !t.CompleteTime.IsZero() && t.CompleteTime.Before(t.DueTime):
			nEarly++ // done before it fell due: it never does
		case !t.DueTime.After(now):
			wantDue = 1
			nDue++
		}
		if ev["task.scheduled"] != 1 || ev["task.due"] != wantDue {
			tc.fail("task %s (%s, %s, due %s): care's feed has %d task.scheduled and %d task.due, want 1 and %d",
				id, t.PlanID, t.CustomerID, t.DueTime.Format(time.RFC3339), ev["task.scheduled"], ev["task.due"], wantDue)
		}
		c, done := completions[id]
		switch {
		case done && (t.State != "TASK_STATE_DONE" || t.Outcome != c.outcome):
			cp.fail("task %s: completion with %s acknowledged; it is %s with %s", id, c.outcome, t.State, t.Outcome)
		case done && ev["task.completed"] != 1:
			cp.fail("task %s: completed, and on care's feed %d times as completed", id, ev["task.completed"])
		case !done && t.State == "TASK_STATE_DONE" && !inDoubt[id]:
			cp.fail("task %s is done, with no completion acknowledged", id)
		case !done && t.State != "TASK_STATE_DUE" && t.State != "TASK_STATE_DONE" && t.State != "TASK_STATE_SCHEDULED":
			tc.fail("task %s is %s", id, t.State)
		}
	}
	for id := range expectedTasks {
		if len(tasks[id]) == 0 {
			tc.fail("task %s was never made", id)
		}
	}
	tc.Checked = fmt.Sprintf("%d tasks expected, %d made, %d due", len(expectedTasks), nTasks, nDue)
	if nEarly > 0 {
		tc.Checked += fmt.Sprintf(", %d done before they fell due", nEarly)
	}

	// Completions and their contact logs.
	timelineIDs := map[string]bool{}
	for _, s := range states {
		for _, e := range s.events {
			timelineIDs[e.EventID] = true
		}
	}
	for id, c := range completions {
		if len(tasks[id]) == 0 {
			cp.fail("task %s: completion acknowledged, task not found", id)
		}
		if !timelineIDs["care.contact."+id] {
			cp.fail("task %s: completion acknowledged, no contact log on %s's timeline", id, c.customer)
		}
		if c.csat > 0 && !timelineIDs["care.survey."+id] {
			cp.fail("task %s: completion with CSAT %d acknowledged, no survey answer on %s's timeline", id, c.csat, c.customer)
		}
	}
	cp.Checked = fmt.Sprintf("%d completions acknowledged", len(completions))

	// Messages.
	for k, ids := range deliveryIDs {
		if !expectedDeliveries[k] {
			mc.fail("delivery %v (%s) was sent for nothing on a timeline", ids, k)
		}
	}
	for _, b := range badDeliveries {
		mc.fail("bad delivery: %s", b)
	}
	for _, d := range deadLetters.Deliveries {
		mc.fail("dead letter %s: %s", d.DeliveryID, d.LastError)
	}
	mc.Checked = fmt.Sprintf("%d messages expected, %d delivery ids received", nMessages, len(deliveries))
	mc.note("%d first attempts answered 500 on purpose; %d deliveries of an id already accepted (at-least-once delivery, deduplicated by the receiver)",
		failedOnPurpose, redeliveries)
	if len(inDoubt) > 0 {
		ec.note("%d writes had no answer when the run ended; they may or may not have been applied", len(inDoubt))
	}
	if v.metrics != nil {
		if err := v.followersLive(ctx, checks[checkFeedsLive]); err != nil {
			return nil, err
		}
	}
	return ordered(), nil
}

// followersLive compares every follower's committed cursor with its
// leader's newest sequence, both from the processes' /metrics
// (rapport_feed_cursor, rapport_feed_head): the effects the other checks
// read do not show every event (care follows loyalty for tier changes
// only), and a follower waiting out its reconnect backoff still owes them.
func (v *chaosVerifier) followersLive(ctx context.Context, c *chaosCheck) error {
	samples := map[string][]sample{}
	for _, f := range chaosFollowers {
		for _, name := range []string{f.service, f.source} {
			if samples[name] != nil {
				continue
			}
			s, err := scrapeMetrics(ctx, v.metrics[name])
			if err != nil {
				return err
			}
			samples[name] = s
		}
	}
	var parts []string
	for _, f := range chaosFollowers {
		component := "rapport_component=" + f.service
		cursor, okc := series(samples[f.service], "rapport_feed_cursor", component, "feed_follower="+f.source)
		head, okh := series(samples[f.source], "rapport_feed_head", "rapport_component="+f.source)
		parts = append(parts, fmt.Sprintf("%s←%s %v/%v", f.service, f.source, cursor, head))
		switch {
		case !okc:
			c.fail("%s reports no cursor on the %s feed", f.service, f.source)
		case !okh:
			c.fail("%s reports no head of its feed", f.source)
		case cursor != head:
			c.fail("%s's cursor on the %s feed is %v; the feed's head is %v", f.service, f.source, cursor, head)
		}
	}
	c.Checked = strings.Join(parts, ", ")
	return nil
}

// settle runs the checks until they all pass or the deadline passes, and
// returns the last result. What the load saw (checkReads) cannot change
// any more and does not hold the wait.
func (v *chaosVerifier) settle(ctx context.Context, timeout time.Duration, logf func(string, ...any)) ([]*chaosCheck, time.Duration, error) {
	began := time.Now()
	deadline := began.Add(timeout)
	for pass := 1; ; pass++ {
		checks, err := v.verify(ctx)
		failed := 0
		for _, c := range checks {
			if c.Failures > 0 && c.Name != checkReads {
				failed++
			}
		}
		switch {
		case err == nil && failed == 0:
			return checks, time.Since(began), nil
		case time.Now().After(deadline):
			return checks, time.Since(began), err
		case err != nil:
			logf("check pass %d: %v", pass, err)
		default:
			var names []string
			for _, c := range checks {
				if c.Failures > 0 && c.Name != checkReads {
					names = append(names, fmt.Sprintf("%q (%d, e.g. %s)", c.Name, c.Failures, c.Details[0]))
				}
			}
			logf("check pass %d: not (yet) holding: %s", pass, strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return checks, time.Since(began), ctx.Err()
		case <-time.After(chaosVerifyPeriod):
		}
	}
}

// chaosFollowers are the feed followers of the suite: the database that
// holds the cursor and the follower's name (the service it follows).
var chaosFollowers = []struct{ service, source string }{
	{targetSegmentation, targetProfile},
	{targetLoyalty, targetProfile},
	{targetLoyalty, targetSegmentation},
	{targetCare, targetProfile},
	{targetCare, targetSegmentation},
	{targetCare, targetLoyalty},
}

// checkCursors opens the stopped suite's bbolt files read-only and checks
// that every follower's cursor is its source feed's last sequence and
// that no follower set an event aside.
func checkCursors(dataDir string) *chaosCheck {
	c := &chaosCheck{Name: checkFollowers}
	type dbState struct {
		last    uint64
		cursors map[string]uint64
		dead    map[string][]string
	}
	states := map[string]*dbState{}
	for _, svc := range []string{targetProfile, targetSegmentation, targetLoyalty, targetCare} {
		path := filepath.Join(dataDir, svc+".db")
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
		if err != nil {
			c.fail("open %s: %v", path, err)
			continue
		}
		st := &dbState{cursors: map[string]uint64{}, dead: map[string][]string{}}
		err = db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(feed.LogBucket); b != nil {
				st.last = b.Sequence()
			}
			if b := tx.Bucket(feed.CursorBucket); b != nil {
				if err := b.ForEach(func(k, v []byte) error {
					seq, err := boltdb.ReadU64(v)
					st.cursors[string(k)] = seq
					return err
				}); err != nil {
					return err
				}
			}
			if b := tx.Bucket(feed.DeadLetterBucket); b != nil {
				return b.ForEach(func(k, v []byte) error {
					name, seq, _ := bytes.Cut(k, []byte{boltdb.Sep})
					n, _ := boltdb.ReadU64(seq)
					st.dead[string(name)] = append(st.dead[string(name)], fmt.Sprintf("sequence %d: %s", n, v))
					return nil
				})
			}
			return nil
		})
		db.Close()
		if err != nil {
			c.fail("read %s: %v", path, err)
			continue
		}
		states[svc] = st
	}
	var parts []string
	for _, f := range chaosFollowers {
		dst, src := states[f.service], states[f.source]
		if dst == nil || src == nil {
			continue
		}
		cur, ok := dst.cursors[f.source]
		parts = append(parts, fmt.Sprintf("%s←%s %d/%d", f.service, f.source, cur, src.last))
		switch {
		case !ok:
			c.fail("%s has no cursor for the %s feed", f.service, f.source)
		case cur != src.last:
			c.fail("%s's cursor on the %s feed is %d; the feed's last sequence is %d", f.service, f.source, cur, src.last)
		}
		for _, d := range dst.dead[f.source] {
			c.fail("%s set aside an event of the %s feed: %s", f.service, f.source, d)
		}
	}
	c.Checked = strings.Join(parts, ", ")
	return c
}
