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

// metrics holds the engine's collectors on the registry the user gave. A
// nil *metrics records nothing. Nothing is registered globally: two
// factories on two registries never collide, and two on one registry share
// the collectors.
type metrics struct {
	reg             prometheus.Registerer
	handlerRuns     *prometheus.CounterVec
	handlerDuration *prometheus.HistogramVec
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

func (m *metrics) queueMetrics(name string) *keyQueueMetrics {
	if m == nil {
		return nil
	}
	return newKeyQueueMetrics(m.queue, name)
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
// registry of the user's, with client-go's metric names so that existing
// dashboards work.
type queueMetricsProvider struct {
	depth        *prometheus.GaugeVec
	adds         *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	workDuration *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	unfinished   *queueGaugeCollector
}

var _ workqueue.MetricsProvider = (*queueMetricsProvider)(nil)

func newQueueMetricsProvider(reg prometheus.Registerer) (*queueMetricsProvider, error) {
	p := &queueMetricsProvider{}
	var err error
	if p.depth, err = promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Subsystem: "workqueue", Name: "depth", Help: "Current depth of the workqueue.",
	}, []string{"name"})); err != nil {
		return nil, err
	}
	if p.adds, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "workqueue", Name: "adds_total", Help: "Adds handled by the workqueue.",
	}, []string{"name"})); err != nil {
		return nil, err
	}
	if p.latency, err = promreg.Register(reg, queueSeconds("queue_duration_seconds", "Seconds a key waits in the workqueue before it is taken.")); err != nil {
		return nil, err
	}
	if p.workDuration, err = promreg.Register(reg, queueSeconds("work_duration_seconds", "Seconds processing one key takes.")); err != nil {
		return nil, err
	}
	if p.retries, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "workqueue", Name: "retries_total", Help: "Rate-limited retries handled by the workqueue.",
	}, []string{"name"})); err != nil {
		return nil, err
	}
	if p.unfinished, err = promreg.Register(reg, newQueueGaugeCollector()); err != nil {
		return nil, err
	}
	return p, nil
}

// queueSeconds is a workqueue histogram of durations by queue name, from
// a microsecond to over an hour.
func queueSeconds(name, help string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "workqueue", Name: name, Help: help,
		Buckets: prometheus.ExponentialBuckets(1e-6, 10, 10),
	}, []string{"name"})
}

func (p *queueMetricsProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return p.depth.WithLabelValues(name)
}
func (p *queueMetricsProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.adds.WithLabelValues(name)
}
func (p *queueMetricsProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.latency.WithLabelValues(name)
}
func (p *queueMetricsProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.workDuration.WithLabelValues(name)
}
func (p *queueMetricsProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return p.retries.WithLabelValues(name)
}

// The two unfinished-work gauges are computed at scrape time from the
// queue (see track); the provider hands the queue nothing to set.
func (p *queueMetricsProvider) NewUnfinishedWorkSecondsMetric(string) workqueue.SettableGaugeMetric {
	return noopGauge{}
}
func (p *queueMetricsProvider) NewLongestRunningProcessorSecondsMetric(string) workqueue.SettableGaugeMetric {
	return noopGauge{}
}

func (p *queueMetricsProvider) track(name string, q *keyQueue) { p.unfinished.track(name, q) }

type noopGauge struct{}

func (noopGauge) Set(float64) {}

var (
	unfinishedDesc = prometheus.NewDesc("workqueue_unfinished_work_seconds",
		"Seconds of work in progress that has not been observed by work_duration yet.", []string{"name"}, nil)
	longestDesc = prometheus.NewDesc("workqueue_longest_running_processor_seconds",
		"Seconds the longest running key of the queue has been processed.", []string{"name"}, nil)
	// Read at scrape time like the two above, so that the queue's hot
	// path pays nothing for it.
	depthDesc = prometheus.NewDesc("rein_queue_depth",
		"Keys waiting in a controller's queue by priority: high (changes, Enqueue) and low (the keys a start queues, resyncs, RequeueAfter). They add up to workqueue_depth.",
		[]string{"controller", "priority"}, nil)
)

// queueGaugeCollector reads unfinished work and the depth per priority from
// the queues when scraped.
// Queues of one name (one kind in two factories on one registry) are
// summed, as client-go's depth and adds metrics of that name are.
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
		ch <- prometheus.MustNewConstMetric(unfinishedDesc, prometheus.GaugeValue, total.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(longestDesc, prometheus.GaugeValue, longest.Seconds(), name)
		for p, n := range depth {
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(n), name, Priority(p).String())
		}
	}
}
