package leader

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a term ends, used as the "event" label of the transitions counter
// and in logs.
const (
	eventAcquired = "acquired"
	eventLost     = "lost"     // deposed, lease deleted, or renew deadline passed
	eventReleased = "released" // Release was called
	eventStopped  = "stopped"  // the Campaign context ended
)

type metrics struct {
	isLeader      prometheus.Gauge
	transitions   *prometheus.CounterVec
	renewDuration prometheus.Histogram
	renewFailures prometheus.Counter
}

// newMetrics makes the elector's metrics and registers them on reg unless
// reg is nil (then they are kept but exported nowhere, so the code that
// updates them needs no nil checks). The leader gauge is client-go's and
// controller-runtime's leader_election_master_status, labelled with the
// Lease's name as theirs is (name="<lease>"); rein's own are labelled
// lease="namespace/name".
func newMetrics(reg prometheus.Registerer, namespace, name string) (*metrics, error) {
	lease := namespace + "/" + name
	labels := prometheus.Labels{"lease": lease}
	m := &metrics{
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "leader_election_master_status",
			Help:        "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
			ConstLabels: prometheus.Labels{"name": name},
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rein", Subsystem: "leader_election", Name: "transitions_total",
			Help:        "Leadership terms of this replica begun (event=acquired) and ended (event=lost|released|stopped).",
			ConstLabels: labels,
		}, []string{"event"}),
		renewDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "rein", Subsystem: "leader_election", Name: "renew_duration_seconds",
			Help:        "Duration of the leader's renew requests, successful or not.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.002, 2, 13), // 2ms … 8s
		}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "rein", Subsystem: "leader_election", Name: "renew_failures_total",
			Help:        "Renew requests of the leader that failed.",
			ConstLabels: labels,
		}),
	}
	for _, ev := range []string{eventAcquired, eventLost, eventReleased, eventStopped} {
		m.transitions.WithLabelValues(ev)
	}
	if reg == nil {
		return m, nil
	}
	var registered []prometheus.Collector
	for _, c := range []prometheus.Collector{m.isLeader, m.transitions, m.renewDuration, m.renewFailures} {
		if err := reg.Register(c); err != nil {
			for _, r := range registered {
				reg.Unregister(r)
			}
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				return nil, fmt.Errorf("leader: metrics of lease %s are already registered on this registerer (leader_election_master_status names a Lease by its name alone, as client-go does: two Leases of one name in two namespaces collide too): give each elector of the same lease its own registry: %w", lease, err)
			}
			return nil, fmt.Errorf("leader: register metrics of lease %s: %w", lease, err)
		}
		registered = append(registered, c)
	}
	return m, nil
}
