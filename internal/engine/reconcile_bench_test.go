package engine_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// BenchmarkReconcile measures the engine end to end against the real
// apiserver: N pre-existing ConfigMaps, caches synced and every key queued
// (a standby's state), then StartWorkers, and the time until the handler has
// written one annotation on every object. Reported as objects/s.
func BenchmarkReconcile(b *testing.B) {
	const objects = 5000
	ns := newNamespace(b)
	createConfigMaps(b, ns, objects)

	for _, workers := range []int{5, 20} {
		b.Run(fmt.Sprintf("objects=%d/workers=%d", objects, workers), func(b *testing.B) {
			var total time.Duration
			for round := range b.N {
				// The testing package calls this function more than once
				// (b.N = 1 first): every round needs a marker of its own.
				total += reconcileRound(b, ns, objects, workers, fmt.Sprintf("%d-%d-%d", workers, round, time.Now().UnixNano()))
			}
			b.ReportMetric(float64(objects*b.N)/total.Seconds(), "objects/s")
		})
	}
}

// reconcileRound runs one factory over the namespace until the handler has
// written marker on every object, and returns the time from StartWorkers.
func reconcileRound(b *testing.B, ns string, objects, workers int, marker string) time.Duration {
	b.StopTimer()
	f := newFactory(b, ns, engine.Options{Workers: workers})
	c := controller(b, f, factorytest.ConfigMaps)
	patch := []byte(`{"metadata":{"annotations":{"bench/round":"` + marker + `"}}}`)
	var written atomic.Int32
	allWritten := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.AddHandler(ctx, "annotate", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Annotations["bench/round"] == marker {
			return nil, nil
		}
		out := &corev1.ConfigMap{}
		if err := c.Client().Patch(ctx, cm.Namespace, cm.Name, types.MergePatchType, patch, metav1.PatchOptions{}, out); err != nil {
			return nil, err
		}
		if written.Add(1) == int32(objects) {
			close(allWritten)
		}
		return out, nil
	})
	factorytest.SyncCaches(b, ctx, f)
	if got := c.QueueLen(); got != objects {
		b.Fatalf("queue holds %d keys, want %d", got, objects)
	}
	b.StartTimer()
	start := time.Now()
	w, err := engine.OpsOf(f).StartWorkers(ctx)
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-allWritten:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d objects written after 5m", written.Load(), objects)
	}
	took := time.Since(start)
	b.StopTimer()
	cancel()
	if err := w.Wait(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	engine.OpsOf(f).Caches().Wait()
	return took
}

// createConfigMaps creates bench-1 … bench-n in ns.
func createConfigMaps(tb testing.TB, ns string, n int) {
	tb.Helper()
	cs := adminClient(tb).CoreV1().ConfigMaps(ns)
	err := forEach(n, 16, func(i int) error {
		_, err := cs.Create(context.Background(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "bench-" + strconv.Itoa(i+1)},
			Data:       map[string]string{"i": strconv.Itoa(i + 1)},
		}, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// forEach calls fn with 0..n-1 from parallel goroutines, and returns the
// first error (the goroutine that met it stops).
func forEach(n, parallel int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	next := atomic.Int32{}
	for range parallel {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
