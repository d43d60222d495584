package fake_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	corectrl "github.com/rein-k8s/rein/pkg/controllers/core/v1"
	"github.com/rein-k8s/rein/pkg/fence"
	"github.com/rein-k8s/rein/pkg/generic"
	"github.com/rein-k8s/rein/pkg/generic/fake"
	"github.com/rein-k8s/rein/pkg/start"
)

var (
	configMapGVK = corectrl.ConfigMapResource.GVK
)

func newEnv(t *testing.T, objects ...runtime.Object) *fake.Env {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := testapi.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	env, err := fake.New(s, objects...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func configMap(namespace, name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
}

// deletingConfigMap is a ConfigMap being deleted, held by finalizers.
func deletingConfigMap(namespace, name string, finalizers ...string) *corev1.ConfigMap {
	cm := configMap(namespace, name)
	since := metav1.NewTime(time.Now())
	cm.Finalizers, cm.DeletionTimestamp = finalizers, &since
	return cm
}

func widgetsOf(env *fake.Env) generic.Controller[*testapi.Widget, *testapi.WidgetList] {
	return generic.NewController[*testapi.Widget, *testapi.WidgetList](env.Factory(), factorytest.Widgets)
}

func configMapsOf(env *fake.Env) corectrl.ConfigMapController {
	return generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](env.Factory(), corectrl.ConfigMapResource)
}

// The client acts as the apiserver does on create, update and the status
// subresource.
func TestCreateUpdateAndStatus(t *testing.T) {
	ctx := t.Context()
	widgets := widgetsOf(newEnv(t))

	w := &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "w"}, Spec: testapi.WidgetSpec{Size: 1}, Status: testapi.WidgetStatus{ObservedSize: 9}}
	created, err := widgets.Create(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if created.ResourceVersion == "" || created.UID == "" || created.Generation != 1 || created.CreationTimestamp.IsZero() {
		t.Fatalf("created %+v: want a resourceVersion, uid, generation 1 and creationTimestamp", created.ObjectMeta)
	}
	if created.Status.ObservedSize != 0 {
		t.Fatalf("create kept the status %+v; the status subresource drops it", created.Status)
	}
	if w.ResourceVersion != "" || w.Status.ObservedSize != 9 {
		t.Fatalf("Create changed the caller's object: %+v", w)
	}
	if _, err := widgets.Create(ctx, w); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v, want AlreadyExists", err)
	}
	if _, err := widgets.Create(ctx, created); !apierrors.IsBadRequest(err) {
		t.Fatalf("create with a resourceVersion: %v, want BadRequest", err)
	}

	spec := created.DeepCopy()
	spec.Spec.Size, spec.Status.ObservedSize = 2, 5
	updated, err := widgets.Update(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Generation != 2 || updated.Status.ObservedSize != 0 || updated.ResourceVersion == created.ResourceVersion {
		t.Fatalf("update: generation %d, status %+v, resourceVersion %s: want 2, the stored status, a new version", updated.Generation, updated.Status, updated.ResourceVersion)
	}

	status := updated.DeepCopy()
	status.Status.ObservedSize, status.Spec.Size, status.Labels = 2, 100, map[string]string{"ignored": "yes"}
	withStatus, err := widgets.UpdateStatus(ctx, status)
	if err != nil {
		t.Fatal(err)
	}
	if withStatus.Status.ObservedSize != 2 || withStatus.Spec.Size != 2 || withStatus.Labels != nil || withStatus.Generation != 2 {
		t.Fatalf("status update: %+v: want only the status changed", withStatus)
	}

	if _, err := widgets.Update(ctx, created); !apierrors.IsConflict(err) {
		t.Fatalf("update from a stale object: %v, want a conflict", err)
	}
	same, err := widgets.Update(ctx, withStatus)
	if err != nil {
		t.Fatal(err)
	}
	if same.ResourceVersion != withStatus.ResourceVersion {
		t.Fatalf("an update that changes nothing wrote version %s over %s", same.ResourceVersion, withStatus.ResourceVersion)
	}
	cached, err := widgets.Cache().Get("ns", "w")
	if err != nil {
		t.Fatal(err)
	}
	if cached.ResourceVersion != withStatus.ResourceVersion {
		t.Fatalf("the cache holds version %s, the store %s", cached.ResourceVersion, withStatus.ResourceVersion)
	}
	if _, err := widgets.Update(ctx, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gone"}}); !apierrors.IsNotFound(err) {
		t.Fatalf("update of a missing object: %v, want NotFound", err)
	}
	if _, err := configMapsOf(newEnv(t, configMap("ns", "a"))).UpdateStatus(ctx, configMap("ns", "a")); !apierrors.IsNotFound(err) {
		t.Fatalf("status update of a kind with no status: %v, want NotFound", err)
	}
}

