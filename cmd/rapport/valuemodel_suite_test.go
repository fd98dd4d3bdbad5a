package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
)

// TestSuiteValueModelCDNOW is issue 4's first must-show, as a new user would
// do it: import CDNOW_sample.txt with `rapport import`, ask `rapport fit` for
// a weekly fit as of 1997-09-30, and read the fit back through the gateway:
// the published BG/NBD and Gamma-Gamma parameters. Then the scheduled fit
// as of the suite's (fake) now becomes the current model, and every
// customer's activity arrives on the segmentation feed.
func TestSuiteValueModelCDNOW(t *testing.T) {
	sample, err := filepath.Abs("../../../shared/data/cdnow/CDNOW_sample.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sample); err != nil {
		t.Fatalf("the CDNOW sample must sit beside the repository: %v", err)
	}
	now := time.Date(1998, 7, 1, 0, 0, 0, 0, time.UTC)
	p := start(t, "--target=all", "--data-dir", t.TempDir(), "--fake-clock", now.Format(time.RFC3339),
		"--profile-addr", "127.0.0.1:0", "--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	api := p.rest("cdnow")
	activity := watchFeed[segmentationv1.ActivityChange](t, p.grpcAddr("segmentation"), p.ctx("cdnow"))

	rapport := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("rapport %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	rapport("import", "--profile-addr", p.grpcAddr("profile"), "--api-key", p.key("cdnow"), sample)
	fitArgs := []string{"fit", "--segmentation-addr", p.grpcAddr("segmentation"), "--api-key", p.key("cdnow"),
		"--id", "weekly-1997-09-30", "--as-of", "1997-09-30", "--unit", "weeks", "--holdout-end", "1998-06-30"}
	if out := rapport(fitArgs...); !strings.Contains(out, "succeeded") {
		t.Fatalf("rapport fit:\n%s", out)
	}

	fit := api.must("GET", "/v1/value-model/fits/weekly-1997-09-30", nil, 200)["fit"].(map[string]any)
	num := func(path ...string) float64 {
		t.Helper()
		var v any = fit
		for _, k := range path {
			v = v.(map[string]any)[k]
		}
		switch x := v.(type) {
		case float64:
			return x
		case string: // int64 fields are strings in JSON
			if f, err := strconv.ParseFloat(x, 64); err == nil {
				return f
			}
		}
		t.Fatalf("fit%v = %v", path, v)
		return 0
	}
	within := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.4f, published %.4f (tolerance %.4g)", name, got, want, tol)
		}
	}
	for _, c := range []struct {
		name string
		want float64
	}{{"r", 0.243}, {"alpha", 4.414}, {"a", 0.793}, {"b", 2.426}} {
		within("BG/NBD "+c.name, num("bgNbd", "params", c.name), c.want, 0.005*c.want)
	}
	within("BG/NBD log-likelihood", num("bgNbd", "logLikelihood"), -9582.4, 0.5)
	for _, c := range []struct {
		name string
		want float64
	}{{"p", 6.25}, {"q", 3.74}, {"gamma", 15.44}} {
		within("Gamma-Gamma "+c.name, num("gammaGamma", "params", c.name), c.want, 0.01*c.want)
	}
	if n, rb := num("bgNbd", "customers"), num("bgNbd", "repeatBuyers"); n != 2357 || rb != 946 {
		t.Errorf("fitted %v customers with %v repeat buyers, want 2357 and 946", n, rb)
	}
	// The holdout is weeks 40–78: 1882 transactions followed in the file.
	if l, actual := num("backtest", "length"), num("backtest", "actualRepeatPurchases"); l != 39 || actual != 1882 {
		t.Errorf("backtest over %v weeks, %v actual repeat purchases; want 39 and 1882", l, actual)
	}
	if fit["current"] == true {
		t.Error("a backtest fit became the current model without being asked to")
	}
	// A retry returns the same fit: it does not fit again.
	again := rapport(fitArgs...)
	if refit := api.must("GET", "/v1/value-model/fits/weekly-1997-09-30", nil, 200)["fit"].(map[string]any); refit["finishTime"] != fit["finishTime"] {
		t.Errorf("a retry fitted again:\n%s", again)
	}

	// The scheduler notices the new tenant within a minute of the fake
	// clock (or at once, when the fit request woke it) and fits as of now;
	// that fit becomes current and every customer gets an activity state.
	api.must("POST", "/v1/testing/clock", map[string]any{"time": now.Add(2 * time.Minute).Format(time.RFC3339)}, 200)
	seen := map[string]*segmentationv1.ActivityChange{}
	deadline := time.After(60 * time.Second)
	for len(seen) < 2357 {
		select {
		case c := <-activity:
			seen[c.CustomerId] = c
		case <-deadline:
			t.Fatalf("activity of %d customers on the feed, want 2357", len(seen))
		}
	}
	cur := api.must("GET", "/v1/value-model/fits/current", nil, 200)["fit"].(map[string]any)
	if cur["trigger"] != "FIT_TRIGGER_SCHEDULED" || cur["current"] != true {
		t.Fatalf("current fit %v", cur)
	}
	// Customer 0001 of the sample: its scores carry the model's view, and
	// its activity is the one the feed announced.
	sc := api.must("GET", "/v1/customers/0001/scores", nil, 200)
	v, _ := sc["value"].(map[string]any)
	if v == nil || v["fitId"] != cur["fitId"] || !(v["pAlive"].(float64) > 0 && v["pAlive"].(float64) <= 1) {
		t.Fatalf("customer 0001's value %v", sc["value"])
	}
	if want := seen["0001"].After.String(); v["activity"] != want {
		t.Errorf("customer 0001 activity %v, the feed said %s", v["activity"], want)
	}
}
