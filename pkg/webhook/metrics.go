package webhook

import (
	"crypto/tls"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rein-k8s/rein/internal/certs"
	"github.com/rein-k8s/rein/internal/promreg"
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

// newMetrics registers the server's metrics on reg (nil: none), the
// expiry of the certificate getCert serves among them.
func newMetrics(reg prometheus.Registerer, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	if _, err := promreg.Register(reg, certs.ExpiryCollector("webhook", getCert)); err != nil {
		return nil, err
	}
	requests, err := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rein_webhook_requests_total",
		Help: "Webhook calls per path and result (allowed, denied, panic, timeout, bad_request).",
	}, []string{"webhook", "result"}))
	if err != nil {
		return nil, err
	}
	duration, err := promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rein_webhook_duration_seconds",
		Help:    "Time from a webhook call's arrival to its answer.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"webhook"}))
	if err != nil {
		return nil, err
	}
	return &metrics{requests: requests, duration: duration}, nil
}

func (m *metrics) observe(path, result string, began time.Time) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(path, result).Inc()
	m.duration.WithLabelValues(path).Observe(time.Since(began).Seconds())
}
