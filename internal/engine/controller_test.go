package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

type seen struct {
	key string
	obj *corev1.ConfigMap // nil: deleted
}

func TestCreateUpdateDeleteReachHandlers(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	events := make(chan seen, 16)
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "record", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		cm, _ := obj.(*corev1.ConfigMap)
		events <- seen{key, cm}
		return nil, nil
	})
	run(t, f)

	ctx := t.Context()
	cs := adminClient(t).CoreV1().ConfigMaps(ns)
	createConfigMap(t, ns, "a", map[string]string{"v": "1"})
	got := receive(t, events, 10*time.Second, "create")
	if got.key != ns+"/a" || got.obj == nil || got.obj.Data["v"] != "1" {
		t.Fatalf("create: got %+v", got)
	}
	cm := got.obj.DeepCopy()
	cm.Data["v"] = "2"
	if _, err := cs.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got = receive(t, events, 10*time.Second, "update")
	if got.obj == nil || got.obj.Data["v"] != "2" {
		t.Fatalf("update: got %+v", got)
	}
	if err := cs.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got = receive(t, events, 10*time.Second, "delete")
	if got.key != ns+"/a" || got.obj != nil {
		t.Fatalf("delete: got key %q obj %v, want the key and nil", got.key, got.obj)
	}
}

func TestChainRunsInOrderAndHandsOverObjects(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	c := controller(t, f, factorytest.ConfigMaps)
	ctx := t.Context()
	type step struct {
		handler string
		rv      string
	}
	steps := make(chan step, 16)
	// The first handler writes and returns the server's answer; the second
	// must see that answer (new resourceVersion), not the cached copy.
	c.AddHandler(ctx, "first", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Labels["stamped"] == "yes" {
			return nil, nil
		}
		steps <- step{"first-in", cm.ResourceVersion}
		if cm.Labels == nil {
			cm.Labels = map[string]string{}
		}
		cm.Labels["stamped"] = "yes"
		out, err := adminClient(t).CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil {
			return nil, err
		}
		steps <- step{"first-out", out.ResourceVersion}
		return out, nil
	})
	c.AddHandler(ctx, "second", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			steps <- step{"second", cm.ResourceVersion}
		}
		return nil, nil
	})
	run(t, f)
	createConfigMap(t, ns, "chain", nil)

	in := receive(t, steps, 10*time.Second, "first handler")
	out := receive(t, steps, 10*time.Second, "first handler's write")
	second := receive(t, steps, 10*time.Second, "second handler")
	if in.handler != "first-in" || out.handler != "first-out" || second.handler != "second" {
		t.Fatalf("order: %v, %v, %v", in, out, second)
	}
	if second.rv != out.rv || second.rv == in.rv {
		t.Fatalf("second handler saw resourceVersion %s, want the first handler's answer %s (cache had %s)", second.rv, out.rv, in.rv)
	}
}

func TestErrorsRetryWithGrowingDelay(t *testing.T) {
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	f := newFactory(t, ns, engine.Options{Registerer: reg,
		RateLimit: engine.RateLimit{BaseDelay: 20 * time.Millisecond, MaxDelay: time.Minute, QPS: 1000, Burst: 1000}})
	calls := make(chan time.Time, 16)
	var n atomic.Int32
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "flaky", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		calls <- time.Now()
		if n.Add(1) <= 4 {
			return nil, errors.New("not yet")
		}
		return nil, nil
	})
	run(t, f)
	createConfigMap(t, ns, "flaky", nil)

	var at []time.Time
	for i := range 5 {
		at = append(at, receive(t, calls, 10*time.Second, fmt.Sprintf("call %d", i+1)))
	}
	// Backoff after failure i is 20ms·2^i: each gap is at least that.
	for i := 1; i < len(at); i++ {
		gap := at[i].Sub(at[i-1])
		want := 20 * time.Millisecond << (i - 1)
		if gap < want {
			t.Errorf("retry %d came %v after the failure, want at least %v", i, gap, want)
		}
	}
	if got := metricValue(t, reg, "workqueue_retries_total", "configmaps"); got < 4 {
		t.Errorf("workqueue_retries_total %v, want ≥ 4", got)
	}
	// Four reconciles failed, whichever keys they were of.
	if got := metricValue(t, reg, "controller_runtime_reconcile_errors_total", "configmaps"); got != 4 {
		t.Errorf("controller_runtime_reconcile_errors_total %v, want 4", got)
	}
	if got := metricValue(t, reg, "controller_runtime_reconcile_total", "configmaps", "error"); got != 4 {
		t.Errorf("controller_runtime_reconcile_total{result=error} %v, want 4", got)
	}
}

