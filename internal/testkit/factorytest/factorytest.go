package factorytest

import (
	"context"
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

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
	if err := StartCaches(ctx, f); err != nil {
		t.Fatal(err)
	}
}

// StartCaches starts f's caches under ctx and waits until they have
// synced: what pkg/start does on every replica.
func StartCaches(ctx context.Context, f *framework.Factory) error {
	if err := engine.OpsOf(f).StartCaches(ctx); err != nil {
		return err
	}
	return engine.OpsOf(f).WaitForCacheSync(ctx)
}

// ExampleFactory returns a factory on cfg that caches namespace "default",
// with client-go's scheme: what the examples start from, where a program
// calls framework.NewFactory with its own rest.Config. It panics on an
// error (an example has no test to fail).
func ExampleFactory(cfg *rest.Config) *framework.Factory {
	f, err := framework.NewFactory(cfg, clientgoscheme.Scheme, framework.Options{Namespace: "default"})
	if err != nil {
		panic(err)
	}
	return f
}

// Start starts f's caches, waits until they have synced and starts its
// workers until ctx ends: what pkg/start does in a program (caches on
// every replica, workers on the leader).
func Start(ctx context.Context, f *framework.Factory) (*engine.Workers, error) {
	if err := StartCaches(ctx, f); err != nil {
		return nil, err
	}
	return engine.OpsOf(f).StartWorkers(ctx)
}

// Run starts f's caches and workers until the test ends; the cleanup stops
// them and fails the test when the workers do not stop within 10s.
func Run(t testing.TB, f *framework.Factory) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := Start(ctx, f)
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

// CreateNightlyJobs makes the index tests' objects with cronJobs and jobs:
// in each of namespaces a CronJob "nightly" that controls a Job
// "nightly-1", and in the first one also a Job "nightly-2" it controls
// and a Job "manual" it does not.
func CreateNightlyJobs(t testing.TB, ctx context.Context, cronJobs generic.Controller[*batchv1.CronJob, *batchv1.CronJobList], jobs generic.Controller[*batchv1.Job, *batchv1.JobList], namespaces ...string) {
	t.Helper()
	podTemplate := corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
	}}
	newJob := func(namespace, name string, owner *batchv1.CronJob) {
		t.Helper()
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Spec: batchv1.JobSpec{Template: podTemplate}}
		if owner != nil {
			job.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, batchv1.SchemeGroupVersion.WithKind("CronJob"))}
		}
		if _, err := jobs.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	for i, namespace := range namespaces {
		cj, err := cronJobs.Create(ctx, &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "nightly"},
			Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{
				Spec: batchv1.JobSpec{Template: podTemplate},
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		newJob(namespace, "nightly-1", cj)
		if i == 0 {
			newJob(namespace, "nightly-2", cj)
			newJob(namespace, "manual", nil)
		}
	}
}

// Keys returns the sorted "namespace/name" keys of objs.
func Keys[T metav1.Object](objs []T) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.GetNamespace()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}
