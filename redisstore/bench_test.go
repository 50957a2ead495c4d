package redisstore_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/redisstore"
)

// Round trips against a real redis-server on loopback: one call per op (sealing and JSON included),
// serial and with parallel callers (-cpu sets how many). ops/s is reported.

func benchStore(b *testing.B) *redisstore.Store {
	b.Helper()
	return openStore(b, startRedis(b), redisstore.Options{})
}

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkRedisSessionLoad(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	if err := st.Sessions().Save(ctx, "k", newTokenSet(time.Now())); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Sessions().Load(ctx, "k"); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}

func BenchmarkRedisSessionSave(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	ts := newTokenSet(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if err := st.Sessions().Save(ctx, "k", ts); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}

// BenchmarkRedisStateSaveTake is one authorization request's state: a Save and a Take (two round trips).
func BenchmarkRedisStateSaveTake(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	rec := newRecord(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if err := st.States().Save(ctx, "s", rec); err != nil {
			b.Fatal(err)
		}
		if _, err := st.States().Take(ctx, "s"); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}

func BenchmarkRedisTokenLoad(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	if err := st.Tokens().Store(ctx, "t", newToken(secretAT, "", time.Now().Add(time.Hour))); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if tok, err := st.Tokens().Load(ctx, "t"); err != nil || tok == nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}

// BenchmarkRedisLockUnlock is an uncontended lock and its release (two script calls).
func BenchmarkRedisLockUnlock(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		unlock, err := st.Lock(ctx, "l", time.Second)
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
	reportOps(b)
}

// BenchmarkRedisSessionLoadParallel is many requests of many users loading their sessions at once.
func BenchmarkRedisSessionLoadParallel(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	const users = 64
	for i := range users {
		if err := st.Sessions().Save(ctx, "k"+strconv.Itoa(i), newTokenSet(time.Now())); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.Sessions().Load(ctx, "k"+strconv.Itoa(int(n.Add(1)%users))); err != nil {
				b.Fatal(err)
			}
		}
	})
	reportOps(b)
}
