package factorytest

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	corectrl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
)

// Resources the tests use (those of pkg/controllers where it has them).
var (
	ConfigMaps      = corectrl.ConfigMapResource
	Secrets         = corectrl.SecretResource
	Services        = corectrl.ServiceResource
	Namespaces      = corectrl.NamespaceResource
	ServiceAccounts = generic.Resource{GVK: corev1.SchemeGroupVersion.WithKind("ServiceAccount"), Plural: "serviceaccounts", Namespaced: true}
	Jobs            = generic.Resource{GVK: batchv1.SchemeGroupVersion.WithKind("Job"), Plural: "jobs", Namespaced: true}
	CronJobs        = generic.Resource{GVK: batchv1.SchemeGroupVersion.WithKind("CronJob"), Plural: "cronjobs", Namespaced: true}
	Widgets         = generic.Resource{GVK: testapi.SchemeGroupVersion.WithKind("Widget"), Plural: "widgets", Namespaced: true}
	Gadgets         = generic.Resource{GVK: testapi.SchemeGroupVersion.WithKind("Gadget"), Plural: "gadgets", Namespaced: true}
)

// Scheme is a scheme with the kinds of the API packages given.
func Scheme(t testing.TB, addToScheme ...func(*runtime.Scheme) error) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range addToScheme {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// SyncCaches starts f's caches under ctx and waits until they have synced,
// failing the test on an error.
func SyncCaches(t testing.TB, ctx context.Context, f *framework.Factory) {
	t.Helper()
	if err := startCaches(ctx, f); err != nil {
		t.Fatal(err)
	}
}

func startCaches(ctx context.Context, f *framework.Factory) error {
	if err := engine.OpsOf(f).StartCaches(ctx); err != nil {
		return err
	}
	return engine.OpsOf(f).WaitForCacheSync(ctx)
}

// Run starts f's caches and workers until the test ends; the cleanup stops
// them and fails the test when the workers do not stop within 10s.
func Run(t testing.TB, f *framework.Factory) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := startCaches(ctx, f); err != nil {
		cancel()
		t.Fatal(err)
	}
	w, err := engine.OpsOf(f).StartWorkers(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := w.Wait(10 * time.Second); err != nil {
			t.Error(err)
		}
		engine.OpsOf(f).Caches().Wait()
	})
}

// JobOwnerKey is the index of the kubebuilder book's CronJob tutorial: a
// Job's value is the name of the CronJob that controls it.
const JobOwnerKey = ".metadata.controller"

// IndexByCronJob is JobOwnerKey's index function.
func IndexByCronJob(job *batchv1.Job) ([]string, error) {
	owner := metav1.GetControllerOf(job)
	if owner == nil || owner.APIVersion != batchv1.SchemeGroupVersion.String() || owner.Kind != "CronJob" {
		return nil, nil
	}
	return []string{owner.Name}, nil
}
