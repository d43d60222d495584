package generic_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rein-k8s/rein/internal/testkit/factorytest"
	"github.com/rein-k8s/rein/pkg/fence"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/pkg/generic"
)

// testNamespace creates a namespace of the test's own.
func testNamespace(t *testing.T) string {
	t.Helper()
	namespaces := generic.NewController[*corev1.Namespace, *corev1.NamespaceList](newFactory(t, ""), factorytest.Namespaces)
	ns, err := namespaces.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "forms-"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = namespaces.DeleteByName(context.Background(), "", ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}

var errFenced = errors.New("fenced: this replica does not hold the lease")

// refuseWrites is a fence.Hold that allows no write.
var refuseWrites = holdFunc(func() (time.Time, error) { return time.Time{}, errFenced })

// holdFunc is a fence.Hold with no token whose Deadline is the function.
type holdFunc func() (time.Time, error)

func (h holdFunc) Token() fence.Token           { return fence.Token{} }
func (h holdFunc) Deadline() (time.Time, error) { return h() }

// A metadata-only controller works like a typed one: OnChange sees the
// object's metadata with its own kind, patches are conditional, OnRemove
// keeps its finalizer, the cache holds metadata only, and writes pass the
// fence. A typed controller of the same kind in the same factory keeps its
// own full cache beside it.
func TestMetadataController(t *testing.T) {
	ns := testNamespace(t)
	f := newFactory(t, ns)
	ctx := t.Context()

	cms := generic.NewController[*metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList](f, factorytest.ConfigMaps)
	typed := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](f, factorytest.ConfigMaps)
	widgets := generic.NewController[*metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList](f, factorytest.Widgets)

	type seen struct {
		key    string
		gvk    schema.GroupVersionKind
		labels map[string]string
		gone   bool
	}
	changes := make(chan seen, 32)
	cms.OnChange(ctx, "label", func(ctx context.Context, key string, obj *metav1.PartialObjectMetadata) (*metav1.PartialObjectMetadata, error) {
		if obj == nil {
			changes <- seen{key: key, gone: true}
			return nil, nil
		}
		changes <- seen{key: key, gvk: obj.GroupVersionKind(), labels: obj.Labels}
		if obj.Labels["seen"] == "yes" || obj.DeletionTimestamp != nil {
			return nil, nil
		}
		return cms.Patch(ctx, obj, types.MergePatchType, []byte(`{"metadata":{"labels":{"seen":"yes"}}}`))
	})
	removed := make(chan string, 4)
	cms.OnRemove(ctx, "cleanup", func(ctx context.Context, key string, obj *metav1.PartialObjectMetadata) (*metav1.PartialObjectMetadata, error) {
		removed <- key
		return nil, nil
	})
	typedData := make(chan map[string]string, 32)
	typed.OnChange(ctx, "typed", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if cm != nil {
			typedData <- cm.Data
		}
		return nil, nil
	})
	widgetKinds := make(chan schema.GroupVersionKind, 4)
	widgets.OnChange(ctx, "widget", func(ctx context.Context, key string, obj *metav1.PartialObjectMetadata) (*metav1.PartialObjectMetadata, error) {
		if obj != nil {
			widgetKinds <- obj.GroupVersionKind()
		}
		return nil, nil
	})
	start(t, f)

	if _, err := typed.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: ns},
		Data:       map[string]string{"payload": strings.Repeat("x", 4096)},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := generic.NewController[*testapi.Widget, *testapi.WidgetList](f, factorytest.Widgets).Create(ctx, &testapi.Widget{
		ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: ns}, Spec: testapi.WidgetSpec{Size: 3},
	}); err != nil {
		t.Fatal(err)
	}

	// The handler sees the ConfigMap's own kind, patches it, and sees its
	// patch come back through the metadata watch.
	for {
		s := receive(t, changes, "the metadata handler")
		if s.gvk != factorytest.ConfigMaps.GVK {
			t.Fatalf("metadata handler got kind %v, want %v", s.gvk, factorytest.ConfigMaps.GVK)
		}
		if s.labels["seen"] == "yes" {
			break
		}
	}
	if gvk := receive(t, widgetKinds, "the Widget metadata handler"); gvk != factorytest.Widgets.GVK {
		t.Fatalf("Widget metadata handler got kind %v", gvk)
	}
	if data := receive(t, typedData, "the typed handler"); len(data["payload"]) != 4096 {
		t.Fatalf("the typed controller of the same kind got data of %d bytes, want its full object", len(data["payload"]))
	}

	// The cache holds the metadata; the finalizer of the OnRemove handler
	// is on the server.
	cached, err := cms.Cache().Get(ns, "big")
	if err != nil {
		t.Fatal(err)
	}
	if cached.GroupVersionKind() != factorytest.ConfigMaps.GVK || cached.UID == "" {
		t.Fatalf("cached metadata: kind %v uid %q", cached.GroupVersionKind(), cached.UID)
	}
	if list, err := cms.Cache().List(ns, labels.SelectorFromSet(labels.Set{"seen": "yes"})); err != nil || len(list) != 1 {
		t.Fatalf("cache list by label: %d objects, %v", len(list), err)
	}
	live, err := cms.Get(ctx, ns, "big", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(live.Finalizers, "rein.dev/cleanup") {
		t.Fatalf("finalizers on the server %v, want rein.dev/cleanup", live.Finalizers)
	}

	// A patch based on an old read is refused: Patch is conditional.
	stale := cached.DeepCopy()
	stale.ResourceVersion = "1"
	if _, err := cms.Patch(ctx, stale, types.MergePatchType, []byte(`{"metadata":{"labels":{"stale":"yes"}}}`)); !apierrors.IsConflict(err) {
		t.Fatalf("a stale metadata patch: %v, want 409 Conflict", err)
	}
	// Create and Update say why they cannot work.
	if _, err := cms.Create(ctx, &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns}}); err == nil || !strings.Contains(err.Error(), "patch them") {
		t.Fatalf("Create on a metadata controller: %v", err)
	}

	// Deleting runs OnRemove, which lets the object go.
	if err := typed.DeleteByName(ctx, ns, "big", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if key := receive(t, removed, "the OnRemove handler"); key != ns+"/big" {
		t.Fatalf("OnRemove got %q", key)
	}
	for s := receive(t, changes, "the deletion"); !s.gone; s = receive(t, changes, "the deletion") {
	}
	if _, err := cms.Get(ctx, ns, "big", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after OnRemove: %v, want NotFound", err)
	}

	// With the fence closed, a metadata write does not leave the process.
	engine.OpsOf(f).GuardWrites(refuseWrites)
	w, err := widgets.Get(ctx, ns, "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := widgets.Patch(ctx, w, types.MergePatchType, []byte(`{"metadata":{"labels":{"late":"yes"}}}`)); !errors.Is(err, errFenced) {
		t.Fatalf("a metadata patch with the fence closed: %v, want the fence's error", err)
	}
	if after, err := widgets.Get(ctx, ns, "w", metav1.GetOptions{}); err != nil || after.ResourceVersion != w.ResourceVersion {
		t.Fatalf("the fenced patch reached the server: %v %v", after, err)
	}
}

