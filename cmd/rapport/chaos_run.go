package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// runChaos runs one chaos session and reports what it did and found. The
// error is for a run that could not be carried out; failed invariants are
// in the report.
func runChaos(ctx context.Context, cfg chaosConfig, binary string, progress io.Writer) (*chaosReport, error) {
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(progress, "chaos %s: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
	}
	rep := &chaosReport{cfg: cfg, started: time.Now()}

	secret := randomSecret(16)
	hook, err := startChaosHook(secret)
	if err != nil {
		return nil, err
	}
	defer hook.close()
	logf("starting the suite in %s", cfg.DataDir)
	suite, err := startSuite(ctx, binary, cfg.DataDir, secret)
	if err != nil {
		return nil, err
	}
	defer suite.stop()

	key, err := chaosKey(ctx, cfg, suite.gateway, chaosTenant)
	if err != nil {
		return nil, err
	}
	rep.auth = "API key (Authorization: Bearer)"
	client := newChaosClient(suite.gateway, chaosTenant, key, chaosCall)
	model := newChaosModel()
	// About one reward redemption in three succeeds on points; the stock
	// runs out during a long run, so out-of-stock refusals happen too.
	rewardStock := max(20, int(cfg.Duration/(2*time.Second)))
	load := &chaosLoad{c: client, m: model, maxCusts: cfg.Customers, hookURL: hook.url}
	if err := load.setup(ctx, rewardStock); err != nil {
		return nil, err
	}

	// The load and the killer, for the duration.
	logf("load from %d workers (at most %d operations/s) and a kill every ~%s, for %s (seed %d)", cfg.Concurrency, cfg.Rate, cfg.KillEvery, cfg.Duration, cfg.Seed)
	loadCtx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	drainCtx, stopDrain := context.WithCancel(ctx)
	defer stopDrain()
	var pace <-chan time.Time
	if cfg.Rate > 0 {
		tick := time.NewTicker(time.Second / time.Duration(cfg.Rate))
		defer tick.Stop()
		pace = tick.C
	}
	var workers sync.WaitGroup
	for w := range cfg.Concurrency {
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)+1))
		workers.Go(func() { load.worker(loadCtx, drainCtx, rng, pace) })
	}
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		suite.killLoop(loadCtx, rand.New(rand.NewPCG(cfg.Seed, 0)), cfg.KillEvery, logf)
	}()
	<-loadCtx.Done()
	<-killerDone
	rep.loadEnded = time.Now()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Every process up again; the workers' last calls answered.
	if err := suite.reviveAll(ctx); err != nil {
		return nil, fmt.Errorf("chaos: after the load: %w", err)
	}
	if err := suite.waitReady(ctx, time.Minute); err != nil {
		return nil, err
	}
	drained := make(chan struct{})
	go func() { workers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(cfg.Drain):
		stopDrain()
		<-drained
	}
	rep.drained = time.Since(rep.loadEnded)
	logf("load over; checking, for up to %s while the followers catch up", cfg.Settle)

	// The checks, until they hold or the followers had time enough.
	feeds := newChaosClient(suite.gateway, chaosTenant, key, 2*time.Minute)
	v := &chaosVerifier{c: client, feeds: feeds, m: model, hook: hook, rewardStock: rewardStock, metrics: suite.metrics}
	checks, settled, err := v.settle(ctx, cfg.Settle, logf)
	if err != nil {
		rep.checkErr = err.Error()
	}
	rep.settled = settled
	processes := &chaosCheck{Name: checkProcesses, Checked: fmt.Sprintf("%d processes", len(chaosServices))}
	for _, name := range chaosServices {
		for _, c := range suite.procs[name].snapshot().Crashes {
			processes.fail("%s: %s", name, c)
		}
	}
	rep.checks = append([]*chaosCheck{processes}, checks...)

	// A graceful stop, then the followers' cursors straight from the files.
	suite.stop()
	rep.checks = append(rep.checks, checkCursors(cfg.DataDir))
	rep.ended = time.Now()
	for _, name := range chaosServices {
		rep.procs = append(rep.procs, chaosProcReport{name: name, stats: suite.procs[name].snapshot()})
	}
	rep.ops = client.snapshot()
	model.mu.Lock()
	rep.customers = len(model.customers)
	rep.inDoubt = len(model.inDoubt)
	model.mu.Unlock()
	_, _, rep.hookFailed = hook.snapshot()
	return rep, nil
}
