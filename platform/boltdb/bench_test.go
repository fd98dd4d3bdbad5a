package boltdb_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
)

// The two benchmarks run the same load, about 50 concurrent durable writers
// of one key each, with and without group commit; read the ratio of their
// ns/op (or writes/s) from one run:
//
//	go test -run XXX -bench . -benchtime 2000x rapport.dev/platform/boltdb

var benchBucket = []byte("bench")

const benchWriters = 50

func setParallelism(b *testing.B) {
	b.SetParallelism(max(1, benchWriters/runtime.GOMAXPROCS(0)))
}

func BenchmarkUpdateParallel(b *testing.B) {
	db := boltdb.OpenTemp(b, boltdb.Options{Buckets: [][]byte{benchBucket}})
	var commits atomic.Int64
	db.OnCommit(func() { commits.Add(1) })
	var seq atomic.Uint64
	setParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			k := boltdb.U64(seq.Add(1))
			if err := db.Update(ctx, func(tx *bolt.Tx) error {
				return tx.Bucket(benchBucket).Put(k, k)
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64(b.N)/float64(max(1, commits.Load())), "writes/tx")
}

func BenchmarkBoltUpdateBaseline(b *testing.B) {
	db := boltdb.OpenTemp(b, boltdb.Options{Buckets: [][]byte{benchBucket}})
	var seq atomic.Uint64
	setParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := boltdb.U64(seq.Add(1))
			// One bbolt transaction, so one fsync, per write.
			if err := db.Bolt().Update(func(tx *bolt.Tx) error {
				return tx.Bucket(benchBucket).Put(k, k)
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}
