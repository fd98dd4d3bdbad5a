package segbench

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rfmSQL computes the RFM quintiles of every customer from raw purchases,
// as the reeval phase does from its stored states.
//
//go:embed rfm.sql
var rfmSQL string

// PostgresResult is the outcome of the postgres phase.
type PostgresResult struct {
	Skipped string `json:"skipped,omitempty"`
	Version string `json:"version,omitempty"`
	// Load is the COPY of every purchase plus ANALYZE.
	Load Seconds `json:"load_seconds,omitempty"`
	// Query is the best of the timed runs of rfm.sql (server-side time, as
	// psql's \timing reports it); Runs all of them.
	Query Seconds   `json:"query_seconds,omitempty"`
	Runs  []Seconds `json:"runs_seconds,omitempty"`
	Rows  int       `json:"rows,omitempty"`
}

// pgRuns is how many times the query is timed when the postgres phase
// runs alone, after one run that warms the cache. With the reeval phase
// the query is timed once after each warm pass instead (pgServer.time).
const pgRuns = 3

// runPostgres starts a throwaway PostgreSQL cluster under dir, copies the
// data set's purchases into it and times rfm.sql pgRuns times.
func runPostgres(ctx context.Context, data *Dataset, dir string, progress io.Writer) *PostgresResult {
	pg, res := startPostgres(ctx, data, dir, progress)
	if pg == nil {
		return res
	}
	defer pg.stop()
	for range pgRuns {
		if err := pg.time(res, progress); err != nil {
			return &PostgresResult{Skipped: "postgres failed: " + err.Error()}
		}
	}
	return res
}

// startPostgres starts a throwaway PostgreSQL cluster under dir, copies the
// data set's purchases (customer, time, amount net of refunds) into it and
// runs rfm.sql once, untimed, to warm the cache. Anything missing (no
// PostgreSQL and no way to install it, no postgres user) skips the phase:
// the server is nil and the result says why.
func startPostgres(ctx context.Context, data *Dataset, dir string, progress io.Writer) (*pgServer, *PostgresResult) {
	bin, err := pgBin(progress)
	if err != nil {
		return nil, &PostgresResult{Skipped: err.Error()}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, &PostgresResult{Skipped: "running as root and no postgres user: " + err.Error()}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	pgdir := filepath.Join(dir, "pg")
	if err := os.MkdirAll(pgdir, 0o700); err != nil {
		return nil, &PostgresResult{Skipped: err.Error()}
	}
	if cred != nil {
		for _, d := range []string{dir, pgdir} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, &PostgresResult{Skipped: err.Error()}
			}
		}
	}
	pg, res, err := pgStart(ctx, bin, cred, pgdir, data, progress)
	if err != nil {
		return nil, &PostgresResult{Skipped: "postgres failed: " + err.Error()}
	}
	return pg, res
}

// pgBin finds PostgreSQL's server binaries, installing the Debian package
// when running as root without them.
func pgBin(progress io.Writer) (string, error) {
	find := func() string {
		m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		sort.Strings(m)
		if len(m) > 0 {
			return filepath.Dir(m[len(m)-1])
		}
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
		return ""
	}
	if b := find(); b != "" {
		return b, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("PostgreSQL is not installed (initdb not found) and installing it needs root: apt-get install postgresql")
	}
	fmt.Fprintln(progress, "postgres: installing the Debian package postgresql")
	cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "postgresql")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get install postgresql failed: %v: %s", err, lastLine(out))
	}
	if b := find(); b != "" {
		return b, nil
	}
	return "", errors.New("PostgreSQL installed but initdb not found")
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// pgServer is a running throwaway cluster with the purchases loaded.
type pgServer struct {
	psql func(stdin io.Reader, args ...string) ([]byte, error)
	stop func()
}

