package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/rein-k8s/rein/internal/testkit"
)

// unbucketedRetries has a bucket that never delays, so tests see the bare backoff.
var unbucketedRetries = RateLimit{QPS: 1e9, Burst: 1 << 30}

// waitForQueue polls cond until it holds, failing the test after a generous
// deadline. It observes state; it does not order events.
func waitForQueue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, 100*time.Microsecond, what, cond)
}

func (q *keyQueue) numWaiters() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiters)
}

func (q *keyQueue) numTracked() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.keys)
}

func (q *keyQueue) numDelayed() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.delayed)
}

// mustGetKey takes a key that is expected to be ready now.
func mustGetKey(t *testing.T, q *keyQueue) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key, ok := q.Get(ctx)
	if !ok {
		t.Fatal("Get: ok=false, want a key")
	}
	return key
}

// getKeyAsync runs Get in a goroutine and delivers its result.
type getKeyResult struct {
	key string
	ok  bool
}

func getKeyAsync(ctx context.Context, q *keyQueue) <-chan getKeyResult {
	c := make(chan getKeyResult, 1)
	go func() {
		key, ok := q.Get(ctx)
		c <- getKeyResult{key, ok}
	}()
	return c
}

func receiveGet(t *testing.T, c <-chan getKeyResult) getKeyResult {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Get did not return")
		return getKeyResult{}
	}
}

func TestQueueDedupWhileQueued(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	q.Add("a")
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if got := q.Len(); got != 2 {
		t.Fatalf("Len = %d, want 2", got)
	}
	if k := mustGetKey(t, q); k != "a" {
		t.Fatalf("first Get = %q, want a", k)
	}
	if k := mustGetKey(t, q); k != "b" {
		t.Fatalf("second Get = %q, want b", k)
	}
	if q.Len() != 0 || q.Processing() != 2 {
		t.Fatalf("Len, Processing = %d, %d; want 0, 2", q.Len(), q.Processing())
	}
	q.Done("a")
	q.Done("b")
	if q.Processing() != 0 || q.numTracked() != 0 {
		t.Fatalf("Processing, tracked = %d, %d; want 0, 0", q.Processing(), q.numTracked())
	}
}

func TestQueueRequeueAfterDoneWhenAddedDuringProcessing(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	q.Add("a")
	k := mustGetKey(t, q)
	q.Add("a")
	q.Add("a")
	if q.Len() != 0 {
		t.Fatalf("Len = %d while a is processing, want 0", q.Len())
	}
	// A processing key must not be handed to a second worker.
	ctx, cancel := context.WithCancel(context.Background())
	second := getKeyAsync(ctx, q)
	waitForQueue(t, "second Get to block", func() bool { return q.numWaiters() == 1 })
	q.Done(k)
	r := receiveGet(t, second)
	cancel()
	if !r.ok || r.key != "a" {
		t.Fatalf("Get after Done = %q, %v; want a, true", r.key, r.ok)
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d, want 0: the re-adds must collapse into one", q.Len())
	}
	q.Done("a")
	if q.numTracked() != 0 {
		t.Fatalf("tracked = %d after the last Done, want 0", q.numTracked())
	}
}

