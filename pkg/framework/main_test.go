package framework_test

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, &env))
}

func newScheme(t testing.TB) *runtime.Scheme {
	return factorytest.Scheme(t, clientgoscheme.AddToScheme)
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, timeout, 10*time.Millisecond, what, cond)
}

func createConfigMap(t testing.TB, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm, err := testkit.Admin(t, env).CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// runWorkers does for an example what pkg/start does for a replica:
// starts f's caches, waits for them, and runs its workers until stop.
func runWorkers(ctx context.Context, f *framework.Factory) (stop func(), err error) {
	ops := engine.OpsOf(f)
	if err := ops.StartCaches(ctx); err != nil {
		return nil, err
	}
	if err := ops.WaitForCacheSync(ctx); err != nil {
		return nil, err
	}
	workCtx, cancel := context.WithCancel(ctx)
	workers, err := ops.StartWorkers(workCtx)
	if err != nil {
		cancel()
		return nil, err
	}
	return func() {
		cancel()
		_ = workers.Wait(10 * time.Second)
	}, nil
}
