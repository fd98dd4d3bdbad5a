package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"rapport.dev/cmd/rapport/internal/loadtest"
)

// TestLoadSmoke runs every phase of `rapport load` briefly in-process: each
// phase and each baseline must do work and none may fail. It asserts no
// rates; those depend on the machine.
func TestLoadSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the suite and writes to disk")
	}
	dir := t.TempDir()
	cfg, err := parseLoad([]string{"--duration=300ms", "--warmup=100ms", "--customers=300",
		"--phases=write,batch,get", "--data-dir=" + dir, "--json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runLoad(t.Context(), cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var back loadtest.Report
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatalf("--json output does not parse: %v", err)
	}
	var names []string
	for _, p := range back.Phases {
		names = append(names, p.Name)
		for _, m := range []loadtest.Measurement{p.Measured, p.Baseline} {
			if m.Ops == 0 || m.PerSecond <= 0 || m.Errors != 0 {
				t.Errorf("phase %s, %s: %d ops, %.0f %s/s, %d errors (%s); want work and no errors",
					p.Name, m.What, m.Ops, m.PerSecond, m.Unit, m.Errors, m.Error)
			}
		}
	}
	if len(names) != 3 {
		t.Errorf("phases run: %v, want write, batch, get", names)
	}
}

func TestLoadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--phases=write,nope"},
		{"--duration=0s"},
		{"--concurrency=0"},
		{"--customers=0"},
		{"--baseline-keys=random"},
		{"extra"},
	} {
		if _, err := parseLoad(args, io.Discard); err == nil {
			t.Errorf("parseLoad(%q) = nil error", args)
		}
	}
	cfg, err := parseLoad([]string{"--phases=get, write,get"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.phases; len(got) != 2 || got[0] != loadPhaseGet || got[1] != loadPhaseWrite {
		t.Errorf("phases = %v, want [get write]", got)
	}
	dir := t.TempDir()
	if err := emptyLoadDir(dir); err != nil {
		t.Errorf("an empty dir is refused: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "profile.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := emptyLoadDir(dir); err == nil {
		t.Error("a used data dir is accepted")
	}
}
