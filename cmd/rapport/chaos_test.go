package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
)

// TestChaos runs `rapport chaos` as a user would, briefly: twenty seconds
// of load with a process killed every three seconds or so. It must find
// nothing lost or duplicated, after at least a few kills.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite as five processes for half a minute")
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "CHAOS.md")
	cmd := exec.Command(binary, "chaos", "--duration=20s", "--kill-every=3s", "--customers=30", "--rate=80",
		"--settle=30s", "--data-dir="+filepath.Join(dir, "data"), "--report="+report)
	out, err := cmd.CombinedOutput()
	md, _ := os.ReadFile(report)
	if err != nil {
		t.Fatalf("rapport chaos: %v\n%s\n%s", err, out, md)
	}
	if !strings.Contains(string(md), "**Clean.**") {
		t.Fatalf("the report's verdict is not clean:\n%s", md)
	}
	m := regexp.MustCompile(`(\d+) kills in all`).FindSubmatch(md)
	if m == nil {
		t.Fatalf("the report does not count kills:\n%s", md)
	}
	if kills, _ := strconv.Atoi(string(m[1])); kills < 3 {
		t.Fatalf("%d kills in 20 s, want at least 3:\n%s", kills, md)
	}
	if rows := strings.Count(string(md), "| holds |"); rows != 15 {
		t.Fatalf("%d checks hold, want 15:\n%s", rows, md)
	}
	t.Logf("%s kills; report:\n%s", m[1], md)
}

