package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// chaosServices are the processes the chaos command runs, in start order:
// the access service first (every call's key is checked by it, and its
// first start writes the operator key), each service before those that
// follow its feed, the gateway last.
var chaosServices = []string{targetAccess, targetProfile, targetSegmentation, targetLoyalty, targetCare, targetGateway}

// chaosGatewayShare is the share of kills that hit the gateway: it holds
// no data, so it is killed less often than the services.
const chaosGatewayShare = 0.125

// chaosRestartPause bounds the random pause between a kill and the restart.
const chaosRestartPause = 1500 * time.Millisecond

// chaosReadyTimeout bounds a process's start, to the line it prints once
// every listener is open.
const chaosReadyTimeout = 30 * time.Second

// chaosProc is one supervised `rapport serve --target=X` process.
type chaosProc struct {
	name   string
	binary string
	args   []string
	log    *os.File

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the current process has exited
	expected bool          // the current process is being killed or stopped
	stats    chaosProcStats
}

// chaosProcStats is what happened to one process.
type chaosProcStats struct {
	Kills    int
	Restarts int
	// Crashes are exits nobody asked for.
	Crashes []string
	// StartFailures are starts that did not get to ready.
	StartFailures []string
	// Down is the total time from a kill to ready again.
	Down time.Duration
	// SlowStop is set when a graceful stop needed SIGKILL.
	SlowStop bool
}

// start runs the process and waits until it prints that it is up.
func (p *chaosProc) start() error {
	cmd := exec.Command(p.binary, p.args...)
	cmd.Stderr = p.log
	cmd.SysProcAttr = chaosProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	fmt.Fprintf(p.log, "=== chaos: starting %s at %s\n", p.name, time.Now().UTC().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		return err
	}
	ready, exited := make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.expected = cmd, exited, false
	p.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(p.log, sc.Text())
			if !signalled && strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				signalled = true
				close(ready)
			}
		}
		werr := cmd.Wait()
		p.mu.Lock()
		if !p.expected {
			p.stats.Crashes = append(p.stats.Crashes, fmt.Sprintf("%s: pid %d exited by itself: %v",
				time.Now().UTC().Format(time.TimeOnly), cmd.Process.Pid, werr))
		}
		p.mu.Unlock()
		fmt.Fprintf(p.log, "=== chaos: pid %d exited at %s: %v\n", cmd.Process.Pid, time.Now().UTC().Format(time.RFC3339Nano), werr)
		close(exited)
	}()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("%s exited before it was ready (see %s)", p.name, p.log.Name())
	case <-time.After(chaosReadyTimeout):
		p.signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("%s was not ready after %s (see %s)", p.name, chaosReadyTimeout, p.log.Name())
	}
}

// startRetrying starts the process, trying again after failed starts until
// ctx ends.
func (p *chaosProc) startRetrying(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := p.start()
		if err == nil {
			return nil
		}
		p.mu.Lock()
		p.stats.StartFailures = append(p.stats.StartFailures, err.Error())
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last start: %v)", ctx.Err(), err)
		case <-time.After(min(100*time.Millisecond<<attempt, 2*time.Second)):
		}
	}
}

// signal marks the current process's exit as expected and sends sig.
func (p *chaosProc) signal(sig syscall.Signal) (exited chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expected = true
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
	return p.exited
}

// running reports whether the current process is alive.
func (p *chaosProc) running() bool {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the process and waits for it to be gone.
func (p *chaosProc) kill() {
	<-p.signal(syscall.SIGKILL)
	p.mu.Lock()
	p.stats.Kills++
	p.mu.Unlock()
}

// stop asks the process to shut down gracefully, and kills it after grace.
func (p *chaosProc) stop(grace time.Duration) {
	exited := p.signal(syscall.SIGTERM)
	if exited == nil {
		return
	}
	select {
	case <-exited:
	case <-time.After(grace):
		p.mu.Lock()
		p.stats.SlowStop = true
		p.mu.Unlock()
		<-p.signal(syscall.SIGKILL)
	}
}

func (p *chaosProc) snapshot() chaosProcStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Crashes = append([]string(nil), s.Crashes...)
	s.StartFailures = append([]string(nil), s.StartFailures...)
	return s
}

// chaosSuite is the suite's processes.
type chaosSuite struct {
	dataDir string
	procs   map[string]*chaosProc
	gateway string            // base URL
	metrics map[string]string // each process's /metrics URL
	secret  string            // care's webhook signing secret
	stopped bool
}

