package generic_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{CRDDirs: []string{"../../internal/testapi/crds"}}, &env))
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

// stopReplica ends the context startReplica was given (cancel) and waits
// for the workers to stop, printing why when they do not.
func stopReplica(cancel context.CancelFunc, workers *engine.Workers) {
	cancel()
	if err := workers.Wait(10 * time.Second); err != nil {
		fmt.Println(err)
	}
}

func newFactory(t testing.TB, namespace string) *framework.Factory {
	return newFactoryOf(t, namespace, clientgoscheme.AddToScheme, testapi.AddToScheme)
}

// newFactoryOf returns a factory whose scheme has the kinds of the API
// packages given.
func newFactoryOf(t testing.TB, namespace string, addToScheme ...func(*runtime.Scheme) error) *framework.Factory {
	f, err := framework.NewFactory(env.Config(), factorytest.Scheme(t, addToScheme...), framework.Options{
		Namespace: namespace,
		RateLimit: framework.RateLimit{BaseDelay: 10 * time.Millisecond, MaxDelay: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func start(t testing.TB, f *framework.Factory) { factorytest.Run(t, f) }

func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	return testkit.Receive(t, ch, 10*time.Second, what)
}

func TestTypedControllerConfigMaps(t *testing.T) {
	ctx := t.Context()
	namespaces := generic.NewController[*corev1.Namespace, *corev1.NamespaceList](newFactory(t, ""), factorytest.Namespaces)
	ns, err := namespaces.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "generic-"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = namespaces.DeleteByName(context.Background(), "", ns.Name, metav1.DeleteOptions{}) })

	f := newFactory(t, ns.Name)
	cms := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](f, factorytest.ConfigMaps)
	if gvk := cms.GroupVersionKind(); gvk.Kind != "ConfigMap" {
		t.Fatalf("GroupVersionKind %v", gvk)
	}
	type event struct {
		key string
		cm  *corev1.ConfigMap
	}
	events := make(chan event, 16)
	cms.OnChange(ctx, "typed", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		events <- event{key, cm}
		if cm == nil || cm.Annotations["seen"] == "yes" {
			return nil, nil
		}
		// The handler's object is its own copy: change it and write it.
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations["seen"] = "yes"
		return cms.Update(ctx, cm)
	})
	if err := cms.Cache().AddIndexer("byTeam", func(cm *corev1.ConfigMap) ([]string, error) {
		return []string{cm.Labels["team"]}, nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, f)

	created, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "one", Namespace: ns.Name, Labels: map[string]string{"team": "blue"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := receive(t, events, "create"); ev.key != ns.Name+"/one" || ev.cm == nil || ev.cm.UID != created.UID {
		t.Fatalf("create event %+v", ev)
	}
	// The handler's own update comes back as an event.
	if ev := receive(t, events, "the handler's update"); ev.cm == nil || ev.cm.Annotations["seen"] != "yes" {
		t.Fatalf("update event %+v", ev)
	}

	got, err := cms.Get(ctx, ns.Name, "one", metav1.GetOptions{})
	if err != nil || got.Annotations["seen"] != "yes" {
		t.Fatalf("Get: %v %v", got, err)
	}
	cached, err := cms.Cache().Get(ns.Name, "one")
	if err != nil || cached.UID != created.UID {
		t.Fatalf("Cache().Get: %v %v", cached, err)
	}
	if _, err := cms.Cache().Get(ns.Name, "missing"); !apierrors.IsNotFound(err) {
		t.Fatalf("Cache().Get of a missing object: %v, want NotFound", err)
	}
	byTeam, err := cms.Cache().GetByIndex(ns.Name, "byTeam", "blue")
	if err != nil || len(byTeam) != 1 || byTeam[0].Name != "one" {
		t.Fatalf("GetByIndex: %v %v", byTeam, err)
	}
	listed, err := cms.Cache().List(ns.Name, labels.SelectorFromSet(labels.Set{"team": "blue"}))
	if err != nil || len(listed) != 1 {
		t.Fatalf("Cache().List: %v %v", listed, err)
	}
	list, err := cms.List(ctx, ns.Name, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("List: %v %v", list, err)
	}

	read := &list.Items[0]
	patched, err := cms.Patch(ctx, read, types.MergePatchType, []byte(`{"data":{"k":"v"}}`))
	if err != nil || patched.Data["k"] != "v" {
		t.Fatalf("Patch: %v %v", patched, err)
	}
	receive(t, events, "the patch")
	// Patches and deletes are conditional on the version read: read is
	// stale now, so each is refused, whatever the patch type; apply is not
	// conditioned (its field managers decide).
	for pt, data := range map[types.PatchType]string{
		types.MergePatchType:          `{"data":{"k":"stale"}}`,
		types.StrategicMergePatchType: `{"data":{"k":"stale"}}`,
		types.JSONPatchType:           `[{"op":"replace","path":"/data/k","value":"stale"}]`,
	} {
		if _, err := cms.Patch(ctx, read, pt, []byte(data)); !apierrors.IsConflict(err) && !apierrors.IsInvalid(err) {
			t.Errorf("%s patch of a stale read: %v, want a conflict", pt, err)
		}
	}
	if err := cms.Delete(ctx, read, metav1.DeleteOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("delete of a stale read: %v, want a conflict", err)
	}
	if now, err := cms.Get(ctx, ns.Name, "one", metav1.GetOptions{}); err != nil || now.Data["k"] != "v" {
		t.Fatalf("after refused stale writes: %v %v, want k=v", now, err)
	}
	if _, err := cms.Patch(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: ns.Name}}, types.MergePatchType, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "PatchByName") {
		t.Errorf("Patch of an object never read: %v, want an error naming PatchByName", err)
	}
	if _, err := cms.PatchByName(ctx, ns.Name, "one", types.MergePatchType, []byte(`{"data":{"by":"name"}}`)); err != nil {
		t.Fatalf("PatchByName: %v", err)
	}
	receive(t, events, "the patch by name")
	if patched, err = cms.Get(ctx, ns.Name, "one", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}

	w, err := cms.Watch(ctx, ns.Name, metav1.ListOptions{ResourceVersion: patched.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := cms.Delete(ctx, patched, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := receive(t, w.ResultChan(), "watch event"); ev.Type != watch.Deleted {
		t.Fatalf("watch event %v", ev.Type)
	} else if _, ok := ev.Object.(*corev1.ConfigMap); !ok {
		t.Fatalf("watch object is %T", ev.Object)
	}
	if ev := receive(t, events, "delete"); ev.key != ns.Name+"/one" || ev.cm != nil {
		t.Fatalf("delete event %+v, want the key and a nil object", ev)
	}

	for _, name := range []string{"x", "y"} {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cms.DeleteCollection(ctx, ns.Name, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if list, err := cms.List(ctx, ns.Name, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Fatalf("after DeleteCollection: %v %v", list, err)
	}
}

func TestTypedStatusAndRemove(t *testing.T) {
	ctx := t.Context()
	f := newFactory(t, "default")
	ws := generic.NewController[*testapi.Widget, *testapi.WidgetList](f, factorytest.Widgets)
	removed := make(chan string, 2)
	ws.OnChange(ctx, "observe", func(ctx context.Context, key string, w *testapi.Widget) (*testapi.Widget, error) {
		if w == nil || w.DeletionTimestamp != nil || w.Status.ObservedSize == w.Spec.Size {
			return w, nil
		}
		w.Status.ObservedSize = w.Spec.Size
		return ws.UpdateStatus(ctx, w)
	})
	ws.OnRemove(ctx, "typed-cleanup", func(ctx context.Context, key string, w *testapi.Widget) (*testapi.Widget, error) {
		removed <- key
		return w, nil
	})
	start(t, f)
	if _, err := ws.Create(ctx, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: "typed", Namespace: "default"}, Spec: testapi.WidgetSpec{Size: 3}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, err := ws.Get(ctx, "default", "typed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if w.Status.ObservedSize == 3 && len(w.Finalizers) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v finalizers %v", w.Status, w.Finalizers)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := ws.DeleteByName(ctx, "default", "typed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if key := receive(t, removed, "OnRemove"); key != "default/typed" {
		t.Fatalf("OnRemove got %q", key)
	}
}

func TestUnknownKindFailsStart(t *testing.T) {
	f := newFactory(t, "")
	bogus := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](f, generic.Resource{
		GVK: corev1.SchemeGroupVersion.WithKind("Bogus"), Plural: "bogus", Namespaced: true,
	})
	bogus.OnChange(t.Context(), "h", func(context.Context, string, *corev1.ConfigMap) (*corev1.ConfigMap, error) { return nil, nil })
	err := engine.OpsOf(f).StartCaches(t.Context())
	if err == nil {
		t.Fatal("StartCaches succeeded with a handler on a kind the scheme does not know")
	}
	t.Log(err)
	if _, err := bogus.Get(t.Context(), "default", "x", metav1.GetOptions{}); err == nil {
		t.Fatal("Get on an unknown kind succeeded")
	}
}