// A dynamic controller serves a kind its program's scheme does not know,
// found by discovery: handlers get unstructured objects, writes are
// conditional and fenced, OnRemove keeps its finalizer.
func TestDynamicController(t *testing.T) {
	ns := testNamespace(t)
	f := newFactoryOf(t, ns, clientgoscheme.AddToScheme) // no Widget in its scheme
	ctx := t.Context()

	if _, err := engine.OpsOf(f).Clients().DiscoverResource(ctx, testapi.SchemeGroupVersion.WithKind("Gizmo"), engine.Unstructured); err == nil || !strings.Contains(err.Error(), "Widget") {
		t.Fatalf("discovering a kind the group does not serve: %v, want an error listing what it serves", err)
	}
	if _, err := engine.OpsOf(f).Clients().DiscoverResource(ctx, schema.GroupVersionKind{Group: "nowhere.example.com", Version: "v1", Kind: "Thing"}, engine.Unstructured); err == nil || !strings.Contains(err.Error(), "nowhere.example.com/v1") {
		t.Fatalf("discovering a group the apiserver does not serve: %v", err)
	}
	res, err := f.DiscoverResource(ctx, testapi.SchemeGroupVersion.WithKind("Widget")) // the user-facing method
	if err != nil {
		t.Fatal(err)
	}
	if res.Plural != "widgets" || !res.Namespaced {
		t.Fatalf("discovered %+v", res)
	}
	// The typed form of a kind the scheme lacks is named, with the way out.
	if _, err := engine.OpsOf(f).Controller(generic.Resource{GVK: res.GVK, Plural: res.Plural, Namespaced: true}); err == nil || !strings.Contains(err.Error(), "*unstructured.Unstructured") {
		t.Fatalf("a typed controller of a kind the scheme lacks: %v", err)
	}

	widgets := generic.NewController[*unstructured.Unstructured, *unstructured.UnstructuredList](f, res)
	sizes := make(chan int64, 32)
	widgets.OnChange(ctx, "double", func(ctx context.Context, key string, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		if u == nil || u.GetDeletionTimestamp() != nil {
			return nil, nil
		}
		size, _, err := unstructured.NestedInt64(u.Object, "spec", "size")
		if err != nil {
			return nil, err
		}
		sizes <- size
		if size >= 8 {
			return nil, nil
		}
		if err := unstructured.SetNestedField(u.Object, size*2, "spec", "size"); err != nil {
			return nil, err
		}
		return widgets.Update(ctx, u)
	})
	removed := make(chan string, 4)
	widgets.OnRemove(ctx, "cleanup", func(ctx context.Context, key string, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		removed <- key
		return nil, nil
	})
	start(t, f)

	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(res.GVK)
	w.SetName("dyn")
	w.SetNamespace(ns)
	if err := unstructured.SetNestedField(w.Object, int64(1), "spec", "size"); err != nil {
		t.Fatal(err)
	}
	if _, err := widgets.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for len(got) == 0 || got[len(got)-1] < 8 {
		got = append(got, receive(t, sizes, "the dynamic handler"))
	}
	// A handler may see a state twice (a write that met a cache one step
	// behind is refused and retried); the states themselves go 1, 2, 4, 8.
	if !slices.Equal(slices.Compact(slices.Clone(got)), []int64{1, 2, 4, 8}) {
		t.Fatalf("sizes seen %v, want 1 2 4 8", got)
	}
	live, err := widgets.Get(ctx, ns, "dyn", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(live.GetFinalizers(), "rein.dev/cleanup") {
		t.Fatalf("finalizers %v", live.GetFinalizers())
	}
	if cached, err := widgets.Cache().Get(ns, "dyn"); err != nil || cached.GetKind() != "Widget" {
		t.Fatalf("cache: %v %v", cached, err)
	}

	// An update based on an old read is refused.
	stale := live.DeepCopy()
	stale.SetResourceVersion("1")
	if _, err := widgets.Update(ctx, stale); !apierrors.IsConflict(err) {
		t.Fatalf("a stale update: %v, want 409 Conflict", err)
	}
	// With the fence closed, no write leaves the process.
	engine.OpsOf(f).GuardWrites(refuseWrites)
	if _, err := widgets.Update(ctx, live); !errors.Is(err, errFenced) {
		t.Fatalf("an update with the fence closed: %v", err)
	}
	engine.OpsOf(f).GuardWrites(nil)

	if err := widgets.Delete(ctx, live, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if key := receive(t, removed, "the OnRemove handler"); key != ns+"/dyn" {
		t.Fatalf("OnRemove got %q", key)
	}
}

// A controller whose Go types are not those of its resource is named at
// start, not at every event; the types choose the form, so a typed
// resource given metadata types is served as metadata.
func TestFormMismatchNamed(t *testing.T) {
	f := newFactory(t, "default")
	generic.NewController[*corev1.ConfigMap, *corev1.SecretList](f, factorytest.ConfigMaps)
	err := engine.OpsOf(f).StartCaches(t.Context())
	if err == nil || !strings.Contains(err.Error(), "SecretList") || !strings.Contains(err.Error(), "ConfigMapList") {
		t.Fatalf("StartCaches: %v", err)
	}
}
