package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/rein-k8s/rein/internal/engine"
	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/internal/testkit/factorytest"
)

// keyRecorder is a handler that records the keys it ran for and whether
// the object was there, and tells a test each time.
type keyRecorder struct {
	mu    sync.Mutex
	seen  map[string]runtime.Object // nil value: ran with the object gone
	event chan string
}

func newKeyRecorder() *keyRecorder {
	return &keyRecorder{seen: map[string]runtime.Object{}, event: make(chan string, 64)}
}

func (r *keyRecorder) handle(_ context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	r.mu.Lock()
	r.seen[key] = obj
	r.mu.Unlock()
	r.event <- key
	return nil, nil
}

// waitFor waits until the handler has run for key, and returns what it
// last got for it.
func (r *keyRecorder) waitFor(t *testing.T, key string) runtime.Object {
	t.Helper()
	for {
		r.mu.Lock()
		obj, ok := r.seen[key]
		r.mu.Unlock()
		if ok {
			return obj
		}
		receive(t, r.event, 10*time.Second, "a handler run for "+key)
	}
}

func (r *keyRecorder) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (r *keyRecorder) forget(key string) {
	r.mu.Lock()
	delete(r.seen, key)
	r.mu.Unlock()
}

func cachedKeys(t *testing.T, f *engine.Factory, res engine.Resource) []string {
	t.Helper()
	inf, err := engine.OpsOf(f).Caches().ForResource(res)
	if err != nil {
		t.Fatal(err)
	}
	keys := inf.GetStore().ListKeys()
	slices.Sort(keys)
	return keys
}

// A cache of a list of namespaces holds, and its controller handles, the
// objects of those namespaces only; reads by key, by list and by the
// namespace index work across them; a kind may override the factory's
// namespaces.
func TestCacheNamespaces(t *testing.T) {
	a, b, c := newNamespace(t), newNamespace(t), newNamespace(t)
	for _, ns := range []string{a, b, c} {
		createConfigMap(t, ns, "x", nil)
	}
	f := newFactory(t, "", engine.Options{
		Namespaces: []string{b, a},
		CachePerKind: map[schema.GroupVersionKind]engine.KindCache{
			// Widgets are cached everywhere, ConfigMaps in a and b only.
			factorytest.Widgets.GVK: {Namespaces: []string{""}},
		},
	})
	rec := newKeyRecorder()
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "record", rec.handle)
	run(t, f)

	rec.waitFor(t, a+"/x")
	rec.waitFor(t, b+"/x")
	want := []string{a + "/x", b + "/x"}
	slices.Sort(want)
	if got := cachedKeys(t, f, factorytest.ConfigMaps); !slices.Equal(got, want) {
		t.Fatalf("cached keys %v, want %v (namespace %s is not cached)", got, want, c)
	}
	// An object created later in an uncached namespace is never seen; one
	// in a cached namespace is.
	createConfigMap(t, c, "later", nil)
	createConfigMap(t, a, "later", nil)
	rec.waitFor(t, a+"/later")
	if slices.Contains(rec.keys(), c+"/later") {
		t.Fatalf("handled %s/later, a namespace outside the cache", c)
	}

	inf, err := engine.OpsOf(f).Caches().ForResource(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := inf.GetIndexer().GetByKey(b + "/x"); !ok || err != nil {
		t.Fatalf("GetByKey %s/x: %v %v", b, ok, err)
	}
	if _, ok, _ := inf.GetIndexer().GetByKey(c + "/x"); ok {
		t.Fatalf("GetByKey %s/x found an object of an uncached namespace", c)
	}
	if items, err := inf.GetIndexer().ByIndex(cache.NamespaceIndex, a); err != nil || len(items) != 2 {
		t.Fatalf("ByIndex namespace %s: %d items, %v; want 2", a, len(items), err)
	}
	if items, _ := inf.GetIndexer().ByIndex(cache.NamespaceIndex, c); len(items) != 0 {
		t.Fatalf("ByIndex namespace %s: %d items, want 0", c, len(items))
	}

	// The per-kind override caches Widgets in every namespace.
	if _, err := engine.OpsOf(f).Caches().ForResource(factorytest.Widgets); err != nil {
		t.Fatal(err)
	}
	if err := engine.OpsOf(f).WaitForCacheSync(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Label and field selectors keep what they do not select out of the cache;
// an object that stops matching leaves it as if deleted.
func TestCacheSelectors(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{CachePerKind: map[schema.GroupVersionKind]engine.KindCache{
		factorytest.ConfigMaps.GVK: {Labels: labels.SelectorFromSet(labels.Set{"app": "mine"})},
		factorytest.Widgets.GVK:    {Fields: fields.OneTermEqualSelector("metadata.name", "keep")},
	}})
	rec := newKeyRecorder()
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "record", rec.handle)
	wrec := newKeyRecorder()
	controller(t, f, factorytest.Widgets).AddHandler(t.Context(), "record", wrec.handle)
	run(t, f)

	cs := adminClient(t)
	for name, lbl := range map[string]string{"mine": "mine", "theirs": "theirs"} {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": lbl}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	createWidget(t, ns, "keep")
	createWidget(t, ns, "drop")
	if obj := rec.waitFor(t, ns+"/mine"); obj == nil {
		t.Fatal("the selected ConfigMap was handled as gone")
	}
	wrec.waitFor(t, ns+"/keep")
	if got := cachedKeys(t, f, factorytest.ConfigMaps); !slices.Equal(got, []string{ns + "/mine"}) {
		t.Fatalf("cached ConfigMaps %v, want only the labelled one", got)
	}
	if got := cachedKeys(t, f, factorytest.Widgets); !slices.Equal(got, []string{ns + "/keep"}) {
		t.Fatalf("cached Widgets %v, want only the one the field selector names", got)
	}

	// Relabelled out of the selector: gone from the cache, and the
	// handler runs with no object.
	rec.forget(ns + "/mine")
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), "mine", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Labels["app"] = "someone-else"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if obj := rec.waitFor(t, ns+"/mine"); obj != nil {
		t.Fatalf("after it left the selector the handler got %T, want nil", obj)
	}
	if got := cachedKeys(t, f, factorytest.ConfigMaps); len(got) != 0 {
		t.Fatalf("cached ConfigMaps %v after relabelling, want none", got)
	}
	if seen := rec.keys(); slices.Contains(seen, ns+"/theirs") {
		t.Fatalf("handled %v, which the selector excludes", seen)
	}
}