func TestListSelectorsAndGenerateName(t *testing.T) {
	ctx := t.Context()
	labelled := configMap("a", "one")
	labelled.Labels = map[string]string{"app": "x"}
	env := newEnv(t, labelled, configMap("a", "two"), configMap("b", "three"))
	cms := configMapsOf(env)

	gen, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "b", GenerateName: "gen-"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(gen.Name, "gen-") || len(gen.Name) <= len("gen-") {
		t.Fatalf("generated name %q", gen.Name)
	}
	names := func(list *corev1.ConfigMapList) []string {
		var out []string
		for _, cm := range list.Items {
			out = append(out, cm.Namespace+"/"+cm.Name)
		}
		return out
	}
	for _, tc := range []struct {
		namespace string
		opts      metav1.ListOptions
		want      []string
	}{
		{"", metav1.ListOptions{}, []string{"a/one", "a/two", "b/" + gen.Name, "b/three"}},
		{"a", metav1.ListOptions{}, []string{"a/one", "a/two"}},
		{"", metav1.ListOptions{LabelSelector: "app=x"}, []string{"a/one"}},
		{"", metav1.ListOptions{FieldSelector: "metadata.name=three"}, []string{"b/three"}},
	} {
		list, err := cms.List(ctx, tc.namespace, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(list); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %+v) = %v, want %v", tc.namespace, tc.opts, got, tc.want)
		}
		if list.ResourceVersion == "" {
			t.Errorf("List(%q, %+v): no resourceVersion", tc.namespace, tc.opts)
		}
	}
	if _, err := cms.List(ctx, "", metav1.ListOptions{FieldSelector: "data.x=y"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("unsupported field selector: %v, want BadRequest", err)
	}
	if err := cms.DeleteCollection(ctx, "a", metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	left, err := env.List(configMapGVK, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 {
		t.Fatalf("after deleting namespace a's: %d objects, want 2", len(left))
	}
	if _, err := cms.Watch(ctx, "", metav1.ListOptions{}); !apierrors.IsMethodNotSupported(err) {
		t.Fatalf("Watch: %v, want MethodNotSupported", err)
	}
}

func TestPatch(t *testing.T) {
	ctx := t.Context()
	cms := configMapsOf(newEnv(t, configMap("ns", "a")))
	cm, err := cms.Get(ctx, "ns", "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	merged, err := cms.PatchByName(ctx, "ns", "a", types.MergePatchType, []byte(`{"data":{"k":"v"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if merged.Data["k"] != "v" || merged.ResourceVersion == cm.ResourceVersion {
		t.Fatalf("merge patch: %+v", merged)
	}
	stale := []byte(`{"metadata":{"resourceVersion":"` + cm.ResourceVersion + `"},"data":{"k":"w"}}`)
	if _, err := cms.PatchByName(ctx, "ns", "a", types.MergePatchType, stale); !apierrors.IsConflict(err) {
		t.Fatalf("patch with a stale resourceVersion: %v, want a conflict", err)
	}
	jsonPatched, err := cms.PatchByName(ctx, "ns", "a", types.JSONPatchType, []byte(`[{"op":"replace","path":"/data/k","value":"j"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if jsonPatched.Data["k"] != "j" {
		t.Fatalf("JSON patch: %+v", jsonPatched.Data)
	}
	strategic, err := cms.PatchByName(ctx, "ns", "a", types.StrategicMergePatchType, []byte(`{"data":{"s":"t"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if strategic.Data["k"] != "j" || strategic.Data["s"] != "t" {
		t.Fatalf("strategic merge patch: %+v", strategic.Data)
	}
	if _, err := cms.PatchByName(ctx, "ns", "a", types.ApplyPatchType, []byte(`{}`)); !apierrors.IsBadRequest(err) {
		t.Fatalf("apply patch: %v, want BadRequest", err)
	}
	if _, err := cms.PatchByName(ctx, "ns", "a", types.MergePatchType, []byte(`{`)); !apierrors.IsBadRequest(err) {
		t.Fatalf("malformed patch: %v, want BadRequest", err)
	}
	if _, err := cms.PatchByName(ctx, "ns", "missing", types.MergePatchType, []byte(`{}`)); !apierrors.IsNotFound(err) {
		t.Fatalf("patch of a missing object: %v, want NotFound", err)
	}
}

// Handlers run in registration order on one key, each with the object the
// previous one returned, with nil for an object that does not exist.
func TestReconcileRunsTheChain(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t, configMap("ns", "a"))
	cms := configMapsOf(env)
	var calls []string
	cms.OnChange(ctx, "first", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		calls = append(calls, "first "+key)
		if cm == nil {
			return nil, nil
		}
		cm.Data = map[string]string{"first": "yes"}
		return cms.Update(ctx, cm)
	})
	cms.OnChange(ctx, "second", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if cm == nil {
			calls = append(calls, "second "+key+" nil")
			return nil, nil
		}
		calls = append(calls, "second "+key+" "+cm.Data["first"])
		return nil, generic.ErrSkip
	})

	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	if err := env.Reconcile(ctx, configMapGVK, "ns/missing"); err != nil {
		t.Fatal(err)
	}
	want := []string{"first ns/a", "second ns/a yes", "first ns/missing", "second ns/missing nil"}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	if got := env.Enqueued(); len(got) != 0 {
		t.Fatalf("enqueued %v, want nothing", got)
	}
}

// OnRemove holds deletion with its finalizer until its handler succeeds;
// then the object is gone and the handler is not run again.
func TestOnRemoveHoldsDeletion(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t, configMap("ns", "a"))
	cms := configMapsOf(env)
	errBusy := errors.New("busy")
	var changes, cleanups int
	cms.OnChange(ctx, "change", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if cm != nil {
			changes++
		}
		return nil, nil
	})
	cms.OnRemove(ctx, "cleanup", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		cleanups++
		if cm.DeletionTimestamp == nil {
			t.Errorf("cleanup got %s not being deleted", key)
		}
		if cleanups == 1 {
			return nil, errBusy
		}
		return cm, nil
	})

	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	held, err := cms.Get(ctx, "ns", "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(held.Finalizers, []string{"rein.dev/cleanup"}) || cleanups != 0 {
		t.Fatalf("finalizers %v after %d cleanups, want [rein.dev/cleanup] and none", held.Finalizers, cleanups)
	}

	if err := cms.DeleteByName(ctx, "ns", "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleting, err := cms.Get(ctx, "ns", "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if deleting.DeletionTimestamp == nil || deleting.Generation != held.Generation+1 {
		t.Fatalf("deleting: deletionTimestamp %v, generation %d: want set, and %d", deleting.DeletionTimestamp, deleting.Generation, held.Generation+1)
	}
	if err := cms.DeleteByName(ctx, "ns", "a", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting again: %v", err)
	}

	err = env.Reconcile(ctx, configMapGVK, "ns/a")
	var failed *generic.HandlerError
	if !errors.Is(err, errBusy) || !errors.As(err, &failed) || failed.Handler != "cleanup" || failed.Key != "ns/a" {
		t.Fatalf("failing cleanup: %v, want a HandlerError of cleanup on ns/a wrapping %v", err, errBusy)
	}
	if still, err := cms.Get(ctx, "ns", "a", metav1.GetOptions{}); err != nil || len(still.Finalizers) != 1 {
		t.Fatalf("a failed cleanup let the finalizer go: %v, %v", still, err)
	}
	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "ns", "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the cleanup: %v, want NotFound", err)
	}
	if _, err := cms.Cache().Get("ns", "a"); !apierrors.IsNotFound(err) {
		t.Fatalf("the cache after the cleanup: %v, want NotFound", err)
	}
	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	if cleanups != 2 || changes != 3 {
		t.Fatalf("%d cleanups and %d changes seen, want 2 and 3", cleanups, changes)
	}
}

