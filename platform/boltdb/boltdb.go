// Package boltdb opens a service's bbolt file: a lock timeout so a second
// process fails fast instead of hanging, a schema version with ordered
// migrations, the service's buckets created up front, and group commit.
//
// Group commit is what makes durable writes fast: bbolt fsyncs once per
// transaction (about 1,500 commits/s on the reference machine), so Update
// queues concurrent writers and one committer goroutine runs everything that
// queued while the previous fsync was in flight in a single transaction, as
// etcd's backend does. Every caller still returns only after its write is on
// disk.
package boltdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"rapport.dev/platform/audit"
	"rapport.dev/platform/telemetry"
)

// MetaBucket holds the schema version; every database has it.
var MetaBucket = []byte("meta")

var schemaKey = []byte("schema_version")

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("boltdb: database closed")

// Migration upgrades a database from version From to From+1.
type Migration struct {
	From uint64
	Up   func(tx *bolt.Tx) error
}

// Options configures Open.
type Options struct {
	// Schema is the version this code writes. A new file is stamped with it;
	// an older file is migrated; a newer file is refused.
	Schema uint64
	// Buckets are created on open if missing.
	Buckets [][]byte
	// Migrations upgrade older files, one version at a time.
	Migrations []Migration
	// LockTimeout bounds the wait for the file lock; 0 means 5 s.
	LockTimeout time.Duration
	// MaxBatch caps the writes coalesced into one transaction; 0 means 1024.
	MaxBatch int
	// MmapSize is the address space mapped for the file up front; 0 means
	// DefaultMmapSize. Files smaller than it are never mapped anew as they
	// grow: a remap waits for every read transaction to end, blocking the
	// writer meanwhile, and drops every mapped page, which the next reads
	// fault in again. It reserves address space only; the file grows with
	// its data.
	MmapSize int
	// PageSize is the page size of a file created by Open; 0 means the
	// operating system's (4 KiB here). An existing file keeps the size it
	// was created with.
	PageSize int
	// NoSync skips fsync: only for benchmarks that measure the baseline
	// without durability. Never in production.
	NoSync bool
	// Logger, TracerProvider: nil means slog.Default() and no tracing.
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	// MeterProvider receives the file's metrics (commit latency, writes
	// per commit, file size), labelled with Component; nil means none.
	MeterProvider metric.MeterProvider
	Component     string
}

// DB is an open bbolt file with a group committer.
type DB struct {
	bolt     *bolt.DB
	log      *slog.Logger
	tracer   trace.Tracer
	maxBatch int

	metrics *metrics

	reqs chan *request
	done chan struct{}
	// scratch belongs to the write transaction being built by the
	// committer; only the committer goroutine touches it.
	scratch *Scratch

	// mu guards closed; Update holds it for reading while it queues.
	mu     sync.RWMutex
	closed bool

	// lmu guards listeners. It is not mu: a writer can hold mu while it
	// waits for room in the queue, and a Close or OnCommit waiting for mu
	// then blocks new readers, so a committer taking mu to call the
	// listeners would never drain the queue, and everything would deadlock.
	lmu       sync.Mutex
	listeners []func()
}

type request struct {
	ctx context.Context
	fn  func(*bolt.Tx) error
	err chan error
	// size is how many writes shared the transaction, for the span.
	size int
}

// DefaultMmapSize is 8 GiB on 64-bit platforms (etcd maps 10 GiB for the
// same reasons), and bbolt's own growth on 32-bit ones.
const DefaultMmapSize = (8 << 30) * (strconv.IntSize / 64)

// Open opens (creating if needed) the bbolt file at path.
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 5 * time.Second
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 1024
	}
	if opts.MmapSize == 0 {
		opts.MmapSize = DefaultMmapSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = noop.NewTracerProvider()
	}
	if opts.MeterProvider == nil {
		opts.MeterProvider = metricnoop.NewMeterProvider()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("boltdb: %w", err)
	}
	// The freelist is not written on every commit (as etcd runs bbolt): it is
	// rebuilt by scanning at open, which saves page writes on every commit.
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType, InitialMmapSize: opts.MmapSize, PageSize: opts.PageSize})
	if err != nil {
		return nil, fmt.Errorf("boltdb: open %s: %w", path, err)
	}
	if err := prepare(b, opts); err != nil {
		b.Close()
		return nil, fmt.Errorf("boltdb: %s: %w", path, err)
	}
	db := &DB{
		bolt:     b,
		log:      opts.Logger,
		tracer:   opts.TracerProvider.Tracer("rapport.dev/platform/boltdb"),
		maxBatch: opts.MaxBatch,
		reqs:     make(chan *request, opts.MaxBatch),
		done:     make(chan struct{}),
	}
	if db.metrics, err = newMetrics(opts.MeterProvider, opts.Component, path); err != nil {
		b.Close()
		return nil, fmt.Errorf("boltdb: %s: %w", path, err)
	}
	go db.commitLoop()
	return db, nil
}

