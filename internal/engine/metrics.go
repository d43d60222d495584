package engine

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"

	"github.com/rein-k8s/rein/internal/promreg"
)

// Handler results, the "result" label of rein_handler_executions_total.
const (
	resultSuccess = "success"
	resultError   = "error"
	resultPanic   = "panic"
	// resultTimeout: the handler ran past the controller's reconcile
	// timeout (see timeout.go).
	resultTimeout = "timeout"
	resultSkip    = "skip"
	resultRequeue = "requeue"
	// resultFiltered: an IgnoreStatus handler did not run, nothing it
	// looks at having changed.
	resultFiltered = "filtered"
)

// Reconcile results, the "result" label of
// controller_runtime_reconcile_total, as controller-runtime names them. A
// reconcile is one run of a key through a controller's handler chain; see
// reconcileResult for how its handlers' results map to one of these.
const (
	reconcileSuccess      = "success"
	reconcileError        = "error"
	reconcileRequeueAfter = "requeue_after"
	// reconcileRequeue is controller-runtime's Result{Requeue: true}, a
	// rate-limited retry without an error. rein has no such result (a
	// handler returns an error or asks for RequeueAfter); the series is
	// exported at 0 so that dashboards summing the results find it.
	reconcileRequeue = "requeue"
)

// metrics holds the engine's collectors on the registry the user gave. A
// nil *metrics records nothing. Nothing is registered globally: two
// factories on two registries never collide, and two on one registry share
// the collectors.
type metrics struct {
	reg             prometheus.Registerer
	handlerRuns     *prometheus.CounterVec
	handlerDuration *prometheus.HistogramVec
	reconcile       *reconcileMetrics
	queue           *queueMetricsProvider
}

func newMetrics(reg prometheus.Registerer, caches *CacheFactory) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{reg: reg}
	var err error
	m.handlerRuns, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rein_handler_executions_total",
		Help: "Handler runs per controller, handler and result (success, error, panic, timeout, skip, requeue, filtered).",
	}, []string{"controller", "handler", "result"}))
	if err != nil {
		return nil, err
	}
	m.handlerDuration, err = promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rein_handler_duration_seconds",
		Help:    "Time one handler took on one key.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"controller", "handler"}))
	if err != nil {
		return nil, err
	}
	if m.reconcile, err = newReconcileMetrics(reg); err != nil {
		return nil, err
	}
	if m.queue, err = newQueueMetricsProvider(reg); err != nil {
		return nil, err
	}
	cc, err := promreg.Register(reg, &cacheCollector{})
	if err != nil {
		return nil, err
	}
	cc.add(caches)
	return m, nil
}

func (m *metrics) observeHandler(controller, handler, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.handlerRuns.WithLabelValues(controller, handler, result).Inc()
	m.handlerDuration.WithLabelValues(controller, handler).Observe(took.Seconds())
}

// queueMetrics are the measurements of the queue of the controller
// called name. Its depth is not among them: the collector reads it per
// priority from the queue at scrape time (trackQueue).
func (m *metrics) queueMetrics(name string) *keyQueueMetrics {
	if m == nil {
		return nil
	}
	return &keyQueueMetrics{
		Adds:         m.queue.NewAddsMetric(name),
		Latency:      m.queue.NewLatencyMetric(name),
		WorkDuration: m.queue.NewWorkDurationMetric(name),
		Retries:      m.queue.NewRetriesMetric(name),
	}
}

// trackQueue exports the unfinished-work gauges of q, computed when
// scraped rather than by a ticking goroutine.
func (m *metrics) trackQueue(name string, q *keyQueue) {
	if m == nil {
		return
	}
	m.queue.track(name, q)
}

var cachedObjectsDesc = prometheus.NewDesc("rein_cache_objects",
	"Objects in the shared cache per kind.", []string{"group", "version", "kind"}, nil)

// cacheCollector reports the size of the shared caches at scrape time,
// summed per kind over the factories that share a registry.
type cacheCollector struct {
	mu     sync.Mutex
	caches []*CacheFactory
}

func (c *cacheCollector) add(f *CacheFactory) {
	c.mu.Lock()
	c.caches = append(c.caches, f)
	c.mu.Unlock()
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) { ch <- cachedObjectsDesc }

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	factories := slices.Clone(c.caches)
	c.mu.Unlock()
	total := map[schema.GroupVersionKind]int{}
	for _, f := range factories {
		for gvk, n := range f.objectCounts() {
			total[gvk] += n
		}
	}
	for gvk, n := range total {
		ch <- prometheus.MustNewConstMetric(cachedObjectsDesc, prometheus.GaugeValue, float64(n), gvk.Group, gvk.Version, gvk.Kind)
	}
}

// queueMetricsProvider is a client-go workqueue.MetricsProvider on a
// registry of the user's, with controller-runtime's names and labels
// (name and controller, both the controller's name, as controller-runtime
// sets them) so that existing dashboards work.
type queueMetricsProvider struct {
	adds         *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	workDuration *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	gauges       *queueGaugeCollector
}

var _ workqueue.MetricsProvider = (*queueMetricsProvider)(nil)

