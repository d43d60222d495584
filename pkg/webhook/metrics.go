package webhook

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a webhook call, the "result" label of
// rein_webhook_requests_total.
const (
	resultAllowed = "allowed"
	resultDenied  = "denied"
	resultPanic   = "panic"
	resultTimeout = "timeout"
	// resultBadRequest: the request could not be read or named a kind the
	// webhook does not serve.
	resultBadRequest = "bad_request"
)

// metrics holds a server's collectors. A nil *metrics records nothing.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	requests, err := registerCollector(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rein_webhook_requests_total",
		Help: "Webhook calls per path and result (allowed, denied, panic, timeout, bad_request).",
	}, []string{"webhook", "result"}))
	if err != nil {
		return nil, err
	}
	duration, err := registerCollector(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rein_webhook_duration_seconds",
		Help:    "Time from a webhook call's arrival to its answer.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"webhook"}))
	if err != nil {
		return nil, err
	}
	return &metrics{requests: requests, duration: duration}, nil
}

// registerCollector registers c, or returns the collector already registered under
// its name (two servers on one registry share it).
func registerCollector[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) observe(path, result string, began time.Time) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(path, result).Inc()
	m.duration.WithLabelValues(path).Observe(time.Since(began).Seconds())
}