// metrics are the file's instruments.
type metrics struct {
	attrs    metric.MeasurementOption
	duration metric.Float64Histogram
	batch    metric.Int64Histogram
	size     metric.Registration
}

func newMetrics(mp metric.MeterProvider, component, path string) (*metrics, error) {
	m := &metrics{attrs: metric.WithAttributeSet(attribute.NewSet(telemetry.ComponentKey.String(component)))}
	meter := mp.Meter("rapport.dev/platform/boltdb")
	var errs [4]error
	m.duration, errs[0] = meter.Float64Histogram("rapport.bbolt.commit.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to commit one group-commit transaction, fsync included."),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
	m.batch, errs[1] = meter.Int64Histogram("rapport.bbolt.commit.batch_size", metric.WithUnit("{write}"),
		metric.WithDescription("Writes (Update calls) that shared one committed transaction."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
	size, err := meter.Int64ObservableGauge("rapport.bbolt.file.size", metric.WithUnit("By"),
		metric.WithDescription("Size of the bbolt file on disk."))
	errs[2] = err
	if err == nil {
		m.size, errs[3] = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			o.ObserveInt64(size, fi.Size(), m.attrs)
			return nil
		}, size)
	}
	return m, errors.Join(errs[:]...)
}

func (m *metrics) committed(start time.Time, writes int) {
	m.duration.Record(context.Background(), time.Since(start).Seconds(), m.attrs)
	m.batch.Record(context.Background(), int64(writes), m.attrs)
}

// prepare stamps or migrates the schema and creates the buckets.
func prepare(b *bolt.DB, opts Options) error {
	return b.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(MetaBucket)
		if err != nil {
			return err
		}
		v := meta.Get(schemaKey)
		current := opts.Schema
		if v != nil {
			current = binary.BigEndian.Uint64(v)
		}
		if current > opts.Schema {
			return fmt.Errorf("schema version %d is newer than this build's %d; refusing to open", current, opts.Schema)
		}
		for current < opts.Schema {
			var m *Migration
			for i := range opts.Migrations {
				if opts.Migrations[i].From == current {
					m = &opts.Migrations[i]
				}
			}
			if m == nil {
				return fmt.Errorf("no migration from schema version %d", current)
			}
			if err := m.Up(tx); err != nil {
				return fmt.Errorf("migration from %d: %w", current, err)
			}
			current++
		}
		for _, name := range opts.Buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return meta.Put(schemaKey, U64(opts.Schema))
	})
}

// SchemaVersion returns the stored schema version.
func (db *DB) SchemaVersion() (uint64, error) {
	var v uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(MetaBucket).Get(schemaKey); b != nil {
			v = binary.BigEndian.Uint64(b)
		}
		return nil
	})
	return v, err
}

// View runs fn in a read-only transaction. Values read are only valid inside
// fn: copy what must outlive it.
func (db *DB) View(fn func(tx *bolt.Tx) error) error { return db.bolt.View(fn) }

// Update runs fn in a read-write transaction shared with other concurrent
// writers and returns once the transaction is durably committed.
//
// fn may run more than once (when another write in the same transaction
// fails, the transaction is rolled back and the others are run again), so it
// must have no effect outside tx. When fn returns an error, nothing it wrote
// is committed and the error is returned to this caller only.
func (db *DB) Update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	ctx, span := db.tracer.Start(ctx, "bbolt.commit", trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	r := &request{ctx: ctx, fn: fn, err: make(chan error, 1)}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	db.reqs <- r
	db.mu.RUnlock()
	err := <-r.err
	span.SetAttributes(attribute.Int("bbolt.batch_size", r.size))
	if err != nil {
		span.RecordError(err)
	}
	return err
}

// OnCommit registers f to run after every successful commit (the change feed
// uses it to wake followers). f must not block.
func (db *DB) OnCommit(f func()) {
	db.lmu.Lock()
	db.listeners = append(db.listeners, f)
	db.lmu.Unlock()
}