func TestRequeueAfterAndSkip(t *testing.T) {
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	f := newFactory(t, ns, engine.Options{Registerer: reg})
	type call struct {
		handler string
		at      time.Time
	}
	calls := make(chan call, 16)
	var polls atomic.Int32
	c := controller(t, f, factorytest.ConfigMaps)
	c.AddHandler(t.Context(), "poll", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if !strings.HasSuffix(key, "/poll") {
			return nil, nil
		}
		calls <- call{"poll", time.Now()}
		if polls.Add(1) == 1 {
			return nil, engine.RequeueAfter(300 * time.Millisecond)
		}
		return nil, nil
	})
	c.AddHandler(t.Context(), "skip", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if !strings.HasSuffix(key, "/skip") {
			return nil, nil
		}
		calls <- call{"skip", time.Now()}
		return nil, engine.ErrSkip
	})
	run(t, f)
	createConfigMap(t, ns, "poll", nil)
	first := receive(t, calls, 10*time.Second, "first poll")
	second := receive(t, calls, 10*time.Second, "requeued poll")
	if first.handler != "poll" || second.handler != "poll" {
		t.Fatalf("calls %v, %v", first, second)
	}
	if gap := second.at.Sub(first.at); gap < 300*time.Millisecond {
		t.Fatalf("requeued after %v, want ≥ 300ms", gap)
	}

	createConfigMap(t, ns, "skip", nil)
	if got := receive(t, calls, 10*time.Second, "skip"); got.handler != "skip" {
		t.Fatalf("got %v", got)
	}
	// A skipped key is not retried: a retry would come within the 10ms
	// base delay. Give it 50 times that, then check nothing arrived.
	select {
	case extra := <-calls:
		t.Fatalf("unexpected call after skip/requeue: %v", extra)
	case <-time.After(500 * time.Millisecond):
	}
	if got := metricValue(t, reg, "rein_handler_executions_total", "configmaps", "skip", "skip"); got != 1 {
		t.Errorf("skip results counted %v, want 1", got)
	}
	if got := metricValue(t, reg, "rein_handler_executions_total", "configmaps", "poll", "requeue"); got != 1 {
		t.Errorf("requeue results counted %v, want 1", got)
	}
	if got := metricValue(t, reg, "workqueue_retries_total", "configmaps"); got != 0 {
		t.Errorf("requeue-after and skip counted %v retries, want 0", got)
	}
	// One reconcile (chain run) asked for RequeueAfter: poll's first;
	// the skip's ended in success, as every other did.
	if got := metricValue(t, reg, "controller_runtime_reconcile_total", "configmaps", "requeue_after"); got != 1 {
		t.Errorf("controller_runtime_reconcile_total{result=requeue_after} %v, want 1", got)
	}
	if got := metricValue(t, reg, "controller_runtime_reconcile_total", "configmaps", "success"); got < 2 {
		t.Errorf("controller_runtime_reconcile_total{result=success} %v, want ≥ 2 (the requeued poll, the skip)", got)
	}
	if got := metricValue(t, reg, "controller_runtime_reconcile_errors_total", "configmaps"); got != 0 {
		t.Errorf("controller_runtime_reconcile_errors_total %v, want 0", got)
	}
}

