package apply_test

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rein-k8s/rein/pkg/apply"
	"github.com/rein-k8s/rein/pkg/generic"
)

// A Set keeps an owner's children as declared: the first Apply creates
// them, an Apply of the same objects sends nothing once the caches show
// them, and one that leaves a child out deletes it. (The example runs
// against the test control plane; in a program a handler calls Apply with
// the object it got, and pkg/start runs the caches.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory := exampleFactory() // on the test control plane
	applier, err := apply.New(factory)
	if err != nil {
		fmt.Println(err)
		return
	}
	set, err := applier.Set("example-children", []generic.Resource{
		{GVK: corev1.SchemeGroupVersion.WithKind("ConfigMap"), Plural: "configmaps", Namespaced: true},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := syncCaches(ctx, factory); err != nil { // pkg/start's work in a program
		fmt.Println(err)
		return
	}

	// The owner: any object read from the apiserver (it has a UID).
	clients, err := env.Admin().Clientset()
	if err != nil {
		fmt.Println(err)
		return
	}
	owner, err := clients.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "example-owner"}}, metav1.CreateOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		_ = clients.CoreV1().ServiceAccounts("default").Delete(context.Background(), owner.Name, metav1.DeleteOptions{})
	}()

	desired := []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "example-settings"}, Data: map[string]string{"mode": "fast"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "example-extra"}, Data: map[string]string{"x": "1"}},
	}
	result, err := set.Apply(ctx, owner, desired...)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("created:", len(result.Created))

	// The same set again is a no-op: no request. (The set remembers what
	// it applied until the caches show it, then compares with them.)
	result, _ = set.Apply(ctx, owner, desired...)
	fmt.Println("unchanged:", len(result.Unchanged), "changed:", result.Changed())

	// Leave one out: it is pruned.
	result, err = set.Apply(ctx, owner, desired[0])
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("deleted:", result.Deleted[0])
	_, _ = set.Delete(ctx, owner) // the owner goes: all of its children go

	// Output:
	// created: 2
	// unchanged: 2 changed: false
	// deleted: ConfigMap default/example-extra
}