func (db *DB) commitLoop() {
	defer close(db.done)
	batch := make([]*request, 0, db.maxBatch)
	for r := range db.reqs {
		batch = append(batch[:0], r)
	fill:
		for len(batch) < db.maxBatch {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		db.commit(batch)
	}
}

// errItem marks that one write of the batch failed and the batch must be
// rolled back and run again without it.
type errItem struct {
	index int
	err   error
}

func (e *errItem) Error() string { return e.err.Error() }

// commit runs a batch in one transaction. A failing write is answered with its
// error and the rest are run again in a fresh transaction.
func (db *DB) commit(batch []*request) {
	pending := batch
	for len(pending) > 0 {
		start := time.Now()
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			db.scratch = &Scratch{tx: tx, values: map[any]any{}}
			defer func() { db.scratch = nil }()
			for i, r := range pending {
				if err := runSafely(r.fn, tx); err != nil {
					return &errItem{index: i, err: err}
				}
				if rec := audit.FromContext(r.ctx); rec != nil {
					if err := audit.Put(tx, rec); err != nil {
						return &errItem{index: i, err: err}
					}
				}
			}
			return db.scratch.flush()
		})
		var item *errItem
		if errors.As(err, &item) {
			pending[item.index].size = 1
			pending[item.index].err <- item.err
			pending = append(pending[:item.index:item.index], pending[item.index+1:]...)
			continue
		}
		if err == nil {
			db.metrics.committed(start, len(pending))
			db.lmu.Lock()
			for _, f := range db.listeners {
				f()
			}
			db.lmu.Unlock()
		}
		for _, r := range pending {
			r.size = len(pending)
			r.err <- err
		}
		return
	}
}

// Scratch is shared by the writes of one group-commit transaction: a record
// decoded by one write (a tenant's counters) is reused by the next, and
// written back once, just before the commit, instead of once per write.
// It lives for one attempt of the transaction: when a write fails and the
// batch is run again, the new attempt starts with an empty scratch.
type Scratch struct {
	tx      *bolt.Tx
	values  map[any]any
	order   []any
	flushes map[any]func(*bolt.Tx) error
}

// Scratch returns the scratch of tx, the transaction an Update function is
// running in. It panics when called with any other transaction: that is a
// programming error (a View, or a transaction kept past its function).
func (db *DB) Scratch(tx *bolt.Tx) *Scratch {
	if db.scratch == nil || db.scratch.tx != tx {
		panic("boltdb: Scratch called outside the Update function of tx")
	}
	return db.scratch
}

// ScratchOf is Scratch for code that may also run in a transaction not
// started by Update (a test's, a migration's): false then.
func (db *DB) ScratchOf(tx *bolt.Tx) (*Scratch, bool) {
	if db.scratch == nil || db.scratch.tx != tx {
		return nil, false
	}
	return db.scratch, true
}

// Get returns the value stored under key in this transaction.
func (s *Scratch) Get(key any) (any, bool) {
	v, ok := s.values[key]
	return v, ok
}

// Set stores a value for the rest of this transaction.
func (s *Scratch) Set(key, v any) { s.values[key] = v }

// BeforeCommit runs f once, after every write of the transaction and before
// it commits, in the same transaction; registering the same key again keeps
// the first f. An error fails every write of the batch.
func (s *Scratch) BeforeCommit(key any, f func(*bolt.Tx) error) {
	if s.flushes == nil {
		s.flushes = map[any]func(*bolt.Tx) error{}
	}
	if _, ok := s.flushes[key]; ok {
		return
	}
	s.flushes[key] = f
	s.order = append(s.order, key)
}

func (s *Scratch) flush() error {
	for _, k := range s.order {
		if err := s.flushes[k](s.tx); err != nil {
			return err
		}
	}
	return nil
}

// runSafely turns a panic in one write into that write's error, so a bug in
// one request cannot take the committer, and every other writer, down.
func runSafely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("boltdb: write panicked: %v", p)
		}
	}()
	return fn(tx)
}

// Close stops accepting writes, finishes the queued ones and closes the file.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	close(db.reqs)
	db.mu.Unlock()
	<-db.done
	if db.metrics.size != nil {
		db.metrics.size.Unregister()
	}
	return db.bolt.Close()
}

// Bolt exposes the underlying handle for stats and backups.
func (db *DB) Bolt() *bolt.DB { return db.bolt }

// Path is the file's path.
func (db *DB) Path() string { return db.bolt.Path() }
