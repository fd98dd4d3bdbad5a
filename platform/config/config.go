// Package config binds a typed configuration struct to command-line flags and
// environment variables. Precedence: flag, then environment, then default.
// Each service declares its own Config struct with a Validate method; this
// package only does the binding.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Binder registers flags whose defaults come from the environment.
type Binder struct {
	fs     *flag.FlagSet
	prefix string
	errs   []error
}

// New returns a binder on fs; variables are named prefix + NAME, with the
// flag's dashes turned into underscores: "data-dir" → "RAPPORT_DATA_DIR".
func New(fs *flag.FlagSet, prefix string) *Binder { return &Binder{fs: fs, prefix: prefix} }

// EnvName is the environment variable bound to a flag.
func (b *Binder) EnvName(flagName string) string {
	return b.prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (b *Binder) env(name string) (string, bool) {
	return os.LookupEnv(b.EnvName(name))
}

func (b *Binder) usage(name, usage string) string {
	return fmt.Sprintf("%s (env %s)", usage, b.EnvName(name))
}

// String binds a string.
func (b *Binder) String(p *string, name, def, usage string) {
	if v, ok := b.env(name); ok {
		def = v
	}
	b.fs.StringVar(p, name, def, b.usage(name, usage))
}

// Int binds an int.
func (b *Binder) Int(p *int, name string, def int, usage string) {
	if v, ok := b.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not an integer", b.EnvName(name), v))
		} else {
			def = n
		}
	}
	b.fs.IntVar(p, name, def, b.usage(name, usage))
}

// Int64 binds an int64.
func (b *Binder) Int64(p *int64, name string, def int64, usage string) {
	if v, ok := b.env(name); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not an integer", b.EnvName(name), v))
		} else {
			def = n
		}
	}
	b.fs.Int64Var(p, name, def, b.usage(name, usage))
}

// Bool binds a bool.
func (b *Binder) Bool(p *bool, name string, def bool, usage string) {
	if v, ok := b.env(name); ok {
		x, err := strconv.ParseBool(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not a boolean", b.EnvName(name), v))
		} else {
			def = x
		}
	}
	b.fs.BoolVar(p, name, def, b.usage(name, usage))
}

// Duration binds a time.Duration ("5s", "250ms").
func (b *Binder) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	if v, ok := b.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not a duration", b.EnvName(name), v))
		} else {
			def = d
		}
	}
	b.fs.DurationVar(p, name, def, b.usage(name, usage))
}

// Err reports environment variables that could not be parsed.
func (b *Binder) Err() error { return errors.Join(b.errs...) }
