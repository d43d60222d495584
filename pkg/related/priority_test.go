package related_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/related"
)

// TestWatchQueuesInitialListLow: the targets a source's initial list names
// wait at low priority, behind changes; a change of the source moves its
// target up.
func TestWatchQueuesInitialListLow(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := namespace(t, admin)
	secret, err := admin.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	f, err := framework.NewFactory(env.Config(), factorytest.Scheme(t, clientgoscheme.AddToScheme), framework.Options{Namespace: ns, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	targets := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](f, factorytest.ConfigMaps)
	secrets, err := engine.OpsOf(f).Caches().ForResource(factorytest.Secrets)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(func() { cancel(); engine.OpsOf(f).Caches().Wait() })
	toTarget := func(runtime.Object) ([]string, error) { return []string{ns + "/target"}, nil }
	if err := related.Watch(ctx, "secrets", toTarget, targets, secrets); err != nil {
		t.Fatal(err)
	}
	factorytest.SyncCaches(t, ctx, f) // no workers: keys stay queued
	depth := func(priority string) float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, fam := range families {
			if fam.GetName() != "workqueue_depth" {
				continue
			}
			for _, m := range fam.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "priority" && l.GetValue() == priority {
						sum += m.GetGauge().GetValue()
					}
				}
			}
		}
		return sum
	}
	// The source's handler may still be behind the caches' sync.
	// Priorities as controller-runtime labels them: "0" high, "-100" low.
	testkit.Eventually(t, 10*time.Second, time.Millisecond, "the target queued", func() bool { return depth("-100")+depth("0") == 1 })
	if high := depth("0"); high != 0 {
		t.Fatalf("workqueue_depth{priority=0} = %v after the initial list, want 0: it changed nothing", high)
	}
	secret.StringData = map[string]string{"k": "v"}
	if _, err := admin.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, time.Millisecond, "the target moved up", func() bool { return depth("0") == 1 && depth("-100") == 0 })
}