func TestPanickingHandlerIsRetriedAndProcessSurvives(t *testing.T) {
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	f := newFactory(t, ns, engine.Options{Registerer: reg})
	done := make(chan string, 1)
	var n atomic.Int32
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "boom", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if obj == nil {
			return nil, nil
		}
		if n.Add(1) == 1 {
			var none []string
			_ = none[len(key)] // index out of range: a real runtime panic
		}
		done <- key
		return nil, nil
	})
	run(t, f)
	createConfigMap(t, ns, "boom", nil)
	if key := receive(t, done, 10*time.Second, "retry after panic"); key != ns+"/boom" {
		t.Fatalf("key %q", key)
	}
	if got := metricValue(t, reg, "rein_handler_executions_total", "configmaps", "boom", "panic"); got != 1 {
		t.Errorf("panics counted %v, want 1", got)
	}
	if got := metricValue(t, reg, "controller_runtime_reconcile_panics_total", "configmaps"); got != 1 {
		t.Errorf("controller_runtime_reconcile_panics_total %v, want 1", got)
	}
	// A panic is a failed reconcile too, as in controller-runtime.
	if got := metricValue(t, reg, "controller_runtime_reconcile_errors_total", "configmaps"); got != 1 {
		t.Errorf("controller_runtime_reconcile_errors_total %v, want 1", got)
	}
}

func TestHandlerUnregisteredWhenContextEnds(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	c := controller(t, f, factorytest.ConfigMaps)
	hctx, unregister := context.WithCancel(t.Context())
	var removedCalls atomic.Int32
	c.AddHandler(hctx, "removed", func(context.Context, string, runtime.Object) (runtime.Object, error) {
		removedCalls.Add(1)
		return nil, nil
	})
	keys := make(chan string, 4)
	c.AddHandler(t.Context(), "kept", func(ctx context.Context, key string, _ runtime.Object) (runtime.Object, error) {
		keys <- key
		return nil, nil
	})
	run(t, f)
	unregister()
	// Unregistering runs on context.AfterFunc's goroutine: await its effect.
	eventually(t, 5*time.Second, "handler removal", func() bool {
		names := c.HandlerNames()
		return len(names) == 1 && names[0] == "kept"
	})
	createConfigMap(t, ns, "after", nil)
	if key := receive(t, keys, 10*time.Second, "kept handler"); key != ns+"/after" {
		t.Fatalf("kept handler got %q", key)
	}
	if n := removedCalls.Load(); n != 0 {
		t.Fatalf("removed handler ran %d times", n)
	}
}

// TestCachesFillQueueWithoutWorkers is the split the election rests on:
// every key is queued on a synced cache, and not one handler runs before
// StartWorkers.
func TestCachesFillQueueWithoutWorkers(t *testing.T) {
	ns := newNamespace(t)
	const objects = 40
	for i := range objects {
		createConfigMap(t, ns, fmt.Sprintf("cm-%02d", i), nil)
	}
	f := newFactory(t, ns, engine.Options{Workers: 4})
	c := controller(t, f, factorytest.ConfigMaps)
	var calls atomic.Int32
	processed := make(chan string, objects)
	c.AddHandler(t.Context(), "count", func(ctx context.Context, key string, _ runtime.Object) (runtime.Object, error) {
		calls.Add(1)
		processed <- key
		return nil, nil
	})
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	factorytest.SyncCaches(t, ctx, f)
	// WaitForCacheSync returns once the controller has every initial object.
	if got := c.QueueLen(); got != objects {
		t.Fatalf("queue holds %d keys after WaitForCacheSync, want %d", got, objects)
	}
	// A change while standing by only deduplicates into the queue.
	cs := adminClient(t).CoreV1().ConfigMaps(ns)
	cm, err := cs.Get(ctx, "cm-00", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"changed": "yes"}
	if _, err := cs.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	createConfigMap(t, ns, "late", nil)
	eventually(t, 5*time.Second, "the new key", func() bool { return c.QueueLen() == objects+1 })
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d handler runs before StartWorkers", n)
	}

	w, err := engine.OpsOf(f).StartWorkers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range objects + 1 {
		got[receive(t, processed, 10*time.Second, "queued keys")] = true
	}
	if len(got) != objects+1 || !got[ns+"/late"] || !got[ns+"/cm-00"] {
		t.Fatalf("processed %d distinct keys, want %d", len(got), objects+1)
	}
	stop()
	if err := w.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestStopWorkersDrainsAndKeepsQueue: when the workers' context ends,
