package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEExamples runs every shell block of README.md that follows an
// "<!-- example -->" marker, against a freshly started suite, exactly as
// printed except for the ports (the suite listens on free ones here) and the
// path of the binary.
func TestREADMEExamples(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)<!-- example -->\\s*```sh\\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 4 {
		t.Fatalf("found %d example blocks in README.md; the markers were lost", len(blocks))
	}
	p := start(t, "--target=all", "--data-dir", t.TempDir(), "--profile-addr", "127.0.0.1:0",
		"--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	replacer := strings.NewReplacer(
		"127.0.0.1:8080", strings.TrimPrefix(p.urls["gateway"], "http://"),
		"127.0.0.1:7101", p.grpcAddr("profile"),
		"127.0.0.1:7102", p.grpcAddr("segmentation"),
		"127.0.0.1:7103", p.grpcAddr("loyalty"),
		"127.0.0.1:7104", p.grpcAddr("care"),
		"127.0.0.1:7105", p.grpcAddr("access"),
		"./data/", p.dataDir+"/",
		"127.0.0.1:9090", strings.TrimSuffix(strings.TrimPrefix(p.urls["metrics"], "http://"), "/metrics"),
		"./cmd/rapport/rapport", binary,
	)
	fieldInComment := regexp.MustCompile(`(?m)^# .*"field":"([^"]+)"`)
	for i, b := range blocks {
		script := b[1]
		if strings.Contains(script, "grpcurl") {
			if _, err := os.Stat(filepath.Join(root, ".bin", "grpcurl")); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("example %d needs .bin/grpcurl: make test installs it", i+1)
				}
				t.Logf("example %d skipped: no .bin/grpcurl (run make tools)", i+1)
				continue
			}
		}
		if strings.Contains(script, "../shared/data") {
			if _, err := os.Stat(filepath.Join(root, "../shared/data")); err != nil {
				t.Fatalf("example %d needs ../shared/data beside the repository", i+1)
			}
		}
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", replacer.Replace(script))
		cmd.Dir = root
		// The commands' own defaults (rapport keys) point at this suite.
		cmd.Env = append(os.Environ(), "RAPPORT_ACCESS_ADDR="+p.grpcAddr("access"), "RAPPORT_DATA_DIR="+p.dataDir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("example %d failed: %v\n--- script\n%s\n--- output\n%s", i+1, err, script, out)
		}
		// An example that documents an error must produce it.
		for _, m := range fieldInComment.FindAllStringSubmatch(script, -1) {
			if !strings.Contains(string(out), `"field":"`+m[1]+`"`) {
				t.Errorf("example %d: output does not name field %s:\n%s", i+1, m[1], out)
			}
		}
		if strings.Contains(string(out), `"code":13`) || strings.Contains(string(out), "INTERNAL") {
			t.Errorf("example %d produced an internal error:\n%s", i+1, out)
		}
	}
}
