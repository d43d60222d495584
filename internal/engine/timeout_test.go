package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// perKey counts the calls of a handler running at once on each key, and
// remembers whether one key ever ran twice at once.
type perKey struct {
	running sync.Map // key → *atomic.Int32
	overlap atomic.Bool
}

func (p *perKey) enter(key string) (leave func()) {
	n, _ := p.running.LoadOrStore(key, new(atomic.Int32))
	if n.(*atomic.Int32).Add(1) > 1 {
		p.overlap.Store(true)
	}
	return func() { n.(*atomic.Int32).Add(-1) }
}

// TestReconcileTimeoutLeavesHungHandler: a handler that ignores its
// context past the reconcile timeout is left running; the only worker
// takes other keys meanwhile, the hung key is not handed out again until
// its call returns, and then it is retried; the timeout is counted.
func TestReconcileTimeoutLeavesHungHandler(t *testing.T) {
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	f := newFactory(t, ns, engine.Options{Registerer: reg, Workers: 1, ReconcileTimeout: 200 * time.Millisecond})
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	var keys perKey
	var hungCalls atomic.Int32
	calls := make(chan string, 16)
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "hang", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		defer keys.enter(key)()
		nth := int32(0)
		if strings.HasSuffix(key, "/hung") {
			nth = hungCalls.Add(1) // counted before the test hears of the call
		}
		calls <- key
		if nth == 1 {
			<-release // deaf to ctx: only the test ends it
		}
		return nil, nil
	})
	run(t, f)
	t.Cleanup(unblock) // before run's cleanup waits for the workers

	createConfigMap(t, ns, "hung", nil)
	if got := receive(t, calls, 10*time.Second, "first call of hung"); got != ns+"/hung" {
		t.Fatalf("first call on %s", got)
	}
	// One worker: the other key runs only if the worker left the hung call.
	createConfigMap(t, ns, "other", nil)
	if got := receive(t, calls, 10*time.Second, "other key while hung is blocked"); got != ns+"/other" {
		t.Fatalf("call on %s, want %s/other", got, ns)
	}
	if got := metricValue(t, reg, "rein_handler_executions_total", "configmaps", "hang", "timeout"); got != 1 {
		t.Errorf("timeouts counted %v, want 1", got)
	}
	if got := metricValue(t, reg, "workqueue_retries_total", "configmaps"); got < 1 {
		t.Errorf("workqueue_retries_total %v, want ≥ 1", got)
	}
	if got := metricValue(t, reg, "controller_runtime_reconcile_timeouts_total", "configmaps"); got != 1 {
		t.Errorf("controller_runtime_reconcile_timeouts_total %v, want 1", got)
	}
	// An event for the hung key while its call runs must not hand it out:
	// its retry (10ms backoff) or the event would come within the window.
	hung, err := adminClient(t).CoreV1().ConfigMaps(ns).Get(t.Context(), "hung", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hung.Data = map[string]string{"poke": "1"}
	if _, err := adminClient(t).CoreV1().ConfigMaps(ns).Update(t.Context(), hung, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case key := <-calls:
		t.Fatalf("call on %s while the hung call still runs", key)
	case <-time.After(500 * time.Millisecond):
	}

	unblock()
	if got := receive(t, calls, 10*time.Second, "retry of hung after its call returned"); got != ns+"/hung" {
		t.Fatalf("call on %s, want the retry of hung", got)
	}
	if hungCalls.Load() != 2 {
		t.Errorf("hung called %d times, want 2", hungCalls.Load())
	}
	if keys.overlap.Load() {
		t.Error("a key ran twice at once")
	}
}

// TestReconcileTimeoutEndsHandlerContext: a kind's own timeout overrides
// the default; a handler that respects its context sees the deadline and
// context.DeadlineExceeded, and its key is retried.
func TestReconcileTimeoutEndsHandlerContext(t *testing.T) {
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	f := newFactory(t, ns, engine.Options{
		Registerer:              reg,
		ReconcileTimeout:        time.Hour,
		ReconcileTimeoutPerKind: map[schema.GroupVersionKind]time.Duration{factorytest.ConfigMaps.GVK: 300 * time.Millisecond},
	})
	type seen struct {
		budget time.Duration // deadline - start; 0: none
		err    error
	}
	seenCh := make(chan seen, 4)
	var n atomic.Int32
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "polite", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if !strings.HasSuffix(key, "/polite") {
			return nil, nil
		}
		var s seen
		if d, ok := ctx.Deadline(); ok {
			s.budget = time.Until(d)
		}
		if n.Add(1) == 1 {
			<-ctx.Done()
			s.err = ctx.Err()
			seenCh <- s
			return nil, ctx.Err()
		}
		seenCh <- s
		return nil, nil
	})
	run(t, f)
	createConfigMap(t, ns, "polite", nil)

	first := receive(t, seenCh, 10*time.Second, "first call's end")
	if !errors.Is(first.err, context.DeadlineExceeded) {
		t.Errorf("ctx.Err() = %v, want context.DeadlineExceeded", first.err)
	}
	if first.budget <= 0 || first.budget > 300*time.Millisecond {
		t.Errorf("deadline %v away, want within the kind's 300ms", first.budget)
	}
	receive(t, seenCh, 10*time.Second, "retry")
	if got := metricValue(t, reg, "rein_handler_executions_total", "configmaps", "polite", "timeout"); got != 1 {
		t.Errorf("timeouts counted %v, want 1", got)
	}
}

// TestWaitWaitsForCallLeftRunning: a call left past its timeout belongs to
// its generation of workers: Wait names it while it runs and returns once
// it has; the key's gate hold lasts until then too.
func TestWaitWaitsForCallLeftRunning(t *testing.T) {
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	f := newFactory(t, ns, engine.Options{Registerer: reg, Workers: 1, ReconcileTimeout: 100 * time.Millisecond})
	gate := &prefixGate{admit: []string{"stuck"}}
	engine.OpsOf(f).GateKeys(gate)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	started := make(chan struct{}, 1)
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "hang", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		started <- struct{}{}
		<-release
		return nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		engine.OpsOf(f).Caches().Wait()
	}()
	w, err := factorytest.Start(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	createConfigMap(t, ns, "stuck", nil)
	receive(t, started, 10*time.Second, "the call")
	eventually(t, 10*time.Second, "the call to be left past its timeout", func() bool {
		return metricValue(t, reg, "rein_handler_executions_total", "configmaps", "hang", "timeout") == 1
	})

	w.Stop()
	err = w.Wait(100 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "hang on "+ns+"/stuck") {
		t.Fatalf("Wait = %v, want it to name the call left running (hang on %s/stuck)", err, ns)
	}
	gate.mu.Lock()
	inflight := gate.inflight
	gate.mu.Unlock()
	if inflight != 1 {
		t.Errorf("gate holds %d keys while the call runs, want 1", inflight)
	}

	unblock()
	if err := w.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	gate.mu.Lock()
	inflight = gate.inflight
	gate.mu.Unlock()
	if inflight != 0 {
		t.Errorf("gate holds %d keys after the call returned, want 0", inflight)
	}
}