func TestQueueFIFOOrder(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	var want []string
	// Keys taken from the head while others join at the tail.
	for i := range 40 {
		q.Add(fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	for range 10 {
		q.Done(mustGetKey(t, q))
	}
	want = want[10:]
	for i := 40; i < 70; i++ {
		q.Add(fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	for i, w := range want {
		if k := mustGetKey(t, q); k != w {
			t.Fatalf("Get #%d = %q, want %q", i, k, w)
		}
		q.Done(w)
	}
}

func TestQueueDoneOfUnknownKeyIsNoop(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	q.Done("never-added")
	q.Add("a")
	q.Done("a") // queued, not processing
	if q.Len() != 1 || q.Processing() != 0 {
		t.Fatalf("Len, Processing = %d, %d; want 1, 0", q.Len(), q.Processing())
	}
}

func TestQueueGetReturnsOnContextEndAndKeepsKeys(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)

	// Blocked on an empty queue.
	ctx, cancel := context.WithCancel(context.Background())
	blocked := getKeyAsync(ctx, q)
	waitForQueue(t, "Get to block", func() bool { return q.numWaiters() == 1 })
	cancel()
	if r := receiveGet(t, blocked); r.ok {
		t.Fatalf("Get after cancel = %q, true; want ok=false", r.key)
	}
	if q.numWaiters() != 0 {
		t.Fatalf("waiters = %d after cancel, want 0", q.numWaiters())
	}

	// An ended context takes nothing, even with keys ready.
	q.Add("a")
	q.Add("b")
	if k, ok := q.Get(ctx); ok {
		t.Fatalf("Get with ended ctx = %q, true; want ok=false", k)
	}
	if q.Len() != 2 || q.Processing() != 0 {
		t.Fatalf("Len, Processing = %d, %d; want 2, 0", q.Len(), q.Processing())
	}

	// The next term finds the keys intact.
	if k := mustGetKey(t, q); k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
	if k := mustGetKey(t, q); k != "b" {
		t.Fatalf("Get = %q, want b", k)
	}
}

// A waiter whose context ends just as it is signalled must pass the wakeup
// on, or the key would wait while another Get caller blocks.
func TestQueueCancelledWaiterPassesWakeupOn(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	for i := range 300 {
		ctx, cancel := context.WithCancel(context.Background())
		doomed := getKeyAsync(ctx, q)
		waitForQueue(t, "first Get to block", func() bool { return q.numWaiters() == 1 })
		survivor := getKeyAsync(context.Background(), q)
		waitForQueue(t, "second Get to block", func() bool { return q.numWaiters() == 2 })

		key := fmt.Sprint(i)
		// The oldest waiter, doomed, receives the signal while its
		// context ends.
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); <-start; cancel() }()
		go func() { defer wg.Done(); <-start; q.Add(key) }()
		close(start)
		wg.Wait()

		d := receiveGet(t, doomed)
		if d.ok {
			// doomed won the race and took the key; release the
			// survivor with another key.
			q.Done(d.key)
			q.Add("other")
		}
		s := receiveGet(t, survivor)
		if !s.ok {
			t.Fatalf("round %d: survivor Get ok=false", i)
		}
		q.Done(s.key)
		if q.Len() != 0 || q.Processing() != 0 || q.numWaiters() != 0 {
			t.Fatalf("round %d: Len, Processing, waiters = %d, %d, %d; want 0s",
				i, q.Len(), q.Processing(), q.numWaiters())
		}
	}
}

func TestQueueShutDownWakesEveryGet(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	var results []<-chan getKeyResult
	for range 5 {
		results = append(results, getKeyAsync(context.Background(), q))
	}
	waitForQueue(t, "5 Gets to block", func() bool { return q.numWaiters() == 5 })
	q.ShutDown()
	for _, c := range results {
		if r := receiveGet(t, c); r.ok {
			t.Fatalf("Get after ShutDown = %q, true; want ok=false", r.key)
		}
	}
	q.Add("late")
	q.AddAfter("late", time.Millisecond)
	q.AddRateLimited("late")
	if k, ok := q.Get(context.Background()); ok {
		t.Fatalf("Get after ShutDown = %q, true; want ok=false", k)
	}
	q.ShutDown() // idempotent
}

func TestQueueShutDownLetsQueuedKeysDrain(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	q.Add("a")
	q.Add("b")
	k := mustGetKey(t, q)
	q.Add(k) // pending again while processing
	q.ShutDown()
	if k := mustGetKey(t, q); k != "b" {
		t.Fatalf("Get = %q, want b", k)
	}
	q.Done("b")
	q.Done(k)
	if got := mustGetKey(t, q); got != k {
		t.Fatalf("Get = %q, want %q re-added before ShutDown", got, k)
	}
	q.Done(k)
	if k, ok := q.Get(context.Background()); ok {
		t.Fatalf("Get on drained queue = %q, true; want ok=false", k)
	}
}

func TestQueueConcurrentWorkersAndProducers(t *testing.T) {
	const (
		workers   = 8
		producers = 4
		keys      = 200
		addsEach  = 5000
	)
	q := newKeyQueue("t", RateLimit{}, nil)

	var mu sync.Mutex
	addGen := map[string]int{}       // bumped before each Add
	processedGen := map[string]int{} // addGen seen when processing started
	inFlight := map[string]bool{}
	var processed atomic.Int64

	ctx, stopWorkers := context.WithCancel(context.Background())
	var workersDone sync.WaitGroup
	for range workers {
		workersDone.Add(1)
		go func() {
			defer workersDone.Done()
			for {
				key, ok := q.Get(ctx)
				if !ok {
					return
				}
				mu.Lock()
				if inFlight[key] {
					t.Errorf("key %s handed to two workers at once", key)
				}
				inFlight[key] = true
				processedGen[key] = addGen[key]
				mu.Unlock()
				processed.Add(1)
				mu.Lock()
				delete(inFlight, key)
				mu.Unlock()
				q.Done(key)
			}
		}()
	}

	var producersDone sync.WaitGroup
	for p := range producers {
		producersDone.Add(1)
		go func() {
			defer producersDone.Done()
			for i := range addsEach {
				key := fmt.Sprint((i*7 + p) % keys)
				mu.Lock()
				addGen[key]++
				mu.Unlock()
				q.Add(key)
			}
		}()
	}
	producersDone.Wait()
	waitForQueue(t, "the queue to drain", func() bool { return q.Len() == 0 && q.Processing() == 0 })
	stopWorkers()
	workersDone.Wait()

	if len(addGen) != keys {
		t.Fatalf("added %d distinct keys, want %d", len(addGen), keys)
	}
	for key, gen := range addGen {
		if processedGen[key] != gen {
			t.Errorf("key %s: last processing saw add #%d of %d: an Add was lost", key, processedGen[key], gen)
		}
	}
	if q.numTracked() != 0 || q.numWaiters() != 0 {
		t.Fatalf("tracked, waiters = %d, %d after drain; want 0, 0", q.numTracked(), q.numWaiters())
	}
	t.Logf("%d adds, %d processings", producers*addsEach, processed.Load())
}

func TestQueueAddAfterDeliversAfterDelay(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	const delay = 30 * time.Millisecond
	start := time.Now()
	q.AddAfter("a", delay)
	if q.Len() != 0 {
		t.Fatalf("Len = %d right after AddAfter, want 0", q.Len())
	}
	k := mustGetKey(t, q)
	if elapsed := time.Since(start); elapsed < delay {
		t.Fatalf("delivered after %v, before the %v delay", elapsed, delay)
	}
	if k != "a" {
		t.Fatalf("Get = %q, want a", k)
	}
	q.Done(k)
	if q.numTracked() != 0 || q.numDelayed() != 0 {
		t.Fatalf("tracked, delayed = %d, %d; want 0, 0", q.numTracked(), q.numDelayed())
	}

	q.AddAfter("now", 0)
	q.AddAfter("now", -time.Second)
	if q.Len() != 1 {
		t.Fatalf("Len = %d after AddAfter <= 0, want 1", q.Len())
	}
}

func TestQueueAddAfterEarliestWins(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	start := time.Now()
	q.AddAfter("a", time.Hour)
	q.AddAfter("a", 20*time.Millisecond) // earlier: replaces the hour
	q.AddAfter("a", time.Hour)           // later: ignored
	if q.numDelayed() != 1 {
		t.Fatalf("delayed = %d, want 1 entry per key", q.numDelayed())
	}
	k := mustGetKey(t, q)
	if elapsed := time.Since(start); elapsed < 20*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("delivered after %v, want about 20ms", elapsed)
	}
	q.Done(k)
	if q.numDelayed() != 0 || q.numTracked() != 0 {
		t.Fatalf("delayed, tracked = %d, %d; the later deadlines must be gone", q.numDelayed(), q.numTracked())
	}
}