// Finalizers come first, as on a factory: a change handler registered
// before two OnRemove handlers already gets the object with both
// finalizers, added in one write; a remove handler whose context ended
// adds none; an object deleting without them is handed to the change
// handler as it is, and its remove handlers do not run.
func TestFinalizersComeFirst(t *testing.T) {
	ctx := t.Context()
	deleting := deletingConfigMap("ns", "deleting", "example.com/other")
	env := newEnv(t, deleting)
	cms := configMapsOf(env)
	seen := map[string][]string{}
	var deletingSeen []string
	cms.OnChange(ctx, "provision", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if cm == nil {
			return nil, nil
		}
		if cm.DeletionTimestamp != nil {
			deletingSeen = append(deletingSeen, key)
			return cm, nil
		}
		seen[key] = slices.Clone(cm.Finalizers)
		return cm, nil
	})
	cleanups := 0
	cleanup := func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		cleanups++
		return cm, nil
	}
	cms.OnRemove(ctx, "vm-cleanup", cleanup)
	cms.OnRemove(ctx, "example.com/ip-release", cleanup)
	gone, cancel := context.WithCancel(ctx)
	cms.OnRemove(gone, "gone", cleanup)
	cancel() // no longer counts, even before it leaves the chain

	// The store's resourceVersions count its writes: this is the last.
	before, err := cms.Create(ctx, configMap("ns", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	want := []string{"rein.dev/vm-cleanup", "example.com/ip-release"}
	if !slices.Equal(seen["ns/a"], want) {
		t.Fatalf("the change handler registered first saw finalizers %v, want %v", seen["ns/a"], want)
	}
	after, err := cms.Get(ctx, "ns", "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := strconv.Atoi(before.ResourceVersion)
	a, _ := strconv.Atoi(after.ResourceVersion)
	if !slices.Equal(after.Finalizers, want) || a != b+1 {
		t.Fatalf("stored: finalizers %v at resourceVersion %s (was %s), want %v in one write", after.Finalizers, after.ResourceVersion, before.ResourceVersion, want)
	}

	if err := env.Reconcile(ctx, configMapGVK, "ns/deleting"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deletingSeen, []string{"ns/deleting"}) || cleanups != 0 {
		t.Fatalf("deleting without our finalizers: change handler saw %v, %d cleanups; want it seen as deleting and no cleanup", deletingSeen, cleanups)
	}
	still, err := cms.Get(ctx, "ns", "deleting", metav1.GetOptions{})
	if err != nil || !slices.Equal(still.Finalizers, []string{"example.com/other"}) {
		t.Fatalf("deleting object: %v, %v; want it untouched", still, err)
	}
}

func TestDeletionRules(t *testing.T) {
	ctx := t.Context()
	deleting := deletingConfigMap("ns", "deleting", "example.com/a")
	env := newEnv(t, configMap("ns", "plain"), deleting)
	cms := configMapsOf(env)

	stored, err := cms.Get(ctx, "ns", "deleting", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored.Finalizers = append(stored.Finalizers, "example.com/b")
	if _, err := cms.Update(ctx, stored); !apierrors.IsInvalid(err) {
		t.Fatalf("adding a finalizer while deleting: %v, want Invalid", err)
	}
	stored.Finalizers = nil
	if _, err := cms.Update(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Get(configMapGVK, "ns/deleting"); !apierrors.IsNotFound(err) {
		t.Fatalf("deleting object without finalizers: %v, want NotFound", err)
	}

	wrongUID := types.UID("not-it")
	if err := cms.DeleteByName(ctx, "ns", "plain", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrongUID}}); !apierrors.IsConflict(err) {
		t.Fatalf("delete with a wrong UID: %v, want a conflict", err)
	}
	if err := cms.DeleteByName(ctx, "ns", "plain", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Get(configMapGVK, "ns/plain"); !apierrors.IsNotFound(err) {
		t.Fatalf("deleted object without finalizers: %v, want NotFound", err)
	}
	if err := cms.DeleteByName(ctx, "ns", "plain", metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("deleting a missing object: %v, want NotFound", err)
	}
	if _, err := fake.New(clientgoscheme.Scheme, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", DeletionTimestamp: deleting.DeletionTimestamp}}); err == nil {
		t.Fatal("New accepted an object being deleted with no finalizer")
	}
}

// Keys queued by handlers, and RequeueAfter when the chain did not fail,
// are recorded.
func TestEnqueued(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t)
	cms := configMapsOf(env)
	fail := false
	cms.OnChange(ctx, "queue", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		cms.EnqueueAfter("ns", "other", time.Minute)
		return nil, generic.RequeueAfter(time.Second)
	})
	cms.OnChange(ctx, "maybe-fail", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if fail {
			return nil, errors.New("failed")
		}
		return nil, nil
	})
	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	want := []fake.Request{
		{GVK: configMapGVK, Key: "ns/other", After: time.Minute},
		{GVK: configMapGVK, Key: "ns/a", After: time.Second},
	}
	if got := env.Enqueued(); !slices.Equal(got, want) {
		t.Fatalf("enqueued %v, want %v", got, want)
	}
	env.ClearEnqueued()
	fail = true
	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err == nil {
		t.Fatal("a failing chain returned nil")
	}
	if got := env.Enqueued(); !slices.Equal(got, want[:1]) {
		t.Fatalf("enqueued %v after a failure, want only %v: a failure is retried, not requeued", got, want[:1])
	}
}

