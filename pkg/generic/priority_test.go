package generic_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
)

// queueDepth is workqueue_depth of controller at priority ("0": high,
// "-100": low, as controller-runtime labels its priority queue).
func queueDepth(t testing.TB, reg *prometheus.Registry, controller, priority string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != "workqueue_depth" {
			continue
		}
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["controller"] == controller && labels["priority"] == priority {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// TestEnqueuePriorities: Enqueue queues at high priority, EnqueueLow at low,
// and a key asked for at both waits once, at high.
func TestEnqueuePriorities(t *testing.T) {
	ns := testkit.NewNamespace(t, testkit.Admin(t, env), "prio-")
	reg := prometheus.NewRegistry()
	f, err := framework.NewFactory(env.Config(), factorytest.Scheme(t, clientgoscheme.AddToScheme), framework.Options{Namespace: ns, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	cms := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](f, factorytest.ConfigMaps)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(func() { cancel(); engine.OpsOf(f).Caches().Wait() })
	factorytest.SyncCaches(t, ctx, f) // no workers: keys stay queued
	cms.Enqueue(ns, "a")
	cms.EnqueueLow(ns, "a", 0)
	cms.EnqueueLow(ns, "b", 0)
	cms.EnqueueLow(ns, "c", 0)
	cms.Enqueue(ns, "c") // a change to a low key moves it up
	if high, low := queueDepth(t, reg, "configmaps", "0"), queueDepth(t, reg, "configmaps", "-100"); high != 2 || low != 1 {
		t.Fatalf("workqueue_depth high (0), low (-100) = %v, %v; want 2 (a, c), 1 (b)", high, low)
	}
	cms.EnqueueLow(ns, "d", 10*time.Millisecond)
	testkit.Eventually(t, 10*time.Second, time.Millisecond, "d's delay to pass", func() bool {
		return queueDepth(t, reg, "configmaps", "-100") == 2
	})
}
