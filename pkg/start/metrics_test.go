package start_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/start"
)

// asControllerRuntime are the metrics rein exports under controller-runtime
// v0.25.2's names: what both measure. The rest of what controller-runtime
// registers (webhooks, Go and process metrics) is outside this list.
var asControllerRuntime = []string{
	"controller_runtime_reconcile_total",
	"controller_runtime_reconcile_errors_total",
	"controller_runtime_terminal_reconcile_errors_total",
	"controller_runtime_reconcile_panics_total",
	"controller_runtime_reconcile_timeouts_total",
	"controller_runtime_reconcile_time_seconds",
	"controller_runtime_max_concurrent_reconciles",
	"controller_runtime_active_workers",
	"workqueue_depth",
	"workqueue_adds_total",
	"workqueue_queue_duration_seconds",
	"workqueue_work_duration_seconds",
	"workqueue_retries_total",
	"workqueue_unfinished_work_seconds",
	"workqueue_longest_running_processor_seconds",
	"leader_election_master_status",
	"rest_client_requests_total",
}

// sameKind tells whether controller-runtime's metric name belongs to the
// groups asControllerRuntime covers, so that a metric it adds to them is
// noticed.
func sameKind(name string) bool {
	for _, prefix := range []string{"controller_runtime_reconcile_", "controller_runtime_terminal_reconcile_", "controller_runtime_max_concurrent_", "controller_runtime_active_workers", "workqueue_", "leader_election_", "rest_client_"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// TestMetricsAsControllerRuntime runs a replica that leads and reconciles,
// scrapes its /metrics, and compares each metric both measure with what
// controller-runtime v0.25.2 registers after running a controller of its
// own, an elector and a REST request: the same name, type and label
// names.
func TestMetricsAsControllerRuntime(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns := newNamespace(t, admin)
	f := newFactory(t, ns)
	c, err := engine.OpsOf(f).Controller(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan string, 16)
	c.AddHandler(t.Context(), "see", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		handled <- key
		return nil, nil
	})
	o := testOptions(t, ns)
	r, stop, done := runNew(t, o, start.Group{LeaseName: testLease, Factories: []start.Starter{f}})
	t.Cleanup(func() { stop(); <-done })
	eventually(t, "leading", func() bool { return holder(t, admin, ns, testLease) == r.Identity() })
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for key := ""; key != ns+"/x"; {
		select {
		case key = <-handled:
		case <-time.After(10 * time.Second):
			t.Fatal("the handler did not run on the new ConfigMap")
		}
	}
	_, body := get(t, "http://"+r.MetricsAddr()+"/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	rein, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}

	cr := controllerRuntimeFamilies(t)
	for _, name := range asControllerRuntime {
		want, ok := cr[name]
		if !ok {
			t.Errorf("controller-runtime does not register %s (any more): update asControllerRuntime", name)
			continue
		}
		got, ok := rein[name]
		if !ok {
			t.Errorf("rein's /metrics has no %s", name)
			continue
		}
		if got.GetType() != want.GetType() {
			t.Errorf("%s: rein's is a %v, controller-runtime's a %v", name, got.GetType(), want.GetType())
		}
		gotLabels, err := labelNames(got)
		if err != nil {
			t.Errorf("rein's %s: %v", name, err)
		}
		wantLabels, _ := labelNames(want)
		if !slices.Equal(gotLabels, wantLabels) {
			t.Errorf("%s: rein's labels %v, controller-runtime's %v", name, gotLabels, wantLabels)
		}
	}
	for name := range cr {
		if sameKind(name) && !slices.Contains(asControllerRuntime, name) {
			t.Errorf("controller-runtime registers %s, which rein does not export: add it, or say why not", name)
		}
	}
	// The values are rein's: its controller and Lease.
	for _, series := range []string{
		`controller_runtime_reconcile_total{controller="configmaps",result="success"}`,
		`workqueue_adds_total{controller="configmaps",name="configmaps"}`,
		`leader_election_master_status{name="` + testLease + `"} 1`,
	} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics has no %s", series)
		}
	}
}

// labelNames are the sorted label names of fam's series, or an error when
// its series differ in them.
func labelNames(fam *dto.MetricFamily) ([]string, error) {
	var names []string
	for i, m := range fam.GetMetric() {
		var these []string
		for _, l := range m.GetLabel() {
			these = append(these, l.GetName())
		}
		slices.Sort(these)
		if i > 0 && !slices.Equal(these, names) {
			return names, errors.New("series with labels " + strings.Join(names, ",") + " and " + strings.Join(these, ","))
		}
		names = these
	}
	return names, nil
}

// controllerRuntimeFamilies runs what makes controller-runtime's metrics
// appear (a vector shows only the series it has): a controller of its own
// through one reconcile, a client-go elector (controller-runtime's
// provider labels it) and a REST request, then gathers its registry.
func controllerRuntimeFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	reconciled := make(chan struct{}, 1)
	ctrl, err := controller.NewTypedUnmanaged("parity", controller.TypedOptions[reconcile.Request]{
		SkipNameValidation: ptr.To(true),
		Reconciler: reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
			select {
			case reconciled <- struct{}{}:
			default:
			}
			return reconcile.Result{}, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan event.TypedGenericEvent[string], 1)
	if err := ctrl.Watch(source.TypedChannel(events, handler.TypedFuncs[string, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[string], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: e.Object}})
		},
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- ctrl.Start(ctx) }()
	events <- event.TypedGenericEvent[string]{Object: "x"}
	select {
	case <-reconciled:
	case err := <-stopped:
		t.Fatalf("controller-runtime's controller ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("controller-runtime's controller did not reconcile")
	}
	cancel()
	<-stopped

	if _, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: "default", Name: "parity"},
			Client:     fake.NewClientset().CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: "parity"},
		},
		Name:          "parity",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {}},
	}); err != nil {
		t.Fatal(err)
	}
	// testkit.Admin's requests went through client-go's hook, which
	// controller-runtime's metrics package took when it was loaded.
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, fam := range families {
		out[fam.GetName()] = fam
	}
	if len(out) == 0 {
		t.Fatalf("controller-runtime's registry is empty")
	}
	t.Logf("controller-runtime's metrics: %v", slices.Sorted(maps.Keys(out)))
	return out
}