// Handlers get a context with the Env's fencing token: fence.Transport passes
// their requests with the token header, and the engine's logger.
func TestHandlerContext(t *testing.T) {
	ctx := t.Context()
	headers := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header.Get(fence.TokenHeader)
	}))
	t.Cleanup(srv.Close)
	guarded := &http.Client{Transport: fence.Transport(srv.Client().Transport)}

	env := newEnv(t)
	cms := configMapsOf(env)
	cms.OnChange(ctx, "external", func(ctx context.Context, key string, _ *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if tok, ok := fence.TokenFrom(ctx); !ok || tok != env.Token() {
			t.Errorf("token %v, %v; want %v", tok, ok, env.Token())
		}
		if log := generic.Logger(ctx); log.Data["handler"] != "external" || log.Data["key"] != key {
			t.Errorf("logger fields %v", log.Data)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
		if err != nil {
			return nil, err
		}
		resp, err := guarded.Do(req)
		if err != nil {
			return nil, err
		}
		return nil, resp.Body.Close()
	})
	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	if got := <-headers; got != "fake/fake/1" {
		t.Fatalf("%s: %q, want fake/fake/1", fence.TokenHeader, got)
	}
}

func TestPanicIsAFailure(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t)
	cms := configMapsOf(env)
	cms.OnChange(ctx, "boom", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		panic("boom")
	})
	err := env.Reconcile(ctx, configMapGVK, "ns/a")
	var failed *generic.HandlerError
	if !errors.As(err, &failed) || !failed.Panicked || failed.Handler != "boom" {
		t.Fatalf("Reconcile: %v, want a HandlerError that panicked", err)
	}
}

