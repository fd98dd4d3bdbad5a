package component_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"rapport.dev/platform/clock"
	"rapport.dev/platform/component"
)

func TestForFillsDefaultsAndLabelsTheLogger(t *testing.T) {
	d := component.Deps{}.For("profile")
	if d.Logger == nil || d.Clock == nil || d.MeterProvider == nil {
		t.Fatalf("defaults not filled: %+v", d)
	}
	var buf bytes.Buffer
	fake := clock.NewFake(time.Unix(0, 0))
	d = component.Deps{Logger: slog.New(slog.NewTextHandler(&buf, nil)), Clock: fake}.For("segmentation")
	d.Logger.Info("hello")
	if !strings.Contains(buf.String(), "component=segmentation") {
		t.Fatalf("log line %q lacks the component", buf.String())
	}
	if d.Clock != fake {
		t.Fatal("a given clock was replaced")
	}
}