func TestQueueAddAfterReleasesInDeadlineOrder(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	delays := map[string]time.Duration{"c": 45 * time.Millisecond, "a": 15 * time.Millisecond, "d": 60 * time.Millisecond, "b": 30 * time.Millisecond}
	for _, k := range []string{"c", "a", "d", "b"} {
		q.AddAfter(k, delays[k])
	}
	for _, want := range []string{"a", "b", "c", "d"} {
		if k := mustGetKey(t, q); k != want {
			t.Fatalf("Get = %q, want %q", k, want)
		}
		q.Done(want)
	}
}

func TestQueueShutDownStopsTimer(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	q.AddAfter("a", 20*time.Millisecond)
	q.ShutDown()
	if q.numDelayed() != 0 || q.numTracked() != 0 {
		t.Fatalf("delayed, tracked = %d, %d after ShutDown; want 0, 0", q.numDelayed(), q.numTracked())
	}
	if q.timer.Stop() {
		t.Fatal("timer still armed after ShutDown")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	<-ctx.Done() // past the deadline
	if q.Len() != 0 {
		t.Fatalf("Len = %d after the deadline, want 0: the delayed key was released", q.Len())
	}
}

func TestQueueRetryBackoffGrowsExponentiallyAndForgetResets(t *testing.T) {
	rl := unbucketedRetries
	rl.MaxDelay = 40 * time.Millisecond
	q := newKeyQueue("t", rl, nil)
	want := []time.Duration{5, 10, 20, 40, 40, 40}
	for i, w := range want {
		if d := q.retryDelay("a"); d != w*time.Millisecond {
			t.Fatalf("retry %d: delay %v, want %v", i+1, d, w*time.Millisecond)
		}
	}
	if n := q.NumRequeues("a"); n != len(want) {
		t.Fatalf("NumRequeues = %d, want %d", n, len(want))
	}
	if d := q.retryDelay("b"); d != 5*time.Millisecond {
		t.Fatalf("other key's first delay = %v, want 5ms: backoff is per key", d)
	}
	q.Forget("a")
	if n := q.NumRequeues("a"); n != 0 {
		t.Fatalf("NumRequeues after Forget = %d, want 0", n)
	}
	if d := q.retryDelay("a"); d != 5*time.Millisecond {
		t.Fatalf("delay after Forget = %v, want 5ms", d)
	}
	q.Forget("a")
	q.Forget("b")
	if q.numTracked() != 0 {
		t.Fatalf("tracked = %d after Forget, want 0", q.numTracked())
	}
}

func TestRateLimitBackoffDoesNotOverflow(t *testing.T) {
	rl := RateLimit{BaseDelay: time.Millisecond, MaxDelay: time.Hour}.withDefaults()
	for _, failures := range []int{40, 62, 63, 64, 1000} {
		if d := rl.backoff(failures); d != time.Hour {
			t.Errorf("backoff(%d) = %v, want the 1h cap", failures, d)
		}
	}
}

func TestQueueRetryBucketLimitsBurstOfKeys(t *testing.T) {
	q := newKeyQueue("t", RateLimit{BaseDelay: time.Millisecond, QPS: 10, Burst: 2}, nil)
	if d := q.retryDelay("a"); d != time.Millisecond {
		t.Fatalf("a: %v, want 1ms (within burst)", d)
	}
	if d := q.retryDelay("b"); d != time.Millisecond {
		t.Fatalf("b: %v, want 1ms (within burst)", d)
	}
	if d := q.retryDelay("c"); d < 80*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("c: %v, want about 100ms (bucket empty at 10 QPS)", d)
	}
}