func TestRegistrationMistakes(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t)
	cms := configMapsOf(env)
	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err == nil || !strings.Contains(err.Error(), "no controller") {
		t.Fatalf("Reconcile with no controller: %v", err)
	}
	cms.OnRemove(ctx, "Not A Finalizer!", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		return cm, nil
	})
	if err := env.Reconcile(ctx, configMapGVK, "ns/a"); err == nil || !strings.Contains(err.Error(), "Not A Finalizer!") {
		t.Fatalf("Reconcile after an invalid OnRemove name: %v", err)
	}

	unknown := generic.Resource{GVK: testapi.SchemeGroupVersion.WithKind("Unknown"), Plural: "unknowns", Namespaced: true}
	other := newEnv(t)
	generic.NewController[*testapi.Widget, *testapi.WidgetList](other.Factory(), unknown).OnChange(ctx, "h", func(ctx context.Context, key string, w *testapi.Widget) (*testapi.Widget, error) {
		return nil, nil
	})
	if err := other.Reconcile(ctx, unknown.GVK, "ns/a"); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("Reconcile of a kind the scheme does not know: %v", err)
	}
	if _, err := other.Get(unknown.GVK, "ns/a"); err == nil {
		t.Fatal("Get of a kind the scheme does not know: no error")
	}
}

