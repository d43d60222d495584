package fake_test

import (
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/generic"
)

// The fake's indexes are scoped by namespace as the informer cache's are
// (issue 26; generic's TestIndexScopedByNamespace is the same case on an
// apiserver): a CronJob "nightly" in two namespaces, each with its own
// Jobs; the lookup for one finds its Jobs only.
func TestIndexScopedByNamespace(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t)
	cronJobs := generic.NewController[*batchv1.CronJob, *batchv1.CronJobList](env.Factory(), factorytest.CronJobs)
	jobs := generic.NewController[*batchv1.Job, *batchv1.JobList](env.Factory(), factorytest.Jobs)
	namespaces := generic.NewController[*corev1.Namespace, *corev1.NamespaceList](env.Factory(), factorytest.Namespaces)
	if err := jobs.Cache().AddIndexer(factorytest.JobOwnerKey, factorytest.IndexByCronJob); err != nil {
		t.Fatal(err)
	}
	if err := namespaces.Cache().AddIndexer("team", func(ns *corev1.Namespace) ([]string, error) {
		return []string{ns.Labels["team"]}, nil
	}); err != nil {
		t.Fatal(err)
	}

	for _, namespace := range []string{"a", "b"} {
		if _, err := namespaces.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: namespace, Labels: map[string]string{"team": "blue"},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	factorytest.CreateNightlyJobs(t, ctx, cronJobs, jobs, "a", "b")

	lookup := func(namespace string) []string {
		t.Helper()
		got, err := jobs.Cache().GetByIndex(namespace, factorytest.JobOwnerKey, "nightly")
		if err != nil {
			t.Fatal(err)
		}
		return factorytest.Keys(got)
	}
	if got, want := lookup("a"), []string{"a/nightly-1", "a/nightly-2"}; !slices.Equal(got, want) {
		t.Errorf("GetByIndex(a, %s, nightly) = %v, want the Jobs of a/nightly only: %v", factorytest.JobOwnerKey, got, want)
	}
	if got, want := lookup("b"), []string{"b/nightly-1"}; !slices.Equal(got, want) {
		t.Errorf("GetByIndex(b, %s, nightly) = %v, want the Jobs of b/nightly only: %v", factorytest.JobOwnerKey, got, want)
	}
	raw, err := jobs.Informer().GetIndexer().IndexKeys(factorytest.JobOwnerKey, "b/nightly")
	if err != nil || !slices.Equal(raw, []string{"b/nightly-1"}) {
		t.Errorf("informer index b/nightly = %v (%v), want [b/nightly-1]", raw, err)
	}
	if got, err := jobs.Cache().GetByIndex(metav1.NamespaceAll, factorytest.JobOwnerKey, "nightly"); err == nil || !strings.Contains(err.Error(), "a namespace is required") {
		t.Errorf("GetByIndex without a namespace = %v, %v; want an error", factorytest.Keys(got), err)
	}
	all, err := jobs.Cache().GetByIndexAllNamespaces(factorytest.JobOwnerKey, "nightly")
	if want := []string{"a/nightly-1", "a/nightly-2", "b/nightly-1"}; err != nil || !slices.Equal(factorytest.Keys(all), want) {
		t.Errorf("GetByIndexAllNamespaces = %v, %v; want %v", factorytest.Keys(all), err, want)
	}

	// The index follows the store at once.
	if err := jobs.DeleteByName(ctx, "a", "nightly-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := lookup("a"), []string{"a/nightly-1"}; !slices.Equal(got, want) {
		t.Errorf("after a delete, GetByIndex(a) = %v, want %v", got, want)
	}

	// A cluster-scoped kind's values are not scoped.
	blue, err := namespaces.Cache().GetByIndex("", "team", "blue")
	if err != nil || len(blue) != 2 {
		t.Errorf("namespaces GetByIndex(team, blue) = %v, %v; want a and b", blue, err)
	}
}