func TestQueueAddRateLimitedDelivers(t *testing.T) {
	q := newKeyQueue("t", unbucketedRetries, nil)
	start := time.Now()
	q.AddRateLimited("a")
	k := mustGetKey(t, q)
	if elapsed := time.Since(start); elapsed < 5*time.Millisecond {
		t.Fatalf("delivered after %v, before the 5ms backoff", elapsed)
	}
	q.Done(k)
	if n := q.NumRequeues("a"); n != 1 {
		t.Fatalf("NumRequeues = %d, want 1", n)
	}
	q.Forget("a")
	if q.numTracked() != 0 {
		t.Fatalf("tracked = %d, want 0", q.numTracked())
	}
}

func TestRateLimitWithDefaults(t *testing.T) {
	got := RateLimit{}.withDefaults()
	want := RateLimit{BaseDelay: 5 * time.Millisecond, MaxDelay: 2 * time.Minute, QPS: 50, Burst: 300}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	set := RateLimit{BaseDelay: time.Second, MaxDelay: time.Minute, QPS: 1, Burst: 1}
	if got := set.withDefaults(); got != set {
		t.Fatalf("withDefaults changed set fields: %+v", got)
	}
	if got := (RateLimit{BaseDelay: time.Hour}).withDefaults(); got.MaxDelay != time.Hour {
		t.Fatalf("MaxDelay = %v below BaseDelay, want raised to 1h", got.MaxDelay)
	}
}

func TestQueueUnfinishedWork(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	if total, longest := q.UnfinishedWork(); total != 0 || longest != 0 {
		t.Fatalf("idle UnfinishedWork = %v, %v; want 0, 0", total, longest)
	}
	q.Add("a")
	q.Add("b")
	a := mustGetKey(t, q)
	start := time.Now()
	mustGetKey(t, q)
	waitForQueue(t, "time to pass", func() bool { return time.Since(start) > time.Millisecond })
	total, longest := q.UnfinishedWork()
	if longest < time.Millisecond || total < longest+time.Millisecond {
		t.Fatalf("UnfinishedWork = %v, %v; want longest >= 1ms and total >= longest+1ms", total, longest)
	}
	q.Done(a)
	total2, longest2 := q.UnfinishedWork()
	if total2 >= total || longest2 > longest+time.Second {
		t.Fatalf("after one Done: %v, %v; want less total", total2, longest2)
	}
}

// fakeQueueMetric records the calls a workqueue metric receives.
type fakeQueueMetric struct {
	mu           sync.Mutex
	value        float64
	observations []float64
}

