package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// BenchmarkPartitionedCacheMemory measures what one replica of five keeps
// of N ConfigMaps of 1 KiB: everything (a full cache) against the objects
// of its share, one shard of five, in a partitioned cache; the live heap
// after a GC per object of the whole set, and how long the shard's list
// took. -cache-objects sets N; run it with -benchtime 1x.
func BenchmarkPartitionedCacheMemory(b *testing.B) {
	n := *cacheBenchObjects
	ns := newNamespace(b)
	createLargeConfigMaps(b, ns, n)
	b.Run(fmt.Sprintf("full/objects=%d", n), func(b *testing.B) {
		for range b.N {
			b.ReportMetric(cachedBytesPerObject(b, ns, n, factorytest.ConfigMaps, engine.Options{}), "B/object")
		}
	})
	b.Run(fmt.Sprintf("one-shard-of-5/objects=%d", n), func(b *testing.B) {
		for range b.N {
			before := liveHeap()
			f := newFactory(b, ns, engine.Options{PartitionShards: 5})
			c := controller(b, f, factorytest.ConfigMaps)
			ctx, cancel := context.WithCancel(context.Background())
			factorytest.SyncCaches(b, ctx, f)
			began := time.Now()
			if err := engine.OpsOf(f).AddShards(ctx, []int{0}, nil); err != nil {
				b.Fatal(err)
			}
			listed := time.Since(began)
			after := liveHeap()
			cached := len(c.Informer().GetStore().ListKeys())
			runtime.KeepAlive(f)
			cancel()
			engine.OpsOf(f).Caches().Wait()
			b.ReportMetric(float64(after-before)/float64(n), "B/object")
			b.ReportMetric(float64(cached), "cached")
			b.ReportMetric(float64(listed.Milliseconds()), "ms-shard-list")
		}
	})
}
