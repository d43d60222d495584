package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rein-k8s/rein/internal/promreg"
)

// Reconcile metrics: controller-runtime's names, types and labels
// (sigs.k8s.io/controller-runtime/pkg/internal/controller/metrics), so that
// dashboards and alerts written for it work on rein. In rein a reconcile is
// one run of one key through a controller's handler chain: these count
// chains, rein_handler_* count the handlers in them.
type reconcileMetrics struct {
	total    *prometheus.CounterVec // controller, result
	errors   *prometheus.CounterVec
	terminal *prometheus.CounterVec
	panics   *prometheus.CounterVec
	timeouts *prometheus.CounterVec
	time     *prometheus.HistogramVec
	workers  *prometheus.GaugeVec
	active   *prometheus.GaugeVec
}

func newReconcileMetrics(reg prometheus.Registerer) (*reconcileMetrics, error) {
	m := &reconcileMetrics{}
	perController := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"controller"})
	}
	var err error
	if m.total, err = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "controller_runtime_reconcile_total",
		Help: "Total number of reconciliations per controller",
	}, []string{"controller", "result"})); err != nil {
		return nil, err
	}
	if m.errors, err = promreg.Register(reg, perController("controller_runtime_reconcile_errors_total",
		"Total number of reconciliation errors per controller")); err != nil {
		return nil, err
	}
	if m.terminal, err = promreg.Register(reg, perController("controller_runtime_terminal_reconcile_errors_total",
		"Total number of terminal reconciliation errors per controller (always 0 in rein: every failure is retried)")); err != nil {
		return nil, err
	}
	if m.panics, err = promreg.Register(reg, perController("controller_runtime_reconcile_panics_total",
		"Total number of reconciliation panics per controller")); err != nil {
		return nil, err
	}
	if m.timeouts, err = promreg.Register(reg, perController("controller_runtime_reconcile_timeouts_total",
		"Total number of reconciliation timeouts per controller")); err != nil {
		return nil, err
	}
	if m.time, err = promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "controller_runtime_reconcile_time_seconds",
		Help: "Length of time per reconciliation per controller",
		// controller-runtime's buckets, so that quantiles compare.
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
			1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
	}, []string{"controller"})); err != nil {
		return nil, err
	}
	if m.workers, err = promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "controller_runtime_max_concurrent_reconciles",
		Help: "Maximum number of concurrent reconciles per controller",
	}, []string{"controller"})); err != nil {
		return nil, err
	}
	if m.active, err = promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "controller_runtime_active_workers",
		Help: "Number of currently used workers per controller",
	}, []string{"controller"})); err != nil {
		return nil, err
	}
	return m, nil
}

// controllerMetrics are one controller's reconcile series, looked up once
// so that a reconcile touches no label map.
type controllerMetrics struct {
	success, failed, requeueAfter prometheus.Counter
	errors, panics, timeouts      prometheus.Counter
	time                          prometheus.Observer
	active                        prometheus.Gauge
}

// forController returns the series of the controller called name, every
// one of them exported from now on (at 0), as controller-runtime does when
// a controller starts. workers is added to the controller's maximum: two
// factories on one registry with a controller of one name add up, as
// their queues do.
func (m *reconcileMetrics) forController(name string, workers int) *controllerMetrics {
	m.total.WithLabelValues(name, reconcileRequeue).Add(0)
	m.terminal.WithLabelValues(name).Add(0)
	m.workers.WithLabelValues(name).Add(float64(workers))
	cm := &controllerMetrics{
		success:      m.total.WithLabelValues(name, reconcileSuccess),
		failed:       m.total.WithLabelValues(name, reconcileError),
		requeueAfter: m.total.WithLabelValues(name, reconcileRequeueAfter),
		errors:       m.errors.WithLabelValues(name),
		panics:       m.panics.WithLabelValues(name),
		timeouts:     m.timeouts.WithLabelValues(name),
		time:         m.time.WithLabelValues(name),
		active:       m.active.WithLabelValues(name),
	}
	return cm
}

// reconciled records one reconcile that began at began and ended as res
// says. The mapping to controller-runtime's results:
//
//   - error: a handler failed, panicked or ran past the reconcile timeout,
//     or the remove handlers' finalizers could not be added first (no
//     handler ran), or the cache could not be read; the key is retried
//     with backoff. A panic also counts in the panics, a timeout in the
//     timeouts, as controller-runtime counts them (each once per
//     reconcile, however many handlers of the chain had one);
//   - requeue_after: no failure, and a handler asked for RequeueAfter;
//   - success: anything else, handlers that returned ErrSkip or were
//     filtered (IgnoreStatus) included.
//
// A nil *controllerMetrics records nothing.
func (cm *controllerMetrics) reconciled(began time.Time, res *chainResult) {
	if cm == nil {
		return
	}
	cm.time.Observe(time.Since(began).Seconds())
	switch {
	case len(res.errs) > 0:
		cm.failed.Inc()
		cm.errors.Inc()
		var panicked, timedOut bool
		for _, e := range res.errs {
			panicked = panicked || e.Panicked
			timedOut = timedOut || e.timedOut()
		}
		if panicked {
			cm.panics.Inc()
		}
		if timedOut {
			cm.timeouts.Inc()
		}
	case res.requeueAfter > 0:
		cm.requeueAfter.Inc()
	default:
		cm.success.Inc()
	}
}

// working counts a worker busy with a key (+1) or done with it (-1).
func (cm *controllerMetrics) working(delta float64) {
	if cm != nil {
		cm.active.Add(delta)
	}
}
