package shard

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the member's metrics on reg, labelled
// group="namespace/group":
//
//	rein_shard_held                 shards running on this replica
//	rein_shard_count                the group's shards (Config.Shards): an
//	                                alert compares the sum of held with it
//	rein_shard_moves_total{event}   started | stopped | marked-dead
//	rein_shard_unowned_seconds      how long a shard this replica started
//	                                was seen unowned before (takeovers, claims)
//	rein_shard_keys{shard}          cached keys per shard, counted at scrape:
//	                                keyShards visits the shard of each
//	                                cached key (nil: not exported)
//
// The caller says each key's shard because only it knows: a key's name
// hashes to its shard (KeyShard), except in a partitioned cache, where
// the object's UID does. Call it before Run; it sets the member's event
// callback.
func (m *Member) RegisterMetrics(reg prometheus.Registerer, keyShards func(visit func(shard int))) error {
	labels := prometheus.Labels{"group": m.cfg.Namespace + "/" + m.cfg.Group}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "rein", Subsystem: "shard", Name: "held", ConstLabels: labels,
		Help: "Shards running on this replica.",
	}, func() float64 { return float64(len(m.Held())) })
	count := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "rein", Subsystem: "shard", Name: "count", ConstLabels: labels,
		Help: "Shards of the group: every replica's rein_shard_held add up to it while each shard runs somewhere.",
	}, func() float64 { return float64(m.cfg.Shards) })
	moves := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "rein", Subsystem: "shard", Name: "moves_total", ConstLabels: labels,
		Help: "Shard moves seen by this replica: started (here), stopped (here), marked-dead (a member this replica marked dead).",
	}, []string{"event"})
	unowned := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "rein", Subsystem: "shard", Name: "unowned_seconds", ConstLabels: labels,
		Help:    "For shards taken by this replica from a dead or departed holder: how long this replica saw the shard without a live holder before it started here.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	})
	cs := []prometheus.Collector{held, count, moves, unowned}
	if keyShards != nil {
		cs = append(cs, &keysCollector{m: m, keyShards: keyShards, desc: prometheus.NewDesc("rein_shard_keys",
			"Cached keys per shard (all controllers of the group), counted at scrape.", []string{"shard"}, labels)})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	prev := m.p.events
	m.p.events = func(e event) {
		moves.WithLabelValues(e.Kind).Inc()
		if e.Kind == "started" && e.Held > 0 {
			unowned.Observe(e.Held.Seconds())
		}
		if prev != nil {
			prev(e)
		}
	}
	return nil
}

type keysCollector struct {
	m         *Member
	keyShards func(visit func(shard int))
	desc      *prometheus.Desc
}

func (c *keysCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *keysCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make([]int, c.m.cfg.Shards)
	c.keyShards(func(s int) {
		if s >= 0 && s < len(counts) {
			counts[s]++
		}
	})
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), strconv.Itoa(s))
	}
}
