package config_test

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"rapport.dev/platform/config"
)

type cfg struct {
	DataDir  string
	Port     int
	MaxBytes int64
	Debug    bool
	Grace    time.Duration
}

// bind declares the flags the way a service does and parses args.
func bind(t *testing.T, args ...string) (cfg, *config.Binder) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := config.New(fs, "RAPPORT_")
	var c cfg
	b.String(&c.DataDir, "data-dir", "/var/lib/rapport", "where bbolt files live")
	b.Int(&c.Port, "port", 8080, "gRPC port")
	b.Int64(&c.MaxBytes, "max-bytes", 1<<20, "largest message")
	b.Bool(&c.Debug, "debug", false, "debug logging")
	b.Duration(&c.Grace, "grace", 5*time.Second, "shutdown grace period")
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return c, b
}

// unset removes k for the test, so the outer environment does not leak in.
func unset(t *testing.T, k string) {
	t.Setenv(k, "") // restores the old value at the end of the test
	os.Unsetenv(k)
}

func TestPrecedence(t *testing.T) {
	defaults := cfg{"/var/lib/rapport", 8080, 1 << 20, false, 5 * time.Second}
	fromEnv := cfg{"/env", 9000, 2048, true, time.Second}
	fromFlags := cfg{"/flag", 7000, 4096, false, 250 * time.Millisecond}
	env := map[string]string{
		"RAPPORT_DATA_DIR":  "/env",
		"RAPPORT_PORT":      "9000",
		"RAPPORT_MAX_BYTES": "2048",
		"RAPPORT_DEBUG":     "true",
		"RAPPORT_GRACE":     "1s",
	}
	flags := []string{"-data-dir=/flag", "-port=7000", "-max-bytes=4096", "-debug=false", "-grace=250ms"}

	for _, tc := range []struct {
		name  string
		env   bool
		flags bool
		want  cfg
	}{
		{"defaults", false, false, defaults},
		{"env beats default", true, false, fromEnv},
		{"flag beats default", false, true, fromFlags},
		{"flag beats env", true, true, fromFlags},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range env {
				if tc.env {
					t.Setenv(k, v)
				} else {
					unset(t, k)
				}
			}
			var args []string
			if tc.flags {
				args = flags
			}
			got, b := bind(t, args...)
			if err := b.Err(); err != nil {
				t.Fatalf("Err: %v", err)
			}
			if got != tc.want {
				t.Errorf("config = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBadEnvironmentValues(t *testing.T) {
	t.Setenv("RAPPORT_PORT", "eighty")
	t.Setenv("RAPPORT_MAX_BYTES", "1MB")
	t.Setenv("RAPPORT_DEBUG", "yes please")
	t.Setenv("RAPPORT_GRACE", "5")
	t.Setenv("RAPPORT_DATA_DIR", "/ok")

	got, b := bind(t)
	err := b.Err()
	if err == nil {
		t.Fatal("Err() = nil for unparsable variables")
	}
	for _, want := range []string{
		`RAPPORT_PORT="eighty": not an integer`,
		`RAPPORT_MAX_BYTES="1MB": not an integer`,
		`RAPPORT_DEBUG="yes please": not a boolean`,
		`RAPPORT_GRACE="5": not a duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %q, missing %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "DATA_DIR") {
		t.Errorf("Err() names a good variable: %q", err)
	}
	// The bad values are not used; the defaults stand.
	if got.Port != 8080 || got.Grace != 5*time.Second || got.DataDir != "/ok" {
		t.Errorf("config = %+v", got)
	}

	// A flag still overrides a bad variable, but the error is reported.
	got, b = bind(t, "-port=7000")
	if got.Port != 7000 || b.Err() == nil {
		t.Errorf("port = %d, Err = %v", got.Port, b.Err())
	}
}

func TestEnvNameAndUsage(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	b := config.New(fs, "RAPPORT_")
	if got := b.EnvName("data-dir"); got != "RAPPORT_DATA_DIR" {
		t.Errorf("EnvName = %q", got)
	}
	var s string
	b.String(&s, "data-dir", "", "where bbolt files live")
	if got := fs.Lookup("data-dir").Usage; got != "where bbolt files live (env RAPPORT_DATA_DIR)" {
		t.Errorf("usage = %q", got)
	}
}
