package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// TestChangeOvertakesInitialPass: a leader starts with every cached key
// queued at low priority; a ConfigMap changed while one worker works
// through them is handled next, not at the end of the pass.
func TestChangeOvertakesInitialPass(t *testing.T) {
	const (
		objects = 2000
		// The change must be handled before this many keys of the pass
		// after it; the pass would reach it only after about objects.
		within = 200
	)
	ns := newNamespace(t)
	createConfigMaps(t, ns, objects)
	reg := prometheus.NewRegistry()
	f := newFactory(t, ns, engine.Options{Workers: 1, Registerer: reg})
	c := controller(t, f, factorytest.ConfigMaps)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(func() { cancel(); engine.OpsOf(f).Caches().Wait() })

	// The queue holds the keys in the order of the initial list, which
	// every event handler of the informer sees alike: the last of them
	// is the pass's last key, the change to test.
	var initial []string
	recorder, err := c.Informer().AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, isInInitialList bool) {
			if isInInitialList {
				key, _ := cache.MetaNamespaceKeyFunc(obj)
				initial = append(initial, key) // one goroutine per handler
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var target string // set before any worker starts

	var mu sync.Mutex
	handled := 0    // handler calls so far
	changedAt := -1 // handled when the change was written
	targetAt := -1  // handled when the changed target ran
	began := make(chan struct{})
	targetRan := make(chan struct{})
	c.AddHandler(ctx, "record", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		time.Sleep(time.Millisecond) // the work of a handler
		mu.Lock()
		defer mu.Unlock()
		handled++
		if handled == 50 {
			close(began)
		}
		if key == target {
			if cm, _ := obj.(*corev1.ConfigMap); changedAt < 0 || cm == nil || cm.Data["changed"] != "yes" {
				t.Errorf("the pass reached %s unchanged after %d keys: the change comes too late to test", key, handled)
			} else if targetAt < 0 {
				targetAt = handled
				close(targetRan)
			}
		}
		return nil, nil
	})
	factorytest.SyncCaches(t, ctx, f)
	if !cache.WaitForCacheSync(ctx.Done(), recorder.HasSynced) || len(initial) != objects {
		t.Fatalf("recorded %d keys of the initial list, want %d", len(initial), objects)
	}
	target = initial[objects-1]
	if got := metricValue(t, reg, "workqueue_depth", "configmaps", "-100"); got != objects {
		t.Fatalf("workqueue_depth{priority=-100} = %v after sync, want %d: the initial list is low", got, objects)
	}
	if got := metricValue(t, reg, "workqueue_depth", "configmaps", "0"); got != 0 {
		t.Fatalf("workqueue_depth{priority=0} = %v after sync, want 0", got)
	}
	w, err := engine.OpsOf(f).StartWorkers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := w.Wait(10 * time.Second); err != nil {
			t.Error(err)
		}
	})

	receive(t, began, 30*time.Second, "the pass to begin")
	cs := adminClient(t).CoreV1().ConfigMaps(ns)
	_, name, _ := cache.SplitMetaNamespaceKey(target)
	cm, err := cs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["changed"] = "yes"
	// Count from before the write: its event may be handled before
	// Update returns.
	mu.Lock()
	changedAt = handled
	mu.Unlock()
	if _, err := cs.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	receive(t, targetRan, 30*time.Second, "the changed ConfigMap to be handled")
	mu.Lock()
	defer mu.Unlock()
	after := targetAt - changedAt - 1
	if after >= within {
		t.Fatalf("the change was handled after %d keys of the pass, want fewer than %d", after, within)
	}
	t.Logf("the change was handled after %d keys of the pass (%d of %d handled)", after, targetAt, objects)
}