// running handlers finish, no new key is taken, and the queue keeps its
// keys for the next StartWorkers.
func TestStopWorkersDrainsAndKeepsQueue(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{Workers: 1})
	c := controller(t, f, factorytest.ConfigMaps)
	started := make(chan string, 8)
	release := make(chan struct{})
	var finished atomic.Int32
	c.AddHandler(t.Context(), "slow", func(ctx context.Context, key string, _ runtime.Object) (runtime.Object, error) {
		started <- key
		if strings.HasSuffix(key, "/slow") {
			<-release
		}
		finished.Add(1)
		return nil, nil
	})
	cacheCtx, stopCaches := context.WithCancel(t.Context())
	defer stopCaches()
	factorytest.SyncCaches(t, cacheCtx, f)
	workCtx, stopWork := context.WithCancel(t.Context())
	w, err := engine.OpsOf(f).StartWorkers(workCtx)
	if err != nil {
		t.Fatal(err)
	}
	createConfigMap(t, ns, "slow", nil)
	receive(t, started, 10*time.Second, "slow handler")

	stopWork() // leadership ends while a handler runs
	c.Enqueue(ns + "/queued-after-stop")
	if err := w.Wait(200 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "configmaps (1 keys)") {
		t.Fatalf("Wait with a handler still running: %v, want an error naming configmaps", err)
	}
	close(release)
	if err := w.Wait(5 * time.Second); err != nil {
		t.Fatalf("Wait after the handler returned: %v", err)
	}
	if finished.Load() != 1 {
		t.Fatalf("finished %d handlers, want the one in flight", finished.Load())
	}
	select {
	case key := <-started:
		t.Fatalf("worker took %s after its context ended", key)
	default:
	}
	if c.QueueLen() != 1 {
		t.Fatalf("queue holds %d keys after the stop, want 1", c.QueueLen())
	}

	w2, err := engine.OpsOf(f).StartWorkers(cacheCtx)
	if err != nil {
		t.Fatal(err)
	}
	if key := receive(t, started, 10*time.Second, "key kept across terms"); key != ns+"/queued-after-stop" {
		t.Fatalf("next term processed %q", key)
	}
	stopCaches()
	if err := w2.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCacheSyncTimeoutNamesTheKind(t *testing.T) {
	f := newFactory(t, "", engine.Options{SyncTimeout: 2 * time.Second})
	controller(t, f, factorytest.Gadgets) // registered in the scheme; no CRD is installed
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := engine.OpsOf(f).StartCaches(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := engine.OpsOf(f).WaitForCacheSync(ctx)
	var syncErr *engine.SyncError
	if !errors.As(err, &syncErr) {
		t.Fatalf("WaitForCacheSync: %v, want a *SyncError", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("WaitForCacheSync gave up after %v, want about the 2s timeout", took)
	}
	msg := err.Error()
	if !strings.Contains(msg, "gadgets.test.rein.dev") || !strings.Contains(msg, "Gadget") {
		t.Fatalf("error does not name the kind: %s", msg)
	}
	if !strings.Contains(msg, "could not find the requested resource") {
		t.Fatalf("error does not carry the apiserver's answer: %s", msg)
	}
}

func TestRegistrationMistakesFailStartCaches(t *testing.T) {
	f := newFactory(t, "", engine.Options{})
	err := controller(t, f, factorytest.ConfigMaps).AddRemoveHandler(t.Context(), "Not A Valid Name!", func(context.Context, string, runtime.Object) (runtime.Object, error) { return nil, nil })
	if err == nil || !strings.Contains(err.Error(), "Not A Valid Name!") {
		t.Fatalf("invalid finalizer name: %v", err)
	}
	if _, err := engine.OpsOf(f).Controller(engine.Resource{GVK: corev1.SchemeGroupVersion.WithKind("Nope"), Plural: "nopes"}); err == nil ||
		!strings.Contains(err.Error(), "not registered in the scheme") {
		t.Fatalf("unknown kind: %v", err)
	}
	engine.OpsOf(f).SetupError(errors.New("handler x: bad"))
	if err := engine.OpsOf(f).StartCaches(t.Context()); err == nil || !strings.Contains(err.Error(), "handler x: bad") {
		t.Fatalf("StartCaches with a recorded mistake: %v", err)
	}
}

func TestControllerRegisteredAfterStartGetsEveryKey(t *testing.T) {
	ns := newNamespace(t)
	for i := range 5 {
		createConfigMap(t, ns, fmt.Sprintf("pre-%d", i), nil)
	}
	f := newFactory(t, ns, engine.Options{})
	// Only the cache is used at first, as a standby's index would.
	if _, err := engine.OpsOf(f).Caches().ForResource(factorytest.ConfigMaps); err != nil {
		t.Fatal(err)
	}
	run(t, f)
	keys := make(chan string, 8)
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "late", func(ctx context.Context, key string, _ runtime.Object) (runtime.Object, error) {
		select {
		case keys <- key:
		case <-ctx.Done():
		}
		return nil, nil
	})
	// Every key comes; a key may come twice (an informer event can queue
	// it again after it ran), so count distinct keys until all five came.
	got := map[string]bool{}
	for len(got) < 5 {
		got[receive(t, keys, 10*time.Second, fmt.Sprintf("existing keys (saw %v)", got))] = true
	}
	for i := range 5 {
		if key := ns + "/" + fmt.Sprintf("pre-%d", i); !got[key] {
			t.Fatalf("late controller saw %v, not %s", got, key)
		}
	}
}

func TestFallbackHoldRefusesWrites(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	fenced := errors.New("fenced: not the leader")
	var closed atomic.Bool
	var deadline atomic.Pointer[time.Time]
	deadline.Store(&time.Time{})
	engine.OpsOf(f).GuardWrites(holdFunc(func() (time.Time, error) {
		if closed.Load() {
			return time.Time{}, fenced
		}
		return *deadline.Load(), nil
	}))
	client := controller(t, f, factorytest.ConfigMaps).Client()
	ctx := t.Context()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "guarded"}}
	if err := client.Create(ctx, ns, cm, metav1.CreateOptions{}, &corev1.ConfigMap{}); err != nil {
		t.Fatalf("write with the guard open: %v", err)
	}
	closed.Store(true)
	err := client.Create(ctx, ns, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "refused"}}, metav1.CreateOptions{}, &corev1.ConfigMap{})
	if !errors.Is(err, fenced) {
		t.Fatalf("write with the guard closed: %v, want the guard's error", err)
	}
	// So are clients built from the factory's rest.Config (an event
	// recorder's, say).
	other := kubernetes.NewForConfigOrDie(engine.OpsOf(f).Clients().RESTConfig())
	if _, err := other.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e"}}, metav1.CreateOptions{}); !errors.Is(err, fenced) {
		t.Fatalf("write through RESTConfig with the guard closed: %v, want the guard's error", err)
	}
	// Reads pass.
	if err := client.Get(ctx, ns, "guarded", metav1.GetOptions{}, &corev1.ConfigMap{}); err != nil {
		t.Fatalf("read with the guard closed: %v", err)
	}
	if _, err := adminClient(t).CoreV1().ConfigMaps(ns).Get(ctx, "refused", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the refused object exists: %v", err)
	}
	// The guard's deadline bounds the request: one that has passed ends it
	// before it is sent.
	closed.Store(false)
	past := time.Now().Add(-time.Millisecond)
	deadline.Store(&past)
	err = client.Create(ctx, ns, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}, &corev1.ConfigMap{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write past the guard's deadline: %v, want context.DeadlineExceeded", err)
	}
	deadline.Store(&time.Time{})

	// The default field manager names writes that name none.
	engine.OpsOf(f).SetFieldManager("rein/lease/replica-1")
	admin := kubernetes.NewForConfigOrDie(env.Config())
	for name, want := range map[string]string{"managed": "rein/lease/replica-1", "own-manager": "mine"} {
		opts := metav1.CreateOptions{}
		if name == "own-manager" {
			opts.FieldManager = "mine"
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}
		if err := client.Create(ctx, ns, cm, opts, &corev1.ConfigMap{}); err != nil {
			t.Fatal(err)
		}
		got, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.ManagedFields) != 1 || got.ManagedFields[0].Manager != want {
			t.Fatalf("%s: managed fields %+v, want the manager %s", name, got.ManagedFields, want)
		}
	}
}