// freeLoopbackAddrs reserves n distinct loopback ports and releases them
// for the processes to listen on. Every process must know every address
// up front (each dials the others), and a restarted process must listen
// where it did, so the ports are fixed for the run.
func freeLoopbackAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer lis.Close()
		addrs = append(addrs, lis.Addr().String())
	}
	return addrs, nil
}

// startSuite starts every process in order and waits for the gateway to
// report every backend ready.
func startSuite(ctx context.Context, binary, dataDir, webhookSecret string) (*chaosSuite, error) {
	addrs, err := freeLoopbackAddrs(6 + len(chaosServices))
	if err != nil {
		return nil, fmt.Errorf("chaos: reserve ports: %w", err)
	}
	if err := os.MkdirAll(logsDir(dataDir), 0o750); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	common := []string{"--data-dir", dataDir,
		"--profile-addr", addrs[0], "--segmentation-addr", addrs[1], "--loyalty-addr", addrs[2], "--care-addr", addrs[3],
		"--http-addr", addrs[4], "--access-addr", addrs[5], "--care-webhook-secret", webhookSecret, "--shutdown-grace", "5s"}
	s := &chaosSuite{dataDir: dataDir, procs: map[string]*chaosProc{}, gateway: "http://" + addrs[4], secret: webhookSecret,
		metrics: map[string]string{}}
	for i, name := range chaosServices {
		// Every process its own /metrics: the checks read the feeds'
		// heads and the followers' cursors there.
		metricsAddr := addrs[6+i]
		s.metrics[name] = "http://" + metricsAddr + "/metrics"
		f, err := os.OpenFile(filepath.Join(logsDir(dataDir), name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("chaos: %w", err)
		}
		p := &chaosProc{name: name, binary: binary, log: f,
			args: append([]string{"serve", "--target=" + name, "--metrics-addr", metricsAddr}, common...)}
		s.procs[name] = p
		if err := p.start(); err != nil {
			s.stop()
			return nil, fmt.Errorf("chaos: %w", err)
		}
	}
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls the gateway's /readyz until every backend serves.
func (s *chaosSuite) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 3 * time.Second}
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.gateway+"/readyz", nil)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: the suite is not ready after %s: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling other processes: no signal to wait on
		}
	}
}

// reviveAll restarts every process that is not running (one that crashed,
// or whose restart failed).
func (s *chaosSuite) reviveAll(ctx context.Context) error {
	var errs []error
	for _, name := range chaosServices {
		p := s.procs[name]
		if p.running() {
			continue
		}
		if err := p.startRetrying(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		p.mu.Lock()
		p.stats.Restarts++
		p.mu.Unlock()
	}
	return errors.Join(errs...)
}

// killLoop kills a random process every `every` (jittered ±50%) until ctx
// ends, and restarts it after a random pause. It returns when the last
// victim is up again.
func (s *chaosSuite) killLoop(ctx context.Context, rng *rand.Rand, every time.Duration, logf func(string, ...any)) {
	if every <= 0 {
		return
	}
	services := chaosServices[:len(chaosServices)-1]
	last := time.Now()
	for {
		// Kill to kill, not restart to kill: the rate does not depend on
		// how long restarts take.
		wait := time.Until(last.Add(every/2 + time.Duration(rng.Int64N(int64(every)))))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		last = time.Now()
		if err := s.reviveAll(ctx); err != nil {
			logf("revive: %v", err)
		}
		victim := services[rng.IntN(len(services))]
		if rng.Float64() < chaosGatewayShare {
			victim = targetGateway
		}
		pause := time.Duration(rng.Int64N(int64(chaosRestartPause)))
		p := s.procs[victim]
		down := time.Now()
		p.kill()
		time.Sleep(pause)
		// The restart must happen even when the run is over: a bounded
		// context of its own, not ctx.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := p.startRetrying(rctx)
		cancel()
		p.mu.Lock()
		if err == nil {
			p.stats.Restarts++
			p.stats.Down += time.Since(down)
		}
		p.mu.Unlock()
		if err != nil {
			logf("restart %s: %v", victim, err)
		} else {
			logf("killed %s, up again after %s", victim, time.Since(down).Round(time.Millisecond))
		}
	}
}

// stop stops every process gracefully, in the reverse of the start order:
// the gateway first, then each follower before the services whose feeds
// it follows, so no service waits out its grace period for a follower's
// open stream. The checks have seen every follower caught up before.
func (s *chaosSuite) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	for i := len(chaosServices) - 1; i >= 0; i-- {
		p := s.procs[chaosServices[i]]
		if p == nil {
			continue
		}
		p.stop(15 * time.Second)
		p.log.Close()
	}
}