// TestChaosChecksCatchViolations shows the checks are not blind: against a
// quiet suite, an acknowledgement the suite never saw, a write nobody
// acknowledged, a ledger entry the load never asked for and a follower
// left behind are each reported, and nothing else is.
func TestChaosChecksCatchViolations(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite as five processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	secret := randomSecret(16)
	hook, err := startChaosHook(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer hook.close()
	suite, err := startSuite(ctx, binary, dir, secret)
	if err != nil {
		t.Fatal(err)
	}
	defer suite.stop()
	key, err := chaosKey(ctx, chaosConfig{DataDir: dir}, suite.gateway, chaosTenant)
	if err != nil {
		t.Fatal(err)
	}
	client := newChaosClient(suite.gateway, chaosTenant, key, chaosCall)
	model := newChaosModel()
	load := &chaosLoad{c: client, m: model, maxCusts: 10, hookURL: hook.url}
	if err := load.setup(ctx, 5); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2 {
		load.importBatch(ctx, rng)
	}
	for range 10 {
		load.purchase(ctx, rng)
	}
	v := &chaosVerifier{c: client, feeds: client, m: model, hook: hook, rewardStock: 5, metrics: suite.metrics}
	checks, _, err := v.settle(ctx, 30*time.Second, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.Failures > 0 {
			t.Fatalf("before the violations: %s: %v", c.Name, c.Details)
		}
	}

	// A purchase acknowledged to the load that the suite never saw; an
	// event recorded behind the load's back; points nobody asked for.
	c := model.customers[0]
	model.customers[1].purchases = append(model.customers[1].purchases,
		&chaosPurchase{customer: model.customers[1], eventID: "pos-ghost", orderID: "SO-ghost", amount: 100, at: time.Now()})
	p, ev := load.newPurchase(rng, c)
	if code, raw, err := client.call(ctx, opPurchase, http.MethodPost, "/v1/customers/"+c.id+"/events", ev, nil); err != nil || code != http.StatusOK {
		t.Fatalf("record %s: %d %s %v", p.eventID, code, raw, err)
	}
	if code, raw, err := client.call(ctx, opRedeem, http.MethodPost, "/v1/loyalty/programs/"+chaosProgram+"/members/"+c.id+":adjust",
		map[string]any{"idempotencyKey": "gift", "points": "7", "reason": "by hand", "actor": "test"}, nil); err != nil || code != http.StatusOK {
		t.Fatalf("adjust: %d %s %v", code, raw, err)
	}
	want := map[string]string{
		checkEvents:      "pos-ghost of " + model.customers[1].id + " was acknowledged and is not on the timeline",
		checkRedemptions: "ledger entry gift (ENTRY_KIND_ADJUST, 7 points) explained by nothing",
	}
	wantEvent := "event " + p.eventID + " is on the timeline but was never acknowledged"
	checks, err = v.verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range checks {
		details := strings.Join(ch.Details, "\n")
		switch ch.Name {
		case checkEvents:
			if ch.Failures != 2 || !strings.Contains(details, want[checkEvents]) || !strings.Contains(details, wantEvent) {
				t.Errorf("%s: %d failures, want the ghost and the unsent event:\n%s", ch.Name, ch.Failures, details)
			}
		case checkRedemptions:
			if ch.Failures != 1 || !strings.Contains(details, want[checkRedemptions]) {
				t.Errorf("%s: %d failures, want the gift:\n%s", ch.Name, ch.Failures, details)
			}
		}
	}

	// The followers catch up with the violations (the adjustment is on
	// loyalty's feed for care); then a follower is left one event behind.
	for {
		live := &chaosCheck{Name: checkFeedsLive}
		if err := v.followersLive(ctx, live); err != nil {
			t.Fatal(err)
		}
		if live.Failures == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("followers not caught up: %v", live.Details)
		case <-time.After(50 * time.Millisecond): // other processes' metrics: nothing to wait on
		}
	}
	suite.stop()
	if c := checkCursors(dir); c.Failures != 0 {
		t.Fatalf("after a graceful stop: %v", c.Details)
	}
	db, err := bolt.Open(filepath.Join(dir, "care.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var behind uint64
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(feed.CursorBucket)
		cur, err := boltdb.ReadU64(b.Get([]byte(targetProfile)))
		if err != nil {
			return err
		}
		behind = cur - 1
		return b.Put([]byte(targetProfile), boltdb.U64(behind))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	cur := checkCursors(dir)
	wantCursor := fmt.Sprintf("care's cursor on the profile feed is %d; the feed's last sequence is %d", behind, behind+1)
	if cur.Failures != 1 || !strings.Contains(strings.Join(cur.Details, "\n"), wantCursor) {
		t.Fatalf("a follower one event behind: %d failures %v, want %q", cur.Failures, cur.Details, wantCursor)
	}
}

// TestChaosFollowersLive: the live feed check compares each follower's
// cursor with its leader's head across processes, and names the one
// behind.
func TestChaosFollowersLive(t *testing.T) {
	exposition := func(metrics string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, metrics)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/metrics"
	}
	cursor := func(component, follower string, seq int) string {
		return fmt.Sprintf("rapport_feed_cursor{feed_follower=%q,otel_scope_name=\"rapport.dev/platform/feed\",rapport_component=%q} %d\n", follower, component, seq)
	}
	head := func(component string, seq int) string {
		return fmt.Sprintf("# TYPE rapport_feed_head gauge\nrapport_feed_head{rapport_component=%q} %d\n", component, seq)
	}
	urls := func(careOnLoyalty int) map[string]string {
		return map[string]string{
			targetProfile:      exposition(head(targetProfile, 719)),
			targetSegmentation: exposition(head(targetSegmentation, 249) + cursor(targetSegmentation, targetProfile, 719)),
			targetLoyalty: exposition(head(targetLoyalty, 656) + cursor(targetLoyalty, targetProfile, 719) +
				cursor(targetLoyalty, targetSegmentation, 249)),
			targetCare: exposition(cursor(targetCare, targetProfile, 719) + cursor(targetCare, targetSegmentation, 249) +
				cursor(targetCare, targetLoyalty, careOnLoyalty)),
		}
	}
	for _, tc := range []struct {
		careOnLoyalty int
		want          string
	}{
		{656, ""},
		{647, "care's cursor on the loyalty feed is 647; the feed's head is 656"},
	} {
		v := &chaosVerifier{metrics: urls(tc.careOnLoyalty)}
		c := &chaosCheck{Name: checkFeedsLive}
		if err := v.followersLive(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(c.Details, "\n")
		if tc.want == "" && c.Failures != 0 || tc.want != "" && (c.Failures != 1 || got != tc.want) {
			t.Errorf("care at %d of loyalty's 656: %d failures %q, want %q", tc.careOnLoyalty, c.Failures, got, tc.want)
		}
		if !strings.Contains(c.Checked, fmt.Sprintf("care←loyalty %d/656", tc.careOnLoyalty)) {
			t.Errorf("checked: %q", c.Checked)
		}
	}
}