// A field selector the apiserver cannot serve is named at sync, with what
// to do.
func TestCacheBadFieldSelectorNamed(t *testing.T) {
	ns := newNamespace(t)
	f := newFactory(t, ns, engine.Options{
		SyncTimeout: 3 * time.Second,
		CachePerKind: map[schema.GroupVersionKind]engine.KindCache{
			factorytest.ConfigMaps.GVK: {Fields: fields.OneTermEqualSelector("spec.color", "blue")},
		},
	})
	controller(t, f, factorytest.ConfigMaps)
	ctx, cancel := context.WithCancel(t.Context())
	defer func() { cancel(); engine.OpsOf(f).Caches().Wait() }()
	if err := engine.OpsOf(f).StartCaches(ctx); err != nil {
		t.Fatal(err)
	}
	err := engine.OpsOf(f).WaitForCacheSync(ctx)
	var syncErr *engine.SyncError
	if !errors.As(err, &syncErr) || !strings.Contains(err.Error(), "KindCache.Fields") || !strings.Contains(err.Error(), "spec.color") {
		t.Fatalf("sync with an unsupported field selector: %v", err)
	}
}

// A transform changes objects before they enter the cache, after the
// managed fields are dropped; handlers get a copy of the result; the
// server keeps the whole object.
func TestCacheTransform(t *testing.T) {
	ns := newNamespace(t)
	dropData := func(obj any) (any, error) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			if cm.ManagedFields != nil {
				return nil, errors.New("the transform ran before managedFields were dropped")
			}
			cm.Data = nil
		}
		return obj, nil
	}
	f := newFactory(t, ns, engine.Options{CachePerKind: map[schema.GroupVersionKind]engine.KindCache{
		factorytest.ConfigMaps.GVK: {Transform: dropData},
	}})
	rec := newKeyRecorder()
	controller(t, f, factorytest.ConfigMaps).AddHandler(t.Context(), "record", func(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			cm.Labels = map[string]string{"changed": "by-handler"} // its own copy
		}
		return rec.handle(ctx, key, obj)
	})
	run(t, f)

	createConfigMap(t, ns, "big", map[string]string{"payload": strings.Repeat("x", 2048)})
	obj := rec.waitFor(t, ns+"/big")
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		t.Fatalf("handler got %T", obj)
	}
	if cm.Data != nil || cm.ManagedFields != nil {
		t.Fatalf("handler's object has data %d bytes, %d managedFields; want both dropped", len(cm.Data["payload"]), len(cm.ManagedFields))
	}
	inf, err := engine.OpsOf(f).Caches().ForResource(factorytest.ConfigMaps)
	if err != nil {
		t.Fatal(err)
	}
	item, _, _ := inf.GetIndexer().GetByKey(ns + "/big")
	if cached := item.(*corev1.ConfigMap); cached.Labels["changed"] != "" {
		t.Fatal("the handler's change reached the cache: handlers must get a copy")
	}
	live, err := adminClient(t).CoreV1().ConfigMaps(ns).Get(t.Context(), "big", metav1.GetOptions{})
	if err != nil || len(live.Data["payload"]) != 2048 {
		t.Fatalf("the server's object lost its data: %v", err)
	}
}

// Every mistake in the cache options is named at NewFactory, together.
func TestCacheOptionsMistakesNamed(t *testing.T) {
	_, err := engine.NewFactory(env.Config(), newScheme(t), engine.Options{
		Namespace:  "one",
		Namespaces: []string{"a", "a", "Not_A_Name"},
		CachePerKind: map[schema.GroupVersionKind]engine.KindCache{
			factorytest.ConfigMaps.GVK: {Namespaces: []string{"", "b"}},
			{Kind: "Thing"}:            {},
		},
	})
	if err == nil {
		t.Fatal("NewFactory accepted the mistakes")
	}
	for _, want := range []string{"not both", `"a" is listed twice`, `cannot be listed with other namespaces`, "name the kind's version"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	if _, err := engine.NewFactory(env.Config(), newScheme(t), engine.Options{Namespaces: []string{"Not_A_Name"}}); err == nil || !strings.Contains(err.Error(), "Not_A_Name") {
		t.Errorf("an invalid namespace name: %v", err)
	}
}

func createWidget(t *testing.T, ns, name string) {
	t.Helper()
	client, err := engine.NewClientFactory(env.Config(), newScheme(t))
	if err != nil {
		t.Fatal(err)
	}
	wc, err := client.ForResource(factorytest.Widgets)
	if err != nil {
		t.Fatal(err)
	}
	w := &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if err := wc.Create(t.Context(), ns, w, metav1.CreateOptions{}, &testapi.Widget{}); err != nil {
		t.Fatal(err)
	}
}
