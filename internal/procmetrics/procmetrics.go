// Package procmetrics holds the metrics that belong to the process rather
// than to one replica, as client-go's do: the apiserver requests of rein's
// clients (rest_client_requests_total, client-go's and controller-runtime's
// name and labels) and the writes the fence refused
// (rein_fence_refusals_total). pkg/start registers them on the registry
// /metrics serves (Register); every replica of a process shows the same
// counts.
//
// Requests are counted in rein's transports (Transport), not through
// client-go's global hook (k8s.io/client-go/tools/metrics.Register): that
// hook takes its first caller only, and a program that links
// controller-runtime's metrics package (its envtest does) has taken it
// before main runs. Counted are the requests of a factory's clients, of
// clients built from its RESTConfig, and of pkg/start's Lease clients;
// a clientset the program builds from its own rest.Config is not.
package procmetrics

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rein-k8s/rein/internal/promreg"
)

var (
	requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rest_client_requests_total",
		Help: "Number of HTTP requests, partitioned by status code, method, and host.",
	}, []string{"code", "method", "host"})

	refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rein_fence_refusals_total",
		Help: `Writes the fence refused because their hold (a leadership term, a shard) did not allow them, by the hold's Lease ("namespace/name"; "" for a write whose context carried no hold).`,
	}, []string{"lease"})
)

// Register registers the process's metrics on reg; registering them twice
// on one registry is not an error.
func Register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{requests, refusals} {
		if _, err := promreg.Register(reg, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FenceRefused counts a write refused under a hold of lease.
func FenceRefused(lease string) { refusals.WithLabelValues(lease).Inc() }

// Transport counts every request next sends, as client-go counts it: by
// the response's status code ("<error>" when there is none), the HTTP
// method and the host.
func Transport(next http.RoundTripper) http.RoundTripper {
	return &counting{next: next}
}

type counting struct{ next http.RoundTripper }

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	code := "<error>"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	requests.WithLabelValues(code, req.Method, req.URL.Host).Inc()
	return resp, err
}

// WrappedRoundTripper lets client-go reach the transport underneath.
func (c *counting) WrappedRoundTripper() http.RoundTripper { return c.next }