func (m *fakeQueueMetric) Inc() { m.mu.Lock(); m.value++; m.mu.Unlock() }
func (m *fakeQueueMetric) Dec() { m.mu.Lock(); m.value--; m.mu.Unlock() }
func (m *fakeQueueMetric) Set(v float64) {
	m.mu.Lock()
	m.value = v
	m.mu.Unlock()
}
func (m *fakeQueueMetric) Observe(v float64) {
	m.mu.Lock()
	m.observations = append(m.observations, v)
	m.mu.Unlock()
}
func (m *fakeQueueMetric) get() (float64, []float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.value, append([]float64(nil), m.observations...)
}

// fakeQueueMetricsProvider is a workqueue.MetricsProvider handing out fakeMetrics.
type fakeQueueMetricsProvider struct {
	names                                                    []string
	depth, adds, latency, work, unfinished, longest, retries fakeQueueMetric
}

// named notes that a metric of the name was asked for, and returns m.
func (p *fakeQueueMetricsProvider) named(name string, m *fakeQueueMetric) *fakeQueueMetric {
	p.names = append(p.names, name)
	return m
}

func (p *fakeQueueMetricsProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return p.named(name, &p.depth)
}
func (p *fakeQueueMetricsProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.named(name, &p.adds)
}
func (p *fakeQueueMetricsProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.named(name, &p.latency)
}
func (p *fakeQueueMetricsProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.named(name, &p.work)
}
func (p *fakeQueueMetricsProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return &p.unfinished
}
func (p *fakeQueueMetricsProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return &p.longest
}
func (p *fakeQueueMetricsProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	p.names = append(p.names, name)
	return &p.retries
}

func TestQueueMetrics(t *testing.T) {
	if newKeyQueueMetrics(nil, "x") != nil {
		t.Fatal("NewQueueMetrics(nil) != nil")
	}
	p := &fakeQueueMetricsProvider{}
	q := newKeyQueue("widgets", unbucketedRetries, newKeyQueueMetrics(p, "widgets"))
	for _, n := range p.names {
		if n != "widgets" {
			t.Fatalf("metric created with name %q, want widgets", n)
		}
	}
	if len(p.names) != 5 {
		t.Fatalf("%d metrics created, want 5", len(p.names))
	}

	q.Add("a")
	q.Add("b")
	q.Add("a") // deduplicated: not an add
	if depth, _ := p.depth.get(); depth != 2 {
		t.Fatalf("depth = %v, want 2", depth)
	}
	if adds, _ := p.adds.get(); adds != 2 {
		t.Fatalf("adds = %v, want 2", adds)
	}

	queued := time.Now()
	waitForQueue(t, "time to pass", func() bool { return time.Since(queued) > time.Millisecond })
	k := mustGetKey(t, q)
	if depth, _ := p.depth.get(); depth != 1 {
		t.Fatalf("depth after Get = %v, want 1", depth)
	}
	_, latency := p.latency.get()
	if len(latency) != 1 || latency[0] < 0.001 || latency[0] > 10 {
		t.Fatalf("latency observations = %v, want one of >= 1ms", latency)
	}

	taken := time.Now()
	waitForQueue(t, "time to pass", func() bool { return time.Since(taken) > time.Millisecond })
	q.Done(k)
	_, work := p.work.get()
	if len(work) != 1 || work[0] < 0.001 || work[0] > 10 {
		t.Fatalf("work duration observations = %v, want one of >= 1ms", work)
	}

	q.AddRateLimited("c")
	q.AddRateLimited("c")
	if retries, _ := p.retries.get(); retries != 2 {
		t.Fatalf("retries = %v, want 2", retries)
	}
	q.Done(mustGetKey(t, q)) // b
	q.Done(mustGetKey(t, q)) // c, after its backoff
	if depth, _ := p.depth.get(); depth != 0 {
		t.Fatalf("final depth = %v, want 0", depth)
	}
	if adds, _ := p.adds.get(); adds != 3 {
		t.Fatalf("final adds = %v, want 3", adds)
	}
}

func TestQueueSteadyStateDoesNotAllocate(t *testing.T) {
	q := newKeyQueue("t", RateLimit{}, nil)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	cycle := func() {
		for _, k := range keys {
			q.Add(k)
		}
		for range keys {
			k, _ := q.Get(context.Background())
			q.Done(k)
		}
	}
	cycle() // warm up: map, ring and spare states reach their size
	if allocs := testing.AllocsPerRun(20, cycle); allocs > 0 {
		t.Fatalf("%v allocations per cycle of %d keys, want 0", allocs, len(keys))
	}
}
