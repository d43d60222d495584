package engine_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/generic"
)

var (
	cacheBenchObjects     = flag.Int("cache-objects", 5000, "BenchmarkCacheMemory: ConfigMaps of 1 KiB data to cache")
	cacheBenchHeapProfile = flag.String("cache-heapprofile", "", "BenchmarkCacheMemory: write a heap profile of each case, synced, to this file prefix (run with -test.memprofilerate=4096 or lower for detail)")
)

// BenchmarkCacheMemory measures what a standby replica keeps per object:
// N ConfigMaps with 1 KiB of data and one annotation, one controller, its
// cache synced and every key queued; then the live heap after a GC,
// divided by N, for each way of caching them. Run it with -benchmem off
// and one iteration (-benchtime 1x); -cache-objects sets N. The peak RSS
// of a process is about twice this figure (Go's GC lets the heap grow to
// twice the live heap by default), plus the runtime's own.
func BenchmarkCacheMemory(b *testing.B) {
	n := *cacheBenchObjects
	ns := newNamespace(b)
	createLargeConfigMaps(b, ns, n)
	dropData := func(obj any) (any, error) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			cm.Data = nil
		}
		return obj, nil
	}
	for _, c := range []struct {
		name string
		res  engine.Resource
		opts engine.Options
	}{
		{"typed", factorytest.ConfigMaps, engine.Options{}},
		{"typed+managedFields", factorytest.ConfigMaps, engine.Options{KeepManagedFields: true}},
		{"typed+drop-data", factorytest.ConfigMaps, engine.Options{CachePerKind: map[schema.GroupVersionKind]engine.KindCache{factorytest.ConfigMaps.GVK: {Transform: dropData}}}},
		{"metadata", func() generic.Resource { r := factorytest.ConfigMaps; r.Form = engine.Metadata; return r }(), engine.Options{}},
	} {
		b.Run(fmt.Sprintf("%s/objects=%d", c.name, n), func(b *testing.B) {
			for range b.N {
				b.ReportMetric(cachedBytesPerObject(b, ns, n, c.res, c.opts), "B/object")
			}
		})
	}
}

// cachedBytesPerObject syncs one factory's cache of res and returns the
// live heap it added, per object.
func cachedBytesPerObject(b *testing.B, ns string, n int, res engine.Resource, opts engine.Options) float64 {
	before := liveHeap()
	f := newFactory(b, ns, opts)
	c := controller(b, f, res)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); engine.OpsOf(f).Caches().Wait() }()
	factorytest.SyncCaches(b, ctx, f)
	if got := c.QueueLen(); got != n {
		b.Fatalf("%d keys queued, want %d", got, n)
	}
	after := liveHeap()
	if *cacheBenchHeapProfile != "" {
		writeHeapProfile(b, *cacheBenchHeapProfile+strings.NewReplacer("/", "_", "+", "_").Replace(b.Name())+".pprof")
	}
	runtime.KeepAlive(f)
	return float64(after-before) / float64(n)
}

func writeHeapProfile(b *testing.B, path string) {
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if err := pprof.WriteHeapProfile(out); err != nil {
		b.Fatal(err)
	}
}

// liveHeap is the heap in use after two GCs (the second frees what the
// first's finalizers released).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// createLargeConfigMaps creates n ConfigMaps with 1 KiB of data each, and
// an annotation, as the bench's scale scenario has after marking.
func createLargeConfigMaps(b *testing.B, ns string, n int) {
	cs := adminClient(b).CoreV1().ConfigMaps(ns)
	data := strings.Repeat("0123456789abcdef", 64)
	err := forEach(n, 16, func(i int) error {
		_, err := cs.Create(context.Background(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%06d", i), Annotations: map[string]string{"bench.rein.dev/marked": "1"}},
			// Each object's data differs, as in a cluster (no shared
			// strings to flatter the figure).
			Data: map[string]string{"payload": fmt.Sprintf("%06d", i) + data[6:]},
		}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}