func pgStart(ctx context.Context, bin string, cred *syscall.Credential, pgdir string, data *Dataset, progress io.Writer) (_ *pgServer, _ *PostgresResult, err error) {
	res := &PostgresResult{}
	run := func(stdin io.Reader, name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
		cmd.Dir = pgdir
		cmd.Stdin = stdin
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("%s: %v: %s", name, err, lastLine(out))
		}
		return out, nil
	}
	datadir := filepath.Join(pgdir, "data")
	if _, err := run(nil, "initdb", "-D", datadir, "-U", "bench", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	// Settings a tuned analytics box would use: the sort of a million rows
	// fits in work_mem, parallel workers for both cores, no fsync (the
	// loaded table is throwaway; the query reads, it does not write WAL).
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c shared_buffers=1GB "+
		"-c work_mem=512MB -c max_parallel_workers_per_gather=2 -c fsync=off -c synchronous_commit=off -c jit=off",
		port, pgdir)
	if _, err := run(nil, "pg_ctl", "-D", datadir, "-l", filepath.Join(pgdir, "log"), "-w", "-o", opts, "start"); err != nil {
		return nil, nil, err
	}
	stop := func() { _, _ = run(nil, "pg_ctl", "-D", datadir, "-m", "immediate", "-w", "stop") }
	defer func() {
		if err != nil {
			stop()
		}
	}()
	psql := func(stdin io.Reader, args ...string) ([]byte, error) {
		base := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "bench", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-X", "-q"}
		return run(stdin, "psql", append(base, args...)...)
	}
	out, err := psql(nil, "-At", "-c", "SHOW server_version")
	if err != nil {
		return nil, nil, err
	}
	res.Version = strings.TrimSpace(string(out))
	if _, err := psql(nil, "-c", "CREATE UNLOGGED TABLE purchases (customer_id text NOT NULL, ts timestamptz NOT NULL, amount bigint NOT NULL)"); err != nil {
		return nil, nil, err
	}

	fmt.Fprintf(progress, "postgres %s: copying purchases\n", res.Version)
	start := time.Now()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writePurchasesCSV(pw, data)) }()
	if _, err := psql(pr, "-c", "COPY purchases FROM STDIN WITH (FORMAT csv)"); err != nil {
		pr.CloseWithError(err)
		return nil, nil, err
	}
	if _, err := psql(nil, "-c", "VACUUM ANALYZE purchases"); err != nil {
		return nil, nil, err
	}
	res.Load = secs(time.Since(start))
	pg := &pgServer{psql: psql, stop: stop}
	if _, err := pg.query(); err != nil { // warms the cache, untimed
		return nil, nil, err
	}
	out, err = psql(nil, "-At", "-c", "SELECT count(*) FROM rfm")
	if err != nil {
		return nil, nil, err
	}
	res.Rows, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	return pg, res, nil
}

// query runs rfm.sql and returns its server-side time (psql's \timing).
func (pg *pgServer) query() (Seconds, error) {
	script := "DROP TABLE IF EXISTS rfm;\n\\timing on\n" + rfmSQL + "\n\\timing off\n"
	out, err := pg.psql(strings.NewReader(script))
	if err != nil {
		return 0, err
	}
	m := pgTiming.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no timing in psql output %q", out)
	}
	ms, _ := strconv.ParseFloat(string(m[1]), 64)
	return Seconds(ms / 1000), nil
}

var pgTiming = regexp.MustCompile(`Time: ([0-9.]+) ms`)

// time runs the query once more and adds the run to res: Runs, and Query,
// the best.
func (pg *pgServer) time(res *PostgresResult, progress io.Writer) error {
	q, err := pg.query()
	if err != nil {
		return err
	}
	if len(res.Runs) == 0 || q < res.Query {
		res.Query = q
	}
	res.Runs = append(res.Runs, q)
	fmt.Fprintf(progress, "postgres: rfm.sql run %d: %.2fs\n", len(res.Runs), float64(q))
	return nil
}

// writePurchasesCSV writes every purchase of the data set as customer_id,
// ts, amount net of refunds: the input of the RFM quintiles.
func writePurchasesCSV(w io.Writer, data *Dataset) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var line bytes.Buffer
	for i := range data.Len() {
		c := data.customer(i)
		for _, p := range c.purchases {
			line.Reset()
			line.WriteString(c.profile.CustomerId)
			line.WriteByte(',')
			line.WriteString(p.at.UTC().Format(time.RFC3339))
			line.WriteByte(',')
			line.WriteString(strconv.FormatInt(p.amount-p.refunded, 10))
			line.WriteByte('\n')
			if _, err := bw.Write(line.Bytes()); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
