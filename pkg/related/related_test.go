package related_test

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/apply"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/related"
	"github.com/rein-k8s/rein/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, &env))
}

// exampleFactory is the examples' factory: one on the test control plane
// that caches namespace "default" (a program calls framework.NewFactory).
func exampleFactory() *framework.Factory { return factorytest.ExampleFactory(env.Config()) }

// startReplica starts factory's caches and, once they have synced, its
// workers, until ctx ends: what pkg/start does in a program. The examples
// use it.
func startReplica(ctx context.Context, factory *framework.Factory) (*engine.Workers, error) {
	return factorytest.Start(ctx, factory)
}

func namespace(t *testing.T, admin kubernetes.Interface) string {
	return testkit.NewNamespace(t, admin, "related-")
}

// TestChildrenAndReferencesEnqueueTheirOwner: a hand delete of a child (in
// the owner's namespace or another) and a change of a referenced Secret
// each re-run the owner's handler, which restores the child.
func TestChildrenAndReferencesEnqueueTheirOwner(t *testing.T) {
	admin := testkit.Admin(t, env)
	ns, other := namespace(t, admin), namespace(t, admin)
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	f, err := framework.NewFactory(env.Config(), s, framework.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := apply.New(f)
	if err != nil {
		t.Fatal(err)
	}
	children, err := a.Set("children", []generic.Resource{factorytest.ConfigMaps})
	if err != nil {
		t.Fatal(err)
	}
	owners := generic.NewController[*corev1.ServiceAccount, *corev1.ServiceAccountList](f, factorytest.ServiceAccounts)
	// The owners' cache indexes the Secret each references.
	const bySecret = "secret"
	if err := owners.Informer().AddIndexers(cache.Indexers{bySecret: func(obj any) ([]string, error) {
		sa := obj.(*corev1.ServiceAccount)
		var keys []string
		for _, ref := range sa.Secrets {
			keys = append(keys, sa.Namespace+"/"+ref.Name)
		}
		return keys, nil
	}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Each run reports the Secret's resourceVersion it saw in the cache.
	runs := make(chan string, 100)
	var secretCache cache.SharedIndexInformer
	owners.OnChange(ctx, "children", func(ctx context.Context, key string, sa *corev1.ServiceAccount) (*corev1.ServiceAccount, error) {
		if sa == nil || sa.Namespace != ns {
			return sa, nil
		}
		seen := ""
		if item, ok, _ := secretCache.GetIndexer().GetByKey(ns + "/creds"); ok {
			seen = item.(*corev1.Secret).ResourceVersion
		}
		runs <- seen
		_, err := children.Apply(ctx, sa,
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "near"}, Data: map[string]string{"k": "v"}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "far", Namespace: other}, Data: map[string]string{"k": "v"}})
		return sa, err
	})
	secretCache, err = engine.OpsOf(f).Caches().ForResource(factorytest.Secrets)
	if err != nil {
		t.Fatal(err)
	}
	cmCache, err := engine.OpsOf(f).Caches().ForResource(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	if err := related.Owns(ctx, owners, cmCache); err != nil {
		t.Fatal(err)
	}
	if err := related.Watch(ctx, "secrets", related.Referencing(owners.Informer().GetIndexer(), bySecret), owners, secretCache); err != nil {
		t.Fatal(err)
	}
	factorytest.SyncCaches(t, ctx, f)
	workers, err := engine.OpsOf(f).StartWorkers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = workers.Wait(10 * time.Second); engine.OpsOf(f).Caches().Wait() }()

	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "owner"},
		Secrets: []corev1.ObjectReference{{Name: "creds"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// awaitRun waits for a run of the owner's handler that saw the Secret
	// at resourceVersion rv ("": any).
	awaitRun := func(what, rv string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case seen := <-runs:
				if rv == "" || seen == rv {
					return
				}
			case <-deadline:
				t.Fatalf("the owner's handler did not run after %s", what)
			}
		}
	}
	awaitChild := func(namespace, name string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := admin.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{}); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("child %s/%s not restored", namespace, name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	awaitRun("the owner was created", "")
	awaitChild(ns, "near")
	awaitChild(other, "far")

	// A hand delete of a child in the owner's namespace (found by owner
	// reference) and of one in another namespace (by annotation): only a
	// run of the owner's handler after the delete restores it.
	for _, child := range [][2]string{{ns, "near"}, {other, "far"}} {
		if err := admin.CoreV1().ConfigMaps(child[0]).Delete(ctx, child[1], metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		awaitChild(child[0], child[1])
	}

	// The referenced Secret changes (found by the owners' index): a run
	// sees its new version.
	updated, err := admin.CoreV1().Secrets(ns).Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"p": "w"}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	awaitRun("its Secret changed", updated.ResourceVersion)
}
