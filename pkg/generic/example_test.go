package generic_test

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	testapi "github.com/rein-k8s/rein/internal/testapi/v1"
	"github.com/rein-k8s/rein/pkg/apply"
	"github.com/rein-k8s/rein/pkg/framework"
	"github.com/rein-k8s/rein/pkg/generic"
)

// Register an OnChange and an OnRemove handler on ConfigMaps, run them, and
// watch them act on one object's life. (The example runs against the test
// control plane; in a program the rest.Config comes from a kubeconfig or the
// cluster, and pkg/start runs caches and workers.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	factory, err := framework.NewFactory(env.Config(), clientgoscheme.Scheme, framework.Options{Namespace: "default"})
	if err != nil {
		fmt.Println(err)
		return
	}
	configMaps := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory, generic.Resource{
		GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true,
	})

	done, stamped := make(chan struct{}), make(chan struct{})
	configMaps.OnChange(ctx, "stamp", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if cm == nil || key != "default/example" || cm.DeletionTimestamp != nil || cm.Data["stamped"] == "yes" {
			return nil, nil // deleted, not ours, going away, or done already
		}
		cm.Data = map[string]string{"stamped": "yes"}
		// The next handler sees the answer. A run on a cache that has not
		// caught up with this write yet gets a Conflict and is retried.
		updated, err := configMaps.Update(ctx, cm)
		if err == nil {
			fmt.Println("OnChange: stamped", key)
			close(stamped) // once: the object is stamped from now on
		}
		return updated, err
	})
	configMaps.OnRemove(ctx, "example-cleanup", func(ctx context.Context, key string, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
		if key == "default/example" {
			fmt.Println("OnRemove: cleaning up after", key, "stamped:", cm.Data["stamped"])
			close(done)
		}
		return cm, nil
	})

	// What start.Run does in a program: caches on every replica, and once
	// every key is queued, workers on the leader.
	workers, err := startReplica(ctx, factory)
	if err != nil {
		fmt.Println(err)
		return
	}

	if _, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "example", Namespace: "default"}}); err != nil {
		fmt.Println(err)
		return
	}
	// Deletion waits for the OnRemove handler (its finalizer). Finalizers
	// come first: it was on the object before the change handler ran.
	<-stamped
	cm, err := configMaps.Get(ctx, "default", "example", metav1.GetOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("finalizer:", cm.Finalizers[0], "stamped:", cm.Data["stamped"])
	// Delete is conditional on the version read: a change since is a Conflict.
	if err := configMaps.Delete(ctx, cm, metav1.DeleteOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	stopReplica(cancel, workers)
	// Output:
	// OnChange: stamped default/example
	// finalizer: rein.dev/example-cleanup stamped: yes
	// OnRemove: cleaning up after default/example stamped: yes
}

// A generating handler: every Widget gets one ConfigMap per unit of its
// size, and its status says how many it has. Shrinking the Widget prunes
// ConfigMaps; deleting it deletes them all. (Against the test control
// plane; in a program pkg/start runs the caches and workers.)
func ExampleRegisterGeneratingHandler() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Its own namespace: the factory caches only what the example makes.
	clients, err := env.Admin().Clientset()
	if err != nil {
		fmt.Println(err)
		return
	}
	const ns = "example-generating"
	if _, err := clients.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		fmt.Println(err)
		return
	}
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = testapi.AddToScheme(s)
	factory, err := framework.NewFactory(env.Config(), s, framework.Options{Namespace: ns})
	if err != nil {
		fmt.Println(err)
		return
	}
	widgets := generic.NewController[*testapi.Widget, *testapi.WidgetList](factory, generic.Resource{
		GVK: testapi.SchemeGroupVersion.WithKind("Widget"), Plural: "widgets", Namespaced: true,
	})
	applier, err := apply.New(factory)
	if err != nil {
		fmt.Println(err)
		return
	}
	parts, err := applier.Set("example-parts", []generic.Resource{
		{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	generic.RegisterGeneratingHandler(ctx, widgets, parts, "example-parts",
		func(w *testapi.Widget) *testapi.WidgetStatus { return &w.Status },
		func(ctx context.Context, w *testapi.Widget, status testapi.WidgetStatus) ([]runtime.Object, testapi.WidgetStatus, error) {
			var children []runtime.Object
			for i := range w.Spec.Size {
				children = append(children, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-part-%d", w.Name, i)}})
			}
			status.ObservedSize = w.Spec.Size
			return children, status, nil
		},
		generic.GeneratingOptions[testapi.WidgetStatus]{
			Conditions: func(s *testapi.WidgetStatus) *[]metav1.Condition { return &s.Conditions },
		})
	workers, err := startReplica(ctx, factory) // pkg/start's work in a program
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { cancel(); _ = workers.Wait(10 * time.Second) }()

	if _, err := widgets.Create(ctx, &testapi.Widget{ObjectMeta: metav1.ObjectMeta{Name: "example-widget", Namespace: ns}, Spec: testapi.WidgetSpec{Size: 2}}); err != nil {
		fmt.Println(err)
		return
	}
	for {
		w, err := widgets.Get(ctx, ns, "example-widget", metav1.GetOptions{})
		if err == nil && meta.IsStatusConditionTrue(w.Status.Conditions, "Generated") {
			fmt.Println("observed size:", w.Status.ObservedSize)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	children, err := clients.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: apply.SetLabel + "=example-parts"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, cm := range children.Items {
		fmt.Println("child:", cm.Name)
	}

	if err := widgets.DeleteByName(ctx, ns, "example-widget", metav1.DeleteOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	for {
		if _, err := widgets.Get(ctx, ns, "example-widget", metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("deleted with its children")

	// Output:
	// observed size: 2
	// child: example-widget-part-0
	// child: example-widget-part-1
	// deleted with its children
}

// A metadata-only controller: the handler reads names, labels and
// finalizers of ConfigMaps without their data, which the apiserver never
// sends. (Against the test control plane; in a program pkg/start runs the
// caches and workers.)
func ExampleNewController_metadata() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory := exampleFactory() // on the test control plane
	configMapResource := generic.Resource{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true}
	configMaps := generic.NewController[*metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList](factory, configMapResource)
	seen := make(chan string, 1)
	configMaps.OnChange(ctx, "owner-label", func(ctx context.Context, key string, obj *metav1.PartialObjectMetadata) (*metav1.PartialObjectMetadata, error) {
		if obj == nil || key != "default/example-metadata" {
			return nil, nil
		}
		if obj.Labels["team"] == "" {
			// Metadata objects are written with patches, conditional on
			// the version the handler read.
			return configMaps.Patch(ctx, obj, types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"platform"}}}`))
		}
		seen <- fmt.Sprintf("%s %s labelled team=%s", obj.Kind, obj.Name, obj.Labels["team"])
		return nil, nil
	})
	workers, err := startReplica(ctx, factory) // pkg/start's work in a program
	if err != nil {
		fmt.Println(err)
		return
	}
	typed := generic.NewController[*corev1.ConfigMap, *corev1.ConfigMapList](factory, configMapResource)
	if _, err := typed.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "example-metadata", Namespace: "default"},
		Data:       map[string]string{"big": "a payload the metadata controller never receives"},
	}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-seen)
	_ = typed.DeleteByName(ctx, "default", "example-metadata", metav1.DeleteOptions{})
	stopReplica(cancel, workers)
	// Output:
	// ConfigMap example-metadata labelled team=platform
}

// A dynamic controller for a kind the program was not compiled with:
// discovery finds its resource, handlers get unstructured objects.
func ExampleNewController_unstructured() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory := exampleFactory() // on the test control plane
	gvk := schema.GroupVersionKind{Group: "test.rein.dev", Version: "v1", Kind: "Widget"}
	res, err := factory.DiscoverResource(ctx, gvk)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("discovered:", res)
	widgets := generic.NewController[*unstructured.Unstructured, *unstructured.UnstructuredList](factory, res)
	sizes := make(chan int64, 1)
	widgets.OnChange(ctx, "size", func(ctx context.Context, key string, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
		if u == nil || key != "default/example-dynamic" {
			return nil, nil
		}
		size, _, err := unstructured.NestedInt64(u.Object, "spec", "size")
		sizes <- size
		return nil, err
	})
	workers, err := startReplica(ctx, factory) // pkg/start's work in a program
	if err != nil {
		fmt.Println(err)
		return
	}
	w := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"size": int64(3)}}}
	w.SetGroupVersionKind(gvk)
	w.SetNamespace("default")
	w.SetName("example-dynamic")
	if _, err := widgets.Create(ctx, w); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("spec.size:", <-sizes)
	_ = widgets.DeleteByName(ctx, "default", "example-dynamic", metav1.DeleteOptions{})
	stopReplica(cancel, workers)
	// Output:
	// discovered: widgets.test.rein.dev[unstructured]
	// spec.size: 3
}