func TestWidgetCustomResource(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{})
	c := controller(t, f, factorytest.Widgets)
	observed := make(chan int, 4)
	c.AddHandler(t.Context(), "status", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		w, ok := obj.(*testapi.Widget)
		if !ok || w.Status.ObservedSize == w.Spec.Size {
			return nil, nil
		}
		w.Status.ObservedSize = w.Spec.Size
		out := &testapi.Widget{}
		if err := c.Client().Update(context.Background(), w.Namespace, w.Name, "status", w, metav1.UpdateOptions{}, out); err != nil {
			return nil, err
		}
		observed <- out.Status.ObservedSize
		return out, nil
	})
	run(t, f)
	w := &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: "w"}, Spec: testapi.WidgetSpec{Size: 7}}
	if err := c.Client().Create(t.Context(), ns, w, metav1.CreateOptions{}, &testapi.Widget{}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, observed, 10*time.Second, "status update"); got != 7 {
		t.Fatalf("observedSize %d, want 7", got)
	}
}

// metricValue is the value of the counter or gauge name whose label values
// include all of labels (0 when there is none).
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			have := map[string]bool{}
			for _, l := range m.GetLabel() {
				have[l.GetValue()] = true
			}
			matches := true
			for _, want := range labels {
				matches = matches && have[want]
			}
			if matches {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// TestTwoFactoriesShareARegistry: metrics of two factories on one registry
// do not collide; cached objects are summed per kind.
func TestTwoFactoriesShareARegistry(t *testing.T) {
	ns := newNamespace(t)
	for i := range 3 {
		createConfigMap(t, ns, fmt.Sprintf("m-%d", i), nil)
	}
	reg := prometheus.NewRegistry()
	for range 2 {
		f := newFactory(t, ns, engine.Options{Registerer: reg})
		controller(t, f, factorytest.ConfigMaps)
		ctx, cancel := context.WithCancel(t.Context())
		t.Cleanup(func() { cancel(); engine.OpsOf(f).Caches().Wait() })
		factorytest.SyncCaches(t, ctx, f)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	if got := metricValue(t, reg, "rein_cache_objects", "ConfigMap"); got != 6 {
		t.Fatalf("rein_cache_objects{kind=ConfigMap} = %v, want 3 objects × 2 factories", got)
	}
	// The initial list is no change: every key of both factories waits
	// at low priority (controller-runtime's -100).
	if low, high := metricValue(t, reg, "workqueue_depth", "configmaps", "-100"), metricValue(t, reg, "workqueue_depth", "configmaps", "0"); low != 6 || high != 0 {
		t.Fatalf("workqueue_depth{controller=configmaps} low (-100), high (0) = %v, %v; want 6, 0", low, high)
	}
	// Both factories' workers, as two controller-runtime controllers
	// of one name would add up.
	if got := metricValue(t, reg, "controller_runtime_max_concurrent_reconciles", "configmaps"); got != 2*engine.DefaultWorkers {
		t.Fatalf("controller_runtime_max_concurrent_reconciles = %v, want %d (2 factories × the default)", got, 2*engine.DefaultWorkers)
	}
}

// TestRateLimitPerKind: a kind's own retry pacing overrides the factory's.
func TestRateLimitPerKind(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{
		RateLimit:        engine.RateLimit{BaseDelay: 7 * time.Millisecond},
		RateLimitPerKind: map[schema.GroupVersionKind]engine.RateLimit{factorytest.ConfigMaps.GVK: {BaseDelay: time.Second, QPS: 5}},
	})
	if rl := controller(t, f, factorytest.ConfigMaps).RateLimit(); rl.BaseDelay != time.Second || rl.QPS != 5 || rl.Burst == 0 {
		t.Fatalf("ConfigMaps' rate limit %+v, want its own (1s, 5 QPS) with defaults filled in", rl)
	}
	if rl := controller(t, f, factorytest.Widgets).RateLimit(); rl.BaseDelay != 7*time.Millisecond {
		t.Fatalf("Widgets' rate limit %+v, want the factory's (7ms)", rl)
	}
}