// A handler added with a context is removed when the context ends.
func TestHandlerContextEndRemovesHandler(t *testing.T) {
	env := newEnv(t)
	cms := configMapsOf(env)
	regCtx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{}, 2)
	cms.OnChange(regCtx, "temporary", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		ran <- struct{}{}
		return nil, nil
	})
	if err := env.Reconcile(t.Context(), configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	cancel()
	ctrl, err := engine.OpsOf(env.Factory()).Controller(corectrl.ConfigMapResource)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for len(ctrl.HandlerNames()) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // context.AfterFunc removes it in its own goroutine
	}
	if err := env.Reconcile(t.Context(), configMapGVK, "ns/a"); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 1 {
		t.Fatalf("the handler ran %d times, want once: its context ended", len(ran))
	}
}

func TestClusterScopedKindAndStatusHandler(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}})
	namespaces := generic.NewController[*corev1.Namespace, *corev1.NamespaceList](env.Factory(), factorytest.Namespaces)
	runs := 0
	generic.RegisterStatusHandler(ctx, namespaces, "phase", func(ns *corev1.Namespace) *corev1.NamespaceStatus { return &ns.Status },
		func(ctx context.Context, ns *corev1.Namespace, status corev1.NamespaceStatus) (corev1.NamespaceStatus, error) {
			runs++
			status.Conditions = []corev1.NamespaceCondition{{Type: "Seen", Status: corev1.ConditionTrue}}
			return status, nil
		})
	if err := env.Reconcile(ctx, factorytest.Namespaces.GVK, "team"); err != nil {
		t.Fatal(err)
	}
	first, err := namespaces.Get(ctx, "", "team", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Status.Conditions) != 1 || first.Status.Phase != corev1.NamespaceActive {
		t.Fatalf("status %+v", first.Status)
	}
	if err := env.Reconcile(ctx, factorytest.Namespaces.GVK, "team"); err != nil {
		t.Fatal(err)
	}
	second, err := namespaces.Get(ctx, "", "team", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 || second.ResourceVersion != first.ResourceVersion {
		t.Fatalf("%d runs, version %s then %s: an unchanged status must not be written", runs, first.ResourceVersion, second.ResourceVersion)
	}
	created, err := namespaces.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "ignored"}})
	if err != nil {
		t.Fatal(err)
	}
	if created.Namespace != "" {
		t.Fatalf("a cluster-scoped object got namespace %q", created.Namespace)
	}
}

// The typed cache reads the store, indexes included, at once.
func TestCacheIndexes(t *testing.T) {
	ctx := t.Context()
	env := newEnv(t)
	cms := configMapsOf(env)
	if err := cms.Cache().AddIndexer("app", func(cm *corev1.ConfigMap) ([]string, error) {
		return []string{cm.Labels["app"]}, nil
	}); err != nil {
		t.Fatal(err)
	}
	cm := configMap("ns", "a")
	cm.Labels = map[string]string{"app": "x"}
	if _, err := cms.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if got, err := cms.Cache().GetByIndex("ns", "app", "x"); err != nil || len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("GetByIndex: %v, %v", got, err)
	}
	if got, err := cms.Cache().List("", labels.SelectorFromSet(labels.Set{"app": "x"})); err != nil || len(got) != 1 {
		t.Fatalf("List: %v, %v", got, err)
	}
	if cms.Informer() == nil || cms.Informer().HasSynced() {
		t.Fatal("Informer: want one that never runs")
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := configMapsOf(newEnv(t)).Create(ctx, configMap("ns", "a")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with an ended context: %v", err)
	}
}

// A fake's factory is for Reconcile only: handing it to pkg/start fails at
// once, saying why, instead of running a replica with nothing to watch.
func TestFactoryDoesNotStart(t *testing.T) {
	env, err := fake.New(clientgoscheme.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	opts := start.NewOptions()
	opts.Config = &rest.Config{Host: "https://127.0.0.1:1"}
	opts.LeaderElect = false
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	_, err = start.New(opts, start.Group{Factories: []start.Starter{env.Factory()}})
	if err == nil || !strings.Contains(err.Error(), "in-memory store") {
		t.Fatalf("start.New on a fake's factory: %v, want an error saying it serves an in-memory store", err)
	}
}