// queueLabels are the labels of every workqueue_* metric but the depth.
var queueLabels = []string{"name", "controller"}

func newQueueMetricsProvider(reg prometheus.Registerer) (*queueMetricsProvider, error) {
	p := &queueMetricsProvider{}
	var err error
	if p.adds, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "workqueue", Name: "adds_total", Help: "Total number of adds handled by workqueue",
	}, queueLabels)); err != nil {
		return nil, err
	}
	if p.latency, err = promreg.Register(reg, queueSeconds("queue_duration_seconds", "How long in seconds an item stays in workqueue before being requested")); err != nil {
		return nil, err
	}
	if p.workDuration, err = promreg.Register(reg, queueSeconds("work_duration_seconds", "How long in seconds processing an item from workqueue takes.")); err != nil {
		return nil, err
	}
	if p.retries, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "workqueue", Name: "retries_total", Help: "Total number of rate-limited retries handled by workqueue (a handler's failure; not RequeueAfter)",
	}, queueLabels)); err != nil {
		return nil, err
	}
	if p.gauges, err = promreg.Register(reg, newQueueGaugeCollector()); err != nil {
		return nil, err
	}
	return p, nil
}

// queueSeconds is a workqueue histogram of durations by queue, with
// controller-runtime's buckets (10ns to over an hour).
func queueSeconds(name, help string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "workqueue", Name: name, Help: help,
		Buckets:                         prometheus.ExponentialBuckets(10e-9, 10, 12),
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
	}, queueLabels)
}

// NewDepthMetric is there for the interface only: the depth is read per
// priority at scrape time (queueGaugeCollector), so that the queue's hot
// path pays nothing for it.
func (p *queueMetricsProvider) NewDepthMetric(string) workqueue.GaugeMetric {
	return noopGauge{}
}
func (p *queueMetricsProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.adds.WithLabelValues(name, name)
}
func (p *queueMetricsProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.latency.WithLabelValues(name, name)
}
func (p *queueMetricsProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.workDuration.WithLabelValues(name, name)
}
func (p *queueMetricsProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return p.retries.WithLabelValues(name, name)
}

// The two unfinished-work gauges are computed at scrape time from the
// queue (see track); the provider hands the queue nothing to set.
func (p *queueMetricsProvider) NewUnfinishedWorkSecondsMetric(string) workqueue.SettableGaugeMetric {
	return noopGauge{}
}
func (p *queueMetricsProvider) NewLongestRunningProcessorSecondsMetric(string) workqueue.SettableGaugeMetric {
	return noopGauge{}
}

func (p *queueMetricsProvider) track(name string, q *keyQueue) { p.gauges.track(name, q) }

type noopGauge struct{}

func (noopGauge) Set(float64) {}
func (noopGauge) Inc()        {}
func (noopGauge) Dec()        {}

var (
	unfinishedDesc = prometheus.NewDesc("workqueue_unfinished_work_seconds",
		"How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads.", queueLabels, nil)
	longestDesc = prometheus.NewDesc("workqueue_longest_running_processor_seconds",
		"How many seconds has the longest running processor for workqueue been running.", queueLabels, nil)
	depthDesc = prometheus.NewDesc("workqueue_depth",
		`Current depth of workqueue by workqueue and priority: "0" for changes and Enqueue, "-100" for the keys a start queues, resyncs and RequeueAfter (controller-runtime's default and low priorities)`,
		[]string{"name", "controller", "priority"}, nil)
)

// priorityLabel is a priority as controller-runtime's priority queue
// labels its depth: its default priority (0) for changes, and
// handler.LowPriority (-100), which it gives the objects of the initial
// list and of resyncs, for rein's low priority.
func priorityLabel(p Priority) string {
	if p == PriorityLow {
		return "-100"
	}
	return "0"
}

// queueGaugeCollector reads unfinished work and the depth per priority from
// the queues when scraped.
// Queues of one name (one kind in two factories on one registry) are
// summed, as the adds of that name are.
type queueGaugeCollector struct {
	mu     sync.Mutex
	queues map[string][]*keyQueue
}

func newQueueGaugeCollector() *queueGaugeCollector {
	return &queueGaugeCollector{queues: map[string][]*keyQueue{}}
}

func (c *queueGaugeCollector) track(name string, q *keyQueue) {
	c.mu.Lock()
	c.queues[name] = append(c.queues[name], q)
	c.mu.Unlock()
}

func (c *queueGaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- unfinishedDesc
	ch <- longestDesc
	ch <- depthDesc
}

func (c *queueGaugeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, queues := range c.queues {
		var total, longest time.Duration
		var depth [numPriorities]int
		for _, q := range queues {
			t, l := q.UnfinishedWork()
			total += t
			longest = max(longest, l)
			for p, n := range q.Depths() {
				depth[p] += n
			}
		}
		ch <- prometheus.MustNewConstMetric(unfinishedDesc, prometheus.GaugeValue, total.Seconds(), name, name)
		ch <- prometheus.MustNewConstMetric(longestDesc, prometheus.GaugeValue, longest.Seconds(), name, name)
		for p, n := range depth {
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n), name, name, priorityLabel(Priority(p)))
		}
	}
}
