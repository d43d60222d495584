package generic_test

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
)

// Index values of a namespaced kind are scoped by namespace (issue 26).
// The CronJob tutorial's owner index, on a cache of every namespace (and on
// one of two namespaces, a list and watch each), with a CronJob "nightly"
// in two namespaces, each with its own Jobs: the lookup for one of them
// finds its Jobs only. Unscoped values found the other namespace's Jobs
// too, which the tutorial put in status.active and its history limit
// deleted.
func TestIndexScopedByNamespace(t *testing.T) {
	ctx := t.Context()
	setup := newFactory(t, "")
	namespaces := generic.NewController[*corev1.Namespace, *corev1.NamespaceList](setup, factorytest.Namespaces)
	cronJobs := generic.NewController[*batchv1.CronJob, *batchv1.CronJobList](setup, factorytest.CronJobs)
	jobs := generic.NewController[*batchv1.Job, *batchv1.JobList](setup, factorytest.Jobs)

	run := strings.ToLower(rand.Text()) // a label of this run's namespaces only
	var ns [2]string
	for i := range ns {
		created, err := namespaces.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			GenerateName: "index-", Labels: map[string]string{"run": run},
		}})
		if err != nil {
			t.Fatal(err)
		}
		ns[i] = created.Name
		t.Cleanup(func() { _ = namespaces.DeleteByName(context.Background(), "", created.Name, metav1.DeleteOptions{}) })
	}
	// The same CronJob name in both namespaces; a Job name used in both.
	factorytest.CreateNightlyJobs(t, ctx, cronJobs, jobs, ns[:]...)

	for _, tc := range []struct {
		name string
		opts framework.Options
	}{
		{"all namespaces", framework.Options{}},
		{"two namespaces", framework.Options{Namespaces: ns[:]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startedCaches(t, tc.opts, func(f *framework.Factory) {
				c := generic.NewController[*batchv1.Job, *batchv1.JobList](f, factorytest.Jobs).Cache()
				if err := c.AddIndexer(factorytest.JobOwnerKey, factorytest.IndexByCronJob); err != nil {
					t.Fatal(err)
				}
				n := generic.NewController[*corev1.Namespace, *corev1.NamespaceList](f, factorytest.Namespaces).Cache()
				if err := n.AddIndexer("run", func(ns *corev1.Namespace) ([]string, error) {
					return []string{ns.Labels["run"]}, nil
				}); err != nil {
					t.Fatal(err)
				}
			})
			jobs := generic.NewController[*batchv1.Job, *batchv1.JobList](f, factorytest.Jobs)

			for _, want := range []struct {
				namespace string
				names     []string
			}{
				{ns[0], []string{"nightly-1", "nightly-2"}},
				{ns[1], []string{"nightly-1"}},
			} {
				got, err := jobs.Cache().GetByIndex(want.namespace, factorytest.JobOwnerKey, "nightly")
				if err != nil {
					t.Fatal(err)
				}
				if keys := factorytest.Keys(got); !slices.Equal(keys, prefixed(want.namespace, want.names...)) {
					t.Errorf("GetByIndex(%s, %s, nightly) = %v, want the Jobs of %s/nightly only: %v",
						want.namespace, factorytest.JobOwnerKey, keys, want.namespace, prefixed(want.namespace, want.names...))
				}
				// The informer's own index holds namespace/value, the
				// owner's key: what related.Referencing looks up.
				raw, err := jobs.Informer().GetIndexer().IndexKeys(factorytest.JobOwnerKey, want.namespace+"/nightly")
				slices.Sort(raw)
				if err != nil || !slices.Equal(raw, prefixed(want.namespace, want.names...)) {
					t.Errorf("informer index %s/nightly = %v (%v), want %v", want.namespace, raw, err, prefixed(want.namespace, want.names...))
				}
			}
			if got, err := jobs.Cache().GetByIndex(ns[1], factorytest.JobOwnerKey, "missing"); err != nil || len(got) != 0 {
				t.Errorf("GetByIndex of a value nobody has = %v, %v; want none", factorytest.Keys(got), err)
			}
			if got, err := jobs.Cache().GetByIndex(metav1.NamespaceAll, factorytest.JobOwnerKey, "nightly"); err == nil || !strings.Contains(err.Error(), "a namespace is required") {
				t.Errorf("GetByIndex without a namespace = %v, %v; want an error", factorytest.Keys(got), err)
			}
			all, err := jobs.Cache().GetByIndexAllNamespaces(factorytest.JobOwnerKey, "nightly")
			want := sorted(append(prefixed(ns[0], "nightly-1", "nightly-2"), prefixed(ns[1], "nightly-1")...))
			if err != nil || !slices.Equal(factorytest.Keys(all), want) {
				t.Errorf("GetByIndexAllNamespaces = %v, %v; want %v", factorytest.Keys(all), err, want)
			}
			if _, err := jobs.Cache().GetByIndex(ns[0], "no-such-index", "nightly"); err == nil {
				t.Error("GetByIndex of an index never added: no error")
			}

			// A cluster-scoped kind's values are not scoped.
			namespaces := generic.NewController[*corev1.Namespace, *corev1.NamespaceList](f, factorytest.Namespaces)
			byRun, err := namespaces.Cache().GetByIndex("", "run", run)
			if got := namesOf(byRun); err != nil || !slices.Equal(got, sorted(ns[:])) {
				t.Errorf("namespaces GetByIndex(run, %s) = %v, %v; want %v", run, got, err, ns)
			}
		})
	}
}

// startedCaches returns a factory on opts whose caches, the ones register
// asks for, have synced; they stop when the test ends.
func startedCaches(t *testing.T, opts framework.Options, register func(*framework.Factory)) *framework.Factory {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	opts.RateLimit = framework.RateLimit{BaseDelay: 10 * time.Millisecond, MaxDelay: time.Second}
	f, err := framework.NewFactory(env.Config(), s, opts)
	if err != nil {
		t.Fatal(err)
	}
	register(f)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		engine.OpsOf(f).Caches().Wait()
	})
	factorytest.SyncCaches(t, ctx, f)
	return f
}

func namesOf[T metav1.Object](objs []T) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	slices.Sort(out)
	return out
}

func prefixed(namespace string, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = namespace + "/" + n
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
